"""Every field the API's form takes has its input in the wizard, named by the API's path,
with a label — so every refusal of the service (which names that path) lands beside an
input. A new field in ``schemas`` without its input fails here."""

from __future__ import annotations

import re
from pathlib import Path

from portal_api.solicitacoes import schemas
from portal_api.web import solicitacoes as wizard

TEMPLATES = Path(wizard.__file__).with_name("templates") / "solicitacoes"


def step_source(slug: str) -> str:
    return (TEMPLATES / f"passo_{slug}.html").read_text(encoding="utf-8")


def inputs_of(slug: str) -> set[str]:
    """The field names of a step: ``name="x"`` and the macros' first argument (``c.campo("x", ...)``)."""
    source = step_source(slug)
    names = set(re.findall(r'name="([a-z_.]+)"', source))
    names |= set(re.findall(r'c\.(?:campo|area|escolha)\("([a-z_.]+)"', source))
    return names


def test_every_section_field_of_the_form_has_its_input_in_its_step():
    expected = {
        "origem": {"origem"},
        "estabelecimento": {f"estabelecimento.{name}" for name in schemas.EstabelecimentoIn.model_fields},
        "gestor": {f"gestor.{name}" for name in schemas.GestorIn.model_fields},
        "sistema": {f"sistema.{name}" for name in schemas.SistemaIn.model_fields} - {"sistema.integracoes", "sistema.picos"},
        "integracoes": {"integracao"},
        "picos": {f"pico.{name}" for name in schemas.PicoIn.model_fields},
        "portfolio": {"api.codigo"},
        "servicos": {"api.codigo", "api.operacoes"},
        "termo": {"aceito", "versao_termos"},
        "vinculados": {"cnes", "arquivo"},
        "certificado": {"arquivo", "senha"},
    }
    for slug, names in expected.items():
        missing = names - inputs_of(slug)
        assert not missing, f"passo {slug}: faltam os campos {sorted(missing)}"
    # What the sistema step posts is what SistemaIn takes (the lists are saved by their own steps).
    assert set(wizard.SISTEMA_FIELDS) == set(schemas.SistemaIn.model_fields) - {"integracoes", "picos"}
    # The ApiIn fields the page does not type are sent by it: versao (the catalogue's), adicionar_todas (the button).
    assert set(schemas.ApiIn.model_fields) == {"codigo", "versao", "operacoes", "adicionar_todas"}


def test_every_step_has_a_template_a_saver_and_a_title():
    assert set(wizard.SAVERS) == set(wizard.SLUGS)
    for step in wizard.STEPS:
        assert (TEMPLATES / f"passo_{step.slug}.html").is_file(), step.slug
        assert step.title and step.title[0].isupper()
    # The required steps are the sections the service lists as pending until they are filled.
    assert [s.slug for s in wizard.STEPS if s.required] == [
        "origem",
        "certificado",
        "estabelecimento",
        "gestor",
        "sistema",
        "portfolio",
        "servicos",
    ]


def test_each_labelled_field_uses_the_apis_portuguese_label():
    """The wizard's labels are the schemas' titles (the words the refusals start with)."""
    for slug in ("estabelecimento", "gestor", "sistema"):
        source = step_source(slug)
        for name in re.findall(r'c\.(?:campo|area)\("([a-z_.]+)", rotulos\["([a-z_.]+)"\]', source):
            assert name[0] == name[1], name
            assert schemas.BODY_LABELS.get(name[0]), name
