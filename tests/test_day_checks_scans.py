"""The checks of a step share one read of each file, run together, and never reuse a
read across runs: a file changed between two runs of the checks is caught."""

from __future__ import annotations

import datetime as dt
import gzip

import pytest

from pipelines import day_checks, flow
from pipelines.sources import open_source

DAY = dt.date(2026, 3, 10)


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    work = flow.DayWork(tmp_path_factory.mktemp("home"), DAY)
    source = open_source("synthetic", day=DAY, records=3000, seed=5)
    flow.extract_day(work, source, today=DAY + dt.timedelta(days=1))
    flow.stage_files(work)
    return work


def _staging_checks(work):
    return {
        "layout": lambda: day_checks.staging_layout(work),
        "dupes": lambda: day_checks.no_duplicate_documents(work),
    }


def _file_checks(work):
    return {
        "intact": lambda: day_checks.staged_files_intact(work),
        "layout": lambda: day_checks.staged_files_layout(work),
        "placement": lambda: day_checks.placement_reconciles(work),
    }


def test_a_steps_checks_read_each_staged_file_once_and_agree_with_running_alone(staged, monkeypatch):
    alone = {name: evaluate() for name, evaluate in _file_checks(staged).items()}
    reads: list = []
    real = day_checks._scan_file
    monkeypatch.setattr(day_checks, "_scan_file", lambda path: reads.append(path) or real(path))
    together = day_checks.evaluate_all(_file_checks(staged))
    files = len(flow.load_staged(staged).files) + 1  # and the header-only file
    assert sorted(map(str, reads)) == sorted(set(map(str, reads))) and len(reads) == files
    assert {n: (o.passed, o.summary) for n, o in together.items()} == {n: (o.passed, o.summary) for n, o in alone.items()}
    assert all(o.passed for o in together.values())


def test_the_staging_checks_share_one_scan_of_the_parquet(staged, monkeypatch):
    scans = []
    real = day_checks._connect

    def counting():
        scans.append(1)
        return real()

    monkeypatch.setattr(day_checks, "_connect", counting)
    outcomes = day_checks.evaluate_all(_staging_checks(staged))
    assert all(o.passed for o in outcomes.values()) and len(scans) == 1


def test_a_file_changed_between_two_runs_is_caught_by_the_second(staged):
    assert all(o.passed for o in day_checks.evaluate_all(_file_checks(staged)).values())
    uf_file = next(f for f in flow.load_staged(staged).files if f.scope_kind == "uf")
    original = uf_file.path.read_bytes()
    try:
        uf_file.path.write_bytes(gzip.compress(b"nao e o layout\n"))
        outcomes = day_checks.evaluate_all(_file_checks(staged))
        assert not outcomes["intact"].passed and not outcomes["layout"].passed
        assert outcomes["placement"].passed  # the recount reads the staging, which did not change
    finally:
        uf_file.path.write_bytes(original)


def test_a_check_that_raises_does_not_pass_and_says_why():
    def broken():
        raise RuntimeError("disco sumiu\ndetalhe")

    outcome = day_checks.evaluate_all({"x": broken})["x"]
    assert not outcome.passed and outcome.summary == "a verificação não pôde rodar: disco sumiu"
