"""``--print-schedule``: the exact scheduler entry that runs the same sync every
morning after the 07:00 (Brasília) publication deadline.

The minute is spread over 07:30-07:59 by a hash of the operations, so thousands of
municipalities do not all arrive at 07:30 sharp. The command is the running
Python with ``-m vacina_d1_client`` (absolute paths throughout): it works from
cron's or the Task Scheduler's bare environment, whatever the PATH.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
from pathlib import Path

HOUR = 7


def minute_for(operations: list[str]) -> int:
    digest = hashlib.sha256("|".join(sorted(operations)).encode()).digest()
    return 30 + digest[0] % 30


def current_os() -> str:
    if os.name == "nt":
        return "windows"
    return "macos" if sys.platform == "darwin" else "linux"


def command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "vacina_d1_client", "sync", *args]


def render(os_name: str, sync_args: list[str], operations: list[str], log_file: Path) -> str:
    minute = minute_for(operations)
    argv = command(sync_args)
    if os_name == "windows":
        task = subprocess.list2cmdline(argv)
        return "\n".join([
            f"REM Roda todo dia às {HOUR:02d}:{minute:02d} (horário do computador; a publicação fecha às 07:00 de Brasília).",
            "REM O token fica no arquivo de configuração (vacina-d1 sync --configure), nunca na tarefa.",
            f'schtasks /Create /F /SC DAILY /ST {HOUR:02d}:{minute:02d} /TN "vacina-d1 sync" /TR {_schtasks_quote(task)}',
        ])
    posix = shlex.join(argv)
    cron = f"{minute} {HOUR} * * * {posix} >> {shlex.quote(str(log_file))} 2>&1"
    lines = [
        f"# cron (crontab -e): todo dia às {HOUR:02d}:{minute:02d} no fuso do computador (a publicação fecha às 07:00 de Brasília).",
        "# O token fica no arquivo de configuração (vacina-d1 sync --configure), nunca na linha do cron.",
        cron,
    ]
    if os_name == "linux":
        unit = "vacina-d1-sync"
        lines += [
            "",
            f"# Ou systemd (usuário): ~/.config/systemd/user/{unit}.service",
            "[Unit]",
            "Description=vacina-d1 sync: arquivos D-1 de vacinação",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=oneshot",
            f"ExecStart={_systemd_quote(argv)}",
            "",
            f"# ~/.config/systemd/user/{unit}.timer",
            "[Unit]",
            "Description=vacina-d1 sync todo dia depois das 07:00 de Brasília",
            "",
            "[Timer]",
            f"OnCalendar=*-*-* {HOUR:02d}:{minute:02d}:00 America/Sao_Paulo",
            "Persistent=true",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
            f"# Depois: systemctl --user daemon-reload && systemctl --user enable --now {unit}.timer",
        ]
    return "\n".join(lines)


def _schtasks_quote(task: str) -> str:
    # /TR takes one argument: inner quotes are escaped with a backslash.
    return '"' + task.replace('"', '\\"') + '"'


def _systemd_quote(argv: list[str]) -> str:
    def one(word: str) -> str:
        if word and all(c.isalnum() or c in "/._-=:,@+" for c in word):
            return word
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'

    return " ".join(one(word) for word in argv)
