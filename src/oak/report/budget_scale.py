"""The report of a budget run: every verdict on its runs says "at budget scale", and the claims whose truth depends on
how long the runs train (pipelines/budget.yaml's `length_claims`) say how far that scale can test them."""

from dataclasses import replace

from oak.report.verdicts import Claim
from oak.studies.budget import Budget, at_budget_scale
from oak.studies.study import Study

RUNS_EVIDENCE = "Oak's runs"  # how oak.report.claims begins the evidence of a verdict on this profile's runs


def budget_scale(claims: list[Claim], study: Study, budget: Budget) -> list[Claim]:
    """`study`'s claims, as oak.report.claims judged them, with each verdict on Oak's runs labelled at budget scale;
    verdicts on the paper's numbers and on released weights stay as they are."""
    labelled = []
    for claim in claims:
        comparison = next((c.claim for c in study.claims if claim.text.startswith(f"{c.claim}:")), None)
        if comparison is not None and claim.evidence.startswith(RUNS_EVIDENCE):
            verdict, evidence = at_budget_scale(budget, study.name, comparison, claim.verdict, claim.evidence)
            claim = replace(claim, verdict=verdict, evidence=evidence)
        labelled.append(claim)
    return labelled
