"""A demonstration ICP-Brasil-like chain for ``make run``, so a newcomer can walk the
request wizard (whose certificate step needs a trusted chain) without a real e-CPF.

``write(directory)`` makes, once, ``acs/`` (a root and an intermediate AC: the trust
store) and ``<cpf>.pfx`` (an A1 e-CPF of the demo person without credentials, with the
ICP-Brasil otherName 2.16.76.1.3.1 carrying the CPF, clientAuth, digitalSignature),
protected by ``DEMO_PASSWORD``. The portal trusts this chain only when it runs with
``--dev-login`` and no ``VACINA_D1_TRUST_STORE`` is set (see ``solicitacoes_pagina``):
never a production server.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

DEMO_PASSWORD = "demo-a1"
DIRECTORY = "demo-icp"


@dataclass(frozen=True)
class DemoPki:
    trust_store: Path
    pfx: Path
    password: str


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "BR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ICP-Brasil (demonstração vacina-d1)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _octet_string(text: str) -> bytes:
    body = text.encode("ascii")
    return bytes([0x04, len(body)]) + body if len(body) < 128 else bytes([0x04, 0x81, len(body)]) + body


def _ca(common_name: str, issuer, issuer_key, now: dt.datetime, path_length: int):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    signer = issuer_key or key
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.subject if issuer else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
        .sign(signer, hashes.SHA256())
    )
    return certificate, key


def write(directory: Path, *, cpf: str, name: str) -> DemoPki:
    """The demo chain and the person's .pfx under ``directory`` (kept when already there
    and still valid)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

    acs, pfx = directory / "acs", directory / f"{cpf}.pfx"
    root_file = acs / "ac-raiz-demo.pem"
    now = dt.datetime.now(dt.timezone.utc)
    if pfx.is_file() and root_file.is_file():
        stored = pkcs12.load_pkcs12(pfx.read_bytes(), DEMO_PASSWORD.encode())
        if stored.cert and stored.cert.certificate.not_valid_after_utc > now + dt.timedelta(days=1):
            return DemoPki(acs, pfx, DEMO_PASSWORD)
    root, root_key = _ca("AC Raiz Demonstracao v1", None, None, now, 1)
    intermediate, intermediate_key = _ca("AC Demonstracao Intermediaria", root, root_key, now, 0)
    key = ec.generate_private_key(ec.SECP256R1())
    holder = "0" * 8 + cpf + "0" * 11 + "0" * 15 + "SSP DF"  # birth date, CPF, NIS, RG, issuer: ICP-Brasil layout
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name.upper()}:{cpf}"))
        .issuer_name(intermediate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, True, True, False, False, False, False, False, False), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.OtherName(ObjectIdentifier("2.16.76.1.3.1"), _octet_string(holder)),
                    x509.RFC822Name("demonstracao@example.org"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(intermediate_key.public_key()), critical=False)
        .sign(intermediate_key, hashes.SHA256())
    )
    acs.mkdir(parents=True, exist_ok=True)
    root_file.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (acs / "ac-intermediaria-demo.pem").write_bytes(intermediate.public_bytes(serialization.Encoding.PEM))
    pfx.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"demonstracao", key, leaf, [intermediate], serialization.BestAvailableEncryption(DEMO_PASSWORD.encode())
        )
    )
    return DemoPki(acs, pfx, DEMO_PASSWORD)
