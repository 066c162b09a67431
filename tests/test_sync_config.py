"""Where the token lives (a protected config file, never the command line), the
municipal network (HTTP_PROXY, a custom CA bundle in front of a TLS proxy), and
``--print-schedule`` for Linux, macOS and Windows."""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys

import pytest

from tests.sync import tls
from tests.sync import world as sw
from tests.sync.proxy import FaultyPortalProxy

SYNC = ["--operation", sw.CAMPINAS, "--since", "2026-11-01"]


def _cli(*args: str, stdin: str | None = None, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VACINA_D1_")}
    return subprocess.run(
        [str(sw.BIN / "vacina-d1"), "sync", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**base, **(env or {})},
        timeout=120,
        cwd=cwd,
    )


@pytest.mark.parametrize("os_name", ["linux", "macos", "windows"])
def test_print_schedule_runs_the_same_sync_after_seven(tmp_path, os_name):
    dest = tmp_path / "Saúde dados"
    done = _cli(
        *SYNC,
        "--operation",
        sw.SP_CITY,
        "--dest",
        str(dest),
        "--into",
        "vacinas.duckdb",
        "--print-schedule",
        "--os",
        os_name,
        env={"VACINA_D1_TOKEN": "vd1p_segredo"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "vd1p_segredo" not in text and "TOKEN" not in text  # the secret never goes to the scheduler
    if os_name == "windows":
        match = re.search(r'schtasks /Create /F /SC DAILY /ST 07:(\d\d) /TN "vacina-d1 sync" /TR "(.*)"$', text, re.M)
        assert match and 30 <= int(match.group(1)) <= 59
        task = match.group(2).replace('\\"', '"')
        assert f'"{dest}"' in task and f"{tmp_path / 'vacinas.duckdb'}" in task
        assert "-m vacina_d1_client sync --operation imunizacao-total-sp-350950" in task
        return
    cron = next(line for line in text.splitlines() if line and not line.startswith("#") and line[0].isdigit())
    minute, hour = cron.split()[:2]
    assert hour == "7" and 30 <= int(minute) <= 59
    argv = shlex.split(cron.split(" ", 5)[5].split(" >> ")[0])
    assert argv[:4] == [sys.executable, "-m", "vacina_d1_client", "sync"]
    assert argv[4:] == [
        "--operation",
        sw.CAMPINAS,
        "--operation",
        sw.SP_CITY,
        "--since",
        "2026-11-01",
        "--dest",
        str(dest),
        "--into",
        str(tmp_path / "vacinas.duckdb"),
    ]
    if os_name == "linux":
        assert f"OnCalendar=*-*-* 07:{minute}:00 America/Sao_Paulo" in text and "Persistent=true" in text
    else:
        assert "systemd" not in text
    # The command works as printed (here: its --help, from another directory).
    ran = subprocess.run([*argv[:4], "--help"], capture_output=True, text=True, cwd="/")
    assert ran.returncode == 0 and "--accept-terms" in ran.stdout


def test_configure_writes_a_private_file_and_a_readable_one_is_refused(tmp_path):
    config = tmp_path / "config dir" / "config.toml"
    done = _cli("--configure", "--config", str(config), stdin='https://portal.exemplo.gov.br\n111.444.777-35\nvd1p_abc"ç\n')
    assert done.returncode == 0, done.stderr
    assert "vd1p_abc" not in done.stdout + done.stderr
    if os.name != "nt":
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
    text = config.read_text(encoding="utf-8")
    assert 'cpf = "11144477735"' in text and 'token = "vd1p_abc\\"ç"' in text

    if os.name != "nt":
        config.chmod(0o644)
        refused = _cli(*SYNC, "--config", str(config), "--dest", str(tmp_path / "d"))
        assert refused.returncode == 2 and "chmod 600" in refused.stderr and "outros usuários" in refused.stderr


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    """One portal for the module: its tests only read the world (each into its own folders)."""
    tmp = tmp_path_factory.mktemp("portal")
    world = sw.build(tmp, rows_per_day=10)
    server = sw.serve(tmp, world)
    yield world, server
    server.stop()
    world.world.database.dispose()


@pytest.mark.slow
def test_token_from_the_config_file_and_requests_through_http_proxy(portal, tmp_path):
    world, server = portal
    config = tmp_path / "config.toml"
    done = _cli(
        "--configure", "--config", str(config), stdin=f"{server.url}\n{sw.USER_CPF}\n{world.world.personal_tokens[sw.USER_CPF]}\n"
    )
    assert done.returncode == 0, done.stderr
    with FaultyPortalProxy(server.url) as proxy:
        env = {"HTTP_PROXY": proxy.url, "http_proxy": proxy.url, "NO_PROXY": "", "no_proxy": ""}
        run = _cli(*SYNC, "--config", str(config), "--dest", str(tmp_path / "dados"), "--accept-terms", env=env)
        assert run.returncode == 0, run.stderr
        assert proxy.forwarded == len(proxy.seen) > 6  # every request went through the municipal proxy
    for day in sw.DAYS:
        assert (tmp_path / "dados" / sw.CAMPINAS / f"{sw.CAMPINAS}_{day}.csv.gz").read_bytes() == world.gz[(sw.CAMPINAS, day)]


@pytest.mark.slow
def test_a_custom_ca_bundle_for_a_tls_proxy(portal, tmp_path):
    world, server = portal
    bundle, context = tls.make(tmp_path / "pki")
    env = {
        "VACINA_D1_CPF": sw.USER_CPF,
        "VACINA_D1_TOKEN": world.world.personal_tokens[sw.USER_CPF],
        "VACINA_D1_BACKOFF_SECONDS": "0.01",
        "SSL_CERT_FILE": "",
        "VACINA_D1_CONFIG": str(tmp_path / "x.toml"),
    }
    with FaultyPortalProxy(server.url, tls=context) as proxy:
        assert proxy.url.startswith("https://localhost:")
        untrusted = _cli(*SYNC, "--url", proxy.url, "--dest", str(tmp_path / "a"), "--retries", "2", env=env)
        assert untrusted.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
        trusted = _cli(
            *SYNC, "--url", proxy.url, "--dest", str(tmp_path / "b"), "--accept-terms", "--ca-bundle", str(bundle), env=env
        )
        assert trusted.returncode == 0, trusted.stderr
        by_env = _cli(*SYNC, "--url", proxy.url, "--dest", str(tmp_path / "c"), env={**env, "VACINA_D1_CA_BUNDLE": str(bundle)})
        assert by_env.returncode == 0, by_env.stderr
    assert len(list((tmp_path / "b" / sw.CAMPINAS).glob("*.csv.gz"))) == 4
