"""Facts about ImageNet-1k that every part of Oak shares."""

import re
from functools import cache

WNID_PATTERN = re.compile(r"n\d{8}")


@cache
def _sorted_wnids() -> list[str]:
    from timm.data import ImageNetInfo  # imports torch: only for the code that asks for the class list

    return list(ImageNetInfo("imagenet-1k").label_names())


def __getattr__(name: str) -> list[str]:
    # IMAGENET_1K_WNIDS: the sorted WordNet IDs; a class's index in ImageNet-1k is its position
    # here (n01440764 is 0), the order pretrained weights expect. Loaded on first use, so that
    # `oak prepare` and its workers start without torch.
    if name == "IMAGENET_1K_WNIDS":
        return _sorted_wnids()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
