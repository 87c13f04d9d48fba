"""Table 4's claim, "1:1 is fastest in every column", judged on repeated timings (`oak bench g1`'s rounds).

Each cell's speed is the median of its rounds with a distribution-free 95% interval of that median: the
order statistics that bracket it with at least 95% probability (the binomial sign-test interval, scipy's
`quantile_test`); below 6 rounds no such interval exists and the cell's interval is unbounded.

The paper's channel pairs are whole numbers, so a column's ratios do not cost the same multiply-adds
(Arm 22x44 = 968 against 32x32 = 1024). Another ratio's speed is therefore taken at 1:1's multiply-adds,
as if its time grew with them (speed x its MACs / 1:1's MACs), before it is set beside 1:1's. A ratio is
faster or slower than 1:1 only when the two intervals do not overlap; otherwise the two are within noise.
"""

import math
from dataclasses import dataclass

from scipy.stats import quantile_test

CLAIM = "1:1 is fastest in every column"
CONFIDENCE = 0.95
HOLDS, FAILS, WITHIN_NOISE = "holds", "fails", "within noise"
STATISTIC = (
    "median of the rounds with a distribution-free 95% interval of the median (order statistics, binomial sign test); "
    "other ratios taken at 1:1's multiply-adds; a difference whose intervals overlap is within noise"
)


@dataclass(frozen=True)
class Speed:
    """A median speed and its 95% interval (infinite bounds: too few rounds for one)."""

    median: float
    low: float
    high: float

    def scaled(self, factor: float) -> "Speed":
        return Speed(self.median * factor, self.low * factor, self.high * factor)

    def text(self, digits: int = 1) -> str:
        if math.isinf(self.high):
            return f"{self.median:.{digits}f} (too few rounds for a 95% interval)"
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})"


def median_speed(rounds: list[float]) -> Speed:
    """The rounds' median with its distribution-free 95% interval."""
    ordered = sorted(rounds)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    interval = quantile_test(ordered, q=median).confidence_interval(CONFIDENCE)
    if math.isnan(interval.low) or math.isnan(interval.high):
        return Speed(median, -math.inf, math.inf)
    return Speed(median, float(interval.low), float(interval.high))


def cell_speed(cell: dict) -> Speed:
    """A measured cell's speed in batches/s, from the rounds `oak bench g1` stores."""
    return median_speed(cell["batches_per_second_rounds"])


def column_check(cells: list[dict]) -> dict:
    """One column at one width: each other ratio against 1:1, at 1:1's multiply-adds."""
    [equal] = [cell for cell in cells if cell["ratio"] == "1:1"]
    reference = cell_speed(equal)
    rivals, verdict = [], HOLDS
    for cell in cells:
        if cell is equal:
            continue
        at_equal_macs = cell_speed(cell).scaled(cell["macs_per_image"] / equal["macs_per_image"])
        faster, slower = at_equal_macs.low > reference.high, at_equal_macs.high < reference.low
        if faster:
            verdict = FAILS
        elif not slower and verdict == HOLDS:
            verdict = WITHIN_NOISE
        rivals.append(
            {
                "ratio": cell["ratio"],
                "lead": round(at_equal_macs.median / reference.median - 1, 4),  # over 1:1, at 1:1's multiply-adds
                "fewer_macs": round(1 - cell["macs_per_image"] / equal["macs_per_image"], 4),
                "compared": "faster" if faster else "slower" if slower else WITHIN_NOISE,
            }
        )
    return {"column": f"{equal['column']} x{equal['width']}", "verdict": verdict, "rivals": rivals}


def claim_check(cells: list[dict]) -> dict:
    """The claim in every column (channel pairs x width): fails where a ratio beats 1:1 beyond noise, holds
    where 1:1 beats every ratio beyond noise, within noise otherwise."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for cell in cells:
        groups.setdefault((cell["column"], cell["width"]), []).append(cell)
    columns = [column_check(group) for group in groups.values()]
    verdicts = {column["verdict"] for column in columns}
    verdict = FAILS if FAILS in verdicts else WITHIN_NOISE if WITHIN_NOISE in verdicts else HOLDS
    return {"claim": CLAIM, "verdict": verdict, "statistic": STATISTIC, "columns": columns}


def check_text(check: dict) -> str:
    """The verdict in a line: each column where 1:1 is not fastest beyond noise, with each rival that is not slower."""
    if check["verdict"] == HOLDS:
        return "1:1 is fastest beyond noise in every column"
    notes = []
    for column in check["columns"]:
        rivals = [rival for rival in column["rivals"] if rival["compared"] != "slower"]
        listed = ", ".join(
            f"{rival['ratio']} {rival['lead']:+.1%} at 1:1's MACs ({rival['fewer_macs']:.1%} fewer MACs), {rival['compared']}"
            for rival in rivals
        )
        notes += [f"{column['column']}: {listed}"] if rivals else []
    return "; ".join(notes)
