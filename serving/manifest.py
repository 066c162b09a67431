"""The manifest of a day's publication: one JSON document listing every current
file of the day after that publication, with what anyone needs to check and
reconcile it: operation, scope, date, version, rows, sizes, the SHA-256 of the
stored object and of the uncompressed CSV, the layout version, the object key,
the file's representations (its typed Parquet; for a UF file, the day's indicator
table as CSV and Parquet), each with its key, size and SHA-256, and the day's
source counts (read = valid + quarantined, top reasons).

Serialisation is deterministic (sorted keys, files sorted by operation, no wall
clock inside: the catalog keeps ``published_at``), so the same publication
always gives the same bytes and the same SHA-256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

MANIFEST_FORMAT = "vacina-d1/manifesto/1"
TOP_REASONS = 10


@dataclass(frozen=True)
class ManifestFile:
    operation: str
    scope_kind: str
    uf: str
    ibge6: str | None
    day: dt.date
    version: int
    rows: int
    bytes_csv: int
    bytes_stored: int
    sha256_stored: str
    sha256_csv: str
    layout_version: str
    object_key: str
    file_name: str
    content_type: str
    content_encoding: str | None
    changed: bool  # written by this publication (else an earlier one, still current)
    # The file's other forms, same version: kind, object_key, file_name, rows, bytes, sha256, content_type.
    representations: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "scope": {"kind": self.scope_kind, "uf": self.uf, "ibge6": self.ibge6},
            "date": self.day.isoformat(),
            "version": self.version,
            "rows": self.rows,
            "bytes_csv": self.bytes_csv,
            "bytes_stored": self.bytes_stored,
            "sha256_stored": self.sha256_stored,
            "sha256_csv": self.sha256_csv,
            "layout_version": self.layout_version,
            "object_key": self.object_key,
            "file_name": self.file_name,
            "content_type": self.content_type,
            "content_encoding": self.content_encoding,
            "changed_in_this_publication": self.changed,
            "representations": [dict(r) for r in sorted(self.representations, key=lambda r: r["kind"])],
        }


def source_counts(counts: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The day's extraction counts as the manifest shows them (top reasons first)."""
    reasons = dict(counts.get("reasons") or {})
    top = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[:TOP_REASONS]
    return {
        "read": int(counts.get("read", 0)),
        "valid": int(counts.get("valid", 0)),
        "quarantined": int(counts.get("quarantined", 0)),
        "outside_day": int(counts.get("outside_day", 0)),
        "source": counts.get("source"),
        "top_reasons": [{"reason": code, "label": (labels or {}).get(code, code), "count": int(n)} for code, n in top],
    }


def build(
    *,
    day: dt.date,
    publication_version: int,
    scope: str,
    input_sha256: str,
    layout_version: str,
    counts: Mapping[str, Any],
    files: Iterable[ManifestFile],
    reason_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    entries = sorted(files, key=lambda f: f.operation)
    changed = [f for f in entries if f.changed]
    return {
        "format": MANIFEST_FORMAT,
        "date": day.isoformat(),
        "publication": {
            "version": publication_version,
            "scope": scope,
            "input_sha256": input_sha256,
            "layout_version": layout_version,
            "changed_files": len(changed),
        },
        "source_counts": source_counts(counts, reason_labels),
        "totals": {
            "files": len(entries),
            "rows": sum(f.rows for f in entries),
            "bytes_csv": sum(f.bytes_csv for f in entries),
            "bytes_stored": sum(f.bytes_stored for f in entries),
        },
        "files": [f.to_json() for f in entries],
    }


def dumps(manifest: Mapping[str, Any]) -> bytes:
    return (json.dumps(manifest, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode()


def loads(data: bytes) -> dict[str, Any]:
    manifest = json.loads(data)
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"manifesto em formato desconhecido: {manifest.get('format')!r}")
    return manifest


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
