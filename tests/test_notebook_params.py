"""Notebook parameters are checked right after the parameters cell."""

from __future__ import annotations

import pytest

from labkit.notebook import check_parameters

GOOD = dict(epochs=5, n_train=None, batch_size=128, nz=100, ngf=32, ndf=32, lr=2e-4, beta1=0.5, seed=0,
            device="auto", data_root="data", run_dir="runs", ablations=True)


def test_good_parameters_pass_unchanged():
    assert check_parameters(**GOOD) == GOOD
    assert check_parameters(**{**GOOD, "n_train": 512, "device": "cuda:0", "beta1": 0.0})
    assert check_parameters(**{**GOOD, "data_root": None})  # labkit.data.data_root() decides: $LABKIT_DATA, else ./data


@pytest.mark.parametrize("name, value", [
    ("epochs", "two"), ("epochs", 0), ("epochs", 1.5), ("n_train", 0), ("n_train", 70_000),
    ("batch_size", True), ("nz", -3), ("lr", 0), ("lr", float("inf")), ("lr", "1e-3"), ("beta1", 1.0),
    ("seed", -1), ("device", "gpu"), ("data_root", ""), ("data_root", 3), ("ablations", "yes"), ("run_dir", None),
])
def test_bad_value_names_parameter_value_and_accepted(name, value):
    with pytest.raises(ValueError) as err:
        check_parameters(**{**GOOD, name: value})
    message = str(err.value)
    assert f"{name} = {value!r}" in message and "expected" in message


def test_every_bad_parameter_is_listed_at_once():
    with pytest.raises(ValueError) as err:
        check_parameters(**{**GOOD, "epochs": 0, "lr": -1.0})
    assert "epochs = 0" in str(err.value) and "lr = -1.0" in str(err.value)


def test_unknown_parameter_is_refused():
    with pytest.raises(ValueError, match="no rule for parameter"):
        check_parameters(epoch=5)
