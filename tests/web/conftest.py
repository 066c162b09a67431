"""Fixtures of the browser tests: a published world with the demo people, the portal
served for real (``vacina-d1 serve --dev-login`` on a loopback port), Debian's
Chromium driven by Playwright, a login helper and the axe-core check.

Using them in a new page's test (issue 10 and later)::

    def test_my_page(portal, new_page):
        page = new_page()
        login(page, portal, SAO_PAULO_CPF)
        page.goto(portal.url + "/portal/minha-pagina")
        assert_accessible(page)
        screenshot(page, "minha-pagina")

Chromium: ``/usr/bin/chromium`` (``VACINA_D1_CHROMIUM`` overrides). Missing, the tests
skip with a message — except under ``CI=true`` or ``VACINA_D1_REQUIRE_BROWSER=1``,
where they fail (``make test`` installs it as root; see the Makefile).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from portal_api.core.config import PortalSettings
from portal_api.core.db import Database, upgrade
from portal_api.web import demo
from serving.stores import open_storage
from tests.portal import servers
from tests.portal.world import World, publish_file

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).parent / "assets" / "axe.min.js"
SCREENSHOTS = ROOT / "var" / "screenshots"

SAO_PAULO_CPF, RJ_CPF, ANALYST_CPF, NOBODY_CPF = (p.cpf for p in demo.PEOPLE)
SP = demo.SAO_PAULO
RJ = demo.RIO_DE_JANEIRO
# São Paulo: 12 days in November 2026 (two pages of 10), 2 in October; nothing else that year.
SP_DAYS = [dt.date(2026, 11, d) for d in range(10, 22)] + [dt.date(2026, 10, 30), dt.date(2026, 10, 31)]
RJ_DAYS = [dt.date(2026, 11, 20), dt.date(2026, 11, 21)]
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 360, "height": 740}


def chromium_path() -> str | None:
    path = os.environ.get("VACINA_D1_CHROMIUM", "/usr/bin/chromium")
    return path if Path(path).is_file() and os.access(path, os.X_OK) else None


def _browser_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("VACINA_D1_REQUIRE_BROWSER") == "1"


@dataclass
class Portal:
    url: str
    world: World
    server: servers.Server
    tmp: Path
    dagster_url: str | None = None


def build_world(tmp: Path, **settings) -> World:
    home = tmp / "home"
    portal_settings = PortalSettings(
        home=home,
        catalog_url=f"sqlite:///{home / 'catalog.db'}",
        storage_url=str(home / "storage"),
        token_key="k" * 48,
        **settings,
    )
    upgrade(portal_settings.resolved_catalog_url)
    database = Database(portal_settings.resolved_catalog_url)
    world = World(portal_settings, database, open_storage(portal_settings.resolved_storage_url))
    for operation, days in ((SP, SP_DAYS), (RJ, RJ_DAYS)):
        for day in days:
            publish_file(world, operation, day, rows=15 + day.day)
    with database.session() as session, session.begin():
        demo.seed(session)
    return world


def start_portal(tmp: Path, world: World, extra_env: dict[str, str] | None = None) -> servers.Server:
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "VACINA_D1_HOME": str(world.settings.home),
        "VACINA_D1_CATALOG_URL": world.settings.resolved_catalog_url,
        "VACINA_D1_STORAGE_URL": world.settings.resolved_storage_url,
        "VACINA_D1_TOKEN_KEY": "k" * 48,
        **(extra_env or {}),
    }
    server = servers.Server(
        [str(servers.BIN / "vacina-d1"), "serve", "--dev-login", "--host", "127.0.0.1", "--port", str(port)],
        servers._env(env),
        tmp / f"portal-{port}.log",
        url,
    )
    import httpx

    server.wait_until(lambda: httpx.get(f"{url}/dev-issuer/.well-known/openid-configuration", timeout=5).status_code == 200, 90)
    return server


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    world = build_world(tmp)
    server = start_portal(tmp, world)
    try:
        yield Portal(server.url, world, server, tmp)
    finally:
        server.stop()
        world.database.dispose()


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    if path is None:
        message = "Chromium não encontrado em /usr/bin/chromium (instale com `apt-get install -y chromium`)"
        if _browser_required():
            pytest.fail(message + "; CI=true/VACINA_D1_REQUIRE_BROWSER=1 exige o navegador")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=path,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def new_page(browser):
    """``new_page(viewport=DESKTOP)``: a page in a fresh context (its own cookies), with
    axe-core injected on every document (an init script: the pages' CSP allows no
    other script)."""
    contexts = []

    def make(viewport: dict | None = None, **options):
        context = browser.new_context(viewport=viewport or DESKTOP, accept_downloads=True, locale="pt-BR", **options)
        context.add_init_script(path=str(AXE))
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        # Console errors (a CSP violation, a missing asset, a script error) fail assert_accessible.
        page.console_errors = []
        page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
        page.on("pageerror", lambda error: page.console_errors.append(str(error)))
        page.on(
            "response",
            lambda response: (
                response.status >= 400
                and response.request.resource_type != "document"
                and page.console_errors.append(f"{response.status} {response.url}")
            ),
        )
        return page

    yield make
    for context in contexts:
        context.close()


def login(page, portal: Portal, cpf: str, next_path: str = "/") -> None:
    """Log in through the development issuer: Entrar com gov.br → CPF → back on the portal."""
    from urllib.parse import quote

    page.goto(portal.url + "/entrar?proximo=" + quote(next_path, safe=""))
    page.locator("#main").get_by_role("link", name="Entrar com gov.br").click()
    page.get_by_label("CPF").fill(cpf)
    page.get_by_role("button", name="Continuar").click()
    page.wait_for_url(lambda url: "/dev-issuer/" not in url and "/auth/retorno" not in url)


def assert_accessible(page, context: str = "") -> None:
    """Zero serious or critical axe-core violations (WCAG 2.x A/AA rules) on the page."""
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
            return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                   .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }"""
    )
    assert result == [], f"axe-core ({context or page.url}): {result}"
    # A document's own 4xx is what some tests ask for; its sub-resources must all load.
    errors = [e for e in getattr(page, "console_errors", []) if not e.startswith("Failed to load resource")]
    assert errors == [], f"erros no console ({context or page.url}): {errors}"


def screenshot(page, name: str) -> Path:
    """A full-page screenshot under var/screenshots/ (a test artefact, gitignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
