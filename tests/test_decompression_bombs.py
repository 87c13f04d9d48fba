"""Images that declare more pixels than Oak decodes (decompression bombs) are rejected by `oak prepare`,
or skipped and listed, whatever the file type and conversion; `oak verify` names one a shard holds."""

import hashlib
import json
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from imagenet_fixtures import WNIDS, jpeg, png, write_tree
from test_resume_verify import rewrite_first_image

from oak.errors import OakError
from oak.layout import REJECTED_FILE, SHARD_INFO_FILE
from oak.preparing.images import MAX_PIXELS, Conversion, stored_image_problem
from oak.preparing.shards import prepare_shards
from oak.preparing.verify import verify_shards


def prepare(source: Path, out: Path, **settings):
    return prepare_shards(source, out, **{"samples_per_shard": 4, "seed": 0, **settings})


def rejected(shards: Path) -> dict[str, str]:
    return dict(row.split("\t")[1:] for row in (shards / REJECTED_FILE).read_text().splitlines()[1:])


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header declares `width` x `height` (Pillow opens it, and judges the size, from the header)."""
    data = bytearray(png(1))
    struct.pack_into(">II", data, 16, width, height)  # IHDR's data follows the signature, its length and its type
    struct.pack_into(">I", data, 29, zlib.crc32(data[12:29]))
    return bytes(data)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small, well-ended JPEG whose frame header declares `width` x `height`."""
    data = bytearray(jpeg(51))
    frame = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, frame + 5, height, width)
    return bytes(data)


BOMBS = {
    "png_30000.JPEG": png_declaring(30_000, 30_000),  # over twice the limit: Pillow refuses to open it
    "png_10000.JPEG": png_declaring(10_000, 10_000),  # over the limit: Pillow only warns
    "jpeg_20000.JPEG": jpeg_declaring(20_000, 20_000),  # the header check alone would have kept it
    "jpeg_10000.JPEG": jpeg_declaring(10_000, 10_000),
}


@pytest.mark.parametrize("conversion", [Conversion(), Conversion("resize", short_side=12)])
def test_images_over_the_pixel_limit_are_rejected_or_skipped_and_listed(conversion: Conversion, tmp_path: Path) -> None:
    source = write_tree(tmp_path / "tree")
    for name, data in BOMBS.items():
        (source / "train" / WNIDS[1] / name).write_bytes(data)
    with pytest.raises(OakError, match=f"{len(BOMBS)} problem") as failure:
        prepare(source, tmp_path / "shards", conversion=conversion)
    for name in BOMBS:
        assert f"train/{WNIDS[1]}/{name}: " in str(failure.value)
    assert str(failure.value).count(f"more than the {MAX_PIXELS:,}") == len(BOMBS)
    info = prepare(source, tmp_path / "shards", conversion=conversion, on_bad="skip")
    assert sorted(rejected(tmp_path / "shards")) == sorted(f"train/{WNIDS[1]}/{name}" for name in BOMBS)
    assert info.counts["train"]["written"] == 3 * 5


def test_the_pixel_limit_is_pillows_own() -> None:
    from PIL import Image

    assert MAX_PIXELS == Image.MAX_IMAGE_PIXELS


def test_verify_names_a_stored_bomb_instead_of_failing(shards: Path, tmp_path: Path) -> None:
    folder = tmp_path / "shards"
    shutil.copytree(shards, folder)
    info = json.loads((folder / SHARD_INFO_FILE).read_text())
    first = info["splits"]["train"]["filenames"][0]
    rewrite_first_image(folder / first, jpeg_declaring(20_000, 20_000))  # as an older Oak would have kept it
    info["splits"]["train"]["sha256"][0] = hashlib.sha256((folder / first).read_bytes()).hexdigest()
    (folder / SHARD_INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(OakError, match=f"{first}: sample .*: over 178,956,970 pixels, more than the {MAX_PIXELS:,} Oak decodes"):
        verify_shards(folder)
    assert (
        stored_image_problem(jpeg_declaring(10_000, 10_000))
        == f"10000x10000 pixels, more than the {MAX_PIXELS:,} Oak decodes (a decompression bomb?)"
    )
