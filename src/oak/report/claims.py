"""The paper's claims, checked: its comparisons against its own numbers, Oak's runs (their final scores, or their
curves at equal epochs) and released weights, and what released weights reproduce; the claims that need no run
(parameter counts, arithmetic, Table 4) are oak.report.model_claims'.

A measured difference decides a claim only when it lies outside its 95% sampling interval; inside it the
verdict is "not resolved by this data", whichever way the numbers lean. A claimed tie is the other way round:
it holds inside the interval and fails outside. The interval treats the two accuracies as independent
samples, which overstates the noise of two models scored on the same images (a paired test would need each
image's prediction, which the papers do not publish): a conservative test.
"""

import math
from dataclasses import dataclass

from oak.models.published import release_note
from oak.models.registry import SHUFFLENETS
from oak.report.model_claims import (
    both_at_once_claim,
    compound_constant_claim,
    conclusion_claim,
    doubling_claim,
    g1_claim,
    parameter_claims,
    saturation_claim,
    separable_claim,
    torchvision_published,
)
from oak.report.paper import measured_interval, measured_value, released_evaluation, sampling_interval, seed_values
from oak.report.tables import Table
from oak.studies.plan import PUBLISHED, Run, row_key
from oak.report.verdicts import FAILS, HOLDS, UNCHECKED, UNRESOLVED, Claim, judged
from oak.studies.study import METRICS, Comparison, Row, Study, run_spec

IMAGENET_VAL_IMAGES = 50_000  # ILSVRC 2012's validation set, on which the paper's sources report


@dataclass(frozen=True)
class Score:
    """A row's value of the study's metric (%), half its 95% interval, and what it was measured on."""

    value: float
    interval: float
    images: int
    seeds: int = 1  # a mean over this many trainings

    @classmethod
    def paper(cls, value: float) -> "Score":
        """A value the paper reports, measured on ImageNet's validation set."""
        return cls(value, sampling_interval(value, IMAGENET_VAL_IMAGES), IMAGENET_VAL_IMAGES)

    @classmethod
    def measured(cls, metric: str, evaluated: dict) -> "Score":
        """From an evaluation's metrics (`seed_mean`'s for a run over several seeds)."""
        seeds = len(seed_values(metric, evaluated)) or 1
        return cls(measured_value(metric, evaluated), measured_interval(metric, evaluated), evaluated["samples"], seeds)


def comparison_evidence(metric: str, comparison: Comparison, scores: dict[str, Score]) -> tuple[str, str]:
    """(verdict, evidence) of the comparison on `scores`, a measurement of each of its rows by label."""
    gains = comparison.gains()
    sign = -1 if metric.endswith("error") else 1  # a lower error is better
    # The margin is a weighted sum of the rows' values; a row in both gains (Fig. 3's middle step) has one
    # noise, counted once with its summed weight. Independent errors add in quadrature.
    weights = dict.fromkeys(comparison.labels(), 0)
    for gain, weight in zip(gains, (sign, -sign)):
        weights[gain.better] += weight
        weights[gain.than] -= weight
    margin = sum(weight * scores[label].value for label, weight in weights.items())
    interval = math.hypot(*(weight * scores[label].interval for label, weight in weights.items()))
    counts = sorted({score.images for score in scores.values()})
    images = f"{counts[0]:,} images each" if len(counts) == 1 else f"{' and '.join(f'{count:,}' for count in counts)} images"
    if any(score.seeds > 1 for score in scores.values()):
        images += f", seeds per row: {' vs '.join(str(scores[label].seeds) for label in comparison.labels())}"
    values = [f"{scores[gain.better].value:.2f} vs {scores[gain.than].value:.2f}" for gain in gains]
    if comparison.exceeds:
        gained = [sign * (scores[gain.better].value - scores[gain.than].value) for gain in gains]
        values = [f"gain {gain:+.2f} ({value})" for gain, value in zip(gained, values)]
    if comparison.tie:  # the paper's "both the highest": a difference inside its noise is a tie
        evidence = f"{' against '.join(values)}: difference {margin:+.2f} ± {interval:.2f} (95%, {images})"
        return (HOLDS, f"{evidence}, within noise: a tie") if abs(margin) <= interval else (FAILS, f"{evidence}, beyond noise")
    evidence = f"{' against '.join(values)}: margin {margin:+.2f} ± {interval:.2f} (95%, {images})"
    return judged(margin, interval), evidence


