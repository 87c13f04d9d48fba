"""Shared fixtures: a tiny demo tree and its shards, built once per test session by Oak itself."""

from pathlib import Path

import pytest

from oak.preparing.demo import write_demo
from oak.preparing.shards import prepare_shards

TINY_DEMO = dict(classes=4, train_per_class=10, val_per_class=5, image_size=40, seed=0)


@pytest.fixture(scope="session")
def demo_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "tree"
    write_demo(out, **TINY_DEMO)
    return out


@pytest.fixture(scope="session")
def shards(demo_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "shards"
    prepare_shards(demo_tree, out, samples_per_shard=16, seed=0)
    return out
