"""Studies to runs: what `oak plan` writes for dvc.yaml, and the errors a wrong study file gets."""

from pathlib import Path

import pytest
from params_files import params_file

from oak.cli import main
from oak.config.load import planned_profile
from oak.errors import OakError
from oak.studies.plan import PLAN_FILE, Run, check_settings, current_runs, plan_rows, plan_runs, render_plan, run_config
from oak.studies.study import load_studies

REPO = Path(__file__).resolve().parents[1]
STUDIES = load_studies(REPO / "pipelines" / "studies")


def studies_in(tmp_path: Path, **files: str) -> Path:
    """A pipelines/ folder holding the given studies and a `demo` recipe."""
    (tmp_path / "pipelines" / "recipes").mkdir(parents=True)
    (tmp_path / "pipelines" / "recipes" / "demo.yaml").write_text("train:\n  epochs: 1\n")
    folder = tmp_path / "pipelines" / "studies"
    folder.mkdir()
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text)
    return folder


STUDY = """title: A study
source: a source
metric: top1
profiles: {demo: {recipe: demo}}
rows:
"""


def test_the_committed_plan_is_what_the_studies_say() -> None:
    profile = planned_profile(REPO / PLAN_FILE)
    assert (REPO / PLAN_FILE).read_text() == render_plan(STUDIES, profile), "run `oak plan` and commit pipelines/plan.yaml"


def test_rows_asking_for_the_same_run_share_it() -> None:
    rows = plan_rows(STUDIES, "imagenet")
    assert rows["table5/EfficientNet-B3"] == rows["table6/EfficientNet-B3"]
    assert rows["table6/EfficientNet-B3"].settings == ("train.drop_rate=0.3", "train.image_size=300")
    assert rows["table2/Inception-ResNet-v2"] is not rows["table1/ResNet-18"]
    assert rows["fig9_single_dimension/EfficientNet-B0"] == rows["table5/EfficientNet-B0"]
    # the end of Fig. 3/6's chain is its "+ training methods" run
    assert rows["fig3_training_methods/ResNet-200 + lower weight decay (all training methods)"].name == "resnet200-rs-training"
    # Fig. 5's ResNet-RS-200 and -420 are Fig. 3's and Table 6's runs
    assert rows["fig5_resnet_rs/ResNet-RS-200-256"] == rows["fig3_training_methods/ResNet-RS-200 (+ SE and ResNet-D)"]
    assert rows["fig5_resnet_rs/ResNet-RS-420-320"] == rows["table6/ResNet-RS"]
    # B3 serves three studies; Inception-ResNet-v2, B0, RS-200 and RS-420 two each
    assert len(plan_runs(STUDIES, "imagenet")) == len(rows) - 6


def test_every_row_of_the_imagenet_profile_trains_its_own_model_with_a_paper_recipe() -> None:
    for key, run in plan_rows(STUDIES, "imagenet").items():
        assert isinstance(run, Run), key
        assert run.recipe != "demo", key


def test_the_demo_profile_names_its_stand_ins_and_why_rows_have_no_run() -> None:
    rows = plan_rows(STUDIES, "demo")
    assert rows["table6/ResNet-RS"].model == "resnetrs50"
    assert rows["table2/Inception-v4"] == rows["table2/Inception-v3"]
    assert "imagenet profile only" in rows["table6/EfficientNet-B7"]
    assert all(run.recipe == "demo" for run in rows.values() if isinstance(run, Run))


def test_a_variant_names_a_second_run_of_one_model(tmp_path: Path) -> None:
    folder = studies_in(
        tmp_path,
        ablation=STUDY
        + "  - {label: baseline, model: resnet18, paper: 79.0}\n"
        + "  - {label: + label smoothing, model: resnet18, paper: 80.4, variant: ls,\n"
        + "     profiles: {demo: {settings: {train: {label_smoothing: 0.1}}}}}\n",
    )
    runs = plan_runs(load_studies(folder), "demo")
    assert set(runs) == {"resnet18", "resnet18-ls"}
    assert runs["resnet18-ls"].args() == "recipe=demo train.label_smoothing=0.1"


def test_a_profile_may_give_a_row_its_own_variant(tmp_path: Path) -> None:
    # Fig. 9's shape: B0 at twice the base resolution is another study's B0 run at demo scale, and a run of its own at ImageNet scale.
    folder = studies_in(
        tmp_path,
        table=STUDY + "  - {label: B0, model: efficientnet_b0, paper: 76.3}\n",
        figure=STUDY.replace("rows:", "scaling: Fig. 9\nrows:")
        + "  - {label: B0, model: efficientnet_b0, series: [resolution],\n"
        + "     profiles: {demo: {variant: 32px, settings: {train: {image_size: 32}}}}}\n"
        + "  - {label: B0 resolution x2, model: efficientnet_b0, series: [resolution], profiles: {imagenet: {variant: 448px}}}\n",
    )
    rows = plan_rows(load_studies(folder), "demo")
    assert rows["figure/B0"].name == "efficientnet_b0-32px" and rows["figure/B0"].settings == ("train.image_size=32",)
    assert rows["figure/B0 resolution x2"] == rows["table/B0"]


