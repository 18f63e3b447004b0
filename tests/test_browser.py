"""Real browser: `dagster dev` on 127.0.0.1 in its own DAGSTER_HOME, headless Chromium opens the
asset graph, launches a materialization from the UI, sees the run succeed, saves a screenshot."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SCREENSHOTS = Path(os.environ.get("CODEDPO_SCREENSHOTS", REPO / "data" / "screenshots"))

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian packages chromium + chromium-driver (`.ci/run` installs them)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not come up in {timeout} s")


@pytest.fixture
def dagster_ui(tmp_path):
    home, src = tmp_path / "home", tmp_path / "src"
    home.mkdir()
    src.mkdir()  # no seed files: the sensors find nothing to build while the test clicks
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home)
    (tmp_path / "sources.json").write_text(json.dumps([{"name": "local", "kind": "directory", "path": str(src)}]))
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "CODEDPO_DB": str(tmp_path / "db.duckdb"),
           "CODEDPO_SOURCES": str(tmp_path / "sources.json")}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        _wait_http(f"http://127.0.0.1:{port}/server_info", 180)
        yield f"http://127.0.0.1:{port}", tmp_path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the whole group: webserver, daemon, code servers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _dismiss_community_dialog(driver) -> None:
    """A fresh DAGSTER_HOME greets with a 'Join the Dagster community' dialog over the page."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, 10).until(ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Skip']"))).click()
    except TimeoutException:
        pass


def test_materialize_from_the_ui(dagster_ui):
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, tmp_path = dagster_ui
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    wait = WebDriverWait(driver, 120)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        driver.get(f"{base}/asset-groups")
        _dismiss_community_dialog(driver)
        for group in ("seeds", "generation", "verification", "preferences", "training"):  # the graph's group nodes
            wait.until(ec.presence_of_element_located((By.XPATH, f"//*[normalize-space(text())='{group}']")))
        driver.save_screenshot(str(SCREENSHOTS / "asset_graph.png"))
        driver.get(f"{base}/assets/preference_pairs_export")
        _dismiss_community_dialog(driver)
        button = wait.until(ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Materialize']")))
        button.click()
        # upstream partitions were never built, so the UI asks to confirm
        wait.until(ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Confirm']"))).click()
        time.sleep(5)  # let the launch request finish before leaving the page

        def run_succeeded(d) -> bool:
            d.get(f"{base}/runs")
            try:
                WebDriverWait(d, 10).until(ec.presence_of_element_located((By.XPATH, "//*[normalize-space(text())='Success']")))
                return True
            except TimeoutException:
                return False

        WebDriverWait(driver, 300, poll_frequency=2).until(run_succeeded)
        driver.save_screenshot(str(SCREENSHOTS / "run_succeeded.png"))
    except Exception:
        driver.save_screenshot(str(SCREENSHOTS / "failure.png"))  # what the browser showed when it failed
        raise
    finally:
        driver.quit()
    assert (SCREENSHOTS / "run_succeeded.png").stat().st_size > 10_000
    assert (tmp_path / "db.duckdb").exists()
