"""Oak's shard format, written and read: a plain tar of regular files, one sample after another.

A sample is a run of consecutive members named `KEY.EXTENSION` (Oak writes `KEY.cls`, then
`KEY.jpg`); a key holds no dot, since readers (webdataset, timm, this one) split a name at its
first dot. Every member has the same metadata (mtime 0, owner and group oak, mode 0444), so the
bytes depend on the samples alone, and they are the very bytes Python's tarfile writes in its
default PAX format: a 512-byte ustar header, the content padded to whole blocks, and at the end
two zero blocks padded to a whole record. A member a ustar header cannot describe (a name over 100
bytes or not ASCII, or a size of 8 GiB or more) gets a PAX extended header before it, as tarfile
writes one; the reader also takes the GNU long-name form, tarfile's other way to write long names.

Oak writes and reads the format itself, not through tarfile or webdataset, because for one sample
both cost more than the work around them (see TarWriter and `tar_members` for the measures). Any
tar reader can still read the shards: timm and webdataset do, and `oak verify` reads them with
tarfile.
"""

import errno
import hashlib
import os
import tarfile
from collections.abc import Iterator

from oak.errors import OakError

BLOCK = tarfile.BLOCKSIZE  # 512 bytes: headers and padded contents are whole blocks
NAME_FIELD, SIZE_FIELD, CHECKSUM_FIELD = slice(0, 100), slice(124, 136), slice(148, 156)
TYPE_FIELD, MAGIC_FIELD = slice(156, 157), slice(257, 262)


class TarWriter:
    """Writes a tar of fixed-metadata members (mtime 0, owner oak, mode 0444), the very bytes
    Python's tarfile writes for them, hashing the stream on the way: no second read of the shard.

    Headers are filled into a template (1 us; tarfile builds one in 17 us, and a sample has two,
    against ~110 us for reading, hashing and writing its 100 KB image). One write per sample
    (writev: no copy to join the pieces).
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.sha256 = hashlib.sha256()
        self.offset = 0

    def add(self, key: str, members: list[tuple[str, bytes]]) -> None:
        """One sample: a member `key.extension` per (extension, bytes), in the order given."""
        pieces = []
        for extension, data in members:
            pieces += [member_header(f"{key}.{extension}", len(data)), data, bytes(-len(data) % BLOCK)]
        self._write(pieces)

    def finish(self) -> str:
        """Two zero blocks and padding to a whole record, as tarfile ends a tar; returns the sha256."""
        end = self.offset + 2 * BLOCK
        self._write([bytes(2 * BLOCK + -end % tarfile.RECORDSIZE)])
        return self.sha256.hexdigest()

    def _write(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self.sha256.update(piece)
        expected = sum(len(piece) for piece in pieces)
        if os.writev(self.fd, pieces) != expected:  # a regular file takes it all, unless the disk is full
            raise OSError(errno.ENOSPC, "a shard was written short")
        self.offset += expected


def tarfile_header(name: str, size: int) -> bytes:
    """The header Python's tarfile writes for a member with the fixed metadata (PAX format, the default)."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = size, 0, 0o444, "oak", "oak"
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _blank_header() -> bytes:
    """tarfile's header with name and size zeroed and the checksum field as spaces (how it counts itself)."""
    header = bytearray(tarfile_header("", 0))
    header[SIZE_FIELD] = bytes(12)
    header[CHECKSUM_FIELD] = b" " * 8
    return bytes(header)


BLANK_HEADER = _blank_header()
BLANK_CHECKSUM = sum(BLANK_HEADER)  # the checksum is a byte sum: add the name's and size's bytes to it


def member_header(name: str, size: int) -> bytes:
    """`tarfile_header(name, size)`, filled into a template when a plain ustar header holds it."""
    encoded = name.encode()
    if not name.isascii() or len(encoded) > 100 or size >= 8**11:  # needs a pax extended header
        return tarfile_header(name, size)
    size_field = b"%011o\0" % size
    header = bytearray(BLANK_HEADER)
    header[NAME_FIELD] = encoded.ljust(100, b"\0")
    header[SIZE_FIELD] = size_field
    header[CHECKSUM_FIELD] = b"%06o\0 " % (BLANK_CHECKSUM + sum(encoded) + sum(size_field))
    return bytes(header)


def tar_samples(path: str, data: bytes) -> list[tuple[str, dict[str, bytes]]]:
    """The samples of the tar `data` (read from `path`, named in errors), in order: (key, {extension: content})."""
    samples: list[tuple[str, dict[str, bytes]]] = []
    for name, content in tar_members(path, data):
        key, _, extension = name.partition(".")
        if not samples or samples[-1][0] != key:
            samples.append((key, {}))
        samples[-1][1][extension] = content
    return samples


def tar_members(path: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    """(name, content) of each file, with the long or non-ASCII names tar keeps in a PAX or GNU header before it.

    Read here rather than with webdataset's tarfile-based reader, which costs more per sample
    than decoding a small JPEG: Oak's shards are plain tar files of regular members.
    """
    offset, long_name = 0, None
    while offset + BLOCK <= len(data) and data[offset] != 0:  # two zero blocks end the archive
        header = data[offset : offset + BLOCK]
        if header[MAGIC_FIELD] != b"ustar":
            raise OakError(f"{path}: not a tar shard (no tar header at byte {offset}); check the shards with `oak verify`")
        kind = header[TYPE_FIELD]
        size = int(header[SIZE_FIELD].split(b"\0", 1)[0].strip() or b"0", 8)
        start = offset + BLOCK
        content = data[start : start + size]
        offset = start + -(-size // BLOCK) * BLOCK
        if kind == b"x":
            long_name = _pax_path(content) or long_name
        elif kind == b"L":
            long_name = content.rstrip(b"\0").decode()
        elif kind in (b"0", b"\0"):
            yield long_name or header[NAME_FIELD].split(b"\0", 1)[0].decode(), content
            long_name = None
        else:
            raise OakError(f"{path}: the member at byte {offset} is not a regular file; re-create the shards with `oak prepare`")


def _pax_path(records: bytes) -> str | None:
    """The `path` of a PAX extended header: records of "<length> <key>=<value>\\n"."""
    position = 0
    while position < len(records):
        length = int(records[position : records.index(b" ", position)])
        key, _, value = records[records.index(b" ", position) + 1 : position + length - 1].partition(b"=")
        if key == b"path":
            return value.decode()
        position += length
    return None
