"""Failed logins are limited per address like POST /token (issue 11): past the limit the
login answers 429 with Retry-After, before it even reaches the issuer, and another
address is not affected."""

from __future__ import annotations

from fastapi.testclient import TestClient

from portal_api.main import create_app
from tests.web.conftest import build_world


def test_failed_logins_from_one_address_get_429_with_retry_after(tmp_path):
    world = build_world(tmp_path, token_attempts_per_minute=3)
    app = create_app(world.settings, migrate=False, dev_login=True)
    try:
        with TestClient(app, base_url="http://127.0.0.1:8000") as client:
            # A forged return (no login was started: no state in the session) fails each time.
            for _ in range(3):
                answer = client.get("/auth/retorno?code=forjado&state=forjado", follow_redirects=False)
                assert answer.status_code == 400
                assert "Não foi possível concluir o login" in answer.text
            refused = client.get("/auth/retorno?code=forjado&state=forjado", follow_redirects=False)
            assert refused.status_code == 429
            assert int(refused.headers["Retry-After"]) >= 1
            assert "Tentativas de login demais" in refused.text
            # Starting a new login from the same address is refused too, without asking the issuer.
            start = client.get("/entrar/govbr", follow_redirects=False)
            assert start.status_code == 429 and "location" not in start.headers
        # Another address is not limited by the first one's failures: its forged return is
        # judged (400), not refused outright.
        with TestClient(app, base_url="http://127.0.0.1:8000", client=("10.0.0.9", 50000)) as other:
            answer = other.get("/auth/retorno?code=forjado&state=forjado", follow_redirects=False)
            assert answer.status_code == 400
    finally:
        world.database.dispose()
