"""Tracking against a real `mlflow server` on 127.0.0.1: what a run holds, and how runs end."""

import contextlib
import http.server
import json
import os
import select
import shutil
import signal
import socket
import socketserver
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from omegaconf import OmegaConf
from params_files import PARAMS
from test_train_evaluate import MODEL, tiny_config

from oak.config.load import load_config
from oak.data.info import read_info
from oak.layout import Layout
from oak.tracking.server import server_command
from oak.tracking.tracker import Tracker, experiment_name
from oak.training.evaluate import evaluate
from oak.training.train import train

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(folder: Path, port: int) -> subprocess.Popen:
    """A real `mlflow server` on 127.0.0.1:`port` with its store in `folder`, once it answers."""
    command = server_command(port=port, store=f"sqlite:///{folder / 'server.db'}", artifacts=str(folder / "artifacts"))
    process = subprocess.Popen([str(BIN / command[0]), *command[1:]], cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return process
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.5)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> str:
    port = free_port()
    process = start_server(tmp_path_factory.mktemp("server"), port)
    yield f"http://127.0.0.1:{port}"
    stop(process)


def server_config(tmp_path: Path, shards: Path, server: str, experiment: str, *overrides: str):
    config = tiny_config(tmp_path, shards, f"tracking.experiment={experiment}", *overrides)
    return OmegaConf.merge(config, {"tracking": {"uri": server}})


def runs_of(server: str, experiment: str) -> list:
    client = MlflowClient(server)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


@pytest.mark.slow
def test_a_run_holds_config_tags_metrics_and_artifacts(tmp_path: Path, shards: Path, server: str) -> None:
    config = server_config(tmp_path, shards, server, "conventions", "recipe=demo")
    train(config, MODEL)
    evaluated = evaluate(config, MODEL)
    [run] = runs_of(server, "conventions")
    assert run.info.status == "FINISHED" and run.info.run_name == MODEL
    assert run.data.params["train.batch_size"] == "8" and run.data.params["model"] == MODEL
    tags = run.data.tags
    assert {"git_commit", "git_dirty", "params_hash", "dataset_fingerprint", "host", "devices"} <= set(tags)
    assert (tags["stage"], tags["synthetic"], tags["dataset"]) == ("train,evaluate", "true", "oak-demo (synthetic)")
    assert tags["recipe"] == "demo"
    assert {
        "train/loss",
        "train/top1",
        "val/loss",
        "val/top1",
        "val/top5",
        "lr",
        "train/images_per_second",
        "eval/top1",
        "eval/top5",
        "train/seconds",
        "eval/seconds",
        "model/parameters",
        "model/gmacs",
    } <= set(run.data.metrics)
    assert run.data.metrics["eval/top1"] == evaluated["top1"] == json.loads(Layout.of(config).eval_metrics(MODEL).read_text())["top1"]
    [dataset] = {item.dataset.name: item.dataset for item in run.inputs.dataset_inputs}.values()  # one dataset, for training and evaluation
    assert dataset.digest == read_info(Path(config.paths.shards)).fingerprint[:16] and dataset.name == tags["dataset"]
    artifacts = {a.path for a in MlflowClient(server).list_artifacts(run.info.run_id)}
    assert artifacts == {"config.yaml", Layout.of(config).train_metrics(MODEL).name, Layout.of(config).eval_metrics(MODEL).name}


@pytest.mark.slow
def test_a_run_that_raises_ends_failed(tmp_path: Path, shards: Path, server: str) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(shards, broken)
    first = json.loads((broken / "_info.json").read_text())["splits"]["train"]["filenames"][0]
    (broken / first).write_bytes(b"not a tar file" * 100)
    config = server_config(tmp_path, broken, server, "failing")
    with pytest.raises(Exception):
        train(config, MODEL)
    assert [r.info.status for r in runs_of(server, "failing")] == ["FAILED"]


