"""What a user sees in MLflow's UI after `oak train` and `oak evaluate`, in a real headless Chromium."""

import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from omegaconf import OmegaConf
from test_tracking import free_port, start_server, stop
from test_train_evaluate import tiny_config

from oak.data.info import read_info
from oak.tracking.tracker import Tracker
from oak.tracking.ui import runs_table_link
from oak.training.evaluate import evaluate
from oak.training.train import train

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a test extra: pip install -e '.[test]'")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium and chromium-driver are not installed: .ci/run installs them"),
]
MODELS = ["resnet18", "shufflenet_v2_x0_5"]


@pytest.fixture(scope="module")
def server_with_runs(tmp_path_factory: pytest.TempPathFactory, shards: Path) -> Iterator[tuple[str, str]]:
    """A real `mlflow server` on 127.0.0.1 that two real trainings and evaluations, and a report, logged to; its URL and
    experiment id."""
    folder, port = tmp_path_factory.mktemp("ui"), free_port()
    process = start_server(folder, port)
    url = f"http://127.0.0.1:{port}"
    for model in MODELS:
        config = OmegaConf.merge(tiny_config(folder, shards, "tracking.experiment=oak-ui"), {"tracking": {"uri": url}})
        train(config, model)
        evaluate(config, model)
    Tracker(config).log_report(read_info(shards), [])  # as `oak report` does: the test checks where it goes
    yield url, MlflowClient(url).get_experiment_by_name("oak-ui").experiment_id
    stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # 2200 px: the runs table with Oak's columns and MLflow's assistant panel beside it, without scrolling
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=2200,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
    yield driver
    driver.quit()


def page_text_once(browser, url: str, shown: Callable[[str], bool], screenshot: Path) -> str:
    """The page's text once `shown` holds for it: MLflow renders in the browser, after its requests
    return, and a table's rows may fill in after its count of runs is on the page."""
    browser.get(url)
    deadline = time.monotonic() + 60
    while not shown(text := browser.find_element("tag name", "body").text):
        assert time.monotonic() < deadline, f"{url} never showed what the test waits for; it shows:\n{text[:2000]}"
        time.sleep(0.5)
    browser.save_screenshot(str(screenshot))  # kept with the test's files, for a person to look at
    return text


def both_runs_listed(text: str) -> bool:
    """The count of runs, each run's name and its model in the model column, and the Dataset column."""
    runs_named = all(text.count(model) >= 2 for model in MODELS)
    return "2 matching runs" in text and runs_named and "oak-demo (synthetic)" in text


def test_the_runs_link_opens_the_runs_table_with_the_results_columns(server_with_runs: tuple[str, str], browser, tmp_path: Path) -> None:
    url, experiment = server_with_runs
    text = page_text_once(browser, runs_table_link(url, experiment), both_runs_listed, tmp_path / "runs.png")
    headers = [cell.text for cell in browser.find_elements("css selector", "[role=columnheader]")]
    assert {"eval/top1", "model", "recipe"} <= set(headers), (headers, text)  # visible without a click on Columns
    assert text.count("oak-demo (synthetic)") == 2  # the Dataset column: the shards each run trained on
    assert "report" not in text.split()  # the report's runs live in their own experiment
    assert "/runs" in browser.current_url


def test_comparing_two_runs_shows_their_model_and_family_differing(server_with_runs: tuple[str, str], browser, tmp_path: Path) -> None:
    url, experiment = server_with_runs
    runs = MlflowClient(url).search_runs([experiment])
    ids = ",".join(f'"{run.info.run_id}"' for run in runs)
    compare = f'{url}/#/compare-runs?runs=[{ids}]&experiments=["{experiment}"]'
    text = page_text_once(browser, compare, lambda text: bool(re.search(r"^model \S+ \S+$", text, re.MULTILINE)), tmp_path / "compare.png")
    # The params table (and the "show diff only" one) lists each param once per pair of runs, in the runs' order
    models = {tuple(sorted(row)) for row in re.findall(r"^model (\S+) (\S+)$", text, re.MULTILINE)}
    families = {tuple(sorted(row)) for row in re.findall(r"^family (\S+) (\S+)$", text, re.MULTILINE)}
    assert models == {tuple(MODELS)} and families == {("large-scale", "lightweight")}
    assert not re.search(r"^paths\.", text, re.MULTILINE)  # settings that never change a result are not params


@pytest.fixture(scope="module")
def server_with_the_record(tmp_path_factory: pytest.TempPathFactory, shards: Path) -> Iterator[tuple[str, str, dict[str, float]]]:
    """A real `mlflow server` that saw no stage run, as on a fresh clone where DVC found every evaluation up to date,
    after `oak sync` of the committed record; its URL, experiment id and each run's committed top-1."""
    from params_files import PARAMS
    from test_mirror import committed_record

    from oak.studies.plan import plan_runs, run_config
    from oak.studies.study import load_studies
    from oak.tracking.mirror import sync_record

    folder, port = tmp_path_factory.mktemp("record"), free_port()
    process = start_server(folder, port)
    url = f"http://127.0.0.1:{port}"
    config = OmegaConf.merge(tiny_config(folder, shards, "tracking.experiment=oak-record"), {"tracking": {"uri": url}})
    runs = committed_record(folder / "metrics")
    planned = plan_runs(load_studies(), "demo")
    sync_record(config, runs, read_info(shards), {name: run_config(PARAMS, planned[name]) for name in runs})
    top1 = {name: json.loads((folder / "metrics" / "eval" / f"{name}.json").read_text())["top1"] for name in runs}
    yield url, MlflowClient(url).get_experiment_by_name("oak-record").experiment_id, top1
    stop(process)


def test_after_a_sync_the_results_view_shows_every_runs_top1_sorted(server_with_the_record, browser, tmp_path: Path) -> None:
    url, experiment, top1 = server_with_the_record
    browser.set_window_size(2200, 2600)  # every run's row on the page at once

    def every_run_listed(text: str) -> bool:
        return f"{len(top1)} matching runs" in text and text.count("oak-demo (synthetic)") == len(top1)

    text = page_text_once(browser, runs_table_link(url, experiment), every_run_listed, tmp_path / "record.png")
    lines = text.splitlines()
    # The names column comes first, each name after its run's colour swatch (#rrggbb); the metric cells follow later
    shown = [lines[at + 1] for at, line in enumerate(lines[:-1]) if re.fullmatch(r"#[0-9a-f]{6}", line)]
    assert sorted(shown) == sorted(top1), (shown, text)
    values = [top1[name] for name in shown]
    assert values == sorted(values, reverse=True), list(zip(shown, values))  # the view sorts by eval/top1, best first
    for value in set(values):  # each run's top-1 is on the page, in per cent as the reports print it
        assert any(re.fullmatch(r"\d+(\.\d+)?", line) and abs(float(line) - value) < 0.01 for line in lines), value
