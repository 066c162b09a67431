"""The request's digital certificate: read, verified, and reduced to its public part.

Accepted uploads: a ``.cer`` in PEM (one certificate, or the certificate followed by
its AC chain) or DER, or an A1 ``.pfx``/``.p12`` with its password. The format is
recognised by content, not by name. Of a ``.pfx`` only the certificate (and the AC
certificates it carries, as untrusted intermediates) is used: the private key is
loaded by ``cryptography`` in memory because PKCS#12 cannot be opened otherwise,
dropped at once, and neither it nor the password is written anywhere. A PEM that
carries a private key is refused (the key was not meant to be sent).

Checks, each with a Portuguese message: an end-entity certificate (not an AC), within
its validity, key usage with digitalSignature when present, extended key usage with
clientAuth (fit for client authentication), a chain to a root of the configured trust
store (``VACINA_D1_TRUST_STORE``; ICP-Brasil's roots in production; intermediate ACs
may sit there too) verified by ``cryptography.x509.verification`` (RFC 5280 path
validation, client profile), and the ICP-Brasil identifiers in its subjectAltName.

ICP-Brasil identifiers (DOC-ICP-04, "Requisitos Mínimos para as Políticas de
Certificado na ICP-Brasil", item 7.1.2.3): ``otherName`` fields whose value is an
OCTET STRING (or PrintableString/UTF8String/IA5String) of fixed-width positions:

* ``2.16.76.1.3.1`` (pessoa física, "dados do titular"): 8 positions birth date
  (ddmmaaaa), 11 CPF, 11 NIS (PIS, PASEP or CI), 15 RG, then the RG issuer and its UF;
* ``2.16.76.1.3.4`` (pessoa jurídica or equipment, "dados do responsável"): the same
  layout for the person responsible — 8 birth date, 11 CPF, 11 NIS, 15 RG, 10 issuer+UF;
* ``2.16.76.1.3.3``: the 14-digit CNPJ; ``2.16.76.1.3.2``: the responsible person's
  name; ``2.16.76.1.3.8``: the company name of an equipment/application certificate;
  ``2.16.76.1.3.5``/``.6``/``.7``: título de eleitor, CEI (not used here).

Positions not informed are zeros. Only the CPF/CNPJ (and the responsible's name) are
kept; the birth date, NIS and RG are read past, never stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from validate_docbr import CNPJ, CPF

log = logging.getLogger("portal_api")

MAX_UPLOAD_BYTES = 64 * 1024
OID_PF_TITULAR = "2.16.76.1.3.1"
OID_RESPONSAVEL_NOME = "2.16.76.1.3.2"
OID_CNPJ = "2.16.76.1.3.3"
OID_RESPONSAVEL = "2.16.76.1.3.4"
OID_NOME_EMPRESARIAL = "2.16.76.1.3.8"
# (start, end) of the CPF inside the 2.16.76.1.3.1 and 2.16.76.1.3.4 contents.
CPF_SLICE = slice(8, 19)
_CPF, _CNPJ = CPF(), CNPJ()


class CertificateRefused(ValueError):
    """An upload that is not an acceptable certificate; ``field`` is the form field to blame."""

    def __init__(self, message: str, field: str = "arquivo"):
        super().__init__(message)
        self.field = field


class TrustStoreMissing(RuntimeError):
    """No trust store is configured (or it holds no root): nothing can be verified."""


@dataclass(frozen=True)
class IcpBrasilIds:
    holder_kind: str  # pessoa_fisica | pessoa_juridica | aplicacao
    cpf: str | None
    cnpj: str | None
    responsible_cpf: str | None
    responsible_name: str | None


@dataclass(frozen=True)
class CheckedCertificate:
    kind: str  # pem | der | pfx
    der: bytes  # the public certificate, and nothing else
    sha256: str
    subject: str
    issuer: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    ids: IcpBrasilIds
    chain: list[str] = field(default_factory=list)

    @property
    def pem(self) -> str:
        return to_pem(self.der)


def to_pem(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()


# -- trust store ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustStore:
    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]
    source: str

    @classmethod
    def load(cls, path: Path | None) -> "TrustStore":
        if path is None:
            raise TrustStoreMissing("nenhum repositório de ACs confiáveis configurado (VACINA_D1_TRUST_STORE)")
        path = Path(path)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".pem", ".crt", ".cer") and p.is_file())
        elif path.is_file():
            files = [path]
        else:
            raise TrustStoreMissing(f"repositório de ACs confiáveis não encontrado: {path}")
        certificates: list[x509.Certificate] = []
        for file in files:
            data = file.read_bytes()
            try:
                certificates += (
                    x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data else [x509.load_der_x509_certificate(data)]
                )
            except ValueError:
                log.warning("repositório de ACs: %s ignorado (não é certificado PEM nem DER)", file)
        roots = tuple(c for c in certificates if c.subject == c.issuer and _is_ca(c))
        intermediates = tuple(c for c in certificates if c.subject != c.issuer and _is_ca(c))
        if not roots:
            raise TrustStoreMissing(f"o repositório de ACs confiáveis não tem nenhuma AC raiz: {path}")
        return cls(roots, intermediates, str(path))


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


# -- reading the upload ----------------------------------------------------------------------


def read_upload(data: bytes, password: str | None) -> tuple[str, x509.Certificate, list[x509.Certificate]]:
    """(kind, the end-entity certificate, the other certificates sent with it)."""
    if not data:
        raise CertificateRefused("o arquivo está vazio")
    if len(data) > MAX_UPLOAD_BYTES:
        raise CertificateRefused(f"o arquivo passa de {MAX_UPLOAD_BYTES // 1024} KB: não parece um certificado")
    if data.lstrip()[:11] == b"-----BEGIN ":
        if re.search(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----", data):
            raise CertificateRefused("o arquivo contém uma chave privada: envie só o certificado (.cer), ou o .pfx com a senha")
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise CertificateRefused("o arquivo PEM não contém um certificado X.509 legível") from None
        leaf, others = _split_leaf(certificates)
        return "pem", leaf, others
    try:
        return "der", x509.load_der_x509_certificate(data), []
    except ValueError:
        pass
    try:
        # The key must be loaded to open the container; it is dropped right here.
        _key, certificate, others = pkcs12.load_key_and_certificates(data, password.encode() if password else None)
        del _key
    except ValueError as exc:
        if _looks_like_pkcs12(data):
            if not password:
                raise CertificateRefused("informe a senha do arquivo .pfx", field="senha") from None
            if "password" in str(exc).lower() or "mac" in str(exc).lower():
                raise CertificateRefused("senha incorreta para o arquivo .pfx", field="senha") from None
            raise CertificateRefused("o arquivo .pfx não pôde ser aberto com esta senha", field="senha") from None
        raise CertificateRefused("o arquivo não é um certificado .cer (PEM ou DER) nem um .pfx (PKCS#12)") from None
    except Exception:  # noqa: BLE001 - malformed containers raise other errors inside the parser
        raise CertificateRefused("o arquivo não é um certificado .cer (PEM ou DER) nem um .pfx (PKCS#12)") from None
    if certificate is None:
        raise CertificateRefused("o arquivo .pfx não contém certificado")
    return "pfx", certificate, list(others or [])


def _looks_like_pkcs12(data: bytes) -> bool:
    # PFX ::= SEQUENCE { version INTEGER (3), ... }: a SEQUENCE whose first element is INTEGER 3.
    if len(data) < 8 or data[0] != 0x30:
        return False
    index = 2 + (data[1] & 0x7F if data[1] & 0x80 else 0)
    return data[index : index + 3] == b"\x02\x01\x03"


def _split_leaf(certificates: list[x509.Certificate]) -> tuple[x509.Certificate, list[x509.Certificate]]:
    if not certificates:
        raise CertificateRefused("o arquivo não contém certificado")
    leaves = [c for c in certificates if not _is_ca(c)]
    leaf = leaves[0] if leaves else certificates[0]
    return leaf, [c for c in certificates if c is not leaf]


# -- checks ------------------------------------------------------------------------------------


def _local(value: dt.datetime) -> str:
    from portal_api.api.present import local_time

    return local_time(value).strftime("%d/%m/%Y %H:%M")


def check(data: bytes, password: str | None, trust: TrustStore, *, now: dt.datetime | None = None) -> CheckedCertificate:
    """Read and verify an upload; CertificateRefused says why it is not acceptable."""
    now = now or dt.datetime.now(dt.timezone.utc)
    kind, leaf, others = read_upload(data, password)
    if _is_ca(leaf):
        raise CertificateRefused("o certificado é de uma autoridade certificadora: envie o certificado do titular")
    if now < leaf.not_valid_before_utc:
        raise CertificateRefused(f"o certificado ainda não é válido (válido a partir de {_local(leaf.not_valid_before_utc)})")
    if now > leaf.not_valid_after_utc:
        raise CertificateRefused(f"o certificado expirou em {_local(leaf.not_valid_after_utc)}")
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature:
            raise CertificateRefused("o uso de chave do certificado não inclui assinatura digital (digitalSignature)")
    except x509.ExtensionNotFound:
        pass
    try:
        purposes = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        purposes = None
    if purposes is None or ExtendedKeyUsageOID.CLIENT_AUTH not in purposes:
        raise CertificateRefused(
            "o certificado não é próprio para autenticação de cliente (uso estendido sem clientAuth, 1.3.6.1.5.5.7.3.2)"
        )
    chain = _verify_chain(leaf, [*others, *trust.intermediates], trust, now)
    ids = icp_brasil_ids(leaf)
    der = leaf.public_bytes(serialization.Encoding.DER)
    return CheckedCertificate(
        kind=kind,
        der=der,
        sha256=hashlib.sha256(der).hexdigest(),
        subject=leaf.subject.rfc4514_string()[:1000],
        issuer=leaf.issuer.rfc4514_string()[:1000],
        serial=format(leaf.serial_number, "x")[:64],
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        ids=ids,
        chain=chain,
    )


def _verify_chain(
    leaf: x509.Certificate, untrusted: Sequence[x509.Certificate], trust: TrustStore, now: dt.datetime
) -> list[str]:
    verifier = PolicyBuilder().store(Store(list(trust.roots))).time(now).max_chain_depth(8).build_client_verifier()
    try:
        verified = verifier.verify(leaf, list(untrusted))
    except VerificationError as exc:
        log.info("certificado recusado na verificação da cadeia: %s", exc)
        raise CertificateRefused(
            f"a cadeia do certificado (emitido por {leaf.issuer.rfc4514_string()}) não leva a uma AC raiz confiável "
            "do repositório configurado, ou uma AC da cadeia não é válida agora"
        ) from None
    return [c.subject.rfc4514_string() for c in verified.chain]


# -- ICP-Brasil otherNames -------------------------------------------------------------------


def _der_string(value: bytes) -> str:
    """The text inside a DER OCTET STRING / PrintableString / UTF8String / IA5String /
    BMPString (the otherName's [0] EXPLICIT content, which cryptography hands over)."""
    if len(value) < 2:
        raise ValueError("conteúdo vazio")
    tag, length, index = value[0], value[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(value) < 2 + count:
            raise ValueError("comprimento DER inválido")
        length = int.from_bytes(value[2 : 2 + count], "big")
        index = 2 + count
    content = value[index : index + length]
    if len(content) != length:
        raise ValueError("conteúdo DER truncado")
    if tag == 0x1E:
        return content.decode("utf-16-be")
    if tag == 0x0C:
        return content.decode("utf-8")
    if tag in (0x04, 0x13, 0x16):
        return content.decode("latin-1")
    raise ValueError(f"tipo DER inesperado (0x{tag:02x})")


def _document(text: str, slice_: slice | None, width: int, kind: str, oid: str) -> str | None:
    raw = text[slice_] if slice_ else text[:width]
    digits = raw.strip()
    if not digits or set(digits) == {"0"}:
        return None  # not informed
    if not re.fullmatch(rf"\d{{{width}}}", digits):
        raise CertificateRefused(f"o campo ICP-Brasil {oid} do certificado não traz um {kind} legível")
    validator = _CPF if kind == "CPF" else _CNPJ
    if not validator.validate(digits):
        raise CertificateRefused(f"o {kind} do campo ICP-Brasil {oid} do certificado tem dígito verificador inválido")
    return digits


def icp_brasil_ids(certificate: x509.Certificate) -> IcpBrasilIds:
    """The CPF/CNPJ of an ICP-Brasil certificate (DOC-ICP-04 7.1.2.3); CertificateRefused
    when it carries neither."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = x509.SubjectAlternativeName([])
    values: dict[str, str] = {}
    for name in names:
        if isinstance(name, x509.OtherName) and name.type_id.dotted_string.startswith("2.16.76.1.3."):
            try:
                values[name.type_id.dotted_string] = _der_string(name.value)
            except (ValueError, UnicodeDecodeError):
                raise CertificateRefused(
                    f"o campo ICP-Brasil {name.type_id.dotted_string} do certificado está malformado"
                ) from None
    cpf = _document(values[OID_PF_TITULAR], CPF_SLICE, 11, "CPF", OID_PF_TITULAR) if OID_PF_TITULAR in values else None
    cnpj = _document(values[OID_CNPJ], None, 14, "CNPJ", OID_CNPJ) if OID_CNPJ in values else None
    responsible = _document(values[OID_RESPONSAVEL], CPF_SLICE, 11, "CPF", OID_RESPONSAVEL) if OID_RESPONSAVEL in values else None
    if cpf is None and cnpj is None:
        raise CertificateRefused(
            "o certificado não traz CPF nem CNPJ nos campos ICP-Brasil (otherName 2.16.76.1.3.1 ou 2.16.76.1.3.3): "
            "use um certificado ICP-Brasil e-CPF ou e-CNPJ"
        )
    if cpf is not None:
        kind = "pessoa_fisica"
    elif OID_NOME_EMPRESARIAL in values:
        kind = "aplicacao"
    else:
        kind = "pessoa_juridica"
    responsible_name = " ".join(values.get(OID_RESPONSAVEL_NOME, "").split())[:200] or None
    return IcpBrasilIds(kind, cpf, cnpj, responsible, responsible_name)
