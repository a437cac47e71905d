"""Evidence tables and checkable claims: marks, the failing claim's sentence, the budget note, bad input."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from labkit.claims import Claims, Evidence, Spread


def test_evidence_keeps_values_and_prints_them_in_both_forms():
    ev = Evidence("question 3")
    assert ev.add("gradient norm, minimax", torch.tensor(0.01234)) == pytest.approx(0.01234)
    ev.add("steps", 200, fmt="{:,}")
    ev.add("skipped run", None)
    assert ev["steps"] == 200 and "steps" in ev and len(ev) == 3
    assert ev.text("gradient norm, minimax") == "0.0123" and ev.text("skipped run") == "not measured"
    md = ev._repr_markdown_()
    assert "**Evidence for question 3**" in md and "| gradient norm, minimax | 0.0123 |" in md
    assert re.search(r"^  steps +200$", str(ev), re.M)
    with pytest.raises(KeyError, match="steps"):
        ev["missing"]
    with pytest.raises(ValueError, match="already"):
        ev.add("steps", 3)
    with pytest.raises(ValueError, match="title"):
        Evidence("")


def test_claims_mark_hold_fail_and_unmeasured_and_quote_the_contradicted_sentence():
    claims = Claims("question 3")
    claims.check("the minimax gradient vanishes", 0.004 < 0.01, "ratio 0.004", sentence="the gradient shrinks")
    claims.check("D wins early", np.bool_(False), "D(G(z)) 0.3", sentence="D rejects them with confidence")
    claims.check("CIFAR-10 needs more epochs", None)
    claims.check("a NaN is not a verdict", math.nan)
    assert [c.mark for c in claims.claims] == ["✓", "✗", "–", "–"]
    assert not claims.all_hold and [c.statement for c in claims.failed] == ["D wins early"]
    text = str(claims)
    assert "1 of 4 hold" in text
    assert "contradicts the answer's sentence: “D rejects them with confidence”" in text
    assert "not measured in this run" in text
    assert "a ✗ means this run contradicts" in claims._repr_markdown_()


def test_a_smaller_run_says_a_failure_may_be_the_budgets_and_never_raises():
    claims = Claims("question 5", full_budget=False, budget="1 epoch on 512 images")
    claims.check("every ablation differs from the default", False, "FID 40 against 41")
    out = claims._repr_markdown_()
    assert "smaller than the full profile (1 epoch on 512 images)" in out and "may be the budget's" in out
    assert "✗" in out


def test_markdown_cells_are_escaped():
    claims = Claims("q")
    claims.check("a | b", True, "x | y")
    assert "a \\| b" in claims._repr_markdown_()


@pytest.mark.parametrize("holds", ["yes", 0.5, [True]])
def test_a_claim_that_is_not_a_truth_value_is_refused(holds):
    with pytest.raises(ValueError, match="holds must be True, False or None"):
        Claims("q").check("s", holds)


def test_a_spread_over_seeds_prints_its_range_and_compares_beyond_it():
    default, wide, close = Spread.of([10.0, 14.0]), Spread.of([4.0, 6.0]), Spread.of([9.0, 11.0])
    assert (default.mean, default.lo, default.hi) == (12.0, 10.0, 14.0)
    assert wide.below(default) and default.above(wide) and not wide.above(default)
    assert not close.below(default) and not close.above(default)  # the ranges overlap: seed noise
    assert wide.below(default.scaled(0.5)) is False and wide.below(default.scaled(0.75))
    assert wide.below(6.5) and not wide.below(6.0)
    ev = Evidence("question 5")
    ev.add("default: FID", default, fmt="{:.1f}")
    ev.add("one seed: FID", Spread.of([3.0]), fmt="{:.1f}")
    assert ev.text("default: FID") == "12.0 (10.0–14.0)" and ev.text("one seed: FID") == "3.0"
    assert Spread.of([1.2, 1.4]).format("{:.0f}") == "1"  # ends that print alike: no range
    with pytest.raises(ValueError, match="at least one"):
        Spread.of([])
    with pytest.raises(ValueError, match="lo <= mean <= hi"):
        Spread(5.0, 6.0, 7.0)
