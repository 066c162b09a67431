"""Settings of the pages and of the login (``VACINA_D1_*``), apart from the API's.

Production points at gov.br's Login Único:

    VACINA_D1_PUBLIC_URL=https://d1.saude.gov.br
    VACINA_D1_OIDC_DISCOVERY_URL=https://sso.acesso.gov.br/.well-known/openid-configuration
    VACINA_D1_OIDC_CLIENT_ID=...      VACINA_D1_OIDC_CLIENT_SECRET=...
    VACINA_D1_OIDC_SCOPES="openid email profile govbr_confiabilidades"

``vacina-d1 serve --dev-login`` overrides the issuer with the development one it
serves itself under ``/dev-issuer``.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VACINA_D1_", extra="ignore")

    # The address people reach the portal at (redirect and logout URLs derive from it).
    public_url: str | None = None
    oidc_discovery_url: str | None = None
    oidc_client_id: str = "vacina-d1"
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid email profile"
    # Key that signs the session cookie; unset, a random key kept in the data home.
    session_key: SecretStr | None = None
    # Absolute lifetime and idle limit of a browser session.
    session_hours: float = Field(8.0, gt=0, le=24 * 7)
    session_idle_minutes: float = Field(60.0, gt=0, le=24 * 60)
    # Secure cookies: always, unless the public URL is plain http on loopback (local dev).
    cookie_secure: bool | None = None
