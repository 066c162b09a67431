"""The portal in the browser: server-rendered pages (Jinja2 + the gov.br Design
System, vendored under ``static/vendor``), gov.br login by OpenID Connect, server-side
sessions, CSRF and the Content-Security-Policy of the pages.

``install(app, services, settings, dev_login=...)`` mounts all of it on the API's app.
"""

from portal_api.web.app import install

__all__ = ["install"]
