"""The download log: append-only and hash-chained.

Every entry's ``entry_hash`` is SHA-256 over a canonical serialisation (sorted-key,
compact JSON, UTC microsecond timestamps) of all its fields *including*
``prev_hash``, the previous entry's hash (64 zeros for the first); fields added later
(the delivered digest, the HTTP request id) are hashed only when filled. Editing,
removing or reordering any entry breaks the chain from that entry on;
``verify`` names the first entry that does not check out.

Appends are serialised so concurrent downloads never fork the chain: each append
first locks the single ``download_log_head`` row (``SELECT … FOR UPDATE`` on
PostgreSQL; on SQLite an UPDATE of that row, which takes the database's write lock
before anything is read), reads the last id and hash, inserts, moves the head, and
commits. The head also lets ``verify`` notice a log cut short at its end, unless the
head was rewritten too: keep the ``head_hash`` ``verify`` prints somewhere else if
that matters.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal_api.models import DownloadLogEntry, DownloadLogHead

GENESIS_HASH = "0" * 64
HASHED_FIELDS = (
    "id",
    "published_file_id",
    "operation",
    "day",
    "file_version",
    "file_sha256",
    "user_id",
    "credential_id",
    "representation",
    "delivery",
    "range_start",
    "range_end",
    "client_address",
    "created_at",
    "prev_hash",
)
DOMAIN = "vacina-d1/download-log/v1"
# Hashed only when filled (added later: earlier entries keep their hashes).
OPTIONAL_HASHED_FIELDS = ("delivered_sha256", "http_request_id")


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; every timestamp is written in UTC.
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def _canonical_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return _utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def canonical(fields: dict[str, Any]) -> bytes:
    payload = {"domain": DOMAIN, **{name: _canonical_value(fields[name]) for name in HASHED_FIELDS}}
    payload.update({name: fields[name] for name in OPTIONAL_HASHED_FIELDS if fields.get(name) is not None})
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(fields)).hexdigest()


def _lock_head(session: Session) -> DownloadLogHead:
    if session.get_bind().dialect.name == "sqlite":
        # The first write of the transaction: waits for (then holds) the write lock.
        session.execute(sa.update(DownloadLogHead).where(DownloadLogHead.id == 1).values(last_id=DownloadLogHead.last_id))
        head = session.get(DownloadLogHead, 1, populate_existing=True)
    else:
        head = session.scalars(
            sa.select(DownloadLogHead).where(DownloadLogHead.id == 1).with_for_update().execution_options(populate_existing=True)
        ).one_or_none()
    if head is None:
        raise RuntimeError("registro de downloads sem cabeça: rode as migrações do portal")
    return head


def append(
    engine: sa.Engine,
    *,
    published_file_id: int,
    operation: str,
    day: dt.date,
    file_version: int,
    file_sha256: str,
    user_id: int,
    credential_id: int,
    representation: str,
    delivery: str,
    range_start: int | None = None,
    range_end: int | None = None,
    client_address: str | None = None,
    now: dt.datetime | None = None,
    delivered_sha256: str | None = None,
    http_request_id: str | None = None,
) -> DownloadLogEntry:
    """Write one entry in its own transaction (committed when this returns)."""
    created_at = _utc(now or dt.datetime.now(dt.timezone.utc))
    with Session(engine, expire_on_commit=False) as session, session.begin():
        head = _lock_head(session)
        fields = {
            "id": head.last_id + 1,
            "published_file_id": published_file_id,
            "operation": operation,
            "day": day,
            "file_version": file_version,
            "file_sha256": file_sha256,
            "user_id": user_id,
            "credential_id": credential_id,
            "representation": representation,
            "delivery": delivery,
            "range_start": range_start,
            "range_end": range_end,
            "client_address": (client_address or None) and client_address[:64],
            "created_at": created_at,
            "prev_hash": head.last_hash,
            "delivered_sha256": delivered_sha256,
            "http_request_id": http_request_id,
        }
        entry = DownloadLogEntry(**fields, entry_hash=entry_hash(fields))
        session.add(entry)
        head.last_id = entry.id
        head.last_hash = entry.entry_hash
    return entry


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    head_id: int
    head_hash: str
    first_bad_id: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head_id": self.head_id,
            "head_hash": self.head_hash,
            "first_bad_entry": self.first_bad_id,
            "reason": self.reason,
        }


def verify(engine: sa.Engine, *, batch: int = 5000) -> Verification:
    """Walk the whole chain in id order; stop at the first entry that does not check out."""
    columns = [getattr(DownloadLogEntry, name) for name in (*HASHED_FIELDS, *OPTIONAL_HASHED_FIELDS, "entry_hash")]
    expected_id, previous, count = 1, GENESIS_HASH, 0
    with engine.connect() as conn:
        head = conn.execute(
            sa.select(DownloadLogHead.last_id, DownloadLogHead.last_hash).where(DownloadLogHead.id == 1)
        ).one_or_none()
        result = conn.execution_options(yield_per=batch).execute(sa.select(*columns).order_by(DownloadLogEntry.id))
        for row in result:
            fields = dict(row._mapping)
            entry_id = fields["id"]
            if entry_id != expected_id:
                bad = min(entry_id, expected_id)
                reason = f"entrada {expected_id} ausente (a seguinte é {entry_id})"
                return Verification(False, count, *_head(head), bad, reason)
            if fields["prev_hash"] != previous:
                return Verification(
                    False, count, *_head(head), entry_id, f"entrada {entry_id}: prev_hash não confere com a entrada anterior"
                )
            if entry_hash(fields) != fields["entry_hash"]:
                return Verification(
                    False, count, *_head(head), entry_id, f"entrada {entry_id}: conteúdo alterado (hash não confere)"
                )
            previous, expected_id, count = fields["entry_hash"], expected_id + 1, count + 1
    if head is None:
        return Verification(False, count, 0, "", None, "cabeça do registro ausente")
    if (head.last_id, head.last_hash) != (count, previous):
        first_bad = count + 1 if head.last_id > count else head.last_id or 1
        return Verification(
            False,
            count,
            head.last_id,
            head.last_hash,
            first_bad,
            f"a cabeça do registro aponta para a entrada {head.last_id}, mas a cadeia termina na entrada {count}",
        )
    return Verification(True, count, head.last_id, head.last_hash)


def _head(head) -> tuple[int, str]:
    return (head.last_id, head.last_hash) if head is not None else (0, "")
