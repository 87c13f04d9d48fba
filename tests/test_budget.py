"""The budget profile: the imagenet profile's runs, shorter, at lower training sizes, with a schedule ending at zero."""

import shutil
from functools import cache
from pathlib import Path

import pytest

from oak.errors import OakError
from oak.loading.progressive import image_size_at
from oak.studies.budget import at_budget_scale, load_budget
from oak.studies.plan import Run, plan_rows, run_config
from oak.studies.study import load_studies

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"
STUDIES = load_studies(REPO / "pipelines" / "studies")


@pytest.fixture(scope="module")
def plans() -> tuple[dict[str, Run | str], dict[str, Run | str]]:
    return plan_rows(STUDIES, "imagenet", PARAMS), plan_rows(STUDIES, "budget", PARAMS)


@cache
def train(run: Run):
    return run_config(PARAMS, run).train


def test_every_row_the_imagenet_profile_trains_has_a_budget_run_of_the_same_model_recipe_and_name(plans) -> None:
    imagenet, budget = plans
    trained = {key for key, run in imagenet.items() if isinstance(run, Run)}
    assert trained and trained == {key for key, run in budget.items() if isinstance(run, Run)}
    assert {study.name for study in STUDIES} == {key.split("/")[0] for key in trained}  # every study
    for key in trained:
        assert (budget[key].name, budget[key].model, budget[key].recipe) == (imagenet[key].name, imagenet[key].model, imagenet[key].recipe)


def test_epochs_are_the_papers_times_16_in_350_rounded_up_so_a_studys_regimes_keep_their_order(plans) -> None:
    imagenet, budget = plans
    fig4 = {label: budget[f"fig4_depth_width/ResNet-50 depth x2 (ResNet-101), {epochs} epochs, 224 px"] for label, epochs in
            (("long", 350), ("medium", 100), ("short", 10))}
    assert {label: train(run).epochs for label, run in fig4.items()} == {"long": 16, "medium": 5, "short": 1}
    assert train(budget["table1/plain-18"]).epochs == 5  # He et al.'s 90 epochs
    for key, run in budget.items():
        if isinstance(run, Run):
            assert train(run).epochs * 350 >= train(imagenet[key]).epochs * 16 > (train(run).epochs - 1) * 350 or train(run).epochs == 1


def test_training_rises_from_five_to_six_sevenths_of_the_papers_size_and_evaluates_at_the_papers(plans) -> None:
    imagenet, budget = plans
    resnet50 = train(budget["fig4_depth_width/ResNet-50, 350 epochs, 224 px"])  # FFCV's rn50_16_epochs.yaml, exactly
    assert (resnet50.progressive_min_size, resnet50.image_size, resnet50.eval_image_size) == (160, 192, 224)
    assert (resnet50.progressive_start_epoch, resnet50.progressive_end_epoch, resnet50.epochs) == (11, 13, 16)
    assert [image_size_at(resnet50, epoch) for epoch in range(16)] == [160] * 12 + [192] * 4
    small = train(budget["fig4_depth_width/ResNet-50, 10 epochs, 128 px"])  # 91 and 110 px both round to 96: no ramp
    assert (small.progressive_min_size, small.image_size, small.eval_image_size) == (None, 96, 128)
    for key, run in budget.items():
        if isinstance(run, Run):
            paper, cheap = train(imagenet[key]), train(run)
            assert cheap.eval_image_size == (paper.eval_image_size or paper.image_size)
            if run.recipe == "inception_szegedy2016":  # Inception-v3's auxiliary classifier needs the paper's 299 px
                assert (cheap.image_size, cheap.progressive_min_size) == (paper.image_size, None)
            else:
                assert cheap.image_size % 32 == 0 and cheap.image_size < cheap.eval_image_size


def test_a_schedule_that_never_reaches_zero_becomes_linear_decay_to_zero_unless_the_study_row_compares_schedules(plans) -> None:
    _, budget = plans
    b0 = train(budget["table5/EfficientNet-B0"])  # Tan and Le: x0.97 every 2.4 epochs
    assert (b0.schedule, b0.decay_rate, b0.min_lr) == ("poly", 1.0, 0.0)
    assert train(budget["fig5_resnet_rs/ResNet-RS-152-192"]).schedule == "cosine"  # cosine already ends at zero
    standard = train(budget["fig3_training_methods/ResNet-200, standard training"])  # Fig. 3 compares it with cosine: kept
    assert (standard.schedule, standard.epochs, standard.decay_epochs) == ("step", 5, pytest.approx(5 / 3, abs=1e-3))
    assert train(budget["fig3_training_methods/ResNet-200 + cosine LR decay"]).schedule == "cosine"
    assert b0.warmup_epochs == 2  # the recipe's 5, at most an eighth of 16 (FFCV's peak at epoch 2)


