"""Real servers on loopback for the portal's HTTP tests: a Dagster webserver with a
code location, and ``vacina-d1 serve``. Each is a subprocess started with
``env --default-signal`` (so it can be interrupted even under a parent that ignores
signals) and stopped by its own pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VACINA_D1_") and not k.startswith("DAGSTER_")}
    # The checkout first on the path, whatever the editable install's finder says.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


class Server:
    def __init__(self, argv: list[str], env: dict[str, str], log: Path, url: str):
        self.url = url
        self.log = log
        self.handle = open(log, "wb")
        self.process = subprocess.Popen(
            ["env", "--default-signal=INT,TERM,HUP", *argv], env=env, cwd=ROOT, stdout=self.handle, stderr=subprocess.STDOUT
        )

    def wait_until(self, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"servidor saiu com {self.process.returncode}: {self.log.read_text()[-3000:]}")
            try:
                if ready():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"servidor não respondeu em {timeout}s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.handle.close()


def start_dagster(tmp: Path, location_name: str = "vacina_d1") -> Server:
    home = tmp / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    # Runs stay queued (no daemon): the test checks the launched run, nothing executes.
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\ntelemetry:\n  enabled: false\n"
    )
    target = ROOT / "assets" / "definitions.py"
    workspace = tmp / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - python_file:\n      relative_path: {target}\n      location_name: {location_name}\n"
        f"      working_directory: {ROOT}\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}/graphql"
    server = Server(
        [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
        _env({"DAGSTER_HOME": str(home)}),
        tmp / "dagster-webserver.log",
        url,
    )
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"

    def loaded() -> bool:
        entries = httpx.post(url, json={"query": query}, timeout=5).json()["data"]["workspaceOrError"]["locationEntries"]
        return any(e["name"] == location_name and e["loadStatus"] == "LOADED" for e in entries)

    server.wait_until(loaded, timeout=180)
    return server


def start_portal(tmp: Path, env: dict[str, str], *, extra_args: tuple[str, ...] = ()) -> Server:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Server(
        [str(BIN / "vacina-d1"), "serve", "--host", "127.0.0.1", "--port", str(port), *extra_args],
        _env(env),
        tmp / "portal.log",
        url,
    )
    server.wait_until(lambda: httpx.get(f"{url}/health", timeout=5).status_code == 200, timeout=60)
    return server


def graphql(url: str, query: str, variables: dict | None = None, *, timeout: float = 30) -> dict:
    response = httpx.post(url, json={"query": query, "variables": variables or {}}, timeout=timeout)
    response.raise_for_status()
    payload = response.json()
    assert not payload.get("errors"), payload
    return payload["data"]
