"""A small published world for the portal tests: real gzip CSV files published
through ``serving.publish`` (upload under new keys, read-back verification,
manifest, one catalog transaction) to a real store, so the SHA-256 in each catalog
row is the digest of the stored bytes; two credentials of different states and
their users.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import random
from dataclasses import dataclass, field
from pathlib import Path

from pipelines import contract, csv_format
from portal_api import crud
from portal_api.core.config import PortalSettings
from portal_api.core.db import Database, upgrade
from serving.publish import StagedDay, StagedFile, publish_day
from serving.storage import Storage
from serving.stores import open_storage

ANA_CPF = "52998224725"  # DF state user
BRUNO_CPF = "11144477735"  # SP, São Paulo city user
CARLA_CPF = "71015425062"  # DF user without terms yet / second DF user

DF = "imunizacao-total-df"
SP_CITY = "imunizacao-total-sp-355030"
SP_STATE = "imunizacao-total-sp"
TOKEN_KEY = "k" * 48


def csv_bytes(operation: str, day: dt.date, rows: int, seed: int) -> bytes:
    """A CSV with the contract's header and ``rows`` varied rows (so gzip keeps it large)."""
    rng = random.Random(f"{operation}/{day}/{seed}")
    out = io.StringIO()
    out.write(",".join(contract.FILE_COLUMNS) + "\n")
    for n in range(rows):
        values = [f"{rng.getrandbits(64):016x}" if i % 3 else str(n) for i, _ in enumerate(contract.FILE_COLUMNS)]
        out.write(",".join(values) + "\n")
    return out.getvalue().encode()


@dataclass
class Published:
    id: int
    operation: str
    day: dt.date
    version: int
    gz: bytes
    csv: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.gz).hexdigest()


def _stage(directory: Path, operation: str, day: dt.date, rows: int, seed: int) -> tuple[StagedFile, bytes, bytes]:
    parsed = crud.parse_operation(operation)
    csv = csv_bytes(operation, day, rows, seed)
    gz = gzip.compress(csv, mtime=0)
    name = contract.file_name(operation, day)
    path = directory / f"{seed}-{name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gz)
    staged = StagedFile(
        operation=operation,
        scope_kind="municipio" if parsed.ibge6 else "uf",
        uf=parsed.uf,
        ibge6=parsed.ibge6,
        file_name=name,
        path=path,
        rows=rows,
        bytes_csv=len(csv),
        bytes_stored=len(gz),
        sha256_csv=hashlib.sha256(csv).hexdigest(),
        sha256_stored=hashlib.sha256(gz).hexdigest(),
        content_type=csv_format.CONTENT_TYPE_GZIP,
        content_encoding=None,
    )
    return staged, csv, gz


@dataclass
class World:
    settings: PortalSettings
    database: Database
    storage: Storage
    files: dict[str, list[Published]] = field(default_factory=dict)
    personal_tokens: dict[str, str] = field(default_factory=dict)
    personal_token_ids: dict[str, int] = field(default_factory=dict)
    # What each (day, uf) publication carries: operation -> (rows, seed).
    contents: dict[tuple[dt.date, str], dict[str, tuple[int, int]]] = field(default_factory=dict)

    def file(self, operation: str, day: dt.date) -> Published:
        return [f for f in self.files[operation] if f.day == day][-1]


