"""Real browser: `dagster dev` on 127.0.0.1 in its own DAGSTER_HOME, headless Chromium opens the
asset graph, launches a materialization from the UI, sees the run succeed, saves a screenshot."""

import contextlib
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
from conftest import FakeServer

REPO = Path(__file__).resolve().parent.parent
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SCREENSHOTS = Path(os.environ.get("CODEDPO_SCREENSHOTS", REPO / "data" / "screenshots"))

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian packages chromium + chromium-driver (`.ci/run` installs them)"
)


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


@contextlib.contextmanager
def _dagster_dev(home: Path, env: dict[str, str]):
    """`dagster dev` on a free port of 127.0.0.1 with ``home`` as its instance; stopped at the end."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=REPO, env={**env, "DAGSTER_HOME": str(home)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        _wait_http(f"http://127.0.0.1:{port}/server_info", 180)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the whole group: webserver, daemon, code servers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _setting(tmp_path: Path, src: Path) -> tuple[Path, dict[str, str]]:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home)
    (tmp_path / "sources.json").write_text(json.dumps([{"name": "local", "kind": "directory", "path": str(src)}]))
    return home, {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CODEDPO_DB": str(tmp_path / "db.duckdb"),
        "CODEDPO_SOURCES": str(tmp_path / "sources.json"),
    }


@pytest.fixture
def dagster_ui(tmp_path):
    src = tmp_path / "src"
    src.mkdir()  # no seed files: the sensors find nothing to build while the test clicks
    home, env = _setting(tmp_path, src)
    with _dagster_dev(home, env) as base:
        yield base, tmp_path


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(arg)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _no_community_dialog(driver) -> None:
    """A fresh DAGSTER_HOME would greet with a 'Join the Dagster community' dialog over every page;
    the instance's dagster.yaml turns it off (`nux: enabled: false`)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    with contextlib.suppress(TimeoutException):
        WebDriverWait(driver, 5).until(ec.presence_of_element_located((By.XPATH, "//button[normalize-space()='Skip']")))
        raise AssertionError("the new-user dialog covers the page: dagster.yaml should disable it (nux)")


def test_quick_launchpad_shows_no_paper_numbers(dagster_ui):
    """The report: build_pairs_quick's launchpad opened on the paper profile (512 tokens, 15 samples)."""
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = dagster_ui
    driver = _browser()
    try:
        _shows(driver, f"{base}/locations/codedpo/jobs/build_pairs_quick/playground", "profile: quick")
        editor = "return Array.from(document.querySelectorAll('.CodeMirror')).map(e => e.CodeMirror.getValue()).join('\\n')"
        config = WebDriverWait(driver, 60).until(lambda d: d.execute_script(editor) or None)
        driver.save_screenshot(str(SCREENSHOTS / "launchpad_quick.png"))
        # sampling fields are empty (the run's profile decides): no paper numbers under the quick job
        assert "pass_matrix" in config and "max_new_tokens: 512" not in config and "n_samples: 15" not in config, config[:2000]
    finally:
        driver.quit()


def test_materialize_from_the_ui(dagster_ui):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, tmp_path = dagster_ui
    driver = _browser()
    wait = WebDriverWait(driver, 120)
    try:
        driver.get(f"{base}/asset-groups")
        _no_community_dialog(driver)
        for group in ("seeds", "generation", "verification", "preferences", "training"):  # the graph's group nodes
            wait.until(ec.presence_of_element_located((By.XPATH, f"//*[normalize-space(text())='{group}']")))
        driver.save_screenshot(str(SCREENSHOTS / "asset_graph.png"))
        driver.get(f"{base}/assets/preference_pairs_export")
        _no_community_dialog(driver)
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


SEED = "def add(a, b):\n    total = a\n    total += b\n    return total\n"


