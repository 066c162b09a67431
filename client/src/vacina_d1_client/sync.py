"""One sync: list what the credential may see, fetch what is new or changed,
verify it, put it in place atomically, and (``--into``) load it into the database.

A file travels ``.vacina-d1/parcial/<nome>.part`` → SHA-256 checked against the
catalog → ``os.replace`` onto ``<dest>/<operação>/<nome>``. The partial file keeps
what arrived when a connection drops; a sidecar ``.json`` says which version it
belongs to, so the next attempt (in this run or the next) asks only for the rest
(``Range`` + ``If-Range``) and a changed version starts over.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx

from vacina_d1_client.errors import SyncError, TermsNotAccepted, TransferFailed
from vacina_d1_client.portal import Portal, RemoteFile
from vacina_d1_client.state import State, atomic_write_bytes

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


@dataclass
class Outcome:
    listed: int = 0
    unchanged: int = 0
    downloaded: list[str] = field(default_factory=list)
    bytes_downloaded: int = 0
    failed: list[dict] = field(default_factory=list)
    operations: dict[str, dict] = field(default_factory=dict)
    loaded: list[dict] = field(default_factory=list)


class Progress:
    """A tqdm bar on a terminal; plain log lines otherwise (cron, CI, a log file)."""

    def __init__(self, enabled: bool, log: Callable[[str], None]):
        self.enabled = enabled
        self.log = log
        self.bar = None

    def start(self, total_bytes: int, files: int) -> None:
        if self.enabled and files:
            from tqdm import tqdm

            self.bar = tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                            desc=f"{files} arquivo(s)", leave=True)
        else:
            self.log(f"{files} arquivo(s) novo(s) ou alterado(s) a baixar ({total_bytes} bytes)")

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def rewind(self, n: int) -> None:
        if self.bar is not None and n:
            self.bar.update(-n)

    def message(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            self.log(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _safe_name(remote: RemoteFile) -> str:
    if not SAFE_NAME.match(remote.name) or remote.name in (".", ".."):
        raise TransferFailed(f"nome de arquivo inesperado no catálogo: {remote.name!r}")
    return remote.name


def _hash_file(path: Path) -> "hashlib._Hash":
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest


def fetch(portal: Portal, state: State, remote: RemoteFile, progress: Progress) -> Path:
    """Download ``remote`` into place, resuming and retrying; raises TransferFailed."""
    name = _safe_name(remote)
    state.partial_dir.mkdir(parents=True, exist_ok=True)
    part = state.partial_dir / f"{name}.part"
    sidecar = state.partial_dir / f"{name}.part.json"
    if part.exists():
        try:
            belongs = json.loads(sidecar.read_text(encoding="utf-8")).get("sha256") == remote.sha256
        except (OSError, ValueError):
            belongs = False
        if not belongs:
            part.unlink()
    atomic_write_bytes(sidecar, json.dumps({"sha256": remote.sha256, "id": remote.id}).encode())

    failures = 0
    limit = portal.retry.attempts
    if part.exists():
        progress.advance(part.stat().st_size)  # what an earlier run already received
    while True:
        offset = part.stat().st_size if part.exists() else 0
        if offset > remote.size:
            part.unlink()
            progress.rewind(offset)
            offset = 0
        digest = _hash_file(part) if offset else hashlib.sha256()
        if offset < remote.size:
            try:
                with portal.download(remote, offset) as response:
                    if response.status_code == 206 and _content_range_start(response.headers.get("content-range")) == offset:
                        mode = "ab"
                    elif response.status_code == 200:
                        progress.rewind(offset)  # a whole new body: what was kept is worthless
                        offset, digest, mode = 0, hashlib.sha256(), "wb"
                    else:
                        raise _Restart(f"HTTP {response.status_code} {response.headers.get('content-range', '')}".strip())
                    with open(part, mode) as out:
                        for chunk in response.iter_raw():  # as it arrives: a drop loses nothing received
                            out.write(chunk)
                            digest.update(chunk)
                            progress.advance(len(chunk))
                        out.flush()
                        os.fsync(out.fileno())
            except _Restart as exc:
                failures += 1
                if part.exists():
                    progress.rewind(part.stat().st_size)
                    part.unlink()
                if failures >= limit:
                    raise TransferFailed(f"{name}: resposta inesperada do servidor ({exc})") from None
                portal._wait(failures - 1, f"{name}: resposta inesperada ({exc}); recomeçando o arquivo")
                continue
            except httpx.TransportError as exc:
                failures += 1  # what arrived stays in the partial file: the next request asks for the rest
                kept = part.stat().st_size if part.exists() else 0
                if failures >= limit:
                    raise TransferFailed(f"{name}: a transferência falhou {failures} vezes ({_describe(exc)})") from None
                portal._wait(failures - 1, f"{name}: conexão interrompida com {kept} de {remote.size} bytes ({_describe(exc)})")
                continue
        size = part.stat().st_size if part.exists() else 0
        if size != remote.size or digest.hexdigest() != remote.sha256:
            failures += 1
            part.unlink(missing_ok=True)
            progress.rewind(size)
            why = (f"{size} bytes em vez de {remote.size}" if size != remote.size
                   else f"SHA-256 {digest.hexdigest()[:12]}… diferente do catálogo ({remote.sha256[:12]}…)")
            if failures >= limit:
                raise TransferFailed(f"{name}: arquivo recebido não confere com o catálogo: {why}")
            portal._wait(failures - 1, f"{name}: arquivo recebido não confere com o catálogo ({why}), descartado")
            continue
        break

    target_dir = state.dest / remote.operation
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / name
    _replace(part, target)
    sidecar.unlink(missing_ok=True)
    state.record(remote, f"{remote.operation}/{name}", _now())
    return target


def _replace(source: Path, target: Path) -> None:
    # On Windows a reader holding the old file open makes the rename fail for a moment.
    for attempt in range(5):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if attempt == 4:
                raise TransferFailed(f"não foi possível substituir {target} (arquivo aberto em outro programa?)") from None
            time.sleep(0.5 * (attempt + 1))


class _Restart(Exception):
    pass


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-\d+/\d+", value or "")
    return int(match.group(1)) if match else None


def ensure_terms(portal: Portal, operation: str, accept: bool, show: Callable[[str], None]) -> None:
    """The current terms accepted, or stop with the portal's message."""
    terms = portal.terms(operation)
    if terms.get("accepted"):
        return
    version = terms["version"]
    show(f"Termos de uso de {operation}, versão {version}:\n{terms['text'].rstrip()}\n")
    if not accept:
        raise TermsNotAccepted(
            f"Aceite os termos de uso vigentes da operação {operation} (versão {version}) antes de baixar: "
            f"leia o texto acima e rode de novo com --accept-terms.",
            operation, version, terms["text"],
        )
    portal.accept_terms(operation, version)
    show(f"Termos de uso de {operation} (versão {version}) aceitos.")