@pytest.mark.parametrize("differently", ["{settings: {train: {lr: 0.1}}}", "{seeds: 2}"])
def test_two_rows_training_one_model_differently_under_one_name_is_an_error(tmp_path: Path, differently: str) -> None:
    folder = studies_in(
        tmp_path,
        a=STUDY + "  - {label: A, model: resnet18, paper: 1}\n",
        b=STUDY + f"  - {{label: B, model: resnet18, paper: 2, profiles: {{demo: {differently}}}}}\n",
    )
    expected = r"run 'resnet18': rows 'a/A' and 'b/B' train it differently; give one of them a `variant`, or the same recipe, settings and"
    expected += " seeds"
    with pytest.raises(OakError, match=expected):
        plan_runs(load_studies(folder), "demo")


def test_a_profile_with_seeds_trains_each_row_once_per_seed_and_the_row_keeps_one_run(tmp_path: Path) -> None:
    folder = studies_in(
        tmp_path,
        repeated=STUDY.replace("{recipe: demo}", "{recipe: demo, seeds: 3}")
        + "  - {label: A, model: resnet18, paper: 1}\n"
        + "  - {label: B, model: resnet34, paper: 2, profiles: {demo: {seeds: 1}}}\n",
    )
    studies = load_studies(folder)
    rows = plan_rows(studies, "demo")
    assert rows["repeated/A"].seeds == 3 and rows["repeated/B"].seeds == 1
    runs = plan_runs(studies, "demo")
    assert sorted(runs) == ["resnet18-seed0", "resnet18-seed1", "resnet18-seed2", "resnet34"]
    assert runs["resnet18-seed2"].args() == "recipe=demo seed=2"
    assert run_config(params_file(tmp_path), runs["resnet18-seed2"]).seed == 2
    plan = render_plan(studies, "demo")
    assert "  resnet18-seed1:\n    model: resnet18\n    recipe: demo\n    args: recipe=demo seed=1\n    rows:\n    - repeated/A\n" in plan


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("{label: A, model: resnet18, paper: 1, profiles: {demo: {seeds: 0}}}", r"row 'A': demo: seeds=0: a row trains at least once"),
        ("{label: A, model: resnet18, paper: 1, profiles: {published: {seeds: 2}}}", r"row 'A': published: seeds: released weights"),
        ("{label: A, model: resnet18, paper: 1, profiles: {demo: {recipe: nope}}}", r"row 'A': demo: recipe 'nope' has no file"),
        ("{label: A, model: resnet18, paper: 1, profiles: {demo: {stand_in: resnet1}}}", r"row 'A': demo: stand-in: unknown model"),
        (
            "{label: A, model: resnet18, paper: 1, profiles: {demo: {settings: {train: {epoch: 1}}}}}",
            r"row 'A': demo: settings: unknown key 'train.epoch'",
        ),
        ("{label: A, model: resnet18, paper: 1, profiles: {cluster: {recipe: demo}}}", r"row 'A': profile 'cluster' is not one of"),
        (
            "{label: A, model: resnet18, paper: 1, profiles: {demo: {settings: {train: {epochs: many}}}}}",
            r"row 'A': demo: settings: key 'train.epochs': Value 'many'",
        ),
        ("{label: A, model: resnet18, paper: 1, variant: Label Smoothing}", r"row 'A': variant 'Label Smoothing': use lower-case"),
        ("{label: A, model: resnet18, paper: 1, profiles: {demo: {recipe: demo, seed: 1}}}", r"unknown key 'profiles.demo.seed'"),
        ("{label: A, model: resnet18, profiles: {demo: {variant: 32 px}}}", r"row 'A': demo: variant '32 px': use lower-case"),
        ("{label: A, model: resnet18, series: [depth]}", r"row 'A': `series` without a figure to draw"),
        (
            "{label: A, model: resnet18, profiles: {demo: {settings: {paths: {checkpoints: /elsewhere}}}}}",
            r"row 'A': demo: settings may set only cluster, evaluate, train, trainer; paths belong",
        ),
        (
            "{label: A, model: resnet18, profiles: {demo: {settings: {tracking: {uri: 'http://elsewhere'}}}}}",
            r"row 'A': demo: settings may set only .*; tracking belong",
        ),
    ],
)
def test_a_wrong_study_names_the_file_and_row(tmp_path: Path, row: str, message: str) -> None:
    folder = studies_in(tmp_path, bad=STUDY + f"  - {row}\n")
    with pytest.raises(OakError, match=r"bad.yaml: .*" + message):
        load_studies(folder)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (STUDY + "  - {label: A, model: resnet18\n", r"bad.yaml: not valid YAML at line 7 \(.*\); fix the syntax"),
        (STUDY + "  - !!python/object/apply:os.system [echo]\n", r"bad.yaml: not valid YAML at line 6 \(could not determine a constructor"),
    ],
)
def test_a_study_file_that_is_not_yaml_or_builds_objects_is_one_line_naming_it(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(OakError, match=message) as refused:
        load_studies(studies_in(tmp_path, bad=text))
    assert "\n" not in str(refused.value)


def test_two_rows_of_one_label_stop_the_plan_naming_the_file_and_label(tmp_path: Path) -> None:
    rows = "  - {label: ResNet-18, model: resnet18, paper: 1}\n  - {label: ResNet-18, model: resnet34, paper: 2}\n"
    with pytest.raises(OakError, match=r"^\S*bad.yaml: two rows are labelled 'ResNet-18'; give each row its own label$"):
        load_studies(studies_in(tmp_path, bad=STUDY + rows))


def test_an_alias_bomb_in_a_study_stops_the_plan_naming_the_file_before_it_is_expanded(tmp_path: Path) -> None:
    levels = ["  - &l0 [" + ", ".join(["lol"] * 9) + "]"] + [f"  - &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 10)]
    folder = studies_in(tmp_path, bad=STUDY.replace("rows:", "laughs:\n" + "\n".join(levels) + "\nrows: []"))
    with pytest.raises(OakError, match=r"bad.yaml: over 10,000 values with its aliases expanded"):
        load_studies(folder)


def test_a_plan_file_without_a_profile_is_one_error_saying_to_regenerate_it(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("- a list, not a plan\n")
    with pytest.raises(OakError, match=r"plan.yaml: expected a mapping"):
        planned_profile(plan)
    plan.write_text("runs: {}\n")
    with pytest.raises(OakError, match=r"plan.yaml: no profile among demo, imagenet, published, budget; run `oak plan`"):
        planned_profile(plan)


def test_a_scaling_figures_rows_name_their_lines(tmp_path: Path) -> None:
    folder = studies_in(tmp_path, bad=STUDY.replace("rows:", "scaling: Fig. 4\nrows:") + "  - {label: A, model: resnet18}\n")
    with pytest.raises(OakError, match=r"bad.yaml: row 'A': no `series`: in a study with a scaling figure"):
        load_studies(folder)


def test_a_profile_the_study_does_not_declare_has_no_runs(tmp_path: Path) -> None:
    folder = studies_in(tmp_path, a=STUDY + "  - {label: A, model: resnet18, paper: 1}\n")
    assert plan_rows(load_studies(folder), "imagenet") == {"a/A": "the study declares no run in the imagenet profile"}


def test_a_plan_file_behind_the_studies_is_an_error(tmp_path: Path) -> None:
    folder = studies_in(tmp_path, a=STUDY + "  - {label: A, model: resnet18, paper: 1}\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text(render_plan(load_studies(folder), "demo"))
    assert current_runs(plan, folder)[0] == "demo"
    (folder / "b.yaml").write_text(STUDY + "  - {label: B, model: resnet34, paper: 1}\n")
    with pytest.raises(OakError, match=r"plan.yaml does not match pipelines/studies/; run `oak plan demo` to regenerate it"):
        current_runs(plan, folder)


def test_a_row_setting_no_training_can_use_stops_the_plan_naming_the_row(tmp_path: Path) -> None:
    folder = studies_in(tmp_path, bad=STUDY + "  - {label: R18, model: resnet18, profiles: {demo: {settings: {train: {eval_crops: 5}}}}}\n")
    planned = plan_rows(load_studies(folder), "demo")
    with pytest.raises(OakError, match=r"^pipelines/studies/bad.yaml: row 'R18': train.eval_crops=5: use 1 \(centre crop\) or 10"):
        check_settings(planned, params_file(tmp_path))


def test_every_planned_run_of_both_profiles_loads_its_config() -> None:
    for profile in ("demo", "imagenet"):
        check_settings(plan_rows(STUDIES, profile), REPO / "params.yaml")


def planned_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder holding params.yaml and one study of two rows, the second skipped by the demo; the working folder."""
    skipped = "profiles: {demo: {skip: imagenet profile only (too slow on a CPU)}}"
    studies_in(tmp_path, a=STUDY + "  - {label: A, model: resnet18, paper: 1}\n" + f"  - {{label: B, model: resnet50, paper: 2, {skipped}}}\n")
    params_file(tmp_path)
    monkeypatch.chdir(tmp_path)


def test_a_plain_oak_plan_plans_the_demo_whatever_profile_the_last_plan_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    planned_in(tmp_path, monkeypatch)
    assert main(["plan", "imagenet"]) == 0 and planned_profile(tmp_path / PLAN_FILE) == "imagenet"
    assert main(["plan"]) == 0 and planned_profile(tmp_path / PLAN_FILE) == "demo"  # as `make repro` runs it


def test_oak_plan_prints_a_summary_counting_the_skipped_rows_and_lists_them_with_verbose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    planned_in(tmp_path, monkeypatch)
    assert main(["plan"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {PLAN_FILE}: profile demo, 1 runs for 1 of the 2 study rows",
        "1 rows skipped in this profile; `oak plan demo -v` lists them, each with why",
    ]
    assert main(["plan", "-v"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["skipped a/B: imagenet profile only (too slow on a CPU)"]


def test_oak_version_is_the_installed_packages(capsys: pytest.CaptureFixture) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == f"oak {version('oak')}\n"
