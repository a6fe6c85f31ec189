"""Reading the gateway's dashboard as a browser draws it: headless Chromium (Debian's `chromium`) dumps the DOM
once the page's scripts have run, and `Cells` collects its tables' rows."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser


class Cells(HTMLParser):
    """Collects rows of the dashboard's tables: tbody id -> [(row data-* key, {data-field: text})]."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[tuple[str, dict[str, str]]]] = {}
        self.body: dict[str, str] = {}
        self.ids: dict[str, dict[str, str]] = {}  # element id -> its attributes
        self._table: str | None = None
        self._row: tuple[str, dict[str, str]] | None = None
        self._cells: list[str] = []
        self._field: str | None = None
        self._text: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids[a["id"]] = a
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