def test_the_runs_a_claim_compares_stay_alike_at_budget_scale(plans) -> None:
    imagenet, budget = plans
    for study in STUDIES:
        for comparison in study.claims:
            keys = [f"{study.name}/{label}" for label in comparison.labels()]
            if not all(isinstance(imagenet[key], Run) for key in keys):
                continue
            assert all(isinstance(budget[key], Run) for key in keys), comparison.claim
            paper = {key: train(imagenet[key]) for key in keys}
            cheap = {key: train(budget[key]) for key in keys}
            for first in keys:  # runs the paper trains equally long train equally long in the budget, with one schedule
                for second in keys:
                    if paper[first].epochs == paper[second].epochs and paper[first].schedule == paper[second].schedule:
                        assert (cheap[first].epochs, cheap[first].schedule) == (cheap[second].epochs, cheap[second].schedule)


def test_verdicts_say_budget_scale_and_length_claims_say_how_far_they_are_testable() -> None:
    budget = load_budget(PARAMS)
    assert at_budget_scale(budget, "table1", "a deeper ResNet has a lower error", "holds", "e") == ("holds at budget scale", "e")
    verdict, evidence = at_budget_scale(budget, "fig4_depth_width", "with long training, depth scaling beats width scaling", "holds", "e")
    assert verdict == "not testable at budget scale" and "350 epochs" in evidence
    verdict, _ = at_budget_scale(budget, "fig4_depth_width", "with short training, width scaling beats depth scaling", "fails", "e")
    assert verdict == "fails at budget scale, testable only in part"
    claims = {(study.name, comparison.claim) for study in STUDIES for comparison in study.claims}
    assert all((entry.study, entry.claim) in claims for entry in budget.length_claims)


def test_a_length_claim_the_study_does_not_state_stops_the_plan_naming_it(tmp_path: Path) -> None:
    shutil.copy(PARAMS, tmp_path / "params.yaml")
    shutil.copytree(REPO / "pipelines", tmp_path / "pipelines")
    rules = tmp_path / "pipelines" / "budget.yaml"
    rules.write_text(rules.read_text().replace('claim: "with long training', 'claim: "with lengthy training'))
    with pytest.raises(OakError, match=r"length claim 'with lengthy training, .*fig4_depth_width.yaml states no such claim"):
        plan_rows(STUDIES, "budget", tmp_path / "params.yaml")


def test_a_misspelt_rule_is_one_error_naming_the_file_and_key(tmp_path: Path) -> None:
    shutil.copy(PARAMS, tmp_path / "params.yaml")
    (tmp_path / "pipelines").mkdir()
    text = (REPO / "pipelines" / "budget.yaml").read_text().replace("warmup_fraction:", "warmup_fractoin:")
    (tmp_path / "pipelines" / "budget.yaml").write_text(text)
    with pytest.raises(OakError, match=r"budget.yaml: unknown key 'warmup_fractoin'"):
        load_budget(tmp_path / "params.yaml")


def test_the_report_labels_only_the_verdicts_on_the_budgets_runs() -> None:
    from oak.report.budget_scale import budget_scale
    from oak.report.verdicts import Claim

    [fig4] = [study for study in STUDIES if study.name == "fig4_depth_width"]
    long, short = (comparison.claim for comparison in fig4.claims[:2])
    claims = [
        Claim(f"{long}: rows", fig4.source, "holds", "the paper's numbers, on ImageNet's validation set: margin"),
        Claim(f"{long}: rows", fig4.source, "holds", "Oak's runs (`resnet101` vs `resnet50_w1_5`) on ImageNet: margin"),
        Claim(f"{short}: rows", fig4.source, "not resolved by this data", "Oak's runs (`a` vs `b`) on ImageNet: margin"),
    ]
    paper, runs_long, runs_short = budget_scale(claims, fig4, load_budget(PARAMS))
    assert paper == claims[0]
    assert runs_long.verdict == "not testable at budget scale" and runs_long.evidence.startswith(claims[1].evidence + "; ")
    assert runs_short.verdict == "not resolved by this data at budget scale, testable only in part"


def test_the_numbers_docs_budget_states_are_the_rules() -> None:
    budget, text = load_budget(PARAMS), " ".join((REPO / "docs" / "budget.md").read_text().split())
    lengths = (350, 240, 100, 90, 10)
    epochs = [budget.budget_epochs(paper) for paper in lengths]
    assert f"350, 240, 100, 90 and 10 epochs become {', '.join(map(str, epochs[:-1]))} and {epochs[-1]}" in text
    assert "FFCV's 160 to 192 px for a 224 px network" in text and budget.training_sizes(224) == (160, 192)
    assert "over epochs 11 to 13 of 16" in text and budget.ramp_epochs(16) == (11, 13)
    assert "at most an eighth of the budget's epochs (2 of 16)" in text and budget.warmup_fraction * 16 == 2
    assert f"capped at {budget.shards['cap_long_side']} px, re-encoded at JPEG quality {budget.shards['resize_quality']}" in text
    for name, recipe in budget.recipes.items():
        assert f"| `{name}` | {recipe.source.split(' (')[0]} |" in text
