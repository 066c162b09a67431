"""The locust users of ``bench/load.py`` (run by it as ``locust --headless``; not alone).

Each user mixes listing (years, months, a month's files: 60%) and downloads (40%,
one in ten a resumed range). Every download body is checked: a complete one must
hash to the catalog's SHA-256, a range must be exactly the stored bytes from its
start. In ``static`` mode the same mix goes to nginx serving the store as plain
files (a small static JSON stands in for a listing): the baseline.
"""

from __future__ import annotations

import hashlib
import json
import os
import random

from locust import FastHttpUser, between, events, task

CONFIG = json.loads(open(os.environ["LOAD_CONFIG"]).read())
FILES = CONFIG["files"]
DATA = {f["id"]: open(f["path"], "rb").read() for f in FILES}
STATIC = CONFIG["mode"] == "static"
COUNTERS = {
    "transfers_started": 0,
    "complete_ok": 0,
    "ranges_ok": 0,
    "broken_bodies": 0,
    "server_errors": 0,
    "download_bytes": 0,
    "other_errors": 0,
}


@events.test_stop.add_listener
def _write_counters(environment, **_kwargs):
    with open(CONFIG["counters"], "w") as handle:
        json.dump(COUNTERS, handle)


class _User(FastHttpUser):
    abstract = True
    wait_time = between(0.0, 0.05)
    connection_timeout = 30.0
    network_timeout = 60.0

    def on_start(self):
        self.headers = {} if STATIC else {"Authorization": f"Bearer {random.choice(CONFIG['tokens'])}"}

    def _classify(self, response):
        if response.status_code >= 500 or response.status_code == 0:
            COUNTERS["server_errors" if response.status_code >= 500 else "other_errors"] += 1

    def _listing(self):
        place = random.choice(CONFIG["listing"])
        kind = random.choice(("anos", "meses", "arquivos"))
        if STATIC:
            url, name = CONFIG["static_listing"], f"listagem-{kind}"
        elif kind == "anos":
            url, name = f"/operations/{place['operation']}/years", "listagem-anos"
        elif kind == "meses":
            url, name = f"/operations/{place['operation']}/years/{place['year']}/months", "listagem-meses"
        else:
            url, name = (
                f"/operations/{place['operation']}/years/{place['year']}/months/{place['month']}/files",
                "listagem-arquivos",
            )
        with self.client.get(url, headers=self.headers, name=name, catch_response=True) as response:
            self._classify(response)
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")

    def _download(self):
        f = random.choice(FILES)
        data = DATA[f["id"]]
        url = f["static_path"] if STATIC else f"/files/{f['id']}/content"
        ranged = random.random() < 0.10
        headers = dict(self.headers)
        start = 0
        if ranged:
            start = random.randrange(1, len(data))
            headers["Range"] = f"bytes={start}-"
            if not STATIC:
                headers["If-Range"] = f'"{f["sha256"]}"'
        name = "download-intervalo" if ranged else "download"
        with self.client.get(url, headers=headers, name=name, catch_response=True) as response:
            self._classify(response)
            if response.status_code not in (200, 206):
                response.failure(f"status {response.status_code}")
                return
            COUNTERS["transfers_started"] += 1
            body = response.content or b""
            COUNTERS["download_bytes"] += len(body)
            if ranged:
                good = response.status_code == 206 and body == data[start:]
                COUNTERS["ranges_ok" if good else "broken_bodies"] += 1
            else:
                good = len(body) == f["size"] and hashlib.sha256(body).hexdigest() == f["sha256"]
                COUNTERS["complete_ok" if good else "broken_bodies"] += 1
            if not good:
                response.failure("corpo quebrado")


class Portal(_User):
    """The mixed user (listing 60%, downloads 40%)."""

    @task(6)
    def listing(self):
        self._listing()

    @task(4)
    def download(self):
        self._download()


class Listing(_User):
    """Listing only: the client does almost nothing per answer, so its latency is the server's."""

    @task
    def listing(self):
        self._listing()
