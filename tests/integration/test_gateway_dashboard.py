"""The dashboard in headless Chromium (Debian's `chromium`): the numbers it shows match the API."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from tests.integration.gateway_fixtures import Dataset, served_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.chromium]


class Cells(HTMLParser):
    """Collects rows of the dashboard's tables: tbody id -> [(row data-* key, {data-field: text})]."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[tuple[str, dict[str, str]]]] = {}
        self.body: dict[str, str] = {}
        self._table: str | None = None
        self._row: tuple[str, dict[str, str]] | None = None
        self._cells: list[str] = []
        self._field: str | None = None
        self._text: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = a
        elif tag == "tbody":
            self._table = a.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            key = next((v for k, v in a.items() if k.startswith("data-")), "")
            self._row = (key, {})
        elif tag == "td" and self._row is not None:
            self._field = a.get("data-field", f"col{len(self._row[1])}")
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._field is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._field is not None:
            self._row[1][self._field] = "".join(self._text).strip()
            self._field = None
        elif tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "tbody":
            self._table = None


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe is not None
    return exe


def dump_dom(url: str) -> str:
    """Load `url` in a fresh headless Chromium profile and return the DOM once scripts have run."""
    with tempfile.TemporaryDirectory(prefix="streamctl-chromium-") as profile:
        argv = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                "--virtual-time-budget=8000", "--dump-dom", url]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Dataset]]:
    yield from served_cluster("gwdash")


def test_dashboard_numbers_match_the_api(served: tuple[str, Dataset]) -> None:
    url, data = served
    ids = list(data.content)
    with httpx.Client(base_url=url) as api:
        for cid, views in ((ids[0], 3), (ids[1], 5), (ids[2], 1)):
            for _ in range(views):
                assert api.post(f"/api/v1/content/{cid}/views/increment").status_code == 200
        page = Cells()
        page.feed(dump_dom(url + "/"))
        trending: dict[str, Any] = api.get("/api/v1/content/trending/daily", params={"limit": 10}).json()
        health: dict[str, Any] = api.get("/health").json()
        replication: dict[str, Any] = api.get("/api/v1/ops/replication").json()
        shards: dict[str, Any] = api.get("/api/v1/ops/shards").json()

    assert int(page.body.get("data-refreshes", "0")) >= 1, "the dashboard never finished a refresh"
    shown = [(key, int(float(cells["score"])), cells["title"]) for key, cells in page.tables["trending"]]
    assert shown == [(i["content_id"], int(i["score"]), i["title"]) for i in trending["items"]]
    assert [s for _, s, _ in shown] == [5, 3, 1]

    states = {key: cells["state"] for key, cells in page.tables["health"]}
    assert states == {s["store"]: (s["detail"] if s["enabled"] else "disabled") for s in health["stores"]}

    repl = {key: cells for key, cells in page.tables["replication"]}
    assert set(repl) == {r["replica"] for r in replication["replicas"]}
    for r in replication["replicas"]:
        assert repl[r["replica"]]["state"] == r["state"]
        assert repl[r["replica"]]["lag-bytes"].isdigit()

    assert [(k, int(c["distributed"]), int(c["reference"])) for k, c in page.tables["shards"]] == \
        [(w["node"], w["distributed"], w["reference"]) for w in shards["workers"]]
