"""Any input imports in bounded memory (issue 11, point 3), and the columnar line
splitter gives what the line-by-line reader gives (issue 14, point 2).

The hostile inputs are small zips that expand to large streams: a long run of
malformed rows, one enormous line, binary garbage. Each import runs in its own
process; its peak RSS (``ru_maxrss`` from ``wait4``) must stay under the cap, it
must end with one pt-BR line (or a quarantine of every row), and leave no ``.tmp``.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import contract
from pipelines.sources.opendatasus import _Parser

ROOT = Path(__file__).resolve().parent.parent
# The import's own peak with these streams is 0.3-0.6 GB; the bound is 1 GB.
PEAK_CAP_MB = 1024
STREAM_MB = int(os.environ.get("VACINA_D1_TEST_STREAM_MB", "200"))
HEADER = (";".join(contract.SOURCE_COLUMNS) + "\n").encode()


def _zip(path: Path, pieces) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("vacinacao.csv", "w", force_zip64=True) as member:
            for piece in pieces:
                member.write(piece)
    return path


def _repeat(unit: bytes, total: int, block: int = 4 << 20):
    """``unit`` over and over, about ``total`` bytes of it (``_repeats`` says how many)."""
    chunk = unit * max(1, block // len(unit))
    for _ in range(-(-total // len(chunk))):
        yield chunk


def _repeats(unit: bytes, total: int, block: int = 4 << 20) -> int:
    per_chunk = max(1, block // len(unit))
    return -(-total // (per_chunk * len(unit))) * per_chunk


_CHILD = """
import sys
from pathlib import Path
from pipelines import cli
code = cli.main(sys.argv[2:])
status = Path("/proc/self/status").read_text().splitlines()
Path(sys.argv[1]).write_text(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
sys.exit(code)
"""


def _rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:")), 0.0)


def _import(tmp_path: Path, source: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """``vacina-d1 import`` in a child process: its result and peak RSS in MB. A child
    past twice the cap is stopped at once (a regression must not take the machine)."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    target = ["--split-days", str(out / "dias")] if "--split" in args else ["--out", str(out / "dia.parquet")]
    peak_file = tmp_path / "pico.txt"
    process = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(peak_file), "import", "--format", "pni-csv", "--input", str(source), *target],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "VACINA_D1_HOME": str(tmp_path / "var")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = 0.0
    deadline = time.monotonic() + 600
    while process.poll() is None:
        seen = max(seen, _rss_mb(process.pid))
        if seen > 2 * PEAK_CAP_MB or time.monotonic() > deadline:
            process.kill()
            process.communicate()
            pytest.fail(f"a importação passou de {seen:.0f} MB (ou de 600 s) e foi interrompida")
        time.sleep(0.1)
    stdout, stderr = process.communicate()
    peak = max(seen, int(peak_file.read_text()) / 1024 if peak_file.exists() else 0.0)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), peak


