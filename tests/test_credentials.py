"""Logins against a real `oak server --basic-auth`: they work, never leak, and a refused one stops at once."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient
from omegaconf import OmegaConf
from params_files import PARAMS
from test_tracking import BIN, free_port, stop
from test_train_evaluate import MODEL

from oak.config.load import flatten
from oak.tracking.redaction import REDACTED, redact_config, redact_text

pytestmark = pytest.mark.slow  # real mlflow servers with basic auth, and trainings

PASSWORD = "s3cr@t-Passw0rd@for-oak"  # raw "@"s, which clients accept: the login ends at the URL's last one
FRAGMENTS = PASSWORD.split("@")  # a redaction that stops at the first "@" would leave the rest


def oak(*arguments: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    path = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "oak.cli", "--params", str(PARAMS), *arguments], cwd=cwd, env={**os.environ, **path, **(env or {})},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> str:
    """`oak server --basic-auth` on 127.0.0.1, its admin's password given as MLflow asks, no secret key set."""
    folder, port = tmp_path_factory.mktemp("auth-server"), free_port()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD}
    env.pop("MLFLOW_FLASK_SERVER_SECRET_KEY", None)
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "oak.cli", "--params", str(PARAMS), "server", "--port", str(port), "--basic-auth"],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, (folder / "server.log").read_text()[-3000:]
            time.sleep(0.5)
    yield f"127.0.0.1:{port}"
    stop(process)
    log.close()


def train_against(tmp_path: Path, shards: Path, uri: str, experiment: str) -> subprocess.CompletedProcess:
    overrides = [
        f"paths.shards={shards}",
        f"paths.checkpoints={tmp_path / 'models'}",
        f"paths.metrics={tmp_path / 'metrics'}",
        f"tracking.uri={uri}",
        f"tracking.experiment={experiment}",
        "train.epochs=1",
        "train.batch_size=8",
        "train.image_size=32",
        "train.num_workers=0",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
    ]
    return oak("train", MODEL, *overrides, cwd=tmp_path)


def test_a_login_in_the_tracking_uri_reaches_the_server_and_nothing_written_or_logged(
    tmp_path: Path, shards: Path, auth_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = train_against(tmp_path, shards, f"http://admin:{PASSWORD}@{auth_server}", "logged-in")
    assert done.returncode == 0, done.stderr[-3000:]
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    client = MlflowClient(f"http://{auth_server}")
    [run] = client.search_runs([client.get_experiment_by_name("logged-in").experiment_id])
    assert run.info.status == "FINISHED"
    config_artifact = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path)))
    written = [config_artifact, *(tmp_path / "models" / MODEL).iterdir()]
    assert json.loads((tmp_path / "models" / MODEL / "run.json").read_text())["tracking_uri"] == f"http://{REDACTED}@{auth_server}"
    for text in [
        *(path.read_text(errors="replace") for path in written if path.is_file()),
        *run.data.params.values(),
        done.stdout + done.stderr,
    ]:
        assert not [fragment for fragment in FRAGMENTS if fragment in text]


def test_a_refused_login_stops_the_training_at_once_with_one_line(tmp_path: Path, shards: Path, auth_server: str) -> None:
    started = time.monotonic()
    done = train_against(tmp_path, shards, f"http://admin:wrong-{PASSWORD}@{auth_server}", "refused")
    assert done.returncode == 2
    assert time.monotonic() - started < 120  # not tracking.patience_seconds (600) of retries
    assert done.stderr.strip().splitlines()[-1] == (
        f"oak train: error: MLflow at http://{REDACTED}@{auth_server} refused the login (HTTP 401): "
        "check the user and password (MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or the URI's)"
    )
    assert "Traceback" not in done.stderr and not [fragment for fragment in FRAGMENTS if fragment in done.stdout + done.stderr]
    assert not (tmp_path / "models" / MODEL).exists()  # nothing trained, nothing written


def test_urls_lose_their_login_and_secret_looking_keys_their_value() -> None:
    assert redact_text("see http://u:p@h:5000/x and https://h/y") == f"see http://{REDACTED}@h:5000/x and https://h/y"
    config = redact_config(OmegaConf.create({"tracking": {"uri": "http://u:p@h"}, "auth": {"api_key": "k", "tokens": ["a"]}, "lr": 0.1}))
    assert config == {"tracking": {"uri": f"http://{REDACTED}@h"}, "auth": {"api_key": REDACTED, "tokens": REDACTED}, "lr": 0.1}
    assert flatten(config)["auth.api_key"] == REDACTED


def test_basic_auth_without_an_admin_password_is_one_line_saying_what_to_set(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name != "MLFLOW_AUTH_ADMIN_PASSWORD"}
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(
        [sys.executable, "-m", "oak.cli", "--params", str(PARAMS), "server", "--basic-auth", "--port", str(free_port())],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("oak server: error: --basic-auth: MLflow Authentication needs a password to create the admin user 'admin', ")
    assert "Set the MLFLOW_AUTH_ADMIN_PASSWORD environment variable" in line
    assert "mlflow server" not in done.stdout  # stopped before the server's command
