"""The paper's claims, checked: its parameter counts against the models, its comparisons against its own
numbers, Oak's runs and released weights, and Table 4's guideline against a measurement.

A measured difference decides a claim only when it lies outside its 95% sampling interval; inside it the
verdict is "not resolved by this data", whichever way the numbers lean. The interval treats the two
accuracies as independent samples, which overstates the noise of two models scored on the same images
(a paired test would need each image's prediction, which the papers do not publish): a conservative test.
"""

import math
from dataclasses import dataclass

import torchvision

from oak.bench import g1_check
from oak.models.calculations import ALPHA, BETA, GAMMA, TABLE_3, compound_scaling, measured_conv_macs
from oak.models.registry import SHUFFLENETS
from oak.report.paper import ROUNDING_SLACK, count_convention, measured_interval, measured_value, sampling_interval, seed_values
from oak.report.tables import Table
from oak.studies.plan import Run, row_key
from oak.studies.study import METRICS, Comparison, Row, Study

HOLDS, FAILS, UNRESOLVED, UNCHECKED = "holds", "fails", "not resolved by this data", "not checked"
IMAGENET_VAL_IMAGES = 50_000  # ILSVRC 2012's validation set, on which the paper's sources report


@dataclass(frozen=True)
class Claim:
    text: str
    source: str
    verdict: str  # HOLDS, FAILS, UNRESOLVED or UNCHECKED (the evidence says why)
    evidence: str


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


def judged(margin: float, interval: float) -> str:
    """A claim that some margin is positive, given half its 95% interval."""
    return HOLDS if margin > interval else FAILS if margin < -interval else UNRESOLVED


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
    evidence = f"{' against '.join(values)}: margin {margin:+.2f} ± {interval:.2f} (95%, {images})"
    return judged(margin, interval), evidence


def comparison_claims(
    study: Study, planned: dict[str, Run | str], measured: dict[str, dict], published: dict[str, dict], data_label: str
) -> list[Claim]:
    """Each of the study's comparisons judged on the paper's numbers, on Oak's runs and on released weights, where each has its rows."""
    rows = {row.label: row for row in study.rows}
    claims = []
    for comparison in study.claims:
        compared = [rows[label] for label in comparison.labels()]
        text = f"{comparison.claim}: {_compared_text(comparison)}, {METRICS[study.metric]}"
        if all(row.paper is not None for row in compared):
            paper = {row.label: Score.paper(row.paper) for row in compared}
            verdict, evidence = comparison_evidence(study.metric, comparison, paper)
            claims.append(Claim(text, study.source, verdict, f"the paper's numbers, on ImageNet's validation set: {evidence}"))
        claims.append(_run_comparison(study, comparison, compared, text, planned, measured, data_label))
        released = {row.label: published.get(row_key(study, row)) for row in compared}
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
    missing = [f"{label}: {run}" for label, run in runs.items() if not isinstance(run, Run)]
    if missing:
        return Claim(text, study.source, UNCHECKED, f"Oak's runs: no run of {'; '.join(missing)}")
    shared = [runs[gain.better].name for gain in comparison.gains() if runs[gain.better].name == runs[gain.than].name]
    if shared:
        return Claim(text, study.source, UNCHECKED, f"Oak's runs: both rows are the run `{shared[0]}` in this profile (a stand-in)")
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


