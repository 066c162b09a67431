"""``make run``'s demo can play both sides of a request: ``admin seed-demo`` writes a
demo chain and an e-CPF .pfx for the person without credentials (and the analyst is
among the demo people); ``serve --dev-login`` trusts that chain, and only then."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from portal_api.core.config import PortalSettings
from portal_api.main import create_app
from portal_api.solicitacoes import certificates, service
from portal_api.web import demo, solicitacoes_demo

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def test_seed_demo_writes_a_certificate_the_dev_login_portal_accepts(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VACINA_D1_")}
    env.update(
        VACINA_D1_HOME=str(home),
        VACINA_D1_CATALOG_URL=f"sqlite:///{home / 'catalog.db'}",
        VACINA_D1_STORAGE_URL=str(home / "storage"),
    )
    runs = [
        subprocess.run(
            [str(BIN / "vacina-d1"), "admin", "seed-demo"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        for _ in range(2)
    ]
    assert all(run.returncode == 0 for run in runs), runs[-1].stderr
    first, second = (json.loads(run.stdout.strip().splitlines()[-1]) for run in runs)
    joana = demo.PEOPLE[-1]
    assert first["certificado_demonstracao"]["titular"] == joana.name
    pfx = Path(first["certificado_demonstracao"]["arquivo"])
    assert second["certificado_demonstracao"] == first["certificado_demonstracao"]  # kept, not made again
    password = first["certificado_demonstracao"]["senha"]

    settings = PortalSettings(home=home, catalog_url=env["VACINA_D1_CATALOG_URL"], storage_url=env["VACINA_D1_STORAGE_URL"])
    app = create_app(settings, dev_login=True)
    checked = certificates.check(pfx.read_bytes(), password, app.state.solicitacoes.trust())
    assert checked.ids.cpf == joana.cpf and checked.kind == "pfx"
    with app.state.services.database.session() as session:  # and the analyst is there to decide
        analyst = next(p for p in demo.PEOPLE if "analista" in p.role)
        from portal_api import crud

        assert service.has_role(session, crud.user_by_cpf(session, analyst.cpf).id)
    app.state.services.database.dispose()

    # Without the development issuer, the demo chain is never trusted.
    plain = create_app(settings)
    assert plain.state.solicitacoes.settings.trust_store is None
    try:
        plain.state.solicitacoes.trust()
        raise AssertionError("a portal without --dev-login trusted the demo chain")
    except certificates.TrustStoreMissing:
        pass
    plain.state.services.database.dispose()
    assert (home / solicitacoes_demo.DIRECTORY / "acs").is_dir()
