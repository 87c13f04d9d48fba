"""`oak prepare` replaces only the output it wrote: a folder Oak did not write, at OUT or at its staging
folder OUT.tmp, and an OUT that is or holds the source or the current folder are refused before any work."""

import os
import re
import shutil
from pathlib import Path

import pytest
from imagenet_fixtures import write_tree
from params_files import PARAMS

from oak.cli import main
from oak.errors import OakError
from oak.preparing.shards import prepare_shards


def prepare(source: Path, out: Path, **settings):
    return prepare_shards(source, out, **{"samples_per_shard": 4, "seed": 0, **settings})


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` and a file's bytes: what must be left as it was."""
    return {str(path.relative_to(folder)): None if path.is_dir() else path.read_bytes() for path in sorted(folder.rglob("*"))}


def thesis(folder: Path) -> None:
    folder.mkdir()
    (folder / "thesis.txt").write_text("four years of work")
    (folder / "chapters").mkdir()
    (folder / "chapters" / "one.tex").write_text("\\chapter{One}")


def shards_and_a_thesis(folder: Path) -> None:
    prepare(write_tree(folder.parent / "other-tree"), folder)
    (folder / "thesis.txt").write_text("four years of work")


@pytest.mark.parametrize(
    "arrange, named",
    [
        (thesis, "not a shard folder of `oak prepare` (it has no _info.json that reads as Oak's)"),
        (shards_and_a_thesis, "holds 'thesis.txt', which Oak does not write there"),
        (lambda folder: folder.write_text("a file"), "exists and is a file or a link, not a folder"),
    ],
)
def test_an_output_folder_oak_did_not_write_is_refused_before_any_work_and_left_as_it_was(arrange, named: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    arrange(out)
    before = snapshot(tmp_path)
    with pytest.raises(OakError, match=re.escape(named)):
        prepare(write_tree(tmp_path / "tree"), out)
    shutil.rmtree(tmp_path / "tree")
    assert snapshot(tmp_path) == before  # no staging folder either


@pytest.mark.parametrize(
    "arrange, named",
    [
        (thesis, "holds '(thesis.txt|chapters/)', which Oak does not write there"),
        (lambda staging: (thesis(staging), (staging / "fingerprint").write_text("0" * 64)), "holds '(thesis.txt|chapters/)'"),
    ],
)
def test_a_staging_folder_oak_did_not_write_is_refused_and_left_as_it_was(arrange, named: str, tmp_path: Path) -> None:
    arrange(tmp_path / "out.tmp")
    before = snapshot(tmp_path / "out.tmp")
    with pytest.raises(OakError, match=f"out.tmp: {named}"):
        prepare(write_tree(tmp_path / "tree"), tmp_path / "out")
    assert snapshot(tmp_path / "out.tmp") == before
    assert not (tmp_path / "out").exists()


def test_a_shard_folder_oak_wrote_is_replaced_whole(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "tree")
    prepare(source, tmp_path / "out", samples_per_shard=2)
    prepare(source, tmp_path / "out", samples_per_shard=4)
    prepare(source, tmp_path / "again", samples_per_shard=4)
    assert snapshot(tmp_path / "out") == snapshot(tmp_path / "again")  # no shard of the first run left behind
    assert not (tmp_path / "out.tmp").exists()


@pytest.mark.parametrize("out", ["tree", ".", "..", "tree/.."])
def test_an_output_that_is_or_holds_the_source_or_the_current_folder_is_refused(
    out: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    source = write_tree(tmp_path / "work" / "tree")
    before = snapshot(tmp_path)
    with pytest.raises(OakError, match=r"is or contains (the source|the current folder)"):
        prepare(source, Path(out))
    assert snapshot(tmp_path) == before


def test_oak_prepare_out_dot_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    source = write_tree(tmp_path / "tree")
    (tmp_path / "repository").mkdir()
    monkeypatch.chdir(tmp_path / "repository")
    assert main(["--params", str(PARAMS), "prepare", "--source", str(source), "--out", "."]) == 2
    error = capsys.readouterr().err
    assert error.startswith("oak prepare: error: .: is or contains the current folder") and error.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["repository", "tree"] and not os.listdir(tmp_path / "repository")