def run(
    portal: Portal, dest: Path, operations: list[str], since: dt.date, *, accept_terms: bool, progress: Progress,
    log: Callable[[str], None], show: Callable[[str], None],
) -> tuple[Outcome, State]:
    state = State(dest)
    outcome = Outcome()
    plan: list[RemoteFile] = []
    for operation in operations:
        listed = portal.files_since(operation, since)
        todo = [remote for remote in listed if not state.is_current(remote)]
        outcome.listed += len(listed)
        outcome.unchanged += len(listed) - len(todo)
        outcome.operations[operation] = {"listados": len(listed), "novos_ou_alterados": len(todo), "baixados": 0, "falhas": 0}
        plan.extend(todo)

    for operation in dict.fromkeys(remote.operation for remote in plan):
        ensure_terms(portal, operation, accept_terms, show)

    progress.start(sum(remote.size for remote in plan), len(plan))
    try:
        for remote in plan:
            started = time.perf_counter()
            try:
                try:
                    target = fetch(portal, state, remote, progress)
                except TermsNotAccepted:
                    # A new version of the terms was published during the run.
                    ensure_terms(portal, remote.operation, accept_terms, show)
                    target = fetch(portal, state, remote, progress)
            except TransferFailed as exc:
                outcome.failed.append({"operacao": remote.operation, "dia": remote.day.isoformat(), "erro": str(exc)})
                outcome.operations[remote.operation]["falhas"] += 1
                progress.message(f"falhou: {exc}")
                continue
            outcome.downloaded.append(str(target))
            outcome.bytes_downloaded += remote.size
            outcome.operations[remote.operation]["baixados"] += 1
            progress.message(
                f"baixado {remote.operation} {remote.day} versão {remote.version}: {remote.size} bytes em "
                f"{time.perf_counter() - started:.2f} s, SHA-256 conferido"
            )
    finally:
        progress.close()
    return outcome, state


def check_dest(dest: Path) -> None:
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SyncError(f"não foi possível criar a pasta de destino {dest}: {exc.strerror or exc}") from None
