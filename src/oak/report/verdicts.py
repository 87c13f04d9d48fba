"""A checked claim and its verdicts, shared by the claims judged on runs (oak.report.claims) and on the models
and measurements themselves (oak.report.model_claims)."""

from dataclasses import dataclass

HOLDS, FAILS, UNRESOLVED, UNCHECKED = "holds", "fails", "not resolved by this data", "not checked"


@dataclass(frozen=True)
class Claim:
    text: str
    source: str
    verdict: str  # HOLDS, FAILS, UNRESOLVED or UNCHECKED (the evidence says why)
    evidence: str



def judged(margin: float, interval: float) -> str:
    """A claim that some margin is positive, given half its 95% interval."""
    return HOLDS if margin > interval else FAILS if margin < -interval else UNRESOLVED
