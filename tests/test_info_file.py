"""A shard folder's `_info.json` that is cut short or not as `oak prepare` writes it is one error naming it."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from params_files import PARAMS

from oak.cli import main
from oak.data.info import read_info
from oak.errors import OakError
from oak.layout import SHARD_INFO_FILE


def cut_short(text: str) -> str:
    return text[: len(text) // 2]


def edited(change: Callable[[dict], object]) -> Callable[[str], str]:
    def apply(text: str) -> str:
        info = json.loads(text)
        change(info)
        return json.dumps(info)

    return apply


@pytest.mark.parametrize(
    "damage, named",
    [
        (cut_short, r"not a shard info file as `oak prepare` writes it \(Expecting"),
        (edited(lambda info: info.pop("splits")), "the file has no 'splits'"),
        (edited(lambda info: info["splits"].pop("val")), r"splits are \['train'\]"),
        (
            edited(lambda info: info["splits"]["train"]["sha256"].pop()),
            "splits.train: filenames, shard_lengths and sha256 differ in length",
        ),
        (
            edited(lambda info: info["splits"]["val"]["filenames"].__setitem__(0, "../../etc.tar")),
            "splits.val: '../../etc.tar' is not a shard name",
        ),
        (edited(lambda info: info.update(classes="n01440764")), "'classes' is not a list"),
        (lambda text: "[]", "the file is not a JSON object"),
    ],
)
def test_an_info_file_cut_short_or_not_oaks_is_one_error_naming_it(damage, named: str, shards: Path, tmp_path: Path) -> None:
    folder = tmp_path / "shards"
    shutil.copytree(shards, folder)
    path = folder / SHARD_INFO_FILE
    path.write_text(damage(path.read_text()))
    with pytest.raises(OakError, match=f"^{path}: .*{named}"):
        read_info(folder)


def test_oak_verify_on_a_truncated_info_file_is_one_error_line(shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "shards"
    shutil.copytree(shards, folder)
    (folder / SHARD_INFO_FILE).write_text((shards / SHARD_INFO_FILE).read_text()[:100])
    assert main(["--params", str(PARAMS), "verify", str(folder)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"oak verify: error: {folder / SHARD_INFO_FILE}: not a shard info file") and error.count("\n") == 1