def start_training(tmp_path: Path, shards: Path, server: str, experiment: str, epochs: int = 1000) -> subprocess.Popen:
    overrides = [
        f"paths.shards={shards}",
        f"tracking.experiment={experiment}",
        f"train.epochs={epochs}",
        "train.batch_size=8",
        "train.image_size=32",
        "train.num_workers=0",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": server, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    # Output to a file, not a pipe: an unread pipe fills up and blocks the training process.
    with open(tmp_path / "train.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "oak.cli", "--params", str(PARAMS), "train", MODEL, *overrides],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            # A job started in the background inherits SIGINT ignored, and Python then never raises
            # KeyboardInterrupt: restore the default so that the test's Ctrl-C reaches the training.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def output(tmp_path: Path) -> str:
    return (tmp_path / "train.log").read_text(errors="replace")


def wait_for_an_epoch(server: str, experiment: str, process: subprocess.Popen, tmp_path: Path) -> str:
    """The run id, once the run has logged its first epoch."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        runs = runs_of(server, experiment)
        if runs and "train/loss" in runs[0].data.metrics:
            return runs[0].info.run_id
        time.sleep(1)
    raise AssertionError(f"no epoch logged:\n{output(tmp_path)}")


@pytest.mark.slow
def test_ctrl_c_ends_the_run_killed(tmp_path: Path, shards: Path, server: str) -> None:
    process = start_training(tmp_path, shards, server, "interrupted")
    run_id = wait_for_an_epoch(server, "interrupted", process, tmp_path)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=300)  # raises, with the process left to pytest's cleanup, if Ctrl-C is not honoured
    assert process.returncode != 0
    assert MlflowClient(server).get_run(run_id).info.status == "KILLED"


@pytest.mark.slow
def test_a_run_left_running_by_sigkill_is_closed_by_the_next_invocation(tmp_path: Path, shards: Path, server: str) -> None:
    process = start_training(tmp_path, shards, server, "abandoned")
    run_id = wait_for_an_epoch(server, "abandoned", process, tmp_path)
    process.kill()
    process.wait(timeout=60)
    assert MlflowClient(server).get_run(run_id).info.status == "RUNNING"
    config = server_config(tmp_path, shards, server, "abandoned")
    assert Tracker(config).close_abandoned_runs(MODEL) == [run_id]
    assert MlflowClient(server).get_run(run_id).info.status == "KILLED"
    assert Tracker(config).close_abandoned_runs(MODEL) == []


def assert_every_epoch_once(server: str, experiment: str, epochs: int) -> None:
    [run] = runs_of(server, experiment)
    assert run.info.status == "FINISHED"
    client = MlflowClient(server)
    for key in ("train/loss", "val/top1", "lr"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert len(steps) == len(set(steps)) == epochs, key


@pytest.mark.slow
def test_training_outlives_a_server_outage_and_delivers_every_point_once(tmp_path: Path, shards: Path) -> None:
    port, folder = free_port(), tmp_path / "server"
    folder.mkdir()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(folder, port)
    training = start_training(tmp_path, shards, uri, "outage", epochs=20)
    wait_for_an_epoch(uri, "outage", training, tmp_path)
    stop(server)
    time.sleep(3)  # epochs go on with no server
    assert training.poll() is None, "training stopped with the server"
    server = start_server(folder, port)  # the same store comes back
    try:
        assert training.wait(timeout=600) == 0, output(tmp_path)
        assert output(tmp_path).count("tracking server unreachable") == 1  # one warning
        assert_every_epoch_once(uri, "outage", 20)
    finally:
        stop(server)


@pytest.mark.slow
def test_a_server_down_at_the_start_receives_the_run_when_it_comes_up(tmp_path: Path, shards: Path) -> None:
    port, folder = free_port(), tmp_path / "server"
    folder.mkdir()
    uri = f"http://127.0.0.1:{port}"
    training = start_training(tmp_path, shards, uri, "late", epochs=3)
    time.sleep(20)  # well into training, or done and waiting for the server
    assert training.poll() is None, "training did not wait for the tracking server"
    server = start_server(folder, port)
    try:
        assert training.wait(timeout=600) == 0
        assert_every_epoch_once(uri, "late", 3)
    finally:
        stop(server)


def test_a_resumed_run_keeps_one_point_per_step_when_the_replay_logs_an_epoch_again(tmp_path: Path) -> None:
    from oak.tracking.logger import BufferedMlflowLogger

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = BufferedMlflowLogger(tracking_uri=uri, experiment="resume", run_name="r", tags={})
    for epoch_end in (4, 9, 14):
        first.log_metrics({"train/loss": 1.0 / epoch_end, "lr": 0.1}, step=epoch_end)
    # killed after epoch 2 ended (step 14) but before the next checkpoint: the resumed training
    # replays from a checkpoint inside epoch 2, logs a step-level point first, then epoch 2's end again
    resumed = BufferedMlflowLogger(tracking_uri=uri, experiment="resume", run_name="r", tags={}, run_id=first.run_id)
    resumed.log_metrics({"lr": 0.05}, step=13)
    resumed.log_metrics({"train/loss": 0.5, "lr": 0.1}, step=14)
    resumed.log_metrics({"train/loss": 0.4, "lr": 0.1}, step=19)
    history = MlflowClient(uri).get_metric_history(first.run_id, "train/loss")
    assert sorted(point.step for point in history) == [4, 9, 14, 19]
    assert [point.value for point in history if point.step == 14] == [1.0 / 14]  # the first delivery stands


def test_each_profile_logs_to_its_own_experiment_unless_one_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert experiment_name(load_config(PARAMS)) == "oak-demo"  # no plan yet: the demo's
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "plan.yaml").write_text("profile: imagenet\nruns: {}\n")
    assert experiment_name(load_config(PARAMS)) == "oak-imagenet"
    assert experiment_name(load_config(PARAMS, ["tracking.experiment=mine"])) == "mine"


def test_a_sqlite_stores_artifacts_lie_beside_its_file_whatever_folder_oak_runs_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from oak.tracking.logger import BufferedMlflowLogger

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    artifact = tmp_path / "config.yaml"
    artifact.write_text("a: 1\n")
    logger = BufferedMlflowLogger(tracking_uri=f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}", experiment="e", run_name="r", tags={})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.log_artifact(artifact)
    logger.finalize("success")
    assert list((tmp_path / "store" / "mlruns").rglob("config.yaml"))
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_moved_checkouts_store_keeps_its_artifacts_and_adds_new_ones_beside_it(tmp_path: Path) -> None:
    from oak.tracking.logger import BufferedMlflowLogger

    def run_with_artifact(checkout: Path, name: str) -> str:
        (checkout / f"{name}.yaml").write_text(f"run: {name}\n")
        # The store by its full path: MLflow keeps one connection per URI per process, and this process outlives the move.
        logger = BufferedMlflowLogger(tracking_uri=f"sqlite:///{checkout / 'mlflow.db'}", experiment="e", run_name=name, tags={})
        logger.log_artifact(checkout / f"{name}.yaml")
        logger.finalize("success")
        return logger.run_id

    (tmp_path / "before").mkdir()
    first = run_with_artifact(tmp_path / "before", "first")
    shutil.move(tmp_path / "before", tmp_path / "after")
    second = run_with_artifact(tmp_path / "after", "second")
    client = MlflowClient(f"sqlite:///{tmp_path / 'after' / 'mlflow.db'}")
    for run_id, name in ((first, "first"), (second, "second")):
        assert client.get_run(run_id).info.artifact_uri.startswith((tmp_path / "after" / "mlruns").as_uri() + "/")
        assert Path(client.download_artifacts(run_id, f"{name}.yaml", str(tmp_path))).read_text() == f"run: {name}\n"
    assert not (tmp_path / "before").exists()  # nothing written where the checkout was


@pytest.mark.slow
def test_runs_started_at_once_in_a_new_experiment_all_land_in_it_with_their_dataset(server: str) -> None:
    """Parallel SLURM jobs on a fresh server each find no experiment and create it: all but one
    creation is refused as a duplicate, and each run still starts, in the one experiment."""
    from mlflow.entities import Dataset, DatasetInput

    from oak.tracking.logger import BufferedMlflowLogger

    starters = 8
    barrier = threading.Barrier(starters)
    failures: list[BaseException] = []

    def start(index: int) -> None:
        logger = BufferedMlflowLogger(tracking_uri=server, experiment="started-at-once", run_name=f"r{index}", tags={})
        logger.client.get_experiment_by_name("started-at-once")  # connected, as a job is by the time its first epoch ends
        barrier.wait()
        try:
            logger.log_dataset(DatasetInput(Dataset(name="shards", digest="0123456789abcdef", source_type="local", source="{}")))
            logger.log_metrics({"loss": 1.0}, step=0)
            logger.finalize("success")
        except BaseException as error:  # noqa: BLE001 - reported below, with every thread's
            failures.append(error)

    threads = [threading.Thread(target=start, args=(index,)) for index in range(starters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    runs = runs_of(server, "started-at-once")
    assert sorted(run.info.run_name for run in runs) == [f"r{index}" for index in range(starters)]
    assert all(run.inputs.dataset_inputs[0].dataset.digest == "0123456789abcdef" for run in runs)


def open_at_once(uri: str, barrier, results) -> None:
    """In a process of its own: check the login of `uri` (opening its store) with the others."""
    from oak.tracking.logger import check_login

    barrier.wait()
    try:
        check_login(uri)
        results.put("opened")
    except Exception as error:  # noqa: BLE001 - reported to the test, whatever it is
        results.put(f"{type(error).__name__}: {str(error).splitlines()[0]}")


@pytest.mark.slow  # three processes creating a store, one after the other
def test_oak_commands_opening_a_new_sqlite_store_at_once_all_open_it(tmp_path: Path) -> None:
    """Two `oak train` started together on a fresh clone: MLflow creates a store's tables as its first
    client opens it, and two creations at once failed half-way ("duplicate column name: step")."""
    import multiprocessing

    context = multiprocessing.get_context("fork")  # MLflow is imported already: the processes start at once
    starters = 3
    barrier, results = context.Barrier(starters), context.Queue()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    processes = [context.Process(target=open_at_once, args=(uri, barrier, results)) for _ in range(starters)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert outcomes == ["opened"] * starters


def sqlite_of_something_else(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE notes (text TEXT)")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda path: path.write_bytes(b"<html>a page saved as the store</html>\n" * 50), "not an MLflow store (file is not a database)"),
        (sqlite_of_something_else, "an SQLite database without MLflow's tables, not an MLflow store"),
    ],
)
def test_a_store_file_that_is_no_mlflow_store_is_one_error_naming_it_and_stays_as_it_was(tmp_path: Path, make, reason: str) -> None:
    from oak.errors import OakError
    from oak.tracking.logger import check_login

    store = tmp_path / "mlflow.db"
    make(store)
    before = store.read_bytes()
    with pytest.raises(OakError) as raised:
        check_login(f"sqlite:///{store}")
    assert str(raised.value) == (
        f"{store}: {reason}; move it aside (the next `oak` command starts a new store there) or set tracking.uri to the store you meant"
    )
    assert store.read_bytes() == before


@contextlib.contextmanager
def web_server(status: int) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that answers every request with `status` and an HTML page, as a
    web server or a proxy does: no MLflow behind it."""

    class Page(http.server.BaseHTTPRequestHandler):
        def answer(self) -> None:
            page = b"<!DOCTYPE html><html><body><h1>Welcome</h1>" + b"<p>nothing to see here</p>" * 100 + b"</body></html>"
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        do_GET = do_POST = answer

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


def test_an_address_that_answers_but_not_as_mlflow_stops_the_command_with_one_line() -> None:
    from oak.errors import OakError
    from oak.tracking.logger import check_login

    with web_server(404) as address, pytest.raises(OakError) as raised:
        check_login(address)
    assert str(raised.value) == (
        f"{address} answers (HTTP 404, not MLflow's JSON) but is not an MLflow tracking server: "
        "set tracking.uri (or MLFLOW_TRACKING_URI) to the server's address"
    )


def test_a_server_answering_503_while_it_restarts_is_an_outage_not_a_wrong_address() -> None:
    from oak.tracking.logger import check_login

    with web_server(503) as address:
        check_login(address)  # no error: runs wait for the server


def test_a_page_a_server_answers_in_the_middle_of_a_run_stays_out_of_the_log(caplog: pytest.LogCaptureFixture) -> None:
    from oak.tracking.logger import BufferedMlflowLogger

    with web_server(404) as address:
        logger = BufferedMlflowLogger(tracking_uri=address, experiment="e", run_name="r", tags={}, patience_seconds=0)
        logger.log_metrics({"train/loss": 1.0}, step=0)
        logger.close()
    warnings = [record.getMessage() for record in caplog.records if record.name == "oak.tracking.logger"]
    assert warnings[0] == (
        "MLflow: tracking server unreachable (API request to endpoint /api/2.0/mlflow/experiments/get-by-name failed with "
        "error code 404 != 200); the run's data is kept and sent when it answers"
    )
    assert not [warning for warning in warnings if "<" in warning]


def test_what_a_run_still_holds_back_when_its_stage_ends_is_named_and_never_called_up_to_date(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from oak.tracking.logger import BufferedMlflowLogger

    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    (tmp_path / "config.yaml").write_text("a: 1\n")
    logger = BufferedMlflowLogger(tracking_uri=uri, experiment="e", run_name="resnet18", tags={"stage": "train"}, patience_seconds=1)
    logger.log_hyperparams({"lr": 0.1, "epochs": 2})
    logger.log_metrics({"train/loss": 1.0, "val/top1": 0.5}, step=0)
    started = time.monotonic()
    logger.finalize("success")  # Lightning's end of fit: no wait there, the stage writes its results next
    assert time.monotonic() - started < 5
    logger.log_metrics({"train/seconds": 12.5}, step=0)  # what a stage logs after fit, inside the pause between tries
    logger.log_artifact(tmp_path / "config.yaml")
    logger.close()
    messages = [record.getMessage() for record in caplog.records if record.name == "oak.tracking.logger"]
    assert messages[-1] == (
        f"MLflow: the tracking server stayed unreachable for 1 s; run resnet18 at {uri} lacks the run itself; "
        "3 metric points (train/loss, train/seconds, val/top1); 1 artifacts (config.yaml); 2 params; 1 tags; its status FINISHED "
        "(the files on disk hold the results)"
    )
    assert not [message for message in messages if "up to date" in message]


def test_an_evaluation_writes_its_results_before_it_waits_for_an_absent_tracking_server(
    tmp_path: Path, shards: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A kill while the stage waits for the server must not lose a result already computed."""
    from safetensors.torch import save_file

    from oak.models import create_model

    save_file(create_model(MODEL, num_classes=4).state_dict(), tmp_path / "weights.safetensors")
    config = server_config(tmp_path, shards, f"http://127.0.0.1:{free_port()}", "absent", "tracking.patience_seconds=2")
    evaluate(config, MODEL, tmp_path / "weights.safetensors")
    written = Layout.of(config).weights_metrics(MODEL).stat().st_mtime
    given_up = [record for record in caplog.records if record.name == "oak.tracking.logger"][-1]
    assert written < given_up.created - 1  # on disk before the 2 s of waiting began
    assert "stayed unreachable for 2 s" in given_up.getMessage()
    assert "eval/top1" in given_up.getMessage() and f"1 artifacts ({MODEL}.json)" in given_up.getMessage()


@contextlib.contextmanager
def relay(port: int, upstream: str) -> Iterator[None]:
    """127.0.0.1:`port` carried to the `upstream` server while open: the address of a server that comes back."""
    target = urllib.parse.urlsplit(upstream)

    class Pipe(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with socket.create_connection((target.hostname, target.port)) as far:
                while True:
                    for source in select.select([self.request, far], [], [])[0]:
                        data = source.recv(65536)
                        if not data:
                            return
                        (far if source is self.request else self.request).sendall(data)

    class Relay(socketserver.ThreadingTCPServer):
        allow_reuse_address = daemon_threads = True

    with Relay(("127.0.0.1", port), Pipe) as carrier:
        threading.Thread(target=carrier.serve_forever, daemon=True).start()
        try:
            yield
        finally:
            carrier.shutdown()


@pytest.mark.slow  # a process of its own
def test_what_a_run_logs_after_it_ends_reaches_a_server_that_comes_back_before_the_process_exits(tmp_path: Path, server: str) -> None:
    """The server is away when training ends and comes back within the stage's patience: the training's
    time and artifacts, logged after Lightning ended the run, inside the pause between tries, arrive too."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    (tmp_path / "config.yaml").write_text("a: 1\n")
    stage = f"""
from oak.tracking.logger import BufferedMlflowLogger
logger = BufferedMlflowLogger(tracking_uri={uri!r}, experiment="after-the-end", run_name="r", tags={{}}, patience_seconds=300)
logger.log_metrics({{"train/loss": 1.0}}, step=0)
logger.finalize("success")
logger.log_metrics({{"train/seconds": 12.5}}, step=0)
logger.log_artifact({str(tmp_path / "config.yaml")!r})
"""
    with open(tmp_path / "train.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-c", stage], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while "tracking server unreachable" not in output(tmp_path):
        assert process.poll() is None and time.monotonic() < deadline, output(tmp_path)
        time.sleep(0.5)
    with relay(port, server):
        assert process.wait(timeout=300) == 0, output(tmp_path)
    [run] = runs_of(server, "after-the-end")
    assert run.info.status == "FINISHED" and set(run.data.metrics) == {"train/loss", "train/seconds"}
    assert [artifact.path for artifact in MlflowClient(server).list_artifacts(run.info.run_id)] == ["config.yaml"]
    assert output(tmp_path).count("run r is up to date") == 1
