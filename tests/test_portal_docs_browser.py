"""/docs in a real browser with no internet: headless Chromium loads the page from a real
``vacina-d1 serve`` on loopback and Swagger UI renders the API's operations from the
files the app serves itself."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.portal.servers import start_portal

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Chromium ausente (apt-get install chromium)")


def test_swagger_ui_renders_the_operations_without_any_cdn(tmp_path):
    portal = start_portal(tmp_path, {"VACINA_D1_HOME": str(tmp_path / "var"), "VACINA_D1_TOKEN_KEY": "k" * 48})
    try:
        profile = tmp_path / "chromium-profile"
        done = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                f"{portal.url}/docs",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        portal.stop()
    dom = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    # Rendered by Swagger UI (not just the empty page): the title and operation blocks.
    assert 'class="swagger-ui"' in dom
    assert "opblock" in dom and "/files/{file_id}/content" in dom, dom[:2000]
    assert "Failed to load API definition" not in dom
