"""The login's checks, each broken on purpose at the development issuer (served
in-process by uvicorn on a loopback port, so the test can reach into it): a wrong
``state``, ``iss``, ``aud``, ``exp``, ``nonce``, signature or PKCE verifier is refused
and leaves no session; the user is found or created by the CPF of ``sub``."""

from __future__ import annotations

import re
import threading
import time
from html import unescape

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from joserfc.jwk import RSAKey

from portal_api.main import create_app
from portal_api.models import User
from portal_api.web.models import WebSession
from tests.portal import servers
from tests.web.conftest import SAO_PAULO_CPF, build_world


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oidc")
    world = build_world(tmp, token_attempts_per_minute=1000)  # these tests fail logins on purpose
    port = servers.free_port()
    settings = world.settings.model_copy(update={"host": "127.0.0.1", "port": port})
    app = create_app(settings, migrate=False, dev_login=True)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield app, f"http://127.0.0.1:{port}", world
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        world.database.dispose()


def _hidden(html: str) -> dict[str, str]:
    return {unescape(n): unescape(v) for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)}


def authorize(client: httpx.Client, base: str, cpf: str) -> str:
    """Up to the issuer's redirect back: the callback URL (with code and state)."""
    start = client.get(base + "/entrar/govbr?proximo=/portal/credenciais")
    assert start.status_code == 302
    form = client.get(start.headers["location"])
    assert form.status_code == 200 and "Digite seu CPF" in form.text
    back = client.post(base + "/dev-issuer/authorize", data={**_hidden(form.text), "cpf": cpf})
    assert back.status_code == 302, back.text
    assert back.headers["location"].startswith(base + "/auth/retorno?code=")
    return back.headers["location"]


def logged_in(client: httpx.Client, base: str) -> bool:
    return client.get(base + "/portal/credenciais").status_code == 200


def sessions(world) -> int:
    with world.database.session() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(WebSession))


def test_login_creates_a_session_for_the_user_of_the_cpf(served):
    app, base, world = served
    with httpx.Client() as client:
        callback = authorize(client, base, SAO_PAULO_CPF)
        done = client.get(callback)
        assert done.status_code == 303 and done.headers["location"] == "/portal/credenciais"
        assert logged_in(client, base)
        assert "Marta" in client.get(base + "/portal/credenciais").text
        # The code is single-use: replaying the callback is refused.
        assert client.get(callback).status_code == 400


def test_a_new_cpf_becomes_a_new_user(served):
    app, base, world = served
    with world.database.session() as session, session.begin():
        from portal_api import crud

        crud.create_user(session, cpf="52998224725", name="Ana Souza", email="ana@saude.df.gov.br")
    with httpx.Client() as client:
        assert client.get(authorize(client, base, "529.982.247-25")).status_code == 303
        assert "Ana" in client.get(base + "/portal/credenciais").text
    # An unknown CPF at the dev issuer: its own error, nothing created.
    with httpx.Client() as client:
        start = client.get(base + "/entrar/govbr")
        form = client.get(start.headers["location"])
        refused = client.post(base + "/dev-issuer/authorize", data={**_hidden(form.text), "cpf": "71015425062"})
        assert refused.status_code == 422 and "Não há conta com este CPF" in refused.text
    with world.database.session() as session:
        assert session.scalar(sa.select(User).where(User.cpf == "71015425062")) is None


@pytest.mark.parametrize("broken", ["state", "iss", "aud", "exp", "nonce", "signature", "pkce"])
def test_a_broken_check_refuses_the_login(served, broken, monkeypatch):
    app, base, world = served
    issuer = app.state.dev_issuer
    with httpx.Client() as warm:  # the RP has the issuer's metadata and keys cached
        assert warm.get(authorize(warm, base, SAO_PAULO_CPF)).status_code == 303
    before = sessions(world)
    with httpx.Client() as client:
        callback = authorize(client, base, SAO_PAULO_CPF)
        code = re.search(r"code=([^&]+)", callback)[1]
        if broken == "state":
            callback = re.sub(r"state=[^&]+", "state=outro", callback)
        elif broken == "iss":
            monkeypatch.setattr(
                issuer,
                "id_token_claims",
                lambda client: {**type(issuer).id_token_claims(issuer, client), "iss": "http://outro.example"},
            )
        elif broken == "aud":
            monkeypatch.setattr(
                issuer,
                "id_token_claims",
                lambda client: {**type(issuer).id_token_claims(issuer, client), "aud": ["outro-cliente"]},
            )
        elif broken == "exp":
            now = int(time.time())
            monkeypatch.setattr(
                issuer,
                "id_token_claims",
                lambda client: {**type(issuer).id_token_claims(issuer, client), "iat": now - 3600, "exp": now - 600},
            )
        elif broken == "nonce":
            issuer.codes[code].nonce = "outro-nonce"
        elif broken == "signature":
            impostor = RSAKey.generate_key(2048, parameters={"kid": issuer.key.kid, "use": "sig", "alg": "RS256"}, private=True)
            monkeypatch.setattr(issuer, "key", impostor)
        elif broken == "pkce":
            issuer.codes[code].code_challenge = "A" * 43
        refused = client.get(callback)
        assert refused.status_code == 400, (broken, refused.status_code)
        assert "Não foi possível concluir o login" in refused.text or "ID token" in refused.text
        assert not logged_in(client, base)
    assert sessions(world) == before


def test_the_issuer_requires_pkce(served):
    app, base, world = served
    with httpx.Client() as client:
        start = client.get(base + "/entrar/govbr")
        url = re.sub(r"&code_challenge=[^&]+&code_challenge_method=S256", "", start.headers["location"])
        assert "code_challenge" not in url
        answer = client.get(url)
        assert answer.status_code in (302, 400)
        assert "code=" not in answer.headers.get("location", "")
