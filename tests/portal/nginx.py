"""A real nginx (Debian's package) on loopback, run as the current user with its own
prefix: deploy/nginx/vacina-d1.conf in front of a portal, optionally a second server
block serving the store as plain static files (the load benchmark's baseline)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "nginx" / "vacina-d1.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

STATIC_SERVER = """
server {
    listen 127.0.0.1:%(port)d;
    location /estatico/ {
        alias %(store)s;
        types { }
        default_type application/gzip;
        sendfile on;
        tcp_nopush on;
    }
}
"""


def available() -> bool:
    return Path(NGINX).is_file()


class Nginx:
    def __init__(self, workdir: Path, portal: str, store: Path, *, static: bool = False, workers: int = 1):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.static_url = None
        site = SHIPPED.read_text()
        store_dir = str(store.absolute()).rstrip("/") + "/"
        site = site.replace("__LISTEN__", f"127.0.0.1:{self.port}").replace("__PORTAL__", portal).replace("__STORE__", store_dir)
        if static:
            static_port = free_port()
            self.static_url = f"http://127.0.0.1:{static_port}/estatico/"
            site += STATIC_SERVER % {"port": static_port, "store": store_dir}
        temp = workdir / "temp"
        temp.mkdir(exist_ok=True)
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(
            ""
            # As root (CI), the workers would drop to nobody and not reach the 0700 test directories.
            + ("user root;\n" if os.geteuid() == 0 else "")
            + f"worker_processes {workers};\n"
            f"pid {workdir / 'nginx.pid'};\n"
            f"error_log {workdir / 'error.log'} warn;\n"
            "daemon off;\n"
            "events { worker_connections 4096; }\n"
            "http {\n"
            f"  access_log off;\n"
            f"  client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy; fastcgi_temp_path {temp}/fcgi;\n"
            f"  uwsgi_temp_path {temp}/uwsgi; scgi_temp_path {temp}/scgi;\n"
            f"{site}\n"
            "}\n"
        )
        check = subprocess.run([NGINX, "-t", "-p", str(workdir), "-c", str(self.conf)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t recusou a configuração: {check.stderr}")
        self.log = open(workdir / "nginx.out", "wb")
        self.process = subprocess.Popen(
            ["env", "--default-signal=INT,TERM,HUP", NGINX, "-p", str(workdir), "-c", str(self.conf)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/health", timeout=2)
                return
            except httpx.HTTPError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"nginx não respondeu: {(workdir / 'error.log').read_text() if (workdir / 'error.log').exists() else ''}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish the open transfers
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()
