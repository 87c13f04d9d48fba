"""The official ILSVRC-2012 archives and label files, read as streams: nothing is extracted.

Indexing an archive reads it once, front to back, computing its MD5 on the way, and records
where each image's bytes lie inside it (offset, size); the images are later read from there.
Member names are only ever parsed, never used as paths on disk, so a member with an absolute
path, `..` or a link cannot reach the file system.
"""

import csv
import hashlib
import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from oak.data.imagenet import WNID_PATTERN
from oak.errors import OakError

TRAIN_ARCHIVE = "ILSVRC2012_img_train.tar"
VAL_ARCHIVE = "ILSVRC2012_img_val.tar"
DEVKIT = "ILSVRC2012_devkit_t12.tar.gz"
KAGGLE_LABELS = "LOC_val_solution.csv"

# The official sums, as torchvision's datasets/imagenet.py pins them.
OFFICIAL_MD5 = {
    TRAIN_ARCHIVE: "1d675b47d978889d74fa0da5fadfb00e",
    VAL_ARCHIVE: "29b22e2961454d5413ddabcf34fc5622",
    DEVKIT: "fa75699e90414af021442c21a62c3abf",
}

READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    """A regular file inside an archive: its name there and where its bytes lie in the archive file."""

    name: str
    offset: int
    size: int


@dataclass(frozen=True)
class BadMember:
    name: str
    reason: str


class HashingReader(io.RawIOBase):
    """A read-only stream that feeds every byte it hands out to an MD5, and reports progress."""

    def __init__(self, stream: io.BufferedIOBase, progress: Callable[[int], object] = lambda n: None) -> None:
        self.stream = stream
        self.md5 = hashlib.md5()
        self.progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self.stream.readinto(buffer)
        self.md5.update(memoryview(buffer)[:count])
        self.progress(count)
        return count

    def drain(self) -> str:
        """Read what is left (a tar's zero padding after its end marker) and return the MD5."""
        while self.read(READ_CHUNK):
            pass
        return self.md5.hexdigest()


def unsafe_reason(member: tarfile.TarInfo) -> str | None:
    """Why a member is not a plain file name that Oak would read, or None when it is."""
    if member.issym() or member.islnk():
        return f"link to {member.linkname!r}: links are not followed"
    if not member.isfile():
        return "not a regular file"
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or len(path.parts) != 1:
        return "not a plain file name (absolute path, '..' or a folder): not read"
    return None


def index_train_archive(path: Path, progress: Callable[[int], object]) -> tuple[dict[str, list[Member]], list[BadMember], str]:
    """The members of each class's inner tar, keyed by WordNet ID; the bad members; the MD5.

    `ILSVRC2012_img_train.tar` holds one tar per class (`n01440764.tar`), each holding that
    class's JPEGs. Both levels are read in stream mode, so the archive is read exactly once.
    """
    classes: dict[str, list[Member]] = {}
    bad: list[BadMember] = []
    with open(path, "rb") as raw:
        reader = HashingReader(raw, progress)
        with tarfile.open(fileobj=reader, mode="r|") as outer:
            for class_member in outer:
                reason = unsafe_reason(class_member)
                wnid = class_member.name.removesuffix(".tar")
                if reason is None and not (class_member.name.endswith(".tar") and WNID_PATTERN.fullmatch(wnid)):
                    reason = "not a class archive (expected <WordNet ID>.tar)"
                elif reason is None and wnid in classes:
                    reason = "a second archive for this class"
                if reason:
                    bad.append(BadMember(class_member.name, reason))
                    continue
                classes[wnid] = _index_inner(outer, class_member, bad)
        md5 = reader.drain()
    return classes, bad, md5


def _index_inner(outer: tarfile.TarFile, class_member: tarfile.TarInfo, bad: list[BadMember]) -> list[Member]:
    members = []
    try:
        with tarfile.open(fileobj=outer.extractfile(class_member), mode="r|") as inner:
            for member in inner:
                name = f"{class_member.name}/{member.name}"
                reason = unsafe_reason(member)
                if reason:
                    bad.append(BadMember(name, reason))
                else:
                    members.append(Member(name, class_member.offset_data + member.offset_data, member.size))
    except tarfile.TarError as error:
        bad.append(BadMember(class_member.name, f"not a readable tar ({error})"))
    return members


