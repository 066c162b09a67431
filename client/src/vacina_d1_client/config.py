"""Where the portal URL, the CPF and the personal token come from — never the
command line (it shows in ``ps``, shell history and the scheduler's task list).

Order: ``VACINA_D1_URL``/``VACINA_D1_CPF``/``VACINA_D1_TOKEN`` in the environment,
then the config file (``--config``, ``VACINA_D1_CONFIG``, or the user's default:
``%APPDATA%\\vacina-d1\\config.toml`` on Windows, ``$XDG_CONFIG_HOME`` or
``~/.config/vacina-d1/config.toml`` elsewhere). ``--url`` wins over both for the URL.
On Linux/macOS the file must be readable by its owner only (like ``~/.ssh``); on
Windows the file lives in the user's profile, whose ACL already keeps others out.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

from vacina_d1_client.errors import UsageError


@dataclass
class Settings:
    url: str | None = None
    cpf: str | None = None
    token: str | None = None
    ca_bundle: str | None = None
    source: str = ""


def default_config_path() -> Path:
    explicit = os.environ.get("VACINA_D1_CONFIG")
    if explicit:
        return Path(explicit)
    if os.name == "nt":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "vacina-d1" / "config.toml"


def _check_private(path: Path) -> None:
    if os.name == "nt":
        return
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(
            f"o arquivo de configuração {path} guarda o token e pode ser lido por outros usuários "
            f"(permissões {stat.filemode(mode)}): rode chmod 600 \"{path}\""
        )


def load(config_path: Path | None, url_option: str | None) -> Settings:
    path = config_path or default_config_path()
    settings = Settings()
    if path.exists():
        _check_private(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"arquivo de configuração ilegível ({path}): {exc}") from None
        settings = Settings(
            url=data.get("url"), cpf=data.get("cpf"), token=data.get("token"), ca_bundle=data.get("ca_bundle"),
            source=str(path),
        )
    environment = os.environ
    settings.url = url_option or environment.get("VACINA_D1_URL") or settings.url
    settings.cpf = environment.get("VACINA_D1_CPF") or settings.cpf
    if environment.get("VACINA_D1_TOKEN"):
        settings.token = environment["VACINA_D1_TOKEN"]
        settings.source = "VACINA_D1_TOKEN"
    settings.ca_bundle = environment.get("VACINA_D1_CA_BUNDLE") or settings.ca_bundle
    return settings


def require(settings: Settings) -> None:
    missing = [name for name, value in (("URL do portal", settings.url), ("CPF", settings.cpf), ("token pessoal", settings.token)) if not value]
    if missing:
        raise UsageError(
            f"faltam: {', '.join(missing)}. Rode 'vacina-d1 sync --configure' uma vez (guarda URL, CPF e token em "
            f"{default_config_path()}, legível só por você) ou defina VACINA_D1_URL, VACINA_D1_CPF e VACINA_D1_TOKEN"
        )
    if not re.match(r"^https?://", settings.url or ""):
        raise UsageError(f"URL do portal inválida: {settings.url!r} (use https://…)")


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def write(path: Path, settings: Settings) -> None:
    """The config file, created readable and writable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# vacina-d1 sync: guarda o token pessoal; não compartilhe este arquivo."]
    for key in ("url", "cpf", "token", "ca_bundle"):
        value = getattr(settings, key)
        if value:
            lines.append(f"{key} = {_toml_string(value)}")
    data = ("\n".join(lines) + "\n").encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
    handle = os.open(path, flags, 0o600)
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    if os.name != "nt":
        os.chmod(path, 0o600)
