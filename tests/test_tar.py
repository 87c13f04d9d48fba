"""Oak's shard tar format: what the writer writes, Oak's reader, tarfile and webdataset all read back the same."""

import hashlib
import io
import itertools
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import webdataset as wds

from oak.data.tar import TarWriter, tar_samples
from oak.errors import OakError

Samples = list[tuple[str, dict[str, bytes]]]

# Names a plain ustar header holds, and those that need a PAX header (over 100 bytes, not ASCII); and empty content.
SAMPLES: Samples = [
    ("n01440764_10026", {"cls": b"0", "jpg": b"\xff\xd8 image bytes \xff\xd9"}),
    ("k" * 120, {"cls": b"1", "jpg": bytes(range(256)) * 5}),
    ("caf\u00e9_\u00fcber", {"cls": b"2", "jpg": b"\xff\xd8 more bytes \xff\xd9"}),
    ("empty", {"cls": b"3", "jpg": b""}),
]


def write(path: Path, samples: Samples) -> str:
    """The samples written to `path` by Oak's writer; returns the sha256 it computed."""
    with open(path, "wb", buffering=0) as file:
        tar = TarWriter(file.fileno())
        for key, members in samples:
            tar.add(key, list(members.items()))
        return tar.finish()


def grouped(members: list[tuple[str, bytes]]) -> Samples:
    """(name, content) members as samples: consecutive members with the same key, as webdataset groups them."""
    by_key = itertools.groupby(members, key=lambda member: member[0].partition(".")[0])
    return [(key, {name.partition(".")[2]: content for name, content in group}) for key, group in by_key]


def read_with_oak(path: Path) -> Samples:
    return tar_samples(str(path), path.read_bytes())


def read_with_tarfile(path: Path) -> Samples:
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        assert {(m.type, m.mtime, m.mode, m.uname, m.gname) for m in members} == {(tarfile.REGTYPE, 0, 0o444, "oak", "oak")}
        return grouped([(member.name, tar.extractfile(member).read()) for member in members])


def read_with_webdataset(path: Path) -> Samples:
    samples = wds.DataPipeline(wds.SimpleShardList([str(path)]), wds.tarfile_to_samples())
    return [(sample["__key__"], {field: value for field, value in sample.items() if not field.startswith("__")}) for sample in samples]


@pytest.mark.parametrize("read", [read_with_oak, read_with_tarfile, read_with_webdataset])
def test_every_reader_reads_back_what_the_writer_wrote(read: Callable[[Path], Samples], tmp_path: Path) -> None:
    shard = tmp_path / "shard.tar"
    digest = write(shard, SAMPLES)
    assert digest == hashlib.sha256(shard.read_bytes()).hexdigest()
    assert read(shard) == SAMPLES


@pytest.mark.parametrize("key", ["n01440764_10026", "k" * 96, "k" * 97, "ünïcode", "x"])
def test_shard_tars_are_the_bytes_tarfile_writes(key: str, tmp_path: Path) -> None:
    """Headers filled into a template: the same bytes as tarfile's, up to and past the 100-byte ustar name."""
    members = [("cls", b"7"), ("jpg", bytes(range(256)) * 5)]
    digest = write(tmp_path / "ours.tar", [(key, dict(members))])
    expected = io.BytesIO()
    with tarfile.open(fileobj=expected, mode="w") as reference:
        for extension, data in members:
            reference.addfile(reference_member(f"{key}.{extension}", len(data)), io.BytesIO(data))
    assert (tmp_path / "ours.tar").read_bytes() == expected.getvalue()
    assert digest == hashlib.sha256(expected.getvalue()).hexdigest()


def reference_member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = size, 0, 0o444, "oak", "oak"
    return info


@pytest.mark.parametrize("form", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_the_reader_reads_long_and_non_ascii_names_as_tarfile_writes_them(form: int, tmp_path: Path) -> None:
    shard = tmp_path / "shard.tar"
    with tarfile.open(shard, "w", format=form) as tar:
        for key, members in SAMPLES:
            for extension, content in members.items():
                member = tarfile.TarInfo(f"{key}.{extension}")
                member.size = len(content)
                tar.addfile(member, io.BytesIO(content))
    assert read_with_oak(shard) == SAMPLES


def test_the_reader_names_a_file_that_is_not_a_tar_or_holds_a_link(tmp_path: Path) -> None:
    with pytest.raises(OakError, match=r"shard\.tar: not a tar shard \(no tar header at byte 0\)"):
        tar_samples("shard.tar", b"not a tar" + bytes(1024))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        link = tarfile.TarInfo("key.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(OakError, match=r"shard\.tar: the member at byte \d+ is not a regular file"):
        tar_samples("shard.tar", buffer.getvalue())
