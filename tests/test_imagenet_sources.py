"""`oak prepare` on every form of real ImageNet, built tiny with the real structure, and on bad input."""

import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest
import webdataset as wds
from imagenet_fixtures import (
    WNIDS,
    jpeg,
    png,
    tar_bytes,
    train_images,
    val_images,
    val_truth,
    write_archives,
    write_devkit,
    write_kaggle_labels,
    write_train_archive,
    write_tree,
)
from PIL import Image

from oak.data.info import read_info
from oak.errors import OakError
from oak.layout import REJECTED_FILE
from oak.preparing.images import HEAD_BYTES, Conversion, convert_image, planned_kind
from oak.preparing.shards import prepare_shards


def prepare(source: Path, out: Path, **settings) -> dict:
    return prepare_shards(source, out, **{"samples_per_shard": 4, "seed": 0, **settings})


def samples(shards: Path, split: str) -> dict[str, tuple[int, bytes]]:
    urls = [str(shards / name) for name in read_info(shards).splits[split].filenames]
    return {s["__key__"]: (int(s["cls"]), s["jpg"]) for s in wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples())}


def shard_bytes(shards: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(shards.iterdir())}


def expected_samples() -> dict[str, dict[str, tuple[int, bytes]]]:
    truth = val_truth()
    return {
        "train": {
            name.removesuffix(".JPEG"): (WNIDS.index(wnid), data) for wnid, files in train_images().items() for name, data in files.items()
        },
        "val": {name.removesuffix(".JPEG"): (WNIDS.index(truth[name.removesuffix(".JPEG")]), data) for name, data in val_images().items()},
    }


def test_archives_are_read_without_extracting_and_match_the_images(tmp_path: Path) -> None:
    source = write_archives(tmp_path / "imagenet")
    info = prepare(source, tmp_path / "shards")
    assert sorted(os.listdir(source)) == ["ILSVRC2012_devkit_t12.tar.gz", "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"]
    assert info.classes == sorted(WNIDS)
    for split in ("train", "val"):
        assert samples(tmp_path / "shards", split) == expected_samples()[split]  # original bytes, labels through meta.mat
        assert info.counts[split]["found"] == info.counts[split]["written"] == len(expected_samples()[split])


def test_devkit_and_kaggle_labels_give_the_same_shards(tmp_path: Path) -> None:
    prepare(write_archives(tmp_path / "devkit", labels="devkit"), tmp_path / "from-devkit")
    prepare(write_archives(tmp_path / "kaggle", labels="kaggle"), tmp_path / "from-kaggle")
    devkit, kaggle = shard_bytes(tmp_path / "from-devkit"), shard_bytes(tmp_path / "from-kaggle")
    assert devkit.keys() == kaggle.keys()
    assert [name for name in devkit if devkit[name] != kaggle[name]] == ["_info.json"]  # which label file and its MD5
    assert samples(tmp_path / "from-kaggle", "val") == expected_samples()["val"]


def test_tree_archives_and_flat_val_folder_give_the_same_samples(tmp_path: Path) -> None:
    prepare(write_tree(tmp_path / "tree"), tmp_path / "from-tree")
    prepare(write_archives(tmp_path / "archives"), tmp_path / "from-archives")
    flat = tmp_path / "flat"
    shutil.copytree(tmp_path / "tree" / "train", flat / "train")
    (flat / "val").mkdir()
    for name, data in val_images().items():
        (flat / "val" / name).write_bytes(data)
    write_kaggle_labels(flat / "LOC_val_solution.csv", val_truth())
    prepare(flat, tmp_path / "from-flat")
    for split in ("train", "val"):
        for out in ("from-tree", "from-archives", "from-flat"):
            assert samples(tmp_path / out, split) == expected_samples()[split], (out, split)
    # The train archive lists classes and files in the tree's sorted order: same shuffle, same bytes.
    assert read_info(tmp_path / "from-tree").splits["train"].sha256 == read_info(tmp_path / "from-archives").splits["train"].sha256


