"""`oak prepare` reads only regular files: FIFOs, sockets, devices, folders and links that lead out of
the source or nowhere, where images belong, are named as problems (or skipped and listed), never opened."""

import os
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from imagenet_fixtures import WNIDS, jpeg, val_images, val_truth, write_archives, write_kaggle_labels, write_tree

from oak.data.info import read_info
from oak.errors import OakError
from oak.layout import REJECTED_FILE
from oak.preparing.check import check_item
from oak.preparing.images import Conversion
from oak.preparing.listing import Item
from oak.preparing.shards import ensure_shard, prepare_shards
from oak.preparing.sources import find_source
from oak.preparing.staging import staged_listing
from oak.preparing.verify import verify_shards


def prepare(source: Path, out: Path, **settings):
    return prepare_shards(source, out, **{"samples_per_shard": 4, "seed": 0, **settings})


def rejected(shards: Path) -> dict[str, str]:
    return dict(row.split("\t")[1:] for row in (shards / REJECTED_FILE).read_text().splitlines()[1:])


@pytest.fixture
def deadline() -> Iterator[None]:
    """Fail, rather than hang the suite, when a read blocks (a FIFO opened for reading waits for a writer)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError("blocked for 20 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def special_files(tree: Path) -> dict[str, str]:
    """A FIFO, a socket, a folder, links to a device, out of the tree and to nowhere in a class folder;
    returns origin -> the reason's telling words. A link to an image within the tree is read."""
    wnid = WNIDS[0]
    folder = tree / "train" / wnid
    os.mkfifo(folder / "zz.JPEG")
    listener = socket.socket(socket.AF_UNIX)
    cwd = Path.cwd()
    os.chdir(folder)  # a socket's path is limited to ~100 bytes: bound by its name
    try:
        listener.bind("socket.JPEG")
    finally:
        os.chdir(cwd)
        listener.close()
    (folder / "folder.JPEG").mkdir()
    (folder / "device.JPEG").symlink_to("/dev/zero")
    (tree.parent / "outside.JPEG").write_bytes(jpeg(50))
    (folder / "outside.JPEG").symlink_to(tree.parent / "outside.JPEG")
    (folder / "nowhere.JPEG").symlink_to(folder / "gone.JPEG")
    (folder / f"{wnid}_link.JPEG").symlink_to(folder / f"{wnid}_0.JPEG")
    where = f"train/{wnid}"
    return {
        f"{where}/zz.JPEG": "a FIFO, not a regular file",
        f"{where}/socket.JPEG": "a socket, not a regular file",
        f"{where}/folder.JPEG": "a folder, not a regular file",
        f"{where}/device.JPEG": "link to /dev/zero, outside the source",
        f"{where}/outside.JPEG": f"link to {tree.parent / 'outside.JPEG'}, outside the source: links are followed only within it",
        f"{where}/nowhere.JPEG": "a link that leads nowhere",
    }


def test_special_files_and_links_out_of_the_tree_are_never_opened_but_named(tmp_path: Path, deadline: None) -> None:
    source = write_tree(tmp_path / "tree")
    offenders = special_files(source)
    with pytest.raises(OakError, match=f"{len(offenders)} problem") as failure:
        prepare(source, tmp_path / "shards")
    for origin, reason in offenders.items():
        assert f"{origin}: {reason}" in str(failure.value)
    info = prepare(source, tmp_path / "shards", on_bad="skip")
    listed = rejected(tmp_path / "shards")
    assert listed.keys() == offenders.keys()
    assert all(reason in listed[origin] for origin, reason in offenders.items())
    counts = info.counts["train"]
    assert counts["found"] == counts["written"] + counts["rejected"] and counts["rejected"] == len(offenders)
    assert counts["written"] == 3 * 5 + 1  # the link within the tree is read


def test_a_fifo_in_a_flat_validation_folder_is_named_not_opened(tmp_path: Path, deadline: None) -> None:
    source = tmp_path / "flat"
    shutil.copytree(write_tree(tmp_path / "tree") / "train", source / "train")
    (source / "val").mkdir()
    for name, data in val_images().items():
        (source / "val" / name).write_bytes(data)
    os.mkfifo(source / "val" / "ILSVRC2012_val_00000007.JPEG")
    write_kaggle_labels(source / "LOC_val_solution.csv", val_truth() | {"ILSVRC2012_val_00000007": WNIDS[0]})
    with pytest.raises(OakError, match="val/ILSVRC2012_val_00000007.JPEG: a FIFO, not a regular file"):
        prepare(source, tmp_path / "shards")


def test_a_fifo_swapped_in_after_listing_stops_the_run_without_blocking(tmp_path: Path, deadline: None) -> None:
    os.mkfifo(tmp_path / "swapped.JPEG")
    item = Item("swapped", WNIDS[0], "train/swapped.JPEG", "swapped.JPEG", 0, 1000)
    with pytest.raises(OakError, match="train/swapped.JPEG: no longer a regular file; the source changed"):
        check_item(str(tmp_path), item, Conversion())


@pytest.mark.parametrize(
    "arrange, named",
    [
        (os.mkfifo, "dataset.json: not a regular file"),
        (lambda path: path.write_text("{'name': 'mine'"), r"dataset.json: not JSON \(Expecting"),
        (lambda path: path.write_text("[]"), "dataset.json: expected a JSON object"),
    ],
)
def test_a_dataset_description_that_is_a_fifo_or_no_json_object_is_one_error_before_any_work(
    arrange, named: str, tmp_path: Path, deadline: None
) -> None:
    source = write_tree(tmp_path / "tree")
    arrange(source / "dataset.json")
    with pytest.raises(OakError, match=named):
        prepare(source, tmp_path / "shards")
    assert sorted(os.listdir(tmp_path)) == ["tree"]


def test_fifos_in_place_of_oaks_own_work_files_are_replaced_not_read(tmp_path: Path, deadline: None) -> None:
    source = find_source(write_archives(tmp_path / "imagenet"))
    (tmp_path / "staging" / "work").mkdir(parents=True)
    os.mkfifo(tmp_path / "staging" / "work" / "listing.json")
    assert staged_listing(source, tmp_path / "staging").classes == sorted(WNIDS)
    assert (tmp_path / "staging" / "work" / "listing.json").is_file()
    os.mkfifo(tmp_path / "train-000000.tar")
    ensure_shard((str(source.root), tmp_path / "train-000000.tar", [], Conversion()))
    assert (tmp_path / "train-000000.tar").is_file()


def test_verify_names_a_fifo_in_place_of_a_shard(shards: Path, tmp_path: Path, deadline: None) -> None:
    folder = tmp_path / "shards"
    shutil.copytree(shards, folder)
    first = read_info(folder).splits["val"].filenames[0]
    (folder / first).unlink()
    os.mkfifo(folder / first)
    with pytest.raises(OakError, match=f"{first}: not a regular file"):
        verify_shards(folder)
