"""The main journey in a real browser: Debian's Chromium driven by Playwright against a live console.

Upload a CSV, see the estimate, start a batch, watch progress reach the end, approve, download the export,
open Spend and see the chart drawn. Screenshots of each page go to artifacts/screenshots/ (and, with
SAVE_README_SCREENSHOTS=1, to docs/screenshots/ for the README). Any exception shown on a page fails the test.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from core.config import PROJECT_ROOT

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = PROJECT_ROOT / "artifacts" / "screenshots"
README_SHOTS = PROJECT_ROOT / "docs" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def console(tmp_path: Path) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'console.db'}", "LLM_PROVIDER": "simulator",
           "SAM_INPROCESS_WORKER": "1", "SIMULATOR_LATENCY_MS": "20"}
    env.pop("OPENROUTER_API_KEY", None)
    log = (tmp_path / "streamlit.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx2.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx2.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the console did not answer /_stcore/health within 60 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("SAVE_README_SCREENSHOTS") == "1":
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, README_SHOTS / f"{name}.png")


def _settle(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until Streamlit has finished the current run, then fail on any exception it shows."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()


def test_main_journey(console: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    upload = tmp_path / "prospects.csv"
    with upload.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["First Name", "Last Name", "Company", "Industry", "Employees", "Email", "Recent News"])
        for i in range(12):
            w.writerow([f"Pat{i}", "Doe", f"Company {i}", ["SaaS", "Fintech", "Retail"][i % 3], str(80 + i * 250),
                        f"pat{i}@example.com", f"Company {i} opened a new office."])

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(60_000)

        page.goto(console)
        page.get_by_text("Simulator: no model is called").first.wait_for()
        _settle(page)
        _shot(page, "home")

        page.goto(f"{console}/preview")
        page.get_by_role("button", name="Run preview").click()
        page.get_by_text("Final message").first.wait_for()
        _settle(page)
        _shot(page, "preview")

        page.goto(f"{console}/batches")
        page.get_by_text("1. Upload prospects").wait_for()
        page.locator('input[type="file"]').set_input_files(str(upload))
        page.get_by_text("12 records").wait_for()
        page.get_by_role("button", name="Import").click()
        page.get_by_text("2. Pre-flight estimate").wait_for()
        page.get_by_text("Estimated cost").wait_for()
        _settle(page)
        _shot(page, "batches-estimate")
        page.get_by_role("button", name="Run batch").click()
        page.get_by_text("12 / 12 done — done").wait_for(timeout=120_000)
        _settle(page)
        _shot(page, "batches-progress")

        page.goto(f"{console}/review")
        page.get_by_role("button", name="Approve everything that passed").click()
        page.get_by_text("Approved").first.wait_for()
        _settle(page)
        _shot(page, "review")
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download CSV").click()
        saved = tmp_path / "export.csv"
        download_info.value.save_as(str(saved))
        content = saved.read_bytes()
        assert content.startswith(b"\xef\xbb\xbf") and b"Pat" in content

        page.goto(f"{console}/spend")
        page.locator(".js-plotly-plot").first.wait_for()
        _settle(page)
        assert page.locator(".js-plotly-plot .main-svg").count() > 0, "the spend chart is drawn"
        _shot(page, "spend")

        for path, name in (("scenarios", "scenarios"), ("experiments", "experiments"), ("replies", "replies"),
                           ("settings", "settings")):
            page.goto(f"{console}/{path}")
            page.wait_for_timeout(1500)
            _settle(page)
            _shot(page, name)
        browser.close()
