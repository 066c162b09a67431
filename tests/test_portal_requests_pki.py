"""The request's certificate (ICP-Brasil layout, chain, validity, client authentication,
the .pfx private key never stored), evidence files recognised by content, the client
address behind trusted proxies, and the admin commands of the workflow.

The PKI is built here with ``cryptography`` (tests/portal/pki.py): a root and an
intermediate AC, e-CPF and e-CNPJ certificates with DOC-ICP-04 otherNames.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pipelines import cli
from portal_api.core import ip_ranges
from portal_api.solicitacoes import certificates, evidence
from portal_api.solicitacoes.certificates import CertificateRefused, TrustStore, TrustStoreMissing
from tests.portal import requests_world as rw
from tests.portal import world as w
from tests.portal.pki import NOW, Pki, dados_pessoa, octet_string

CNPJ_SP = "46177400000178"


@pytest.fixture(scope="module")
def pki():
    return Pki()


@pytest.fixture(scope="module")
def trust(pki, tmp_path_factory):
    return TrustStore.load(pki.write_trust_store(tmp_path_factory.mktemp("acs")))


# -- ICP-Brasil identifiers ------------------------------------------------------------------------------


def test_the_icp_brasil_layout_gives_cpf_cnpj_and_responsible(pki, trust):
    e_cpf = certificates.check(pki.e_cpf(w.ANA_CPF).pem, None, trust)
    assert (e_cpf.ids.holder_kind, e_cpf.ids.cpf, e_cpf.ids.cnpj, e_cpf.ids.responsible_cpf) == (
        "pessoa_fisica",
        w.ANA_CPF,
        None,
        None,
    )
    e_cnpj = certificates.check(pki.e_cnpj(CNPJ_SP, w.BRUNO_CPF).pem, None, trust)
    assert (e_cnpj.ids.holder_kind, e_cnpj.ids.cpf, e_cnpj.ids.cnpj, e_cnpj.ids.responsible_cpf, e_cnpj.ids.responsible_name) == (
        "pessoa_juridica",
        None,
        CNPJ_SP,
        w.BRUNO_CPF,
        "BRUNO LIMA",
    )
    equipment = pki.leaf(
        "vacivida.prefeitura.sp.gov.br",
        other_names={
            "2.16.76.1.3.8": "PREFEITURA DO MUNICIPIO DE SAO PAULO",
            "2.16.76.1.3.3": CNPJ_SP,
            "2.16.76.1.3.2": "BRUNO LIMA",
            "2.16.76.1.3.4": dados_pessoa(w.BRUNO_CPF),
        },
    )
    assert certificates.check(equipment.der, None, trust).ids.holder_kind == "aplicacao"
    # The CPF sits at positions 9-19 whatever the rest holds; zeros mean "not informed".
    shifted = pki.leaf(other_names={"2.16.76.1.3.1": dados_pessoa(w.CARLA_CPF, nascimento="01011970", nis="0" * 11, rg="0" * 15)})
    assert certificates.check(shifted.pem, None, trust).ids.cpf == w.CARLA_CPF
    assert e_cpf.chain[1:] == [
        pki.intermediate.certificate.subject.rfc4514_string(),
        pki.root.certificate.subject.rfc4514_string(),
    ]
    assert e_cpf.chain[0].startswith("CN=ANA SOUZA:52998224725")


def test_other_der_string_types_and_long_lengths_are_read(pki, trust):
    content = dados_pessoa(w.ANA_CPF) + " " * 90  # > 127 bytes: long-form DER length
    for encoded in (
        bytes([0x13, 0x81, len(content)]) + content.encode(),  # PrintableString
        bytes([0x0C, 0x81, len(content)]) + content.encode(),
    ):  # UTF8String
        certificate = _with_san(pki, [x509.OtherName(x509.ObjectIdentifier("2.16.76.1.3.1"), encoded)])
        assert certificates.icp_brasil_ids(certificate).cpf == w.ANA_CPF
    # (cryptography refuses to build a certificate with malformed DER here, so the reader is checked directly)
    for bad in (bytes([0x04, 0x20]) + b"46177400000178", bytes([0x02, 0x01, 0x05]), b"\x04", bytes([0x04, 0x85]) + b"x" * 8):
        with pytest.raises(ValueError):
            certificates._der_string(bad)
    assert octet_string("x" * 200)[:3] == b"\x04\x81\xc8"  # the fixture's long form, read above by the same rule


def _with_san(pki: Pki, names) -> x509.Certificate:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(pki.intermediate.certificate.subject)
        .issuer_name(pki.intermediate.certificate.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(pki.intermediate.key, hashes.SHA256())
    )


# -- formats and refusals --------------------------------------------------------------------------------------


def test_cer_in_pem_or_der_and_a_pem_chain(pki, trust, tmp_path):
    issued = pki.e_cpf(w.ANA_CPF)
    assert certificates.check(issued.pem, None, trust).kind == "pem"
    assert certificates.check(issued.der, None, trust).kind == "der"
    # A store with the root only: the chain comes from the upload (PEM bundle or .pfx) or not at all.
    roots_only = TrustStore.load(pki.write_trust_store(tmp_path / "so-raiz", with_intermediate=False))
    with pytest.raises(CertificateRefused, match="não leva a uma AC raiz confiável"):
        certificates.check(issued.der, None, roots_only)
    assert certificates.check(issued.pem + pki.intermediate.pem, None, roots_only).der == issued.der
    assert certificates.check(pki.intermediate.pem + issued.pem, None, roots_only).der == issued.der  # order does not matter
    assert certificates.check(pki.pfx(issued, "x"), "x", roots_only).kind == "pfx"


REFUSALS = {
    "cadeia-nao-confiavel": (lambda pki: Pki("Outra").e_cpf(w.ANA_CPF).pem, None, "arquivo", "não leva a uma AC raiz confiável"),
    "expirado": (
        lambda pki: pki.e_cpf(w.ANA_CPF, not_before=NOW - dt.timedelta(days=400), not_after=NOW - dt.timedelta(days=1)).pem,
        None,
        "arquivo",
        "expirou em",
    ),
    "ainda-nao-valido": (
        lambda pki: pki.e_cpf(w.ANA_CPF, not_before=NOW + dt.timedelta(days=1)).pem,
        None,
        "arquivo",
        "ainda não é válido",
    ),
    "sem-autenticacao-de-cliente": (
        lambda pki: pki.e_cpf(w.ANA_CPF, eku=[x509.oid.ExtendedKeyUsageOID.EMAIL_PROTECTION]).pem,
        None,
        "arquivo",
        "autenticação de cliente",
    ),
    "sem-uso-estendido": (lambda pki: pki.e_cpf(w.ANA_CPF, eku=[]).pem, None, "arquivo", "autenticação de cliente"),
    "sem-assinatura-digital": (
        lambda pki: pki.e_cpf(w.ANA_CPF, digital_signature=False).pem,
        None,
        "arquivo",
        "digitalSignature",
    ),
    "certificado-de-ac": (lambda pki: pki.intermediate.pem, None, "arquivo", "autoridade certificadora"),
    "sem-cpf-nem-cnpj": (
        lambda pki: pki.leaf(other_names={"2.16.76.1.3.5": "0" * 19}).pem,
        None,
        "arquivo",
        "não traz CPF nem CNPJ",
    ),
    "cpf-com-digito-errado": (
        lambda pki: pki.leaf(other_names={"2.16.76.1.3.1": dados_pessoa("52998224726")}).pem,
        None,
        "arquivo",
        "dígito verificador inválido",
    ),
    "cpf-ilegivel": (lambda pki: pki.leaf(other_names={"2.16.76.1.3.1": "1503198052998"}).pem, None, "arquivo", "CPF legível"),
    "pem-com-chave-privada": (
        lambda pki: pki.e_cpf(w.ANA_CPF).pem + pki.e_cpf(w.ANA_CPF).private_pem(),
        None,
        "arquivo",
        "chave privada",
    ),
    "nao-e-certificado": (lambda pki: b"<html>certificado</html>", None, "arquivo", "não é um certificado"),
    "vazio": (lambda pki: b"", None, "arquivo", "vazio"),
    "grande-demais": (lambda pki: b"0" * (64 * 1024 + 1), None, "arquivo", "passa de 64 KB"),
    "pfx-senha-errada": (lambda pki: pki.pfx(pki.e_cpf(w.ANA_CPF), "certa"), "errada", "senha", "senha incorreta"),
    "pfx-sem-senha": (lambda pki: pki.pfx(pki.e_cpf(w.ANA_CPF), "certa"), None, "senha", "informe a senha"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_unacceptable_certificates_are_refused_with_the_reason(pki, trust, case):
    make, password, field, fragment = REFUSALS[case]
    with pytest.raises(CertificateRefused) as refused:
        certificates.check(make(pki), password, trust)
    assert refused.value.field == field and fragment in str(refused.value), str(refused.value)


def test_an_unconfigured_trust_store_refuses_everything(tmp_path):
    with pytest.raises(TrustStoreMissing, match="VACINA_D1_TRUST_STORE"):
        TrustStore.load(None)
    (tmp_path / "vazio").mkdir()
    with pytest.raises(TrustStoreMissing, match="nenhuma AC raiz"):
        TrustStore.load(tmp_path / "vazio")


def test_over_http_a_refusal_names_the_field_and_a_missing_store_is_503(tmp_path, pki):
    world, world_pki = rw.build(tmp_path)
    client = rw.client_for(world)
    try:
        with client:
            bruno = w.bearer(client, world, w.BRUNO_CPF)
            request_id = client.post("/solicitacoes", json={}, headers=bruno).json()["id"]
            expired = world_pki.e_cpf(w.BRUNO_CPF, not_before=NOW - dt.timedelta(days=40), not_after=NOW - dt.timedelta(days=2))
            for content, data, field, label in (
                (expired.der, None, "arquivo", "Arquivo: o certificado expirou em"),
                (Pki("Estranha").e_cpf(w.BRUNO_CPF).der, None, "arquivo", "Arquivo: a cadeia do certificado"),
                (
                    world_pki.pfx(world_pki.e_cpf(w.BRUNO_CPF), "a"),
                    {"senha": "b"},
                    "senha",
                    "Senha do certificado: senha incorreta",
                ),
            ):
                response = client.put(
                    f"/solicitacoes/{request_id}/certificado",
                    headers=bruno,
                    data=data,
                    files={"arquivo": ("x.cer", content, "application/pkix-cert")},
                )
                assert response.status_code == 422, response.text
                error = response.json()["errors"][0]
                assert error["field"] == field and error["message"].startswith(label), error
            assert client.get(f"/solicitacoes/{request_id}", headers=bruno).json()["certificado"] is None
            client.app.state.solicitacoes.settings = world.settings.model_copy(update={"trust_store": None})
            client.app.state.solicitacoes._trust = None
            unavailable = client.put(
                f"/solicitacoes/{request_id}/certificado",
                headers=bruno,
                files={"arquivo": ("x.cer", world_pki.e_cpf(w.BRUNO_CPF).der, "application/pkix-cert")},
            )
            assert unavailable.status_code == 503 and "repositório" in unavailable.json()["detail"]
    finally:
        client.app.state.services.database.dispose()
        world.database.dispose()


def test_the_pfx_private_key_and_password_are_provably_not_stored(tmp_path):
    world, pki = rw.build(tmp_path)
    client = rw.client_for(world)
    issued = pki.e_cpf(w.BRUNO_CPF, "BRUNO LIMA", rsa=True)
    password = "Senha-Única-do-A1-7731"
    container = pki.pfx(issued, password)
    try:
        with client:
            bruno = w.bearer(client, world, w.BRUNO_CPF)
            request_id = client.post("/solicitacoes", json={}, headers=bruno).json()["id"]
            response = client.put(
                f"/solicitacoes/{request_id}/certificado",
                headers=bruno,
                data={"senha": password},
                files={"arquivo": ("bruno.pfx", container, "application/x-pkcs12")},
            )
            assert response.status_code == 200, response.text
            assert response.json()["pem"].encode() == issued.pem
    finally:
        client.app.state.services.database.dispose()
        world.database.dispose()
    numbers = issued.key.private_numbers()
    secrets = {
        "chave PKCS#8 DER": issued.private_der(),
        "chave PKCS#8 PEM (corpo)": b"".join(issued.private_pem().splitlines()[1:-1])[:64],
        "chave RSA tradicional DER": issued.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ),
        "expoente privado d": numbers.d.to_bytes((numbers.d.bit_length() + 7) // 8, "big")[:48],
        "primo p": numbers.p.to_bytes((numbers.p.bit_length() + 7) // 8, "big")[:48],
        "o .pfx inteiro": container[:256],
        "a senha (UTF-8)": password.encode(),
        "a senha (UTF-16)": password.encode("utf-16-le"),
    }
    files = [p for p in Path(world.settings.home).rglob("*") if p.is_file()]
    database_files = [p for p in files if p.name.startswith("catalog.db")]
    assert database_files
    everything = b"".join(p.read_bytes() for p in files)
    # Positive control: the public certificate is in the database files, so a key would be found too.
    assert issued.der in everything
    for label, secret in secrets.items():
        assert secret not in everything, f"{label} encontrado em disco"


# -- evidence by content -----------------------------------------------------------------------------------------


def pdf_of_size(size: int) -> bytes:
    padding = max(1, size - len(rw.minimal_pdf(padding=1)))
    while True:
        data = rw.minimal_pdf(padding=padding)
        if len(data) == size:
            return data
        padding += size - len(data)


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1 :]


EVIDENCE_REFUSALS = {
    "html-renomeado": (b"<!DOCTYPE html>\n<html><head><title>Relatorio</title></head><body>ok</body></html>", "documento HTML"),
    "html-com-bom": (b"\xef\xbb\xbf\n  <html lang='pt-BR'><body>%PDF-1.7</body></html>", "documento HTML"),
    "jpeg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 100, "não é um PDF nem uma imagem PNG"),
    "vazio": (b"", "vazio"),
    "pdf-truncado": (rw.minimal_pdf()[:-40], "startxref e %%EOF"),
    "pdf-startxref-fora": (rw.minimal_pdf().replace(b"startxref\n", b"startxref\n9").rstrip(b"\n"), "startxref"),
    "pdf-so-cabecalho": (b"%PDF-1.7\n%%EOF\n", "startxref e %%EOF"),
    "pdf-versao-estranha": (b"%PDF-9.9" + rw.minimal_pdf()[8:], "versão reconhecida"),
    "png-crc-errado": (_flip(rw.minimal_png(), rw.minimal_png().index(b"IDAT") + 6), "CRC errado no bloco IDAT"),
    "png-truncado": (rw.minimal_png()[:40], "truncado"),
    "png-com-sobra": (rw.minimal_png() + b"<html></html>", "depois do fim"),
    "png-so-assinatura": (b"\x89PNG\r\n\x1a\n", "sem dados de imagem"),
}


@pytest.mark.parametrize("case", list(EVIDENCE_REFUSALS))
def test_evidence_is_recognised_by_content_not_by_name(case):
    data, fragment = EVIDENCE_REFUSALS[case]
    with pytest.raises(evidence.EvidenceRefused, match=fragment.replace("%", "%")) as refused:
        evidence.media_type(data, max_bytes=5 * 1024 * 1024)
    assert fragment in str(refused.value)


def test_valid_pdf_and_png_and_the_5_mb_limit_over_http(tmp_path):
    assert evidence.media_type(rw.minimal_pdf(3), max_bytes=10**6) == "application/pdf"
    assert evidence.media_type(rw.minimal_png(640, 8), max_bytes=10**6) == "image/png"
    limit = 5 * 1024 * 1024
    world, pki = rw.build(tmp_path)
    client = rw.client_for(world)
    try:
        with client:
            bruno, daniel = w.bearer(client, world, w.BRUNO_CPF), w.bearer(client, world, rw.DANIEL_CPF)
            request_id = rw.create_complete(client, bruno, pki)
            rw.submit(client, bruno, request_id).raise_for_status()
            client.post(f"/solicitacoes/{request_id}/aprovacao", json={}, headers=daniel).raise_for_status()
            url = f"/solicitacoes/{request_id}/evidencias"
            exact = client.post(url, headers=bruno, files={"arquivo": ("limite.pdf", pdf_of_size(limit), "application/pdf")})
            assert exact.status_code == 201 and exact.json()["tamanho"] == limit, exact.text
            over = client.post(url, headers=bruno, files={"arquivo": ("grande.pdf", pdf_of_size(limit + 1), "application/pdf")})
            assert over.status_code == 422 and "o máximo é 5.242.880 bytes" in over.json()["errors"][0]["message"], over.text
            way_over = client.post(
                url, headers=bruno, files={"arquivo": ("enorme.pdf", b"%PDF-1.7" + b"0" * (limit + 100_000), "application/pdf")}
            )
            assert way_over.status_code == 413  # refused by the body limit before it is read
            assert (
                client.post(url, headers=bruno, files={"arquivo": ("../../etc/x.png", rw.minimal_png(), "image/png")}).json()[
                    "nome"
                ]
                == "x.png"
            )
    finally:
        client.app.state.services.database.dispose()
        world.database.dispose()


# -- the client address --------------------------------------------------------------------------------------------

PROXIES = ip_ranges.parse_networks(["10.0.0.0/8", "2001:db8:1::/48", "192.168.1.1"])


@pytest.mark.parametrize(
    "peer, values, header, expected",
    [
        ("200.1.1.1", ["9.9.9.9"], "X-Forwarded-For", "200.1.1.1"),  # untrusted peer: header ignored
        ("10.0.0.2", ["9.9.9.9"], "X-Forwarded-For", "9.9.9.9"),
        ("10.0.0.2", ["1.1.1.1, 9.9.9.9"], "X-Forwarded-For", "9.9.9.9"),  # rightmost untrusted hop
        ("10.0.0.2", ["9.9.9.9, 10.5.5.5, 192.168.1.1"], "X-Forwarded-For", "9.9.9.9"),  # skipping trusted proxies
        ("10.0.0.2", ["1.1.1.1", "9.9.9.9"], "X-Forwarded-For", "9.9.9.9"),  # repeated headers, in order
        ("10.0.0.2", ["10.1.1.1, 10.2.2.2"], "X-Forwarded-For", "10.1.1.1"),  # all trusted: the leftmost
        ("10.0.0.2", [], "X-Forwarded-For", "10.0.0.2"),  # a proxy calling on its own
        ("10.0.0.2", ["1.1.1.1, garbage"], "X-Forwarded-For", None),  # malformed nearest hop: unknown
        ("10.0.0.2", ["[2804:14c::9]:443"], "X-Forwarded-For", "2804:14c::9"),
        ("10.0.0.2", ["9.9.9.9:5555"], "X-Forwarded-For", "9.9.9.9"),
        ("::ffff:10.0.0.2", ["::ffff:9.9.9.9"], "X-Forwarded-For", "9.9.9.9"),  # IPv4-mapped
        ("2001:db8:1::5", ['for="[2804:14c::1]:4711";proto=https, for=10.3.3.3'], "Forwarded", "2804:14c::1"),
        ("10.0.0.2", ["for=unknown"], "Forwarded", None),
        ("testclient", ["9.9.9.9"], "X-Forwarded-For", None),  # not an address: unknown, nothing trusted
    ],
)
def test_the_client_address_comes_only_from_trusted_proxies(peer, values, header, expected):
    resolved = ip_ranges.resolve(peer, values, PROXIES, header)
    assert resolved.text == expected and resolved.peer == peer


def test_ranges_admit_only_their_family_and_a_known_address():
    start, end = "200.130.5.0", "200.130.5.255"
    address = ip_ranges.parse_address
    assert ip_ranges.admits(start, end, address("200.130.5.77"))
    assert not ip_ranges.admits(start, end, address("200.130.6.0"))
    assert not ip_ranges.admits(start, end, None)  # unknown address: refused
    assert not ip_ranges.admits(start, end, address("2804:14c::1"))
    assert ip_ranges.admits(None, None, None)  # no range registered
    assert ip_ranges.admits("2804:14c::", "2804:14c::ffff", address("2804:14c::ab"))


def test_a_bad_trusted_proxy_stops_the_settings():
    from portal_api.core.config import PortalSettings

    with pytest.raises(ValueError, match="'10.0.0.0/33' não é um endereço IP nem uma rede CIDR"):
        PortalSettings(trusted_proxies="10.0.0.0/33")
    assert PortalSettings(trusted_proxies="10.0.0.0/8, 192.168.0.1").trusted_proxies == ["10.0.0.0/8", "192.168.0.1"]


# -- admin commands ---------------------------------------------------------------------------------------------------


def _run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.strip().splitlines() if line], err


def test_admin_makes_an_analyst_and_publishes_request_terms(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VACINA_D1_HOME", str(tmp_path / "home"))
    for name in ("VACINA_D1_CATALOG_URL", "VACINA_D1_STORAGE_URL", "VACINA_D1_TOKEN_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert _run(["admin", "create-user", "--cpf", rw.DANIEL_CPF, "--name", "Daniel", "--email", "d@saude.gov.br"], capsys)[0] == 0
    code, out, err = _run(["admin", "grant-role", "--cpf", rw.DANIEL_CPF], capsys)
    assert code == 0 and out == [{"command": "admin grant-role", "cpf": "***.456.789-**", "role": "analista"}] and err == ""
    code, out, _ = _run(["admin", "publish-request-terms", "--text", "Termos da solicitação, versão 2."], capsys)
    assert code == 0 and out[0]["version"] == 2  # version 1 is the default text

    from portal_api import crud
    from portal_api.core.config import PortalSettings
    from portal_api.core.db import Database
    from portal_api.solicitacoes import service

    database = Database(PortalSettings().resolved_catalog_url)
    with database.session() as session:
        assert service.has_role(session, crud.user_by_cpf(session, rw.DANIEL_CPF).id)
        assert service.current_request_terms(session).text == "Termos da solicitação, versão 2."
    code, out, _ = _run(["admin", "revoke-role", "--cpf", rw.DANIEL_CPF], capsys)
    assert code == 0 and out[0]["revoked_at"]
    with database.session() as session:
        assert not service.has_role(session, crud.user_by_cpf(session, rw.DANIEL_CPF).id)
    database.dispose()
    for argv, fragment in (
        (["admin", "grant-role", "--cpf", w.ANA_CPF], "nenhum usuário"),
        (["admin", "revoke-role", "--cpf", rw.DANIEL_CPF], "não tem o papel"),
        (["admin", "publish-request-terms", "--text", "Termos da solicitação, versão 2."], "igual ao da versão atual"),
        (["admin", "publish-request-terms"], "informe --text-file ou --text"),
    ):
        code, out, err = _run(argv, capsys)
        assert code != 0 and out == [] and err.count("\n") == 1 and fragment in err and "Traceback" not in err, (argv, err)