def test_archive_md5_is_recorded_and_strict_checking_stops_on_a_mismatch(tmp_path: Path) -> None:
    source = write_archives(tmp_path / "imagenet")
    info = prepare(source, tmp_path / "shards")
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", "ILSVRC2012_devkit_t12.tar.gz"):
        assert info.written["archives"][name]["md5"] == hashlib.md5((source / name).read_bytes()).hexdigest()
        assert info.written["archives"][name]["matches"] is False  # tiny look-alikes, not the official files
    with pytest.raises(OakError, match="ILSVRC2012_devkit_t12.tar.gz: MD5 .* differs from the official fa75699e"):
        prepare(source, tmp_path / "strict", strict_md5=True)
    assert not (tmp_path / "strict").exists()


def test_md5_warning_names_each_archive(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    prepare(write_archives(tmp_path / "imagenet"), tmp_path / "shards")
    warnings = capsys.readouterr().err
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", "ILSVRC2012_devkit_t12.tar.gz"):
        assert f"warning: {name}: MD5" in warnings


@pytest.mark.parametrize("classes, chosen", [(2, [WNIDS[0], WNIDS[1]]), ([WNIDS[2], WNIDS[0]], [WNIDS[0], WNIDS[2]])])
def test_class_subset_reindexes_in_sorted_order(classes, chosen: list[str], tmp_path: Path) -> None:
    info = prepare(write_archives(tmp_path / "imagenet"), tmp_path / "shards", classes=classes)
    assert info.classes == chosen
    for split in ("train", "val"):
        expected = {
            key: (chosen.index(WNIDS[label]), data) for key, (label, data) in expected_samples()[split].items() if WNIDS[label] in chosen
        }
        assert samples(tmp_path / "shards", split) == expected


def test_unknown_class_in_the_subset_is_named(tmp_path: Path) -> None:
    with pytest.raises(OakError, match="prepare.classes: not classes of the source: n09999999"):
        prepare(write_archives(tmp_path / "imagenet"), tmp_path / "shards", classes=["n09999999"])


def test_cmyk_grayscale_and_png_are_stored_as_rgb_jpeg_and_counted(tmp_path: Path) -> None:
    images = train_images()
    images[WNIDS[0]]["n02105855_2933.JPEG"] = png(1)  # ImageNet's PNG named .JPEG
    images[WNIDS[1]][f"{WNIDS[1]}_cmyk.JPEG"] = jpeg(2, mode="CMYK")
    images[WNIDS[2]][f"{WNIDS[2]}_gray.JPEG"] = jpeg(3, mode="L")
    source = write_archives(tmp_path / "imagenet")
    write_train_archive(source / "ILSVRC2012_img_train.tar", images)
    val = val_images() | {"ILSVRC2012_val_00000001.JPEG": jpeg(4, mode="CMYK")}
    (source / "ILSVRC2012_img_val.tar").write_bytes(tar_bytes(val))
    info = prepare(source, tmp_path / "shards")
    assert info.counts["train"]["reencoded_rgb"] == 3 and info.counts["val"]["reencoded_rgb"] == 1
    untouched = {name.removesuffix(".JPEG"): data for files in train_images().values() for name, data in files.items()}
    for split in ("train", "val"):
        for key, (_, data) in samples(tmp_path / "shards", split).items():
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                assert (image.format, image.mode) == ("JPEG", "RGB"), key
            if split == "train" and key in untouched:
                assert data == untouched[key]  # only the odd ones are re-encoded


def bad_tree(root: Path) -> dict[str, str]:
    """A tree with one of each bad input; returns origin -> the reason's telling words."""
    write_tree(root)
    train, a, b = root / "train", WNIDS[0], WNIDS[1]
    (train / a / f"{a}_truncated.JPEG").write_bytes(jpeg(7)[:-400])
    (train / a / f"{a}_empty.JPEG").write_bytes(b"")
    (train / a / f"{a}_text.JPEG").write_text("not an image")
    (train / a / ".DS_Store").write_bytes(b"\0\0")  # operating systems' litter: skipped, counted, not a problem
    (train / a / f"._{a}_0.JPEG").write_bytes(b"\0\5\26\7")
    (train / "Thumbs.db").write_bytes(b"\0")
    (train / "README").write_text("read me")
    (train / "cats").mkdir()
    (train / "cats" / "cat.JPEG").write_bytes(jpeg(8))
    (train / "n09999999").mkdir()
    (train / b / f"{a}_0.jpg").write_bytes(jpeg(9))  # same key as train/<a>/<a>_0.JPEG
    return {
        f"train/{a}/{a}_truncated.JPEG": "cannot be decoded",
        f"train/{a}/{a}_empty.JPEG": "zero-byte file",
        f"train/{a}/{a}_text.JPEG": "not an image",
        "train/README": "stray file",
        "train/cats": "not a WordNet ID",
        "train/n09999999": "empty class folder",
        f"train/{b}/{a}_0.jpg": "duplicate sample key",
    }


def test_every_bad_name_and_image_is_reported_in_one_pass_before_anything_is_written(tmp_path: Path) -> None:
    offenders = bad_tree(tmp_path / "tree")
    with pytest.raises(OakError, match=f"{len(offenders)} problem") as failure:
        prepare(tmp_path / "tree", tmp_path / "shards")
    for origin, reason in offenders.items():
        assert f"{origin}: " in str(failure.value) and reason in str(failure.value), origin
    assert "DS_Store" not in str(failure.value) and "Thumbs.db" not in str(failure.value)
    assert not (tmp_path / "shards").exists()
    assert not list(tmp_path.glob("shards.tmp/**/*.tar"))


def test_bad_images_fail_before_any_shard_is_written_listing_each(tmp_path: Path) -> None:
    offenders = bad_tree(tmp_path / "tree")
    for stray in ("README", ".DS_Store", "cats", "n09999999", "_0.jpg"):  # leave only the bad contents
        path = next(tmp_path.glob(f"tree/train/**/{stray}"), None) or next(tmp_path.glob(f"tree/train/*/*{stray}"))
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(OakError, match="3 problem") as failure:
        prepare(tmp_path / "tree", tmp_path / "shards")
    for origin in [o for o in offenders if "truncated" in o or "empty" in o or "text" in o]:
        assert f"{origin}: {offenders[origin]}" in str(failure.value)
    assert not (tmp_path / "shards").exists()
    assert not list(tmp_path.glob("shards.tmp/**/*.tar"))


def test_skip_writes_the_rest_and_a_rejected_list_that_reconciles(tmp_path: Path) -> None:
    offenders = bad_tree(tmp_path / "tree")
    info = prepare(tmp_path / "tree", tmp_path / "shards", on_bad="skip")
    rows = (tmp_path / "shards" / REJECTED_FILE).read_text().splitlines()
    assert rows[0] == "split\titem\treason"
    rejected = {row.split("\t")[1]: row.split("\t")[2] for row in rows[1:]}
    assert rejected.keys() == offenders.keys()
    for origin, reason in offenders.items():
        assert reason in rejected[origin]
    counts = info.counts["train"]
    assert counts["found"] == counts["written"] + counts["rejected"]
    assert counts["left_by_os"] == 3  # .DS_Store, ._*, Thumbs.db: not found images, not rejected
    assert counts["rejected"] + counts["other_problems"] == len(rejected)
    assert counts["written"] == len(samples(tmp_path / "shards", "train")) == len(expected_samples()["train"])


def test_val_labels_must_match_the_images(tmp_path: Path) -> None:
    source = write_archives(tmp_path / "imagenet")
    truth = val_truth()
    del truth["ILSVRC2012_val_00000002"]  # an image with no label
    truth["ILSVRC2012_val_00000099"] = WNIDS[0]  # a label with no image
    (source / "ILSVRC2012_devkit_t12.tar.gz").unlink()
    write_kaggle_labels(source / "LOC_val_solution.csv", truth)
    with pytest.raises(OakError) as failure:
        prepare(source, tmp_path / "shards")
    assert "ILSVRC2012_img_val.tar:ILSVRC2012_val_00000002.JPEG: validation image with no label" in str(failure.value)
    assert "LOC_val_solution.csv:ILSVRC2012_val_00000099: label for an image that is not there" in str(failure.value)
    info = prepare(source, tmp_path / "shards", on_bad="skip")
    assert info.counts["val"] == {
        "found": 6,
        "written": 5,
        "rejected": 1,
        "reencoded_rgb": 0,
        "resized": 0,
        "other_problems": 1,
        "left_by_os": 0,
    }


def test_archive_members_never_escape(tmp_path: Path) -> None:
    """Absolute paths, `..` and links are named as bad members; nothing is written outside OUT."""
    source = write_archives(tmp_path / "imagenet")
    images = train_images()
    evil = images[WNIDS[0]] | {"../../escaped.JPEG": jpeg(20), "/tmp/oak-absolute.JPEG": jpeg(21)}
    inner = io.BytesIO(tar_bytes(evil))
    with tarfile.open(fileobj=inner, mode="a") as tar:
        for kind, name in ((tarfile.SYMTYPE, "symlink.JPEG"), (tarfile.LNKTYPE, "hardlink.JPEG")):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = kind, "../../../etc/passwd"
            tar.addfile(link)
    outer = {f"{WNIDS[0]}.tar": inner.getvalue()} | {f"{w}.tar": tar_bytes(images[w]) for w in WNIDS[1:]}
    outer_tar = io.BytesIO(tar_bytes(outer))
    with tarfile.open(fileobj=outer_tar, mode="a") as tar:
        link = tarfile.TarInfo("n01440764.tar.link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(link)
    (source / "ILSVRC2012_img_train.tar").write_bytes(outer_tar.getvalue())
    before = set(tmp_path.rglob("*"))
    with pytest.raises(OakError, match="5 problem"):
        prepare(source, tmp_path / "shards")
    info = prepare(source, tmp_path / "shards", on_bad="skip")
    rejected = (tmp_path / "shards" / REJECTED_FILE).read_text()
    for name in ("../../escaped.JPEG", "/tmp/oak-absolute.JPEG", "symlink.JPEG", "hardlink.JPEG", "n01440764.tar.link"):
        assert name in rejected
    assert "links are not followed" in rejected and "not a plain file name" in rejected
    assert info.counts["train"]["written"] == len(expected_samples()["train"])
    created = set(tmp_path.rglob("*")) - before
    assert all(path.is_relative_to(tmp_path / "shards") for path in created), created
    assert not Path("/tmp/oak-absolute.JPEG").exists() and not (tmp_path.parent / "escaped.JPEG").exists()


def test_resize_bounds_the_shorter_side_and_keeps_small_images(tmp_path: Path) -> None:
    images = train_images()
    images[WNIDS[0]][f"{WNIDS[0]}_big.JPEG"] = jpeg(30, size=(200, 120))
    images[WNIDS[1]][f"{WNIDS[1]}_tall.JPEG"] = jpeg(31, size=(60, 100))
    source = write_archives(tmp_path / "imagenet")
    write_train_archive(source / "ILSVRC2012_img_train.tar", images)
    info = prepare(source, tmp_path / "shards", conversion=Conversion("resize", short_side=30, quality=80))
    stored = samples(tmp_path / "shards", "train")
    sizes = {key: Image.open(io.BytesIO(data)).size for key, (_, data) in stored.items()}
    assert sizes[f"{WNIDS[0]}_big"] == (50, 30) and sizes[f"{WNIDS[1]}_tall"] == (30, 50)
    assert info.counts["train"]["resized"] == 2
    small = f"{WNIDS[2]}_0"
    assert stored[small][1] == images[WNIDS[2]][f"{small}.JPEG"]  # 24x18 already fits: original bytes


def test_more_workers_same_bytes(tmp_path: Path) -> None:
    source = write_archives(tmp_path / "imagenet")
    images = train_images()
    images[WNIDS[1]][f"{WNIDS[1]}_cmyk.JPEG"] = jpeg(2, mode="CMYK")
    write_train_archive(source / "ILSVRC2012_img_train.tar", images)
    for mode in ("passthrough", "resize"):
        conversion = Conversion(mode, short_side=12)
        prepare(source, tmp_path / f"{mode}-1", conversion=conversion, samples_per_shard=2)
        prepare(source, tmp_path / f"{mode}-2", conversion=conversion, samples_per_shard=2, workers=2)
        assert shard_bytes(tmp_path / f"{mode}-1") == shard_bytes(tmp_path / f"{mode}-2")


@pytest.mark.parametrize(
    "arrange, named",
    [
        (lambda root: (root / "ILSVRC2012_devkit_t12.tar.gz").unlink(), "unlabelled validation images; put ILSVRC2012_devkit_t12.tar.gz"),
        (lambda root: (root / "train").mkdir(), "both train/ and ILSVRC2012_img_train.tar"),
        (lambda root: (root / "ILSVRC2012_img_train.tar").unlink(), "train: split folder not found"),
        (lambda root: write_devkit(root / "ILSVRC2012_devkit_t12.tar.gz", val_truth(), ground_truth="1001\n"), "ID 1001 is not a class"),
        (lambda root: (root / "ILSVRC2012_devkit_t12.tar.gz").write_bytes(b"not gzip"), "not a readable .tar.gz"),
    ],
)
def test_source_forms_that_cannot_be_read_are_named(arrange, named: str, tmp_path: Path) -> None:
    source = write_archives(tmp_path / "imagenet")
    arrange(source)
    with pytest.raises(OakError, match=named):
        prepare(source, tmp_path / "shards")


def exif_jpeg(seed: int) -> bytes:
    """An RGB JPEG whose frame header lies past the first HEAD_BYTES, behind a large EXIF block."""
    exif = Image.Exif()
    exif[0x010E] = "x" * (2 * HEAD_BYTES)  # ImageDescription
    buffer = io.BytesIO()
    Image.open(io.BytesIO(jpeg(seed))).save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def multi_picture_jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    first, second = (Image.open(io.BytesIO(jpeg(n))) for n in (seed, seed + 1))
    first.save(buffer, format="MPO", save_all=True, append_images=[second])
    return buffer.getvalue()


def progressive_jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(jpeg(seed))).save(buffer, format="JPEG", progressive=True)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data, decided",
    [
        (jpeg(1), True),
        (progressive_jpeg(2), True),
        (jpeg(3, mode="L"), False),
        (jpeg(4, mode="CMYK"), False),
        (png(5), False),
        (exif_jpeg(6), False),
        (multi_picture_jpeg(11), False),
        (jpeg(7) + bytes(10), False),  # zero padding after the end marker
        (jpeg(8)[:-100], False),  # cut short
        (b"not an image", False),
        (b"", False),
    ],
)
@pytest.mark.parametrize("conversion", [Conversion(), Conversion("resize", short_side=12)])
def test_the_header_check_agrees_with_pillow_or_leaves_it_to_pillow(data: bytes, decided: bool, conversion: Conversion) -> None:
    planned = planned_kind(data[:HEAD_BYTES], data[-2:], conversion)
    assert (planned is not None) == decided
    if decided:
        assert planned == convert_image(data, conversion)[1]


