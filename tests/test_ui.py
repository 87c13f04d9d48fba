"""What a user sees in MLflow's UI after `oak train` and `oak evaluate`, in a real headless Chromium."""

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
