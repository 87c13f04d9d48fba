"""Outputs written whole or not at all, and files read back with one error line naming a damaged one."""

import re
from pathlib import Path

import pytest

import oak.files
from oak.errors import OakError
from oak.files import STAGING_MARK, STAGING_SUFFIX, read_json, replace_folder

PREVIOUS = {"README.md": b"the previous index", "tables/table1.md": b"the previous table", "tables/gone.md": b"a study since removed"}
NEW = {"README.md": b"the new index", "tables/table1.md": b"the new table", "figures/curves.png": b"\x89PNG"}
UNWRITABLE = object()  # its writing fails midway through the new folder, as a kill or a full disk would


def write_folder(folder: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)


def files_in(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def under(folder: Path, files: dict[str, object]) -> dict[Path, object]:
    return {folder / name: content for name, content in files.items()}


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    folder = tmp_path / "reports"
    write_folder(folder, PREVIOUS)
    return folder


@pytest.mark.parametrize("swap", ["in one step", "by two renames"])  # where the file system cannot swap two folders at once
def test_a_folder_is_replaced_whole_and_nothing_is_left_beside_it(swap: str, reports: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if swap == "by two renames":
        monkeypatch.setattr(oak.files, "_exchange", lambda a, b: False)
    replace_folder(reports, under(reports, NEW))
    assert files_in(reports) == NEW  # the removed study's table is gone with the previous report
    assert list(reports.parent.iterdir()) == [reports]


def test_a_replacement_stopped_while_writing_leaves_the_previous_folder_whole_and_the_next_one_cleans_up(reports: Path) -> None:
    with pytest.raises(TypeError):
        replace_folder(reports, under(reports, {"README.md": b"the new index", "tables/table1.md": UNWRITABLE}))
    assert files_in(reports) == PREVIOUS  # not a mix of both, no partial file
    replace_folder(reports, under(reports, NEW))
    assert files_in(reports) == NEW and list(reports.parent.iterdir()) == [reports]


def test_a_replacement_killed_between_its_two_renames_has_the_previous_folder_put_back_by_the_next_run(tmp_path: Path) -> None:
    reports, staging = tmp_path / "reports", tmp_path / f"reports{STAGING_SUFFIX}"
    write_folder(staging / "previous", PREVIOUS)  # the folder moved aside, the new one not yet in its place
    (staging / STAGING_MARK).touch()
    with pytest.raises(TypeError):
        replace_folder(reports, under(reports, {"README.md": UNWRITABLE, "tables/table1.md": b"the new table"}))
    assert files_in(reports) == PREVIOUS


def test_a_folder_holding_a_file_the_command_does_not_write_is_refused_before_any_change(reports: Path) -> None:
    (reports / "notes.txt").write_text("mine")
    message = f"{reports / 'notes.txt'}: not a file this command writes; move it out of {reports}, which it replaces whole"
    with pytest.raises(OakError, match=f"^{re.escape(message)}$"):
        replace_folder(reports, under(reports, NEW))
    assert files_in(reports) == PREVIOUS | {"notes.txt": b"mine"} and list(reports.parent.iterdir()) == [reports]


def test_a_staging_folder_oak_did_not_make_is_refused_and_left_alone(reports: Path) -> None:
    staging = reports.with_name(f"reports{STAGING_SUFFIX}")
    staging.mkdir()
    (staging / "draft.md").write_text("someone's")
    with pytest.raises(OakError, match=f"^{re.escape(str(staging))}: not a staging folder Oak made"):
        replace_folder(reports, under(reports, NEW))
    assert (staging / "draft.md").read_text() == "someone's" and files_in(reports) == PREVIOUS


@pytest.mark.parametrize("content", [b'{"top1": 0.5, "to', b"", b'{"top1": 0.5}\xff'])
def test_a_json_file_cut_short_or_damaged_is_one_error_naming_it_and_what_writes_it_again(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "top1.json"
    path.write_bytes(content)
    with pytest.raises(OakError, match=rf"^{re.escape(str(path))}: not valid JSON, cut short or damaged \(.*\); run it again$") as error:
        read_json(path, "run it again")
    assert "\n" not in str(error.value)
