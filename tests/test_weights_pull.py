"""`oak weights pull` against a mirror on 127.0.0.1 that speaks the Hugging Face Hub's download protocol
(HEAD and GET on /<repo>/resolve/<revision>/<file>, with ETag, X-Repo-Commit, Content-Length and Range, as
huggingface_hub asks) and download.pytorch.org's (a plain GET of /models/<name>-<sha256 prefix>.pth).
The files served are real state_dicts made here, so nothing leaves this machine."""

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub.constants import DOWNLOAD_CHUNK_SIZE
from safetensors.torch import save

from oak.errors import OakError
from oak.fetching.weights import wanted_weights
from oak.models.published import Published, load_published

ROOT = Path(__file__).resolve().parents[1]
OAK = [str(Path(sys.executable).parent / "oak")]  # the command as installed (wired in oak.cli by add_weights_commands)
TIMM_SPEC = "timm:test_resnet.r160_in1k"  # timm's test ResNet: 0.47 M parameters, published as timm/test_resnet.r160_in1k
HUB_PATH = "/timm/test_resnet.r160_in1k/resolve/main/model.safetensors"
# huggingface_hub writes what it receives in chunks of DOWNLOAD_CHUNK_SIZE (10 MiB) and resumes after the last whole
# one: a download that breaks mid-file needs a file larger than that, such as MobileNetV3-Large's 5.5 M parameters
LARGER_SPEC = "timm:mobilenetv3_large_100.ra_in1k"
LARGER_PATH = "/timm/mobilenetv3_large_100.ra_in1k/resolve/main/model.safetensors"
TORCHVISION_SPEC = "torchvision:shufflenet_v2_x0_5.IMAGENET1K_V1"
COMMIT = hashlib.sha1(b"oak").hexdigest()  # the Hub names the revision it served; any 40 hex digits do


@dataclass
class Served:
    body: bytes
    sha256: str | None = None  # the hash the mirror publishes; default: the body's own
    cut_after: int | None = None  # end the first full GET's connection after this many bytes


class Mirror(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), MirrorHandler)
        self.files: dict[str, Served] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Range header

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def downloads(self) -> list[tuple[str, str | None]]:
        """The GETs of weight files (huggingface_hub also asks its endpoint for a registry of its own, at most daily)."""
        return [(path, ranged) for method, path, ranged in self.requests if method == "GET" and path in self.files]


class MirrorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Mirror

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, body: bool) -> None:
        ranged = self.headers.get("Range")
        self.server.requests.append((self.command, self.path, ranged))
        served = self.server.files.get(self.path)
        if served is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = int(ranged.removeprefix("bytes=").partition("-")[0]) if ranged else 0
        self.send_response(206 if ranged else 200)
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{len(served.body) - 1}/{len(served.body)}")
        self.send_header("Content-Length", str(len(served.body) - start))
        self.send_header("ETag", f'"{served.sha256 or hashlib.sha256(served.body).hexdigest()}"')
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if not body:
            return
        if served.cut_after is not None and not ranged:  # a connection that breaks mid-file, once
            self.wfile.write(served.body[: served.cut_after])
            self.wfile.flush()
            served.cut_after = None
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(served.body[start:])


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    server = Mirror()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def timm_weights(spec: str = TIMM_SPEC) -> tuple[dict[str, torch.Tensor], bytes]:
    torch.manual_seed(0)
    state = timm.create_model(spec.removeprefix("timm:"), pretrained=False).state_dict()
    return state, save({name: tensor.contiguous() for name, tensor in state.items()})


def torchvision_weights() -> bytes:
    buffer = io.BytesIO()
    torch.save(torch.nn.Linear(2, 2).state_dict(), buffer)
    return buffer.getvalue()