@pytest.fixture
def built_ui(tmp_path, tiny_model_dir):
    """What `make run` leaves behind, then `dagster dev` on it: the CLI's runs of the named jobs
    (generation from the scripted server), and train_and_evaluate_quick on the tiny offline model
    instead of the embedded one (same job, its base model and sizes overridden)."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"calc{i}.py").write_text(SEED)
    home, env = _setting(tmp_path, src)
    server = FakeServer()
    env |= {
        "CODEDPO_GENERATOR": "openai",
        "CODEDPO_OPENAI_BASE_URL": server.url,
        "CODEDPO_OPENAI_MODEL": "fake",
        "PYTHONPATH": str(REPO),
    }
    export = str(tmp_path / "data" / "export")
    config = {"ops": {"dpo_checkpoint": {"config": {"base_model": str(tiny_model_dir), "pairs_dir": export, "checkpoints_dir": str(tmp_path / "ckpt"),
                                                    "max_steps": 2}},
                      "model_evaluation": {"config": {"limit": 2, "n_samples": 2, "ks": [1, 2], "max_new_tokens": 8, "pairs_dir": export}},
                      "preference_pairs_export": {"config": {"directory": export}}}}  # fmt: skip
    train = ("import json, sys, dagster as dg, definitions\n"
             "job = definitions.defs.resolve_job_def('train_and_evaluate_quick')\n"
             "sys.exit(0 if job.execute_in_process(instance=dg.DagsterInstance.get(), run_config=json.loads(sys.argv[1])).success else 1)")  # fmt: skip
    try:
        for cmd in (
            [sys.executable, "-m", "codedpo_assets.cli", "run", "--skip-training"],
            [sys.executable, "-c", train, json.dumps(config)],
        ):
            done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, check=False, text=True, timeout=600)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    finally:
        server.close()
    with _dagster_dev(home, env) as base:
        yield base, home


def _shows(driver, url: str, *texts: str, timeout: float = 120) -> str:
    """Open ``url`` and wait until the page's visible text holds every one of ``texts``."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    try:
        WebDriverWait(driver, timeout, poll_frequency=1).until(
            lambda d: all(t in d.find_element(By.TAG_NAME, "body").text for t in texts)
        )
    except TimeoutException:
        body = driver.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"{url} never showed {[t for t in texts if t not in body]}; it showed:\n{body[:3000]}") from None
    return driver.find_element(By.TAG_NAME, "body").text


