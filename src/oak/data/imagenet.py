"""Facts about ImageNet-1k that every part of Oak shares."""

import re

from timm.data import ImageNetInfo

# Sorted WordNet IDs: a class's index in ImageNet-1k is its position here (n01440764 is 0),
# which is the order pretrained weights expect.
IMAGENET_1K_WNIDS: list[str] = list(ImageNetInfo("imagenet-1k").label_names())

WNID_PATTERN = re.compile(r"n\d{8}")
