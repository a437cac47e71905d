"""Evidence tables and checkable claims: marks, the failing claim's sentence, the budget note, bad input."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from labkit.claims import Claims, Evidence


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