def publish_file(world: World, operation: str, day: dt.date, *, rows: int = 20, seed: int = 0) -> Published:
    """A new version of (operation, day): the day is re-published for its UF (the
    UF's other files of the day unchanged, so the publisher skips them)."""
    uf = crud.parse_operation(operation).uf
    contents = world.contents.setdefault((day, uf), {})
    contents[operation] = (rows, seed)
    directory = Path(world.settings.home) / "staging" / day.isoformat() / uf
    staged, by_operation = [], {}
    for name, (n, s) in sorted(contents.items()):
        staged_file, csv, gz = _stage(directory, name, day, n, s)
        staged.append(staged_file)
        by_operation[name] = (csv, gz)
    total = sum(f.rows for f in staged)
    outcome = publish_day(
        world.storage,
        world.database.catalog,
        StagedDay(
            day=day,
            scope=uf,
            input_sha256=hashlib.sha256(repr(sorted(contents.items())).encode()).hexdigest(),
            layout_version=contract.LAYOUT_VERSION,
            counts={"read": total, "valid": total, "quarantined": 0},
            files=staged,
        ),
        threads=1,
    )
    assert outcome.publication_id is not None and outcome.changed >= 1, outcome
    record = world.database.catalog.current_file(operation, day)
    csv, gz = by_operation[operation]
    assert record.sha256_stored == hashlib.sha256(gz).hexdigest()
    published = Published(record.id, operation, day, record.version, gz, csv)
    world.files.setdefault(operation, []).append(published)
    return published


def build(
    tmp_path: Path, catalog_url: str | None = None, *, big_rows: int = 50, storage: str | None = None, **settings_overrides
) -> World:
    """The world; ``big_rows`` sizes the DF file of 2026-11-21 (the one downloads resume)."""
    home = tmp_path / "home"
    settings = PortalSettings(
        home=home,
        catalog_url=catalog_url or f"sqlite:///{home / 'catalog.db'}",
        storage_url=storage or str(home / "storage"),
        token_key=TOKEN_KEY,
        **settings_overrides,
    )
    upgrade(settings.resolved_catalog_url)
    database = Database(settings.resolved_catalog_url)
    world = World(settings, database, open_storage(settings.resolved_storage_url))
    days = {
        DF: [dt.date(2025, 12, 31), dt.date(2026, 10, 31), dt.date(2026, 11, 19), dt.date(2026, 11, 20), dt.date(2026, 11, 21)],
        SP_CITY: [dt.date(2026, 11, 20), dt.date(2026, 11, 21)],
        SP_STATE: [dt.date(2026, 11, 21)],
    }
    for operation, op_days in days.items():
        for day in op_days:
            publish_file(world, operation, day, rows=big_rows if (operation, day) == (DF, dt.date(2026, 11, 21)) else 20)
    with database.session() as session, session.begin():
        ana = crud.create_user(session, cpf=ANA_CPF, name="Ana Souza", email="ana@saude.df.gov.br")
        bruno = crud.create_user(session, cpf=BRUNO_CPF, name="Bruno Lima", email="bruno@prefeitura.sp.gov.br")
        carla = crud.create_user(session, cpf=CARLA_CPF, name="Carla Dias", email="carla@saude.df.gov.br")
        df = crud.create_credential(
            session,
            number="3804/2024",
            cnes="0010456",
            uf="DF",
            system_name="SI-PNI DF",
            environment="producao",
            holder=ana,
            operations=[DF],
        )
        crud.create_credential(
            session,
            number="3805/2024",
            cnes="2077485",
            uf="SP",
            system_name="Vacivida SP",
            environment="producao",
            holder=bruno,
            operations=[SP_CITY],
        )
        crud.grant(session, carla, df)
        key = settings.resolved_token_key()
        for cpf, user in ((ANA_CPF, ana), (BRUNO_CPF, bruno), (CARLA_CPF, carla)):
            row, plain = crud.issue_personal_token(session, key, user, name="testes", days=30)
            world.personal_tokens[cpf] = plain
            world.personal_token_ids[cpf] = row.id
    return world


def bearer(client, world: World, cpf: str) -> dict[str, str]:
    """Authorization header for a user, through POST /token (works with TestClient and httpx)."""
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": cpf, "client_secret": world.personal_tokens[cpf]},
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def accept_terms(client, headers: dict[str, str], operation: str) -> int:
    version = client.get(f"/operations/{operation}/terms", headers=headers).json()["version"]
    response = client.post(
        f"/operations/{operation}/terms/acceptances", json={"version": version, "accepted": True}, headers=headers
    )
    assert response.status_code in (200, 201), response.text
    return version
