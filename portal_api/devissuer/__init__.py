"""The development OpenID provider of ``vacina-d1 serve --dev-login`` (never served otherwise)."""

from portal_api.devissuer.server import PREFIX, DevIssuer, router

__all__ = ["PREFIX", "DevIssuer", "router"]