def parameter_claims(studies: list[Study], facts: dict[str, dict]) -> list[Claim]:
    """Each parameter count the paper states that the row's model's trainable weights do not match: holding as
    TensorFlow counts (BatchNorm's moving statistics included), as another variant's count (`paper_params_model`),
    or contradicted under both conventions."""
    claims = []
    for study in studies:
        for row in study.rows:
            if row.paper_params_m is None:
                continue
            model = row.paper_params_model or row.model
            counted = facts[model]
            convention = count_convention(row.paper_params_m, counted)
            if convention == "pytorch" and model == row.model:
                continue
            with_statistics = counted["params"] + counted["batchnorm_statistics"]
            evidence = (
                f"`{model}` has {counted['params']:,} trainable parameters ({counted['params'] / 1e6:.2f}M), "
                f"{with_statistics:,} ({with_statistics / 1e6:.2f}M) with BatchNorm's moving statistics, as TensorFlow counts"
            )
            if model != row.model:
                evidence += f"; the row's accuracy is of `{row.model}`, {facts[row.model]['params'] / 1e6:.2f}M"
            text = f"{row.label} has {row.paper_params_m:g}M parameters" + (f" (`{model}`)" if model != row.model else "")
            verdict = HOLDS if convention else FAILS
            claims.append(Claim(text + (" (as TensorFlow counts)" if convention == "tensorflow" else ""), study.source, verdict, evidence))
    return claims


def both_at_once_claim(row: Row, source: str, variants: dict[str, tuple[float, int]], published_by: str) -> Claim:
    """Whether any variant of the row's family has both the stated top-1 and at most the stated parameters."""
    limit = row.paper_params_m * 1e6 * ROUNDING_SLACK
    holds = any(top1 >= row.paper and params <= limit for top1, params in variants.values())
    listed = "; ".join(f"`{name}` {top1:.2f}% at {params / 1e6:.2f}M" for name, (top1, params) in variants.items())
    text = f"{row.label} reaches {row.paper:g}% top-1 with {row.paper_params_m:g}M parameters"
    return Claim(text, source, HOLDS if holds else FAILS, f"{listed} ({published_by})")


def conclusion_claim(study: Study, family_prefix: str, family: str) -> Claim:
    """The conclusion's "highest top-1 accuracy and the fewest parameters", over the table's own numbers."""
    best = max(row.paper for row in study.rows)
    fewest = min(row.paper_params_m for row in study.rows)
    highest = [row.label for row in study.rows if row.paper == best]
    smallest = [row.label for row in study.rows if row.paper_params_m == fewest]
    holds = all(label.startswith(family_prefix) for label in highest + smallest)
    evidence = f"highest top-1 {best:g}%: {', '.join(highest)}; fewest parameters {fewest:g}M: {', '.join(smallest)}"
    text = f"{family} has the highest top-1 accuracy and the fewest parameters"
    return Claim(text, f"{study.source} and the conclusion", HOLDS if holds else FAILS, evidence)


def published_claims(studies: list[Study], published: dict[str, dict]) -> list[Claim]:
    """Each paper value the released weights were measured for: reproduced when within the measurement's 95% interval."""
    claims = []
    for study in studies:
        for row in study.rows:
            evaluated = published.get(row_key(study, row))
            if not evaluated or row.paper is None:
                continue
            value = measured_value(study.metric, evaluated)
            text = f"{row.label}: {METRICS[study.metric]} {row.paper:g} (from the released weights)"
            weights = f"`{evaluated['weights']}` on {evaluated['data']}: {value:.2f}"
            if "synthetic" in evaluated["data"]:
                claims.append(Claim(text, study.source, UNCHECKED, f"{weights}; synthetic data says nothing of the weights"))
                continue
            interval = sampling_interval(value, evaluated["samples"])
            evidence = f"{weights} ± {interval:.2f} (95%, {evaluated['samples']:,} images)"
            claims.append(Claim(text, study.source, HOLDS if abs(value - row.paper) <= interval else FAILS, evidence))
    return claims


def torchvision_published(names: list[str]) -> dict[str, tuple[float, int]]:
    """(top-1 %, parameters) from torchvision's weights metadata, which ships with torchvision."""
    metas = {name: torchvision.models.get_model_weights(name).DEFAULT.meta for name in names}
    return {name: (meta["_metrics"]["ImageNet-1K"]["acc@1"], meta["num_params"]) for name, meta in metas.items()}


