"""ImageNet-sized synthetic JPEGs, for what must pay a real image's decoding cost: `oak smoke` and
`oak bench throughput`. Smooth colour fields at 500x375 (ImageNet's most common size), about 20 KB
each at quality 90: ImageNet's average JPEG (about 110 KB) costs somewhat more to decode."""

import io
from pathlib import Path

import numpy as np
from PIL import Image

from oak.data.imagenet import IMAGENET_1K_WNIDS
from oak.preparing.shards import prepare_shards

SIZE = (500, 375)


def fullsize_jpeg(rng: np.random.Generator) -> bytes:
    pixels = rng.integers(0, 256, size=(SIZE[1] // 25, SIZE[0] // 25, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).resize(SIZE, Image.BILINEAR).save(out, "JPEG", quality=90)
    return out.getvalue()


def fullsize_shards(folder: Path, *, train: dict[int, int], val: dict[int, int], samples_per_shard: int) -> Path:
    """Shards at `folder/shards` of a tree at `folder/tree`: `train` and `val` map a class index (of
    ImageNet's 1000 WordNet IDs) to its number of images."""
    rng = np.random.default_rng(0)
    for split, counts in (("train", train), ("val", val)):
        for index, count in counts.items():
            wnid = IMAGENET_1K_WNIDS[index]
            (folder / "tree" / split / wnid).mkdir(parents=True, exist_ok=True)
            for number in range(count):
                (folder / "tree" / split / wnid / f"{wnid}_{split}_{number}.JPEG").write_bytes(fullsize_jpeg(rng))
    prepare_shards(folder / "tree", folder / "shards", samples_per_shard=samples_per_shard, seed=0)
    return folder / "shards"
