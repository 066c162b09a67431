"""A published world for the sync tests: D-1 files with meaningful records (the
contract's 57 columns in the published CSV format: BOM, ``;``, minimal quoting),
published through ``serving.publish`` to a real store, a São Paulo credential with
the state file and two municipalities, and ``vacina-d1 sync`` run as a subprocess.

``current_state`` is the independent computation the ``--into`` table is checked
against: a plain replay of the files in day order with dicts, no SQL.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import itertools
import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pipelines import contract, csv_format, reference
from portal_api import crud
from portal_api.core.config import PortalSettings
from portal_api.core.db import Database, upgrade
from serving.publish import StagedDay, StagedFile, publish_day
from serving.stores import open_storage
from tests.portal import world as w
from tests.portal.servers import start_portal

SP_CITY = "imunizacao-total-sp-355030"
CAMPINAS = "imunizacao-total-sp-350950"
SP_STATE = "imunizacao-total-sp"
USER_CPF = w.BRUNO_CPF
CREDENTIAL = "3805/2024"
OTHER_CPF = w.CARLA_CPF  # a second user of the same credential, for the terms
DAYS = [dt.date(2026, 11, 18), dt.date(2026, 11, 19), dt.date(2026, 11, 20), dt.date(2026, 11, 21)]
BIN = Path(sys.executable).parent


def record(doc: str, day: dt.date, ibge6: str = "355030", **overrides) -> dict[str, str]:
    rng = random.Random(doc)
    row = {name: "" for name in contract.FILE_COLUMNS}
    row.update(
        {
            "co_documento": doc,
            "co_paciente": f"{rng.getrandbits(128):032x}{rng.getrandbits(128):032x}",
            "tp_sexo_paciente": rng.choice("MF"),
            "co_municipio_paciente": ibge6,
            "no_municipio_paciente": reference.municipios()[ibge6].nome.upper(),
            "sg_uf_paciente": "SP",
            "co_cnes_estabelecimento": f"{rng.randrange(10**7):07d}",
            "no_fantasia_estalecimento": 'UBS "Vila Açaí"; Centro',  # quoted in the CSV
            "co_municipio_estabelecimento": ibge6,
            "sg_uf_estabelecimento": "SP",
            "co_vacina": str(rng.choice([22, 33, 46, 86])),
            "dt_vacina": (day - dt.timedelta(days=rng.randrange(3))).isoformat(),
            "co_dose_vacina": str(rng.choice([1, 2, 3, 9])),
            "co_lote_vacina": f"LOTE{rng.randrange(10**6):06d}",
            "dt_entrada_rnds": day.isoformat(),
            "st_documento": "final",
            "nu_idade_paciente": str(rng.randrange(100)),
            "no_uf_paciente": "São Paulo",
            "tp_vinculo_territorio": "ambos",
        }
    )
    row.update(overrides)
    return row


def csv_bytes(rows: list[dict[str, str]]) -> bytes:
    def field_text(value: str) -> str:
        return f'"{value.replace(chr(34), chr(34) * 2)}"' if (";" in value or '"' in value) else value

    lines = [";".join(contract.FILE_COLUMNS)]
    lines += [";".join(field_text(row[name]) for name in contract.FILE_COLUMNS) for row in rows]
    return csv_format.BOM + ("\n".join(lines) + "\n").encode("utf-8")


_CPF_SERIAL = itertools.count(1)


def fresh_cpf() -> str:
    """A valid CPF no other test user has (its check digits computed, RFB's rule)."""
    digits = [int(c) for c in f"{300_000_000 + next(_CPF_SERIAL) * 7919:09d}"]
    for length in (9, 10):
        total = sum(d * (length + 1 - i) for i, d in enumerate(digits))
        digits.append(total * 10 % 11 % 10)
    return "".join(map(str, digits))


@dataclass
class SyncWorld:
    world: w.World
    rows: dict[tuple[str, dt.date], list[dict[str, str]]] = field(default_factory=dict)
    gz: dict[tuple[str, dt.date], bytes] = field(default_factory=dict)
    ids: dict[tuple[str, dt.date], int] = field(default_factory=dict)

    def new_user(self) -> str:
        """A user of its own (a fresh CPF, granted the credential, a personal token of
        its own), so a test that accepts terms or revokes a token changes nobody
        else's state when the world and its portal are shared. Returns the CPF."""
        cpf = fresh_cpf()
        with self.world.database.session() as session, session.begin():
            user = crud.create_user(session, cpf=cpf, name=f"Usuário {cpf[:3]}", email=f"u{cpf}@saude.sp.gov.br")
            crud.grant(session, user, crud.credential_by_number(session, CREDENTIAL))
            row, plain = crud.issue_personal_token(session, self.world.settings.resolved_token_key(), user, name="sync", days=30)
            self.world.personal_tokens[cpf] = plain
            self.world.personal_token_ids[cpf] = row.id
        return cpf

    def publish(self, day: dt.date, files: dict[str, list[dict[str, str]]]) -> None:
        """A new publication of the SP files of ``day`` (the others of the day unchanged)."""
        for operation, rows in files.items():
            self.rows[(operation, day)] = rows
        directory = Path(self.world.settings.home) / "staging" / day.isoformat()
        directory.mkdir(parents=True, exist_ok=True)
        staged = []
        for (operation, d), rows in sorted(self.rows.items()):
            if d != day:
                continue
            csv = csv_bytes(rows)
            gz = gzip.compress(csv, mtime=0)
            name = contract.file_name(operation, day)
            path = directory / f"{hashlib.sha256(gz).hexdigest()[:8]}-{name}"
            path.write_bytes(gz)
            parsed = crud.parse_operation(operation)
            staged.append(
                StagedFile(
                    operation=operation,
                    scope_kind="municipio" if parsed.ibge6 else "uf",
                    uf=parsed.uf,
                    ibge6=parsed.ibge6,
                    file_name=name,
                    path=path,
                    rows=len(rows),
                    bytes_csv=len(csv),
                    bytes_stored=len(gz),
                    sha256_csv=hashlib.sha256(csv).hexdigest(),
                    sha256_stored=hashlib.sha256(gz).hexdigest(),
                    content_type=csv_format.CONTENT_TYPE_GZIP,
                    content_encoding=None,
                )
            )
            self.gz[(operation, day)] = gz
        total = sum(f.rows for f in staged)
        publish_day(
            self.world.storage,
            self.world.database.catalog,
            StagedDay(
                day=day,
                scope="SP",
                input_sha256=hashlib.sha256(b"".join(self.gz[(f.operation, day)] for f in staged)).hexdigest(),
                layout_version=contract.LAYOUT_VERSION,
                counts={"read": total, "valid": total, "quarantined": 0},
                files=staged,
            ),
            threads=1,
        )
        for f in staged:
            self.ids[(f.operation, day)] = self.world.database.catalog.current_file(f.operation, day).id


def day_rows(day: dt.date, n: int, ibge6: str = "355030") -> list[dict[str, str]]:
    return [record(f"{ibge6}-{day:%Y%m%d}-{k:05d}", day, ibge6) for k in range(n)]


def build(
    tmp: Path,
    *,
    storage: str | None = None,
    rows_per_day: int = 30,
    big_day_rows: int = 0,
    days: list[dt.date] = DAYS,
    more_municipalities: tuple[str, ...] = (),
) -> SyncWorld:
    """SP state, São Paulo city and Campinas on ``days`` (the city's last day
    ``big_day_rows`` long when given), plus ``more_municipalities`` (ibge6 of SP,
    ``rows_per_day`` each) for tests that need an operation of their own."""
    home = tmp / "home"
    settings = PortalSettings(
        home=home,
        catalog_url=f"sqlite:///{home / 'catalog.db'}",
        storage_url=storage or str(home / "storage"),
        token_key=w.TOKEN_KEY,
        page_size_default=10,
    )
    upgrade(settings.resolved_catalog_url)
    database = Database(settings.resolved_catalog_url)
    sw = SyncWorld(w.World(settings, database, open_storage(settings.resolved_storage_url)))
    more_operations = {ibge6: contract.municipality_operation("SP", ibge6) for ibge6 in more_municipalities}
    for index, day in enumerate(days):
        city = day_rows(day, big_day_rows if (big_day_rows and index == len(days) - 1) else rows_per_day)
        campinas = day_rows(day, rows_per_day // 2, "350950")
        more = {operation: day_rows(day, rows_per_day, ibge6) for ibge6, operation in more_operations.items()}
        sw.publish(day, {SP_CITY: city, CAMPINAS: campinas, SP_STATE: city + campinas, **more})
    with database.session() as session, session.begin():
        bruno = crud.create_user(session, cpf=USER_CPF, name="Bruno Lima", email="bruno@prefeitura.sp.gov.br")
        carla = crud.create_user(session, cpf=OTHER_CPF, name="Carla Dias", email="carla@saude.sp.gov.br")
        credential = crud.create_credential(
            session,
            number=CREDENTIAL,
            cnes="2077485",
            uf="SP",
            system_name="Vacivida SP",
            environment="producao",
            holder=bruno,
            operations=[SP_STATE, SP_CITY, CAMPINAS, *more_operations.values()],
        )
        crud.grant(session, carla, credential)
        key = settings.resolved_token_key()
        for cpf, user in ((USER_CPF, bruno), (OTHER_CPF, carla)):
            row, plain = crud.issue_personal_token(session, key, user, name="sync", days=30)
            sw.world.personal_tokens[cpf] = plain
            sw.world.personal_token_ids[cpf] = row.id
    return sw


def serve(tmp: Path, sw: SyncWorld, extra_env: dict[str, str] | None = None):
    settings = sw.world.settings
    env = {
        "VACINA_D1_HOME": str(settings.home),
        "VACINA_D1_CATALOG_URL": settings.resolved_catalog_url,
        "VACINA_D1_STORAGE_URL": settings.resolved_storage_url,
        "VACINA_D1_TOKEN_KEY": w.TOKEN_KEY,
        **(extra_env or {}),
    }
    return start_portal(tmp, env)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict:
        return json.loads(self.stdout.strip().splitlines()[-1])


def sync(
    url: str,
    dest: Path,
    *args: str,
    cpf: str = USER_CPF,
    token: str | None = None,
    sw: SyncWorld | None = None,
    env: dict[str, str] | None = None,
    executable: Path | None = None,
    timeout: float = 180,
) -> Run:
    """``vacina-d1 sync`` in its own process, the token in the environment only."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("VACINA_D1_") and "proxy" not in k.lower()}
    base.update(
        {
            "VACINA_D1_URL": url,
            "VACINA_D1_CPF": cpf,
            "VACINA_D1_TOKEN": token if token is not None else sw.world.personal_tokens[cpf],
            "VACINA_D1_CONFIG": str(dest.parent / "nao-existe.toml"),
            "VACINA_D1_BACKOFF_SECONDS": "0.05",
            "PYTHONIOENCODING": "utf-8",
            **(env or {}),
        }
    )
    done = subprocess.run(
        [str(executable or BIN / "vacina-d1"), "sync", "--dest", str(dest), *args],
        env=base,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def current_state(files: list[list[dict[str, str]]]) -> dict[str, dict[str, str]]:
    """The territory's current records from its day files (oldest first), by the
    RNDS rules written out plainly: a later line of a document replaces the
    earlier; entered-in-error and deleted documents leave; a document named in
    ``co_troca_documento`` leaves (with its ``-i<k>`` items)."""
    latest: dict[str, dict[str, str]] = {}
    replaced: set[str] = set()
    for rows in files:
        for row in rows:
            latest[row["co_documento"]] = row
            if row["co_troca_documento"]:
                replaced.add(row["co_troca_documento"])
    out = {}
    for doc, row in latest.items():
        base = doc.rsplit("-i", 1)[0] if "-i" in doc and doc.rsplit("-i", 1)[1].isdigit() else doc
        if row["st_documento"] == "entered-in-error" or row["dt_deletado_rnds"]:
            continue
        if doc in replaced or base in replaced:
            continue
        out[doc] = row
    return out
