"""The world of the credential-request tests: issue 5's published world (files, users,
credentials) plus a test PKI as the trust store, a small CNES table in the
tbEstabelecimento layout, a trusted proxy, an analyst and two more users; and helpers
that fill the form and walk a request through its states over HTTP.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from fastapi.testclient import TestClient

from portal_api import crud
from portal_api.main import create_app
from portal_api.solicitacoes import service
from tests.portal import world as w
from tests.portal.pki import Pki

CNES_TABLE = Path(__file__).with_name("cnes_teste.csv")
DANIEL_CPF = "12345678909"  # analyst
EDUARDA_CPF = "98765432100"  # a user with no credential
FABIO_CPF = "24681357928"  # a second analyst
GESTOR_CNS = "755902948264654"
PROXY = ("10.0.0.2", 50000)  # the socket peer every TestClient request comes from
PROXY_NETWORK = "10.0.0.0/8"
INSIDE = "200.130.5.10"  # inside the range the form registers
RANGE = ("200.130.5.0", "200.130.5.255")
SP_MAIN = "2077485"
PFX_PASSWORD = "s3nh@-do-pfx-A1"


def build(tmp_path: Path, catalog_url: str | None = None, **overrides) -> tuple[w.World, Pki]:
    pki = Pki()
    trust = pki.write_trust_store(tmp_path / "acs")
    settings = dict(trust_store=trust, cnes_table=CNES_TABLE, trusted_proxies=[PROXY_NETWORK])
    settings.update(overrides)
    world = w.build(tmp_path, catalog_url, **settings)
    key = world.settings.resolved_token_key()
    with world.database.session() as session, session.begin():
        for cpf, name, email in (
            (DANIEL_CPF, "Daniel Analista", "daniel@saude.gov.br"),
            (EDUARDA_CPF, "Eduarda Reis", "eduarda@saude.df.gov.br"),
            (FABIO_CPF, "Fábio Analista", "fabio@saude.gov.br"),
        ):
            user = crud.create_user(session, cpf=cpf, name=name, email=email)
            _, plain = crud.issue_personal_token(session, key, user, name="testes", days=30)
            world.personal_tokens[cpf] = plain
        service.grant_role(session, crud.user_by_cpf(session, DANIEL_CPF), "analista")
        service.grant_role(session, crud.user_by_cpf(session, FABIO_CPF), "analista")
    return world, pki


def client_for(world: w.World, *, forwarded_for: str | None = INSIDE) -> TestClient:
    """A TestClient whose requests come from the trusted proxy, forwarding ``forwarded_for``."""
    app = create_app(world.settings)
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return TestClient(app, raise_server_exceptions=False, client=PROXY, headers=headers)


def sistema(**changes) -> dict:
    data = {
        "nome": "Vacivida SP",
        "versao": "3.2.1",
        "linguagem": "Java 21",
        "arquitetura": "Microsserviços em contêineres",
        "banco_dados": "PostgreSQL",
        "banco_dados_versao": "16.4",
        "resumo": "Registro e consulta de vacinação das UBS do município, com envio à RNDS e painéis locais.",
        "aplicacao_web": True,
        "ip_inicio": RANGE[0],
        "ip_fim": RANGE[1],
        "tipo_equipe": "terceirizada",
        "atendimentos_registrados": 125000,
        "data_atendimentos": "2026-10-31",
        "integracoes": ["e-SUS APS", "SI-PNI"],
        "picos": [
            {"periodo": "manha", "inicio": "08:00", "fim": "10:30"},
            {"periodo": "tarde", "inicio": "13:00", "fim": "15:00"},
        ],
        "atendimentos_dia_minimo": 800,
        "atendimentos_dia_maximo": 4200,
        "acessos_pico": 350,
        "data_inicio": "2026-12-01",
        "data_fim": "2027-12-31",
    }
    data.update(changes)
    return data


def form(**sections) -> dict:
    """The whole form for Bruno's São Paulo system asking for the SP state file."""
    data = {
        "origem": "outros",
        "estabelecimento": {"cnes": SP_MAIN, "telefone": "(11) 3397-2001"},
        "api": {"codigo": "vacinacao-d1-csv", "versao": "1.0", "operacoes": ["imunizacao-total-sp GET"]},
        "gestor": {"nome": "Bruno Lima", "cns": GESTOR_CNS, "cpf": w.BRUNO_CPF, "email": "bruno@prefeitura.sp.gov.br"},
        "sistema": sistema(),
    }
    data.update(sections)
    return data


def minimal_pdf(pages: int = 1, *, padding: int = 0) -> bytes:
    """A small well-formed PDF (header, objects, xref table, trailer, startxref, %%EOF);
    ``padding`` adds a stream object of that many bytes (to reach a given size)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(f"{3 + i} 0 R".encode() for i in range(pages))
        + b"] /Count "
        + str(pages).encode()
        + b" >>",
    ]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"] * pages
    if padding:
        objects.append(f"<< /Length {padding} >>\nstream\n".encode() + b"\x00" * padding + b"\nendstream")
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def minimal_png(width: int = 2, height: int = 2) -> bytes:
    raw = b"".join(b"\x00" + b"\x10\x80\xf0" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def create_complete(client, headers, pki: Pki, **sections) -> int:
    """A draft with every section and a valid certificate (Bruno's e-CPF as a .pfx)."""
    response = client.post("/solicitacoes", json=form(**sections), headers=headers)
    assert response.status_code == 201, response.text
    request_id = response.json()["id"]
    issued = pki.e_cpf(w.BRUNO_CPF, "BRUNO LIMA")
    upload = client.put(
        f"/solicitacoes/{request_id}/certificado",
        headers=headers,
        files={"arquivo": ("bruno.pfx", pki.pfx(issued, PFX_PASSWORD), "application/x-pkcs12")},
        data={"senha": PFX_PASSWORD},
    )
    assert upload.status_code == 200, upload.text
    return request_id


def submit(client, headers, request_id: int):
    version = client.get("/solicitacoes/termos", headers=headers).json()["versao"]
    return client.post(f"/solicitacoes/{request_id}/envio", json={"versao_termos": version, "aceito": True}, headers=headers)