def pull(tmp_path: Path, *targets: str, hub: str, torchvision: str | None = None) -> subprocess.CompletedProcess:
    """`oak weights pull` as a user runs it, into tmp_path/weights, with every download cache kept in tmp_path."""
    env = os.environ | {
        "HF_ENDPOINT": hub,
        "OAK_TORCHVISION_ENDPOINT": torchvision or hub,
        "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",  # no credentials of this machine's to the test server
        "TORCH_HOME": str(tmp_path / "torch-cache"),
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
    }
    command = [*OAK, "weights", "pull", *targets, f"paths.weights={tmp_path / 'weights'}"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    return done.stderr.strip().splitlines()[-1]


def test_a_pull_fetches_a_specs_weights_under_the_name_the_published_loader_reads(tmp_path: Path, mirror: Mirror) -> None:
    state, body = timm_weights()
    mirror.files[HUB_PATH] = Served(body)
    done = pull(tmp_path, TIMM_SPEC, hub=mirror.url)
    assert done.returncode == 0, done.stderr
    assert f"downloading {mirror.url}{HUB_PATH}" in done.stdout
    assert "1 weight files ready (1 downloaded, 0 already there)" in done.stdout
    assert sorted(path.name for path in (tmp_path / "weights").iterdir()) == ["test_resnet.r160_in1k.safetensors"]
    net, path = load_published(Published.parse(TIMM_SPEC), tmp_path / "weights")
    assert path == tmp_path / "weights" / "test_resnet.r160_in1k.safetensors"
    assert all(torch.equal(net.state_dict()[name], tensor) for name, tensor in state.items())


def test_a_second_pull_verifies_what_is_there_and_downloads_nothing(tmp_path: Path, mirror: Mirror) -> None:
    mirror.files[HUB_PATH] = Served(timm_weights()[1])
    assert pull(tmp_path, TIMM_SPEC, hub=mirror.url).returncode == 0
    mirror.requests.clear()
    again = pull(tmp_path, TIMM_SPEC, hub=mirror.url)
    assert again.returncode == 0, again.stderr
    assert "test_resnet.r160_in1k.safetensors: present, sha256 verified" in again.stdout
    assert "(0 downloaded, 1 already there)" in again.stdout
    assert mirror.downloads() == []


def test_a_download_whose_connection_breaks_resumes_where_it_stopped(tmp_path: Path, mirror: Mirror) -> None:
    state, body = timm_weights(LARGER_SPEC)
    assert len(body) > 2 * DOWNLOAD_CHUNK_SIZE
    mirror.files[LARGER_PATH] = Served(body, cut_after=len(body) - DOWNLOAD_CHUNK_SIZE // 2)
    done = pull(tmp_path, LARGER_SPEC, hub=mirror.url)
    assert done.returncode == 0, done.stderr
    # the second GET asks only for what was not yet written: the rest after the whole chunks received
    whole_chunks = (len(body) - DOWNLOAD_CHUNK_SIZE // 2) // DOWNLOAD_CHUNK_SIZE * DOWNLOAD_CHUNK_SIZE
    assert mirror.downloads() == [(LARGER_PATH, None), (LARGER_PATH, f"bytes={whole_chunks}-")]
    net, _ = load_published(Published.parse(LARGER_SPEC), tmp_path / "weights")
    assert all(torch.equal(net.state_dict()[name], tensor) for name, tensor in state.items())


def test_a_file_that_fails_its_published_hash_is_one_line_naming_it_and_is_not_kept(tmp_path: Path, mirror: Mirror) -> None:
    mirror.files[HUB_PATH] = Served(timm_weights()[1], sha256=hashlib.sha256(b"another file").hexdigest())
    line = error_line(pull(tmp_path, TIMM_SPEC, hub=mirror.url))
    assert line.startswith(f"oak weights: error: {tmp_path / 'weights' / 'test_resnet.r160_in1k.safetensors'}: ")
    assert f"{mirror.url}{HUB_PATH}" in line and "not the published" in line
    assert list((tmp_path / "weights").iterdir()) == []  # neither the file nor a part of it


def test_torchvisions_hash_prefix_refuses_a_file_that_is_not_the_published_one(tmp_path: Path, mirror: Mirror) -> None:
    name = Published.parse(TORCHVISION_SPEC).file_name()  # shufflenetv2_x0.5-f707e7126e.pth: no file made here has that prefix
    mirror.files[f"/models/{name}"] = Served(torchvision_weights())
    line = error_line(pull(tmp_path, TORCHVISION_SPEC, hub=mirror.url))
    assert line.startswith(f"oak weights: error: {tmp_path / 'weights' / name}: the file at {mirror.url}/models/{name} ")
    assert "invalid hash value" in line
    assert mirror.downloads() == [(f"/models/{name}", None)]
    assert list((tmp_path / "weights").iterdir()) == []


def test_a_server_that_is_down_is_one_line_naming_the_first_file_of_the_profile(tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{closed.getsockname()[1]}"
    line = error_line(pull(tmp_path, hub=down))  # no target: the published profile
    first = sorted(spec for spec in published_specs() if spec.startswith("timm:"))[0].removeprefix("timm:")
    assert line.startswith(f"oak weights: error: {tmp_path / 'weights' / first}.safetensors: cannot get {down}/timm/{first}/")
    assert not (tmp_path / "weights").exists()


def test_a_target_that_names_no_released_weights_is_refused_by_name() -> None:
    with pytest.raises(OakError, match="'resnet18': neither a profile .* nor a weights spec"):
        wanted_weights(["resnet18"])
    with pytest.raises(OakError, match="profile 'demo': its runs train their own weights"):
        wanted_weights(["demo"])


def published_specs() -> set[str]:
    from oak.studies.plan import plan_runs
    from oak.studies.study import load_studies

    return {run.weights for run in plan_runs(load_studies(ROOT / "pipelines" / "studies"), "published").values() if run.weights}


@pytest.mark.slow
def test_the_published_evaluation_runs_on_pulled_weights(tmp_path: Path, mirror: Mirror, shards: Path) -> None:
    mirror.files[HUB_PATH] = Served(timm_weights()[1])
    assert pull(tmp_path, TIMM_SPEC, hub=mirror.url).returncode == 0
    kept_apart = [
        f"paths.weights={tmp_path / 'weights'}",
        f"paths.shards={shards}",
        f"paths.metrics={tmp_path / 'metrics'}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        "evaluate.num_workers=0",
    ]
    command = [str(Path(sys.executable).parent / "oak"), "evaluate", "--run", "test-resnet-published", "test_resnet"]
    done = subprocess.run([*command, "--published", TIMM_SPEC, *kept_apart], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    measured = json.loads((tmp_path / "metrics" / "published" / "test-resnet-published.json").read_text())
    assert measured["weights"] == TIMM_SPEC and measured["file"] == "test_resnet.r160_in1k.safetensors"
    assert measured["sha256"] == hashlib.sha256(mirror.files[HUB_PATH].body).hexdigest()