def comparison_claims(
    study: Study,
    planned: dict[str, Run | str],
    measured: dict[str, dict],
    published: dict[str, dict],
    data_label: str,
    curves: dict[str, list[dict[str, float]]] | None = None,
) -> list[Claim]:
    """Each of the study's comparisons judged on the paper's numbers, on Oak's runs and on released weights, where each has its
    rows; a comparison at equal epochs on the runs' per-epoch `curves` (by run name) only, as the paper's figures print no values."""
    rows = {row.label: row for row in study.rows}
    claims = []
    for comparison in study.claims:
        compared = [rows[label] for label in comparison.labels()]
        text = f"{comparison.claim}: {_compared_text(comparison)}, {METRICS[study.metric]}"
        if comparison.at_equal_epochs:
            claims.append(curve_comparison(study, comparison, text, planned, curves, data_label))
            continue
        if all(row.paper is not None for row in compared):
            paper = {row.label: Score.paper(row.paper) for row in compared}
            verdict, evidence = comparison_evidence(study.metric, comparison, paper)
            claims.append(Claim(text, study.source, verdict, f"the paper's numbers, on ImageNet's validation set: {evidence}"))
        claims.append(_run_comparison(study, comparison, compared, text, planned, measured, data_label))
        released = {row.label: released_evaluation(study, row, published) for row in compared}
        if all(released.values()):
            scored = {label: Score.measured(study.metric, evaluated) for label, evaluated in released.items()}
            verdict, evidence = comparison_evidence(study.metric, comparison, scored)
            data = next(iter(released.values()))["data"]
            if "synthetic" in data:
                verdict, evidence = UNCHECKED, f"{evidence}; synthetic data says nothing of the weights"
            claims.append(Claim(text, study.source, verdict, f"released weights on {data}: {evidence}"))
    return claims


def _compared_text(comparison: Comparison) -> str:
    text = f"{comparison.better} vs {comparison.than}"
    return f"{text} gaining more than {comparison.exceeds.better} vs {comparison.exceeds.than}" if comparison.exceeds else text


def curve_comparison(
    study: Study,
    comparison: Comparison,
    text: str,
    planned: dict[str, Run | str],
    curves: dict[str, list[dict[str, float]]] | None,
    data_label: str,
) -> Claim:
    """`better` ahead of `than` at equal epochs: each epoch both runs evaluated judged on its own validation noise; the
    claim holds where `better` is ahead beyond noise at some epoch and behind beyond it at none, fails the other way round."""
    rows = {row.label: row for row in study.rows}
    runs = {label: planned[row_key(study, rows[label])] for label in comparison.labels()}
    unusable = _unusable_runs(comparison, runs)
    if unusable:
        return Claim(text, study.source, UNCHECKED, unusable)
    better, than = (curves or {}).get(runs[comparison.better].name), (curves or {}).get(runs[comparison.than].name)
    if not better or not than:
        return Claim(text, study.source, UNCHECKED, "Oak's runs: no training curves yet (`dvc repro`)")
    judged_epochs = [_epoch_verdict(study.metric, b, t) for b, t in zip(better, than, strict=False)]
    ahead, behind = [e for e, v, _ in judged_epochs if v == HOLDS], [e for e, v, _ in judged_epochs if v == FAILS]
    verdict = HOLDS if ahead and not behind else FAILS if behind and not ahead else UNRESOLVED
    if verdict != UNRESOLVED and "synthetic" in data_label:
        verdict += " at demo scale"
    shown = judged_epochs if len(judged_epochs) <= 5 else [judged_epochs[round(k * (len(judged_epochs) - 1) / 4)] for k in range(5)]
    names = f"`{runs[comparison.better].name}` vs `{runs[comparison.than].name}`"
    evidence = (
        f"Oak's runs' curves ({names}) on {data_label}: ahead beyond noise at {len(ahead)} of {len(judged_epochs)} epochs, "
        f"behind at {len(behind)}; " + "; ".join(text for _, _, text in shown)
    )
    stand_ins = [f"`{run.name}` for {label}" for label, run in runs.items() if run.model != rows[label].model]
    evidence += f"; stand-ins: {', '.join(stand_ins)}" if stand_ins else ""
    return Claim(text, study.source, verdict, evidence)


def _epoch_verdict(metric: str, better: dict[str, float], than: dict[str, float]) -> tuple[int, str, str]:
    """(epoch, verdict, evidence) of one epoch's validation scores, each on its own validation images."""
    scores = [_curve_score(metric, row) for row in (better, than)]
    sign = -1 if metric.endswith("error") else 1
    margin = sign * (scores[0].value - scores[1].value)
    interval = math.hypot(scores[0].interval, scores[1].interval)
    epoch = int(better["epoch"]) + 1
    values = f"{scores[0].value:.2f} vs {scores[1].value:.2f}"
    return epoch, judged(margin, interval), f"epoch {epoch}: {values}, margin {margin:+.2f} ± {interval:.2f}"


def _curve_score(metric: str, row: dict[str, float]) -> Score:
    """One epoch's validation score from a curves row (per cent, as the training logs it)."""
    value = measured_value(metric, {"top1": row["val/top1"], "top5": row["val/top5"]})
    samples = int(row["val/samples"])
    return Score(value, sampling_interval(value, samples), samples)


