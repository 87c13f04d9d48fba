"""`oak bench prepare` at a tiny size: it runs end to end and prints every ratio (timings are not asserted)."""

import pytest

from oak.cli import main


def test_bench_prepare_prints_the_ratios(capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "prepare", "--images", "40", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    for line in ("tar -cf", "naive PIL loop", "resize to short side 160", "2 workers", "peak memory (largest process), passthrough"):
        assert line in out
    assert out.count(" ratio ") == 4 and out.count("(target >= ") == 4