def _no_tmp_left(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


LONG_ROW = b"doc-1;2025-01-01;" + b";".join([b"campo-quebrado"] * 28) + b"\n"  # 30 fields of 56
SHORT_ROW = b"doc;x;y;z\n"  # 4 fields: an 8 MB block is 800,000 of them


@pytest.mark.slow
@pytest.mark.parametrize(
    ("row", "megabytes", "split"),
    # 16 MB of short rows: two blocks, each of which the per-line reader once turned into 2+ GB.
    [(LONG_ROW, STREAM_MB, False), (LONG_ROW, STREAM_MB, True), (SHORT_ROW, 16, False)],
    ids=["long-rows-out", "long-rows-split-days", "short-rows-out"],
)
def test_a_long_run_of_malformed_rows_is_quarantined_in_bounded_memory(tmp_path, row, megabytes, split):
    # Every row has fewer fields than the layout: every one goes to the quarantine.
    bad = _zip(tmp_path / "malformados.zip", [HEADER, *_repeat(row, megabytes << 20)])
    assert bad.stat().st_size < (megabytes << 20) // 50
    done, peak = _import(tmp_path, bad, *(["--split"] if split else []))
    assert done.returncode == 0, done.stderr
    assert peak < PEAK_CAP_MB, f"pico de {peak:.0f} MB"
    quarantined = sum(pl.scan_parquet(p).select(pl.len()).collect().item() for p in (tmp_path / "out").rglob("*rejects.parquet"))
    assert quarantined == _repeats(row, megabytes << 20)
    assert not _no_tmp_left(tmp_path)


@pytest.mark.slow
def test_one_enormous_line_is_refused_with_one_line_in_bounded_memory(tmp_path):
    row = b";".join([b"x"] * 55)
    huge = _zip(tmp_path / "linha.zip", [HEADER, row + b"\n", *_repeat(b"y" * 4096, STREAM_MB << 20), b"\n"])
    done, peak = _import(tmp_path, huge)
    assert done.returncode == 2
    assert done.stderr.startswith("vacina-d1: erro: ") and done.stderr.count("\n") == 1, done.stderr
    assert "linha 3" in done.stderr and "64 MB" in done.stderr
    assert peak < PEAK_CAP_MB, f"pico de {peak:.0f} MB"
    assert not _no_tmp_left(tmp_path) and not (tmp_path / "out" / "dia.parquet").exists()


@pytest.mark.slow
@pytest.mark.parametrize("where", ["from-the-start", "after-good-rows"])
def test_binary_garbage_is_refused_with_one_line_in_bounded_memory(tmp_path, where):
    rng = random.Random(14)
    garbage = bytes(rng.getrandbits(8) for _ in range(1 << 14))  # repeats within deflate's window: a small zip
    good = (HEADER + (";".join(["1"] * 56) + "\n").encode() * 1000) if where == "after-good-rows" else b""
    junk = _zip(tmp_path / "lixo.zip", [good, *_repeat(garbage, STREAM_MB << 20)])
    done, peak = _import(tmp_path, junk)
    assert done.returncode == 2
    assert done.stderr.startswith("vacina-d1: erro: ") and done.stderr.count("\n") == 1, done.stderr
    assert "não é" in done.stderr  # "não é um CSV de texto" / "não é texto"
    assert peak < PEAK_CAP_MB, f"pico de {peak:.0f} MB"
    assert not _no_tmp_left(tmp_path) and not (tmp_path / "out" / "dia.parquet").exists()


# -- the columnar splitter against the line-by-line reader -------------------------------------

NAMES = ("a", "b", "c", "d")
field = st.text(alphabet="xy1 \"'\t;", max_size=4).map(lambda t: t.replace(";", ""))
line = st.one_of(
    st.lists(field, min_size=4, max_size=4).map(";".join),
    st.lists(field, min_size=4, max_size=4).map(lambda f: ";".join(f) + ";"),
    st.lists(field, min_size=0, max_size=8).map(";".join),
    st.just(""),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line, min_size=1, max_size=30), st.sampled_from(["\n", "\r\n"]), st.booleans(), st.integers(2, 9))
def test_columnar_split_gives_what_the_line_reader_gives(lines, newline, final_break, first_line):
    chunk = (newline.join(lines) + (newline if final_break else "")).encode()
    parser = _Parser(NAMES, quoted=False, label="f.csv")
    columnar = [f for f in parser._split(chunk, first_line)]
    reference = [f for f in parser._slow(chunk, first_line)]
    as_rows = lambda frames: pl.concat(frames, how="diagonal_relaxed").to_dicts() if frames else []  # noqa: E731
    got, want = as_rows(columnar), as_rows(reference)
    for row in want:
        row.setdefault("motivos_fonte", [])
        row["motivos_fonte"] = row["motivos_fonte"] or []
    for row in got:
        row["motivos_fonte"] = row["motivos_fonte"] or []
    assert got == want
