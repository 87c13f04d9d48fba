"""The paper's claims as oak.report.claims judges them: ties, training speed at equal epochs, one counting rule
for every stated parameter count, the FLOPs of each doubled dimension and Fig. 9's saturation."""

import json
from pathlib import Path

import pytest

from oak.report.claims import FAILS, HOLDS, UNCHECKED, UNRESOLVED, comparison_claims
from oak.report.model_claims import doubling_claim, parameter_claims, saturation_claim
from oak.studies.plan import Run
from oak.studies.study import Comparison, Row, Study, load_studies

FACTS = json.loads((Path(__file__).parents[1] / "metrics" / "facts.json").read_text())  # counted by the facts stage
STUDIES = {study.name: study for study in load_studies()}


def _two_rows(comparison: Comparison, metric: str = "top1", paper: tuple[float | None, float | None] = (None, None)) -> Study:
    rows = [Row("A", "resnet18", paper=paper[0]), Row("B", "resnet34", paper=paper[1])]
    return Study("T", "a paper", metric, rows=rows, claims=[comparison], name="t")


PLANNED = {"t/A": Run("a", "resnet18", "demo", ()), "t/B": Run("b", "resnet34", "demo", ())}


def test_a_tie_within_the_noise_holds_and_one_beyond_it_fails() -> None:
    study = _two_rows(Comparison("A and B tie", "A", "B", tie=True), paper=(84.4, 84.4))
    measured = {"a": {"top1": 84.1, "top5": 97, "samples": 50_000}, "b": {"top1": 84.6, "top5": 97, "samples": 50_000}}
    on_paper, on_runs = comparison_claims(study, PLANNED, measured, {}, "imagenet")
    assert on_paper.verdict == HOLDS and "within noise: a tie" in on_paper.evidence
    assert on_runs.verdict == FAILS and "difference -0.50 ± 0.45" in on_runs.evidence  # each +-0.32 on 50,000 images


def test_table6s_resnet_rs_and_b7_are_a_tie_as_the_paper_says_not_an_order() -> None:
    [claim] = [c for c in STUDIES["table6"].claims if {c.better, c.than} == {"ResNet-RS", "EfficientNet-B7"}]
    assert claim.tie and "tie" in claim.claim and "more accurate" not in claim.claim


def _curve(errors: list[float]) -> list[dict[str, float]]:
    return [{"epoch": epoch, "val/top1": 50.0, "val/top5": 100 - error, "val/samples": 1000} for epoch, error in enumerate(errors)]


def test_training_speed_is_judged_on_top5_error_at_equal_epochs_each_against_its_noise() -> None:
    study = _two_rows(Comparison("A trains faster", "A", "B", at_equal_epochs=True), metric="top5_error")
    faster = {"a": _curve([20.0, 10.0, 5.0]), "b": _curve([30.0, 12.0, 5.2])}  # ahead by 10 points, then within noise
    [claim] = comparison_claims(study, PLANNED, {}, {}, "imagenet", curves=faster)
    assert claim.verdict == HOLDS and "ahead beyond noise at 1 of 3 epochs, behind at 0" in claim.evidence
    mixed = {"a": _curve([20.0, 14.0]), "b": _curve([30.0, 10.0])}  # ahead, then behind
    assert comparison_claims(study, PLANNED, {}, {}, "imagenet", curves=mixed)[0].verdict == UNRESOLVED
    slower = {"a": _curve([30.0, 12.0]), "b": _curve([20.0, 11.5])}
    assert comparison_claims(study, PLANNED, {}, {}, "imagenet", curves=slower)[0].verdict == FAILS
    assert comparison_claims(study, PLANNED, {}, {}, "imagenet")[0].verdict == UNCHECKED  # no curves given


def test_table2_claims_the_residual_inceptions_train_faster_at_equal_epochs() -> None:
    at_epochs = [(c.better, c.than) for c in STUDIES["table2"].claims if c.at_equal_epochs]
    assert at_epochs == [("Inception-ResNet-v1", "Inception-v3"), ("Inception-ResNet-v2", "Inception-v4")]


