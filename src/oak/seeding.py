"""Random streams keyed by position, so that a resumed training draws exactly what an uninterrupted one would.

Lightning's checkpoint restores the weights, optimizer, scheduler and loop counters, not the random
generators; and a resumed epoch skips the batches it had trained, so generators left running would
give every later sample another crop and every later step another dropout mask. Oak seeds instead,
from the run's seed and the position: each training sample's augmentation (in the loader's worker)
and each training batch's dropout, stochastic depth, mixup and cutmix (in the LightningModule).
"""

import hashlib
import random

import numpy as np
import torch


def seed_for(*key: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "little")


def seed_cpu_generators(*key: object) -> None:
    """Python's, NumPy's and PyTorch's CPU generators (what timm's augmentations and mixup draw from)."""
    seed = seed_for(*key)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.random.default_generator.manual_seed(seed)


def seed_every_generator(*key: object) -> None:
    """The CPU generators and every GPU's (dropout and stochastic depth draw on the device)."""
    seed_cpu_generators(*key)
    torch.manual_seed(seed_for(*key))