def test_a_conversion_that_fails_while_writing_stops_the_run_naming_the_file(tmp_path: Path) -> None:
    """A scan that does not decode behind a sound header passes the check; writing finds it, and leaves no partial shard."""
    broken = bytearray(jpeg(40, size=(64, 48)))
    broken[broken.index(b"\xff\xda") + 5] = 9  # the scan's first component: an ID the frame does not have
    source = write_archives(tmp_path / "imagenet")
    (source / "ILSVRC2012_img_val.tar").write_bytes(tar_bytes(val_images() | {"ILSVRC2012_val_00000006.JPEG": bytes(broken)}))
    with pytest.raises(OakError, match="ILSVRC2012_val_00000006.JPEG: cannot be decoded .*found while writing"):
        prepare(source, tmp_path / "shards", conversion=Conversion("resize", short_side=12))
    assert not (tmp_path / "shards").exists()
    finished = sorted(path.name for path in tmp_path.glob("shards.tmp/shards/*"))
    assert finished == [f"train-{index:06d}.tar" for index in range(4)] + ["val-000000.tar"]  # not val-000001, whole or partial
    for name, length in zip(finished, [4, 4, 4, 3, 4]):
        with tarfile.open(tmp_path / "shards.tmp" / "shards" / name) as tar:
            assert len(tar.getnames()) == 2 * length
