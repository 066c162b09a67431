"""Browser sessions: a signed cookie that carries a random id, and a row per login.

The cookie is Starlette's ``SessionMiddleware`` (itsdangerous-signed, ``HttpOnly``,
``SameSite=Lax``, ``Secure`` outside local development). Before login it only holds
the OpenID Connect ``state``/``nonce``/PKCE verifier of a login in progress and the
CSRF token; after login, also ``sid``. The ``web_session`` row keeps the SHA-256 of
``sid``: "Sair com segurança" ends the row, so a copy of the old cookie gets nothing
(a signed cookie alone cannot be revoked).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from portal_api.core.config import _home_key
from portal_api.core.db import Database
from portal_api.models import User
from portal_api.web.models import WebSession
from portal_api.web.settings import WebSettings

COOKIE = "vd1_sessao"
SESSION_KEY_FILE = "portal-session.key"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def session_key(web: WebSettings, home) -> str:
    if web.session_key is not None:
        key = web.session_key.get_secret_value()
        if len(key) < 32:
            raise ValueError("VACINA_D1_SESSION_KEY precisa de pelo menos 32 caracteres")
        return key
    return _home_key(home / SESSION_KEY_FILE).decode()


@dataclass(frozen=True)
class WebUser:
    """The person behind a page request."""

    id: int
    cpf: str
    name: str
    email: str
    session_id: int

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.split() else self.name


class SessionStore:
    def __init__(self, database: Database, web: WebSettings):
        self.database = database
        self.lifetime = dt.timedelta(hours=web.session_hours)
        self.idle = dt.timedelta(minutes=web.session_idle_minutes)

    def start(self, user_id: int, id_token: str | None) -> str:
        sid = secrets.token_urlsafe(32)
        now = utcnow()
        with self.database.session() as session, session.begin():
            session.add(
                WebSession(
                    sid_hash=_hash(sid),
                    user_id=user_id,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + self.lifetime,
                    id_token=id_token,
                )
            )
        return sid

    def lookup(self, sid: str | None) -> WebUser | None:
        """The user of a live session (not ended, not expired, not idle too long, user
        active); touches its last-seen time at most once a minute."""
        if not sid or len(sid) > 100:
            return None
        now = utcnow()
        with self.database.session() as session, session.begin():
            found = session.execute(
                sa.select(WebSession, User)
                .join(User, User.id == WebSession.user_id)
                .where(WebSession.sid_hash == _hash(sid), WebSession.ended_at.is_(None), User.is_active.is_(True))
            ).one_or_none()
            if found is None:
                return None
            row, user = found
            if _aware(row.expires_at) <= now or _aware(row.last_seen_at) + self.idle <= now:
                row.ended_at = now
                return None
            if now - _aware(row.last_seen_at) > dt.timedelta(minutes=1):
                row.last_seen_at = now
            return WebUser(user.id, user.cpf, user.name, user.email, row.id)

    def end(self, sid: str | None) -> str | None:
        """End the session; the ID token it was opened with (the logout's hint)."""
        if not sid:
            return None
        with self.database.session() as session, session.begin():
            row = session.scalar(sa.select(WebSession).where(WebSession.sid_hash == _hash(sid)))
            if row is None:
                return None
            if row.ended_at is None:
                row.ended_at = utcnow()
            return row.id_token
