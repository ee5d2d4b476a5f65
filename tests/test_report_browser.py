"""The HTML report in a real browser (headless Chromium): it renders (a screenshot with
ink on it, a body with text, every figure decoded) and logs no console error.

Chromium is driven two ways, both offline: ``chromium --screenshot`` for the image, and
chromedriver through the W3C WebDriver HTTP protocol (plain urllib, no selenium) for the
DOM and the browser log. Skipped when /usr/bin/chromium is absent (the Makefile's
``system-deps`` target installs the Debian packages ``chromium`` and ``chromium-driver``).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from test_report_html import sts_only_run, synthetic_run

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent")


def _write_report(tmp_path: Path, runs, name: str = "report.html") -> Path:
    from evalharness.report.html import render_html

    path = tmp_path / name
    path.write_text(render_html(runs), encoding="utf-8")
    return path


def screenshot(page: Path, out: Path, profile: Path, *, width=1280, height=2400) -> Path:
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}",
           f"--window-size={width},{height}", f"--screenshot={out}", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.exists(), f"no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return out


def ink_fraction(png: Path) -> float:
    """Fraction of pixels that are not (near) white."""
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(png).convert("L"))
    return float((img < 240).mean())


# --------------------------------------------------------------------------- WebDriver
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriver:
    """The few W3C WebDriver commands this test needs, spoken to chromedriver."""

    def __init__(self, profile: Path):
        if not Path(CHROMEDRIVER).exists():
            pytest.skip("chromedriver is absent (Debian package chromium-driver)")
        self.port = _free_port()
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        self._wait_ready()
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": str(CHROMIUM),
                                   "args": [*FLAGS, f"--user-data-dir={profile}",
                                            "--window-size=1280,1600"]},
            "goog:loggingPrefs": {"browser": "ALL"}}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _wait_ready(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if self._call("GET", "/status").get("ready"):
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError("chromedriver did not start")

    def _call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return json.loads(resp.read() or b"{}").get("value")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None

    def cmd(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    def execute(self, script: str, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def browser_log(self) -> list[dict]:
        for path in ("/se/log", "/log"):  # chromedriver's (non-W3C) log endpoints
            try:
                return self.cmd("POST", path, {"type": "browser"}) or []
            except RuntimeError:
                continue
        raise RuntimeError("chromedriver serves no browser log endpoint")

    def close(self) -> None:
        try:
            self.cmd("DELETE", "")
        except (RuntimeError, urllib.error.URLError, OSError):
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


PAGE_STATE = """
const imgs = Array.from(document.images);
return {
  title: document.title,
  text: document.body ? document.body.innerText.length : 0,
  height: document.documentElement.scrollHeight,
  images: imgs.length,
  broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
  resources: performance.getEntriesByType('resource').map(r => r.name),
  scripts: document.scripts.length,
  banner: (document.querySelector('.banner') || {}).innerText || '',
};
"""


# --------------------------------------------------------------------------- tests
def test_report_screenshot_is_not_blank(tmp_path):
    page = _write_report(tmp_path, [synthetic_run()])
    png = screenshot(page, tmp_path / "shot.png", tmp_path / "profile")
    assert ink_fraction(png) > 0.05  # text, tables, banner and figures, not a white page


def test_sts_only_report_screenshot_is_not_blank(tmp_path):
    page = _write_report(tmp_path, [sts_only_run()])
    png = screenshot(page, tmp_path / "shot.png", tmp_path / "profile", height=1200)
    assert ink_fraction(png) > 0.02


def test_report_in_webdriver_has_content_figures_and_no_console_errors(tmp_path):
    page = _write_report(tmp_path, [synthetic_run()])
    driver = WebDriver(tmp_path / "profile")
    try:
        driver.get(page.as_uri())
        state = driver.execute(PAGE_STATE)
        log = driver.browser_log()
    finally:
        driver.close()
    assert state["title"].startswith("evalharness report")
    assert state["text"] > 2000 and state["height"] > 2000
    assert state["images"] >= 10 and state["broken"] == []
    assert state["scripts"] == 0  # the planted <script> stayed text
    assert state["resources"] == []  # nothing fetched: data URIs only
    assert "FAILED" in state["banner"]
    errors = [e for e in log if e.get("level") in ("SEVERE", "ERROR")]
    assert errors == [], errors