def test_every_stated_parameter_count_is_checked_by_one_rule_the_trainable_parameters() -> None:
    claims = {claim.text: claim for claim in parameter_claims(list(STUDIES.values()), FACTS)}
    # B2: 9.11M trainable; 9.18M with BatchNorm's statistics would round to 9.2, but that rule is not switched to for one row
    assert claims["EfficientNet-B2 has 9.2M parameters"].verdict == FAILS
    assert not [text for text in claims if "TensorFlow" in text]
    rules = claims["the paper's parameter counts are the models' under one counting rule"]
    assert rules.verdict == FAILS
    assert "trainable parameters (the rule applied): 10 of 11, not EfficientNet-B2 9.2M vs 9.11M" in rules.evidence
    assert "EfficientNet-B1 7.8M vs 7.86M" in rules.evidence and "EfficientNet-B7 66M vs 66.66M" in rules.evidence


def test_doubling_depth_doubles_the_macs_and_doubling_width_or_resolution_about_quadruples_them() -> None:
    claim = doubling_claim()
    assert claim.verdict == HOLDS
    assert "depth x2: 2.03x (stated 2x); width x2: 3.76x (stated 4x); resolution x2: 3.99x (stated 4x)" in claim.evidence


def test_fig9s_saturation_is_checked_against_the_values_tan_and_le_print(monkeypatch: pytest.MonkeyPatch) -> None:
    claim = saturation_claim()
    assert claim.verdict == HOLDS
    assert "depth x4 (1.8B FLOPs) 79.0%, width x2 (1.8B FLOPs) 78.9%, resolution x2 (1.9B FLOPs) 79.1%" in claim.evidence
    monkeypatch.setattr("oak.report.model_claims.TAN_LE_TABLE_7", {"width x2": 76.0})
    assert saturation_claim().verdict == FAILS  # not "around 80%"


def test_a_released_weights_evaluation_counts_only_for_the_weights_the_study_names_now() -> None:
    from oak.report.claims import published_claims
    from oak.report.paper import study_table

    table5 = STUDIES["table5"]
    on_imagenet = {"data": "imagenet-1k", "samples": 50_000, "top1": 79.80, "top5": 94.9}
    # B2's file from before the release changed: the old tag's number must not show under the new tag
    published = {"table5/EfficientNet-B2": on_imagenet | {"weights": "timm:tf_efficientnet_b2.aa_in1k"}}
    published["table5/EfficientNet-B1"] = on_imagenet | {"weights": "timm:tf_efficientnet_b1.in1k", "top1": 78.8}
    [b1, b2] = sorted(published_claims([table5], published), key=lambda claim: claim.text)
    assert b1.verdict == HOLDS and "its README reports 78.8% top-1" in b1.evidence
    assert b2.verdict == UNCHECKED and "`timm:tf_efficientnet_b2.in1k` not measured" in b2.evidence
    planned = dict.fromkeys((f"table5/{row.label}" for row in table5.rows), "the published profile trains nothing")
    rows = {row[0]: row[4] for row in study_table(table5, planned, FACTS, {}, "imagenet-1k", published).rows}
    assert rows["EfficientNet-B1"] == "78.80 ± 0.36" and rows["EfficientNet-B2"] == "not measured (`timm:tf_efficientnet_b2.in1k`)"


def test_table5_uses_the_standard_release_where_it_exists_and_names_the_autoaugment_one_elsewhere() -> None:
    from oak.models.published import release_note
    from oak.studies.study import run_spec

    weights = {row.label: run_spec(STUDIES["table5"], row, "published").weights for row in STUDIES["table5"].rows}
    assert [weights[f"EfficientNet-B{b}"] for b in range(6)] == [f"timm:tf_efficientnet_b{b}.in1k" for b in range(6)]
    assert weights["EfficientNet-B6"] == "timm:tf_efficientnet_b6.aa_in1k"
    assert "AutoAugment" in release_note(weights["EfficientNet-B6"]) and "84.2% top-1" in release_note(weights["EfficientNet-B6"])


def test_table2s_released_inceptions_share_one_evaluation_protocol() -> None:
    from oak.models.published import evaluation_protocol
    from oak.studies.study import run_spec

    specs = [run_spec(STUDIES["table2"], row, "published") for row in STUDIES["table2"].rows]
    protocols = {evaluation_protocol(spec.weights, spec.settings) for spec in specs if spec.weights}
    assert protocols == {"299 px, centre crop 0.875, bilinear"}  # slim's inception_preprocessing resizes bilinearly