def test_what_make_run_leaves_is_readable_in_the_ui(built_ui):
    """The run of make run's job has a name, succeeded and can be re-executed; a partitioned asset
    shows totals across partitions; the totals asset renders its chart; the evaluation shows its
    table with sample sizes, intervals and verdicts."""
    import dagster as dg
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, home = built_ui
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records(dg.RunsFilter(job_name="build_pairs_quick"))
    run_id = records[0].dagster_run.run_id
    driver = _browser()
    try:
        _shows(driver, f"{base}/runs", "build_pairs_quick", "summarize", "train_and_evaluate_quick")
        _no_community_dialog(driver)
        driver.save_screenshot(str(SCREENSHOTS / "runs.png"))
        _shows(driver, f"{base}/overview/timeline", "build_pairs_quick", "train_and_evaluate_quick")
        driver.save_screenshot(str(SCREENSHOTS / "timeline.png"))
        _shows(driver, f"{base}/runs/{run_id}", "build_pairs_quick", "Success")
        button = WebDriverWait(driver, 60).until(
            ec.presence_of_element_located((By.XPATH, "//button[contains(normalize-space(), 'Re-execute')]"))
        )
        assert button.is_enabled(), "the run of a named job can be re-executed from the UI"
        driver.save_screenshot(str(SCREENSHOTS / "run_of_make_run.png"))

        # generation ran inside one run for all three partitions: its steps are on the run's page
        (ranged,) = [r for r in records if r.dagster_run.tags.get("dagster/asset_partition_range_start")]
        _shows(driver, f"{base}/runs/{ranged.dagster_run.run_id}", "prompts", "candidate_code", "generated_tests", "Success")
        driver.save_screenshot(str(SCREENSHOTS / "generation_run.png"))

        # a partitioned asset: the whole asset beside the partition, as tables (no running tally to chart)
        text = _shows(
            driver, f"{base}/assets/preference_pairs", "all_partitions", "partition_rows", "partition_preview", "pairs_as_code"
        )
        driver.save_screenshot(str(SCREENSHOTS / "partitioned_asset.png"))
        assert "chosen" in text and "rejected" in text and "total_rows_all_partitions" not in text  # previews, inline
        _shows(
            driver,
            f"{base}/assets/pass_matrix",
            "heatmap_prompt",
            "its matrix gave a correctness pair",
            "all_partitions_cells_by_status",
        )  # the whole matrix, whatever partition the page opens on
        _shows(driver, f"{base}/assets/prompts", "cleaned")  # what was cut from a task statement has its column

        # code as code: the kept programs open as a python block, newlines and indentation kept
        _shows(driver, f"{base}/assets/candidate_code", "partition_code")
        for link in driver.find_elements(
            By.XPATH, "//*[normalize-space(text())='[Show Markdown]']"
        ):  # long markdown: behind a link
            link.click()
        block = WebDriverWait(driver, 60).until(
            ec.presence_of_element_located((By.XPATH, "//pre[contains(., 'def add(a, b):')]"))
        )
        assert "def add(a, b):\n    return a" in block.text
        driver.save_screenshot(str(SCREENSHOTS / "code_preview.png"))

        # column descriptions as written: angle brackets survive the markdown rendering
        _shows(driver, f"{base}/assets/seeds", "<source>:<path>")

        _shows(driver, f"{base}/assets/pipeline_summary", "seeds", "prompts", "programs", "cells", "pairs", "not_sampled")
        driver.find_element(By.XPATH, "//*[normalize-space(text())='[Show Markdown]']").click()
        chart = WebDriverWait(driver, 60).until(
            ec.presence_of_element_located((By.XPATH, "//img[starts-with(@src, 'data:image/png')]"))
        )
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", chart)
        )
        assert driver.execute_script("return arguments[0].naturalWidth", chart) >= 700  # a rendered chart, large enough to read
        time.sleep(1)  # the dialog fades in
        driver.save_screenshot(str(SCREENSHOTS / "funnel_chart.png"))

        text = _shows(
            driver,
            f"{base}/assets/model_evaluation",
            "before_after_intervals",
            "verdict",
            "not enough data",
            "heldout_*, efficiency_*",
        )
        driver.save_screenshot(str(SCREENSHOTS / "evaluation_table.png"))
        assert "humaneval_pass@1_greedy" in text
        pass_rows = [line for line in text.splitlines() if line.startswith("humaneval_pass@")]
        assert pass_rows and not any("0.000..0.000" in line for line in pass_rows)  # 0 successes: an upper bound, not a point
        # the before/after table: every verdict on one line, and on a full-HD screen no horizontal scrolling
        rows = "Array.from(document.querySelectorAll('tr')).filter(r => r.innerText.startsWith('humaneval_pass@1_greedy'))"
        heights = driver.execute_script(f"return {rows}.map(r => r.lastElementChild.getBoundingClientRect().height)")
        assert heights and max(heights) < 45, heights  # one line of text (wrapped over five lines before)
        driver.set_window_size(1920, 1080)
        _shows(driver, f"{base}/assets/model_evaluation", "before_after_intervals")
        scrolls = driver.execute_script(
            "return Array.from(document.querySelectorAll('table')).filter(t => t.innerText.includes('humaneval_pass@1_greedy'))"
            ".map(t => { let e = t; while (e && e.scrollWidth <= e.clientWidth + 1) e = e.parentElement;"
            " return e && e !== document.documentElement && e !== document.body ? e.scrollWidth - e.clientWidth : 0; })"
        )
        assert scrolls and max(scrolls) == 0, scrolls
    except Exception:
        driver.save_screenshot(str(SCREENSHOTS / "failure.png"))
        raise
    finally:
        driver.quit()
