"""Helpers the exercise-check tests share (imported by test_checks.py and test_checks_wgan.py)."""

from __future__ import annotations

import pytest

from labkit.checks import ExerciseError


def rejects(check, wrong, *words: str) -> str:
    """Assert that ``check(wrong)`` raises an ExerciseError naming ``words`` and saying what was expected."""
    with pytest.raises(ExerciseError) as info:
        check(wrong)
    message = str(info.value)
    for word in words:
        assert word in message, message
    assert "expected" in message or "hint" in message, message
    return message