def separable_claim() -> Claim:
    """Table 3's "about 8.4x", from the PyTorch layers' counted multiply-accumulates."""
    regular, separable = measured_conv_macs(TABLE_3)
    ratio = regular / separable
    evidence = f"PyTorch layers counted (FlopCounterMode) for Table 3's shape: {regular} vs {separable} MACs, {ratio:.2f}x"
    text = "a depthwise separable 3x3 convolution needs about 8.4x fewer calculations than a regular one"
    return Claim(text, "Zhao 2024, Table 3", HOLDS if round(ratio, 1) == 8.4 else FAILS, evidence)


def compound_constant_claim() -> Claim:
    """Table 5's "about 2^phi": the constraint alpha * beta^2 * gamma^2 ~ 2 on Tan and Le's constants, within 5%."""
    constant = ALPHA * BETA**2 * GAMMA**2
    released = ", ".join(f"B{row.phi} {row.macs_vs_b0:g}x (2^{row.phi} = {row.two_to_phi})" for row in compound_scaling()[1:])
    evidence = (
        f"{ALPHA} x {BETA}^2 x {GAMMA}^2 = {constant:.2f}; the released B1-B7 are hand-rounded, not B0 scaled by phi = 1-7, "
        f"and grow less (MACs counted at their resolutions against B0's): {released}"
    )
    text = "compound scaling's alpha * beta^2 * gamma^2 is about 2 (MACs about 2^phi)"
    return Claim(text, "Zhao 2024, Table 5, citing Tan and Le 2019 (Sec. 3.3)", HOLDS if abs(constant - 2) <= 0.1 else FAILS, evidence)


def table_claims(studies: list[Study], facts: dict[str, dict], g1s: list[dict]) -> list[Claim]:
    """The claims about the paper's tables that need no run: parameter counts, Table 3's, Table 5's and 6's, Table 4's."""
    claims = parameter_claims(studies, facts) + [separable_claim(), compound_constant_claim()]
    by_name = {study.name: study for study in studies}
    if "table6" in by_name:
        table6 = by_name["table6"]
        [shufflenet] = [row for row in table6.rows if row.model in SHUFFLENETS]
        published = torchvision_published(SHUFFLENETS)
        claims.append(both_at_once_claim(shufflenet, table6.source, published, "torchvision's published weights"))
        claims.append(conclusion_claim(table6, "EfficientNet", "EfficientNet"))
    claims += [g1_claim(g1) for g1 in g1s] or [g1_claim(None)]
    return claims


def g1_claim(g1: dict | None) -> Claim:
    """Table 4's claim judged again from the measurement's stored rounds (oak.bench.g1_check): timing noise and the
    rounded channel pairs' unequal multiply-adds both taken into account."""
    text, source = "In G1's test network, c1:c2 = 1:1 is fastest at every width", "Zhao 2024, Table 4, citing Ma et al. 2018"
    if g1 is None:
        return Claim(text, source, UNCHECKED, "not measured here: run `oak bench g1`")
    check = g1_check.claim_check(g1["cells"])
    verdict = {g1_check.HOLDS: HOLDS, g1_check.FAILS: FAILS, g1_check.WITHIN_NOISE: UNRESOLVED}[check["verdict"]]
    where = f"on {g1['device']}, batch {g1['settings']['batch_size']}, {g1['settings']['rounds']} rounds"
    return Claim(text, source, verdict, f"{where}: {g1_check.check_text(check)} ({g1_check.STATISTIC})")


def claims_table(claims: list[Claim]) -> Table:
    rows = [[claim.text, claim.verdict, claim.evidence, claim.source] for claim in claims]
    notes = [
        f"{UNRESOLVED}: the difference lies within its 95% sampling interval, from the number of validation images "
        f"({IMAGENET_VAL_IMAGES:,} for the paper's ImageNet numbers); two accuracies are treated as independent samples, "
        "a conservative test for two models scored on the same images."
    ]
    return Table("The paper's claims, checked", ["claim", "verdict", "evidence", "source of the claim"], rows, notes)
