"""Low-resolution shards: `oak prepare` in cap mode bounds each image's longer side, re-encodes at the stated
quality, records the cap in `_info.json`, and refuses a cap that makes no image in one line."""

import io
import tarfile
from pathlib import Path

import pytest
from params_files import PARAMS
from PIL import Image

from oak.cli import main
from oak.loading.loader import TrainBatches, shards_of
from oak.preparing.demo import write_demo
from oak.preparing.images import Conversion
from oak.preparing.shards import prepare_shards


def jpeg(size: tuple[int, int], quality: int = 95) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").convert("RGB").resize(size).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo tree of 48x48 images, with a wide one and a small tall one among the training images."""
    root = tmp_path_factory.mktemp("capped") / "tree"
    write_demo(root, classes=2, train_per_class=4, val_per_class=2, image_size=48, seed=0)
    first_class = sorted((root / "train").iterdir())[0]
    (first_class / "wide.JPEG").write_bytes(jpeg((120, 60)))
    (first_class / "small.JPEG").write_bytes(jpeg((20, 30)))
    return root


def stored_images(shards: Path) -> dict[str, bytes]:
    images = {}
    for shard in sorted(shards.glob("*.tar")):
        with tarfile.open(shard) as tar:
            images |= {member.name: tar.extractfile(member).read() for member in tar if member.name.endswith(".jpg")}
    return images


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def test_cap_mode_bounds_the_longer_side_and_keeps_images_that_fit_as_they_were(tree: Path, tmp_path: Path) -> None:
    info = prepare_shards(tree, tmp_path / "shards", samples_per_shard=8, seed=0, conversion=Conversion("cap", long_side=32, quality=80))
    sizes = {name: image_size(data) for name, data in stored_images(tmp_path / "shards").items()}
    assert max(max(size) for size in sizes.values()) == 32
    assert sizes[next(name for name in sizes if "wide" in name)] == (32, 16)  # the aspect ratio kept
    small = next(data for name, data in stored_images(tmp_path / "shards").items() if "small" in name)
    assert small == (next((tree / "train").glob("*/small.JPEG"))).read_bytes()  # 20x30 fits: its original bytes
    assert info.counts["train"]["resized"] == 9 and info.counts["val"]["resized"] == 4  # all but the small one


def test_the_stated_quality_decides_the_capped_bytes(tree: Path, tmp_path: Path) -> None:
    low, high = (
        prepare_shards(tree, tmp_path / str(quality), samples_per_shard=8, seed=0, conversion=Conversion("cap", long_side=32, quality=quality))
        for quality in (30, 95)
    )
    assert sum(map(len, stored_images(tmp_path / "30").values())) < sum(map(len, stored_images(tmp_path / "95").values()))
    assert low.fingerprint != high.fingerprint


def test_the_info_file_records_the_cap_and_other_modes_keep_their_settings_as_before(tree: Path, tmp_path: Path) -> None:
    capped = prepare_shards(tree, tmp_path / "capped", samples_per_shard=8, seed=0, conversion=Conversion("cap", long_side=32, quality=80))
    full = prepare_shards(tree, tmp_path / "full", samples_per_shard=8, seed=0)
    assert capped.written["prepare"] == {"mode": "cap", "long_side": 32, "quality": 80, "short_side": 256, "samples_per_shard": 8, "seed": 0}
    assert full.written["prepare"] == {"mode": "passthrough", "short_side": 256, "quality": 90, "samples_per_shard": 8, "seed": 0}
    assert capped.fingerprint != full.fingerprint


def test_the_loader_trains_on_capped_shards(tree: Path, tmp_path: Path) -> None:
    prepare_shards(tree, tmp_path / "shards", samples_per_shard=8, seed=0, conversion=Conversion("cap", long_side=32))
    dataset = TrainBatches(
        shards_of(tmp_path / "shards", "train"), image_size, batch_size=2, rank=0, world_size=1, num_workers=0, seed="0/0", shuffle_buffer=0, collate=list
    )
    sizes = [size for batch in dataset for size, _ in batch]
    assert len(sizes) == 10 and max(max(size) for size in sizes) == 32


@pytest.mark.parametrize(
    "setting, named",
    [
        ("prepare.cap_long_side=0", "prepare.cap_long_side=0: use 1 or more"),
        ("prepare.mode=shrink", "prepare.mode='shrink': expected one of passthrough, resize, cap"),
    ],
)
def test_a_cap_that_makes_no_image_is_refused_in_one_line_before_anything_is_written(
    setting: str, named: str, tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "shards"
    status = main(["--params", str(PARAMS), "prepare", "--source", str(tree), "--out", str(out), "prepare.mode=cap", setting])
    error = capsys.readouterr().err.strip()
    assert status != 0 and named in error and "\n" not in error
    assert not out.exists() and not (tmp_path / "shards.tmp").exists()