def _unusable_runs(comparison: Comparison, runs: dict[str, Run | str]) -> str | None:
    """Why the planned runs cannot judge the comparison (no run, or one run standing for both rows), if they cannot."""
    missing = [f"{label}: {run}" for label, run in runs.items() if not isinstance(run, Run)]
    if missing:
        return f"Oak's runs: no run of {'; '.join(missing)}"
    shared = [runs[gain.better].name for gain in comparison.gains() if runs[gain.better].name == runs[gain.than].name]
    return f"Oak's runs: both rows are the run `{shared[0]}` in this profile (a stand-in)" if shared else None


def _run_comparison(
    study: Study,
    comparison: Comparison,
    compared: list[Row],
    text: str,
    planned: dict[str, Run | str],
    measured: dict[str, dict],
    data_label: str,
) -> Claim:
    runs = {row.label: planned[row_key(study, row)] for row in compared}
    unusable = _unusable_runs(comparison, runs)
    if unusable:
        return Claim(text, study.source, UNCHECKED, unusable)
    if not all(run.name in measured for run in runs.values()):
        return Claim(text, study.source, UNCHECKED, "Oak's runs: not evaluated yet (`dvc repro`)")
    scored = {label: Score.measured(study.metric, measured[run.name]) for label, run in runs.items()}
    verdict, evidence = comparison_evidence(study.metric, comparison, scored)
    if verdict != UNRESOLVED and "synthetic" in data_label:
        verdict += " at demo scale"  # of the demo's pictures, not of ImageNet
    stand_ins = [f"`{run.name}` for {row.label}" for row in compared if (run := runs[row.label]).model != row.model]
    evidence += f"; stand-ins: {', '.join(stand_ins)}" if stand_ins else ""
    names = " vs ".join(f"`{run.name}`" for run in runs.values())
    return Claim(text, study.source, verdict, f"Oak's runs ({names}) on {data_label}: {evidence}")


def published_claims(studies: list[Study], published: dict[str, dict]) -> list[Claim]:
    """Each paper value the released weights were measured for: reproduced when within the measurement's 95% interval."""
    claims = []
    for study in studies:
        for row in study.rows:
            if row.paper is None:
                continue
            text = f"{row.label}: {METRICS[study.metric]} {row.paper:g} (from the released weights)"
            evaluated, stale = released_evaluation(study, row, published), published.get(row_key(study, row))
            if stale and not evaluated:  # measured for weights the study no longer names
                weights = run_spec(study, row, PUBLISHED).weights
                evidence = f"`{weights}` not measured: the file holds `{stale.get('weights')}`'s evaluation; run the published profile"
                claims.append(Claim(text, study.source, UNCHECKED, evidence))
            if not evaluated:
                continue
            value = measured_value(study.metric, evaluated)
            weights = f"`{evaluated['weights']}` on {evaluated['data']}: {value:.2f}"
            release = release_note(evaluated["weights"])
            if "synthetic" in evaluated["data"]:
                claims.append(Claim(text, study.source, UNCHECKED, f"{weights}; synthetic data says nothing of the weights"))
                continue
            interval = sampling_interval(value, evaluated["samples"])
            evidence = f"{weights} ± {interval:.2f} (95%, {evaluated['samples']:,} images)" + (f"; {release}" if release else "")
            claims.append(Claim(text, study.source, HOLDS if abs(value - row.paper) <= interval else FAILS, evidence))
    return claims


def table_claims(studies: list[Study], facts: dict[str, dict], g1s: list[dict]) -> list[Claim]:
    """The claims about the paper's tables that need no run: parameter counts, Table 3's, Table 5's and 6's, Fig. 9's
    reading of Tan and Le, the FLOPs of each scaled dimension, Table 4's."""
    claims = parameter_claims(studies, facts) + [separable_claim(), compound_constant_claim(), doubling_claim(), saturation_claim()]
    by_name = {study.name: study for study in studies}
    if "table6" in by_name:
        table6 = by_name["table6"]
        [shufflenet] = [row for row in table6.rows if row.model in SHUFFLENETS]
        published = torchvision_published(SHUFFLENETS)
        claims.append(both_at_once_claim(shufflenet, table6.source, published, "torchvision's published weights"))
        claims.append(conclusion_claim(table6, "EfficientNet", "EfficientNet"))
    claims += [g1_claim(g1) for g1 in g1s] or [g1_claim(None)]
    return claims


def claims_table(claims: list[Claim]) -> Table:
    rows = [[claim.text, claim.verdict, claim.evidence, claim.source] for claim in claims]
    notes = [
        f"{UNRESOLVED}: the difference lies within its 95% sampling interval, from the number of validation images "
        f"({IMAGENET_VAL_IMAGES:,} for the paper's ImageNet numbers); two accuracies are treated as independent samples, "
        "a conservative test for two models scored on the same images.",
        "A tie holds where the difference lies within that interval and fails beyond it. A comparison at equal epochs "
        "judges each epoch both runs evaluated on its own interval: it holds where the claimed row is ahead beyond noise "
        "at some epoch and behind beyond it at none.",
    ]
    return Table("The paper's claims, checked", ["claim", "verdict", "evidence", "source of the claim"], rows, notes)
