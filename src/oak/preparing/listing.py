"""A source's listing: every candidate sample and every problem its names reveal, before any image is read.

`oak.preparing.sources` makes a listing from a source; `oak prepare` keeps it (as JSON, in its staging
folder) when making it meant reading an archive, restricts it to a class subset, then checks the
images it lists.
"""

import json
from dataclasses import asdict, dataclass, field

from oak.errors import OakError


@dataclass(frozen=True, slots=True)
class Item:
    """One candidate sample: its key, class, a name for messages, and where its bytes lie."""

    key: str  # the file name without suffix, dots replaced: webdataset splits keys at the first dot
    wnid: str
    origin: str  # a path relative to the source, or `archive.tar:member`
    file: str  # relative to the source: moving the source keeps resumable work valid
    offset: int
    size: int


@dataclass(frozen=True)
class Problem:
    split: str
    origin: str
    reason: str
    wnid: str | None  # the class it belongs to, when known: a class subset leaves others' problems out
    is_file: bool  # a file that was found (counted in found = written + rejected), else a folder or a label


@dataclass
class Listing:
    classes: list[str]  # every class with a training folder or archive, sorted
    items: dict[str, list[Item]]
    problems: list[Problem]
    archive_md5: dict[str, str] = field(default_factory=dict)
    left_by_os: list[tuple[str, str]] = field(default_factory=list)  # (split, origin) of files skipped as OS litter

    def found(self, split: str) -> int:
        return len(self.items[split]) + sum(1 for p in self.problems if p.split == split and p.is_file)

    def to_json(self) -> str:
        return json.dumps(
            {
                "classes": self.classes,
                "items": {split: [list(asdict(item).values()) for item in items] for split, items in self.items.items()},
                "problems": [asdict(p) for p in self.problems],
                "archive_md5": self.archive_md5,
                "left_by_os": self.left_by_os,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "Listing":
        data = json.loads(text)
        items = {split: [Item(*values) for values in rows] for split, rows in data["items"].items()}
        left = [tuple(pair) for pair in data.get("left_by_os", [])]  # absent from listings cached before it was kept
        return cls(data["classes"], items, [Problem(**p) for p in data["problems"]], data["archive_md5"], left)


def select_classes(listing: Listing, wanted: int | list[str] | None) -> Listing:
    """The listing restricted to a class subset: a count (spread evenly over the sorted classes)
    or a list of WordNet IDs. Other classes' samples and problems are left out, unseen."""
    if wanted is None:
        return listing
    classes = listing.classes
    if isinstance(wanted, int):
        if not 1 <= wanted <= len(classes):
            raise OakError(f"prepare.classes={wanted}: the source has {len(classes)} classes")
        chosen = [classes[i * len(classes) // wanted] for i in range(wanted)]
    else:
        unknown = [w for w in wanted if w not in classes]
        if unknown or len(set(wanted)) != len(wanted):
            what = f"not classes of the source: {', '.join(map(str, unknown))}" if unknown else "a class is listed twice"
            raise OakError(f"prepare.classes: {what}")
        chosen = sorted(wanted)
    keep = set(chosen)
    return Listing(
        chosen,
        {split: [item for item in items if item.wnid in keep] for split, items in listing.items.items()},
        [p for p in listing.problems if p.wnid is None or p.wnid in keep],
        listing.archive_md5,
        listing.left_by_os,
    )
