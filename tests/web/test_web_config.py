"""Configuration of the pages without a browser: the dev issuer only with
``dev_login``, the cookie's flags, the CSP scoped to the pages."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from portal_api.main import create_app
from portal_api.web.settings import WebSettings
from tests.web.conftest import build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = build_world(tmp_path_factory.mktemp("webcfg"))
    yield world
    world.database.dispose()


def _client(world, monkeypatch, *, dev_login: bool, **env) -> TestClient:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return TestClient(create_app(world.settings, migrate=False, dev_login=dev_login), base_url="http://127.0.0.1:8000")


def test_the_dev_issuer_is_served_only_with_dev_login(world, monkeypatch):
    plain = _client(world, monkeypatch, dev_login=False)
    assert plain.get("/dev-issuer/.well-known/openid-configuration").status_code == 404
    login = plain.get("/entrar")
    assert login.status_code == 503 and "não está configurado" in login.text
    assert plain.get("/").status_code == 200  # Início still shows the catalogue
    dev = _client(world, monkeypatch, dev_login=True)
    metadata = dev.get("/dev-issuer/.well-known/openid-configuration").json()
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["end_session_endpoint"].endswith("/dev-issuer/logout")
    keys = dev.get("/dev-issuer/jwks").json()["keys"]
    assert keys and all("d" not in key for key in keys)  # public parts only


def test_session_cookie_flags(world, monkeypatch):
    local = _client(world, monkeypatch, dev_login=True)
    cookie = local.get("/entrar/govbr", follow_redirects=False).headers["set-cookie"].lower()
    assert "vd1_sessao=" in cookie and "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    public = _client(
        world,
        monkeypatch,
        dev_login=False,
        VACINA_D1_PUBLIC_URL="https://d1.saude.example",
        VACINA_D1_OIDC_DISCOVERY_URL="https://sso.staging.acesso.gov.br/.well-known/openid-configuration",
    )
    page = public.get("/")
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
    # The logout goes on to gov.br: its origin is allowed as a form target.
    assert "form-action 'self' https://sso.staging.acesso.gov.br" in page.headers["content-security-policy"]


def test_csp_on_pages_only(world, monkeypatch):
    client = _client(world, monkeypatch, dev_login=True)
    for path in ("/", "/entrar", "/portal/nada", "/static/app.css"):
        csp = client.get(path).headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
    for path in ("/docs", "/openapi.json", "/operations"):
        assert "content-security-policy" not in client.get(path).headers, path
    # Pages are never cached (the back button after logout finds nothing).
    assert client.get("/").headers["cache-control"] == "no-store"
    # An API 404 stays a problem document; a page 404 is a page.
    assert client.get("/files/999999").headers["content-type"].startswith("application/problem+json")
    assert client.get("/portal/nada").headers["content-type"].startswith("text/html")


def test_web_settings_default_to_gov_br_scopes():
    assert WebSettings().oidc_scopes.split()[:3] == ["openid", "email", "profile"]


def test_sessions_end_on_logout_expiry_and_idleness(world):
    import datetime as dt

    import sqlalchemy as sa

    from portal_api import crud
    from portal_api.web.models import WebSession
    from portal_api.web.sessions import SessionStore
    from tests.web.conftest import SAO_PAULO_CPF

    store = SessionStore(world.database, WebSettings(session_hours=8, session_idle_minutes=60))
    with world.database.session() as session:
        marta = crud.user_by_cpf(session, SAO_PAULO_CPF)
    sid = store.start(marta.id, "id-token")
    assert store.lookup(sid).name == "Marta Ribeiro"
    assert store.lookup(sid + "x") is None and store.lookup(None) is None
    assert store.end(sid) == "id-token"
    assert store.lookup(sid) is None  # ended: the cookie is worth nothing

    def aged(**delta):
        sid = store.start(marta.id, None)
        with world.database.session() as session, session.begin():
            row = session.scalar(sa.select(WebSession).order_by(WebSession.id.desc()).limit(1))
            if "idle" in delta:
                row.last_seen_at = row.last_seen_at - dt.timedelta(minutes=delta["idle"])
            if "age" in delta:
                row.expires_at = crud.utcnow() - dt.timedelta(minutes=delta["age"])
        return sid

    assert store.lookup(aged(idle=59)) is not None
    assert store.lookup(aged(idle=61)) is None
    assert store.lookup(aged(age=1)) is None
    with world.database.session() as session, session.begin():
        session.get(type(marta), marta.id).is_active = False
    try:
        assert store.lookup(store.start(marta.id, None)) is None  # a deactivated user's session is dead
    finally:
        with world.database.session() as session, session.begin():
            session.get(type(marta), marta.id).is_active = True
