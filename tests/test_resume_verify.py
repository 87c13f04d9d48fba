"""A killed `oak prepare` resumes to the same bytes; `oak verify` names every bad shard."""

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from params_files import PARAMS
from PIL import Image

from oak.cli import main
from oak.errors import OakError
from oak.layout import SHARD_INFO_FILE
from oak.preparing.demo import write_demo
from oak.preparing.shards import prepare_shards
from oak.preparing.verify import verify_shards

PREPARE = ["samples_per_shard=2", "seed=3"]


def oak_prepare(source: Path, out: Path) -> list[str]:
    overrides = [f"prepare.{setting}" for setting in PREPARE]
    return [
        sys.executable,
        "-m",
        "oak.cli",
        "--params",
        str(PARAMS),
        "prepare",
        "--source",
        str(source),
        "--out",
        str(out),
    ] + overrides


@pytest.mark.slow
def test_a_run_killed_mid_way_resumes_keeping_finished_shards_and_ends_byte_identical(tmp_path: Path) -> None:
    source = tmp_path / "tree"
    write_demo(source, classes=4, train_per_class=300, val_per_class=20, image_size=16, seed=0)
    environment = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    out = tmp_path / "shards"
    run = subprocess.Popen(oak_prepare(source, out), env=environment, stderr=subprocess.PIPE)
    staging = tmp_path / "shards.tmp" / "shards"
    while not (staging / "train-000000.tar").exists():
        assert run.poll() is None, f"prepare ended before writing its first shard: {run.stderr.read().decode()}"
        time.sleep(0.001)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert not out.exists()  # killed mid-way: nothing under the final name
    finished = {path.name: path.stat().st_ino for path in staging.glob("*.tar")}
    assert 0 < len(finished) < 600

    subprocess.run(oak_prepare(source, out), env=environment, check=True, capture_output=True)
    kept = {name: (out / name).stat().st_ino for name in finished}
    assert kept == finished  # the finished shards were kept, not rewritten
    assert not (tmp_path / "shards.tmp").exists()
    prepare_shards(source, tmp_path / "uninterrupted", samples_per_shard=2, seed=3)
    assert sorted(os.listdir(out)) == sorted(os.listdir(tmp_path / "uninterrupted"))
    for name in os.listdir(out):
        assert (out / name).read_bytes() == (tmp_path / "uninterrupted" / name).read_bytes(), name


def test_work_from_other_inputs_is_discarded(demo_tree: Path, tmp_path: Path) -> None:
    staging = tmp_path / "shards.tmp"
    (staging / "shards").mkdir(parents=True)
    (staging / "fingerprint").write_text("from another source or settings")
    (staging / "shards" / "train-000000.tar").write_bytes(b"stale")
    prepare_shards(demo_tree, tmp_path / "shards", samples_per_shard=16, seed=0)
    verify_shards(tmp_path / "shards")


def test_verify_accepts_what_prepare_wrote(shards: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["verify", str(shards)]) == 0
    info = json.loads((shards / SHARD_INFO_FILE).read_text())
    expected = sum(split["num_samples"] for split in info["splits"].values())
    assert f"{expected} samples verified" in capsys.readouterr().out


def rewrite_first_image(shard: Path, data: bytes) -> None:
    """Replace the first sample's image inside a shard, keeping it a valid tar."""
    with tarfile.open(shard) as tar:
        members = [(member, tar.extractfile(member).read()) for member in tar]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member, content in members:
            if member.name.endswith(".jpg") and data is not None:
                content, data = data, None
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
    shard.write_bytes(buffer.getvalue())


def test_verify_names_each_bad_shard(shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "shards"
    folder.mkdir()
    for path in shards.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    info = json.loads((folder / SHARD_INFO_FILE).read_text())
    train, val = info["splits"]["train"]["filenames"], info["splits"]["val"]["filenames"]
    (folder / train[0]).write_bytes((folder / train[0]).read_bytes()[:-1024])  # cut short
    (folder / train[1]).unlink()
    # An image that does not decode, with the info file's hash updated to match: only decoding finds it.
    rewrite_first_image(folder / val[0], np.random.default_rng(0).bytes(500))
    info["splits"]["val"]["sha256"][0] = hashlib.sha256((folder / val[0]).read_bytes()).hexdigest()
    (folder / SHARD_INFO_FILE).write_text(json.dumps(info))
    (folder / "train-999999.tar").write_bytes(b"")
    with pytest.raises(OakError) as failure:
        verify_shards(folder, workers=2)
    message = str(failure.value)
    assert "4 bad shard(s)" in message
    assert f"{train[0]}: sha256 differs" in message and f"{train[1]}: missing" in message
    assert f"{val[0]}: sample" in message and "does not decode" in message
    assert "train-999999.tar: a shard the info file does not list" in message
    assert main(["verify", str(folder)]) == 2
    assert train[0] in capsys.readouterr().err


def test_verify_counts_samples_against_the_info_file(shards: Path, tmp_path: Path) -> None:
    folder = tmp_path / "shards"
    folder.mkdir()
    for path in shards.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    info = json.loads((folder / SHARD_INFO_FILE).read_text())
    info["splits"]["val"]["shard_lengths"][0] += 1
    (folder / SHARD_INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(OakError, match=f"{info['splits']['val']['filenames'][0]}: .* samples, the info file says"):
        verify_shards(folder)


def test_verify_full_decode_rejects_a_cmyk_jpeg(shards: Path, tmp_path: Path) -> None:
    folder = tmp_path / "shards"
    folder.mkdir()
    for path in shards.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    cmyk = io.BytesIO()
    Image.new("CMYK", (8, 8)).save(cmyk, format="JPEG")
    info = json.loads((folder / SHARD_INFO_FILE).read_text())
    first = info["splits"]["train"]["filenames"][0]
    rewrite_first_image(folder / first, cmyk.getvalue())
    info["splits"]["train"]["sha256"][0] = hashlib.sha256((folder / first).read_bytes()).hexdigest()
    (folder / SHARD_INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(OakError, match=f"{first}: sample .* does not decode to RGB JPEG"):
        verify_shards(folder)