def index_flat_archive(path: Path, progress: Callable[[int], object]) -> tuple[list[Member], list[BadMember], str]:
    """The members of a flat tar (`ILSVRC2012_img_val.tar`), the bad members, and the MD5."""
    members, bad = [], []
    with open(path, "rb") as raw:
        reader = HashingReader(raw, progress)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    reason = unsafe_reason(member)
                    if reason:
                        bad.append(BadMember(member.name, reason))
                    else:
                        members.append(Member(member.name, member.offset_data, member.size))
        except tarfile.TarError as error:
            raise OakError(f"{path}: not a readable tar ({error}); download it again") from None
        md5 = reader.drain()
    return members, bad, md5


def file_md5(path: Path) -> str:
    md5 = hashlib.md5()
    with open(path, "rb") as stream:
        while chunk := stream.read(READ_CHUNK):
            md5.update(chunk)
    return md5.hexdigest()


def read_devkit_labels(path: Path) -> dict[str, str]:
    """Validation image name (`ILSVRC2012_val_00000001`) -> WordNet ID, from the devkit.

    `data/ILSVRC2012_validation_ground_truth.txt` gives, line by line for images 1..50000, an
    ILSVRC2012_ID; `data/meta.mat` maps those IDs to WordNet IDs. The IDs do not follow the
    sorted WordNet-ID order, so they must go through meta.mat.
    """
    from scipy.io import loadmat  # MAT v5 parsing only: no code in the file is run

    try:
        with tarfile.open(path, mode="r:gz") as tar:
            files = {PurePosixPath(m.name).name: m for m in tar.getmembers() if m.isfile() and PurePosixPath(m.name).parent.name == "data"}
            missing = [name for name in ("meta.mat", "ILSVRC2012_validation_ground_truth.txt") if name not in files]
            if missing:
                raise OakError(f"{path}: {', '.join('data/' + m for m in missing)} not found; is this the ILSVRC2012 devkit (task 1 & 2)?")
            meta = tar.extractfile(files["meta.mat"]).read()
            truth = tar.extractfile(files["ILSVRC2012_validation_ground_truth.txt"]).read().decode()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise OakError(f"{path}: not a readable .tar.gz ({error}); download it again") from None
    synsets = loadmat(io.BytesIO(meta), squeeze_me=True)["synsets"]
    # Leaf synsets (no children) are the 1000 classes; the rest are WordNet's inner nodes.
    wnid_of_id = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
    labels = {}
    for number, line in enumerate(truth.split(), start=1):
        if int(line) not in wnid_of_id:
            raise OakError(f"{path}: ground truth line {number}: ILSVRC2012_ID {line} is not a class in meta.mat")
        labels[f"ILSVRC2012_val_{number:08d}"] = wnid_of_id[int(line)]
    return labels


def read_kaggle_labels(path: Path) -> dict[str, str]:
    """Validation image name -> WordNet ID, from Kaggle's `LOC_val_solution.csv`.

    Each row is `ImageId,PredictionString`; the string lists boxes as `wnid x0 y0 x1 y1 ...`, all
    of the image's class, so its first word is the label.
    """
    labels = {}
    with open(path, newline="") as stream:
        rows = csv.DictReader(stream)
        if rows.fieldnames is None or not {"ImageId", "PredictionString"} <= set(rows.fieldnames):
            raise OakError(f"{path}: expected the columns ImageId,PredictionString (Kaggle's LOC_val_solution.csv)")
        for line, row in enumerate(rows, start=2):
            words = (row["PredictionString"] or "").split()
            if not words or not WNID_PATTERN.fullmatch(words[0]):
                raise OakError(f"{path}: line {line}: {row['PredictionString']!r} does not start with a WordNet ID")
            if row["ImageId"] in labels:
                raise OakError(f"{path}: line {line}: {row['ImageId']} is labelled twice")
            labels[row["ImageId"]] = words[0]
    return labels
