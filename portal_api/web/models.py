"""The browser session table (migration 0003_web_session), on the portal's ``Base``."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal_api.models import TZ, Base


class WebSession(Base):
    """One login in a browser. The cookie carries a random id (signed); the row keeps
    only its SHA-256, so a copy of the database cannot be replayed as a cookie."""

    __tablename__ = "web_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    sid_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("portal_user.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(TZ)
    last_seen_at: Mapped[dt.datetime] = mapped_column(TZ)
    expires_at: Mapped[dt.datetime] = mapped_column(TZ)
    ended_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    # Sent back to the issuer as id_token_hint on logout (RP-initiated logout).
    id_token: Mapped[str | None] = mapped_column(sa.Text)
