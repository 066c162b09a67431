"""A test PKI built with ``cryptography``, shaped like ICP-Brasil's: a root AC, an
intermediate AC, and end-entity certificates (e-CPF, e-CNPJ) whose subjectAltName
carries the ICP-Brasil otherNames of DOC-ICP-04 7.1.2.3 as OCTET STRINGs.

Each ``Pki`` is independent: a second one is an untrusted chain for the first.
EC P-256 keys keep the suite fast; ``rsa=True`` gives a 2048-bit RSA key (ICP-Brasil's
usual algorithm) where a test wants one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

NOW = dt.datetime.now(dt.timezone.utc)


def _name(common_name: str, ou: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "BR"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ICP-Brasil")]
    if ou:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def octet_string(text: str) -> bytes:
    """DER OCTET STRING (short or long form length) of an ASCII text."""
    body = text.encode("ascii")
    if len(body) < 128:
        return bytes([0x04, len(body)]) + body
    return bytes([0x04, 0x81, len(body)]) + body


def dados_pessoa(
    cpf: str, *, nascimento: str = "15031980", nis: str = "12345678901", rg: str = "123456789012345", orgao_uf: str = "SSPDF "
) -> str:
    """The fixed-width 'dados do titular/responsável' content: birth date (8), CPF (11),
    NIS (11), RG (15), RG issuer and UF."""
    assert len(nascimento) == 8 and len(cpf) == 11 and len(nis) == 11 and len(rg) == 15
    return nascimento + cpf + nis + rg + orgao_uf


def _key(rsa: bool):
    return rsa_keys.generate_private_key(public_exponent=65537, key_size=2048) if rsa else ec.generate_private_key(ec.SECP256R1())


@dataclass
class Issued:
    certificate: x509.Certificate
    key: object

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def private_der(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    def private_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class Pki:
    def __init__(self, label: str = "Teste"):
        self.root = self._ca(f"AC Raiz {label} v1", None, path_length=1)
        self.intermediate = self._ca(f"AC {label} Intermediaria", self.root, path_length=0)

    def _ca(self, common_name: str, issuer: Issued | None, *, path_length: int) -> Issued:
        key = _key(False)
        subject = _name(common_name)
        signer_key = issuer.key if issuer else key
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.certificate.subject if issuer else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=365))
            .not_valid_after(NOW + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), critical=False)
        )
        return Issued(builder.sign(signer_key, hashes.SHA256()), key)

    def write_trust_store(self, directory: Path, *, with_intermediate: bool = True) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "ac-raiz.pem").write_bytes(self.root.pem)
        if with_intermediate:
            (directory / "ac-intermediaria.crt").write_bytes(self.intermediate.der)  # DER too
        (directory / "LEIA-ME.txt").write_text("ignorado")
        return directory

    def leaf(
        self,
        common_name: str = "ANA SOUZA:52998224725",
        *,
        other_names: dict[str, str] | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        eku: list | None = None,
        digital_signature: bool = True,
        rsa: bool = False,
        ca: bool = False,
    ) -> Issued:
        key = _key(rsa)
        names = [x509.OtherName(ObjectIdentifier(oid), octet_string(text)) for oid, text in (other_names or {}).items()]
        names.append(x509.RFC822Name("titular@example.com"))
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, ou="AR Teste"))
            .issuer_name(self.intermediate.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - dt.timedelta(days=30))
            .not_valid_after(not_after or NOW + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=digital_signature,
                    content_commitment=True,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.intermediate.key.public_key()), critical=False)
        )
        purposes = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION] if eku is None else eku
        if purposes:
            builder = builder.add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
        return Issued(builder.sign(self.intermediate.key, hashes.SHA256()), key)

    def e_cpf(self, cpf: str, name: str = "ANA SOUZA", **kwargs) -> Issued:
        return self.leaf(
            f"{name}:{cpf}", other_names={"2.16.76.1.3.1": dados_pessoa(cpf), "2.16.76.1.3.5": "0" * 19 + "BRASILIA DF"}, **kwargs
        )

    def e_cnpj(self, cnpj: str, responsible_cpf: str, responsible: str = "BRUNO LIMA", **kwargs) -> Issued:
        return self.leaf(
            f"SECRETARIA MUNICIPAL DE SAUDE:{cnpj}",
            other_names={
                "2.16.76.1.3.4": dados_pessoa(responsible_cpf, orgao_uf="SSPSP     "),
                "2.16.76.1.3.2": responsible,
                "2.16.76.1.3.3": cnpj,
                "2.16.76.1.3.7": "0" * 12,
            },
            **kwargs,
        )

    def pfx(self, issued: Issued, password: str, *, chain: bool = True) -> bytes:
        cas = [self.intermediate.certificate] if chain else None
        return pkcs12.serialize_key_and_certificates(
            b"titular", issued.key, issued.certificate, cas, serialization.BestAvailableEncryption(password.encode())
        )
