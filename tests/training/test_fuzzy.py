"""Fuzzy membership functions and their parameter checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.fuzzy import check_parameters, membership


def test_triangular_rises_peaks_and_falls_linearly():
    x = np.array([0, 10, 20, 30, 40, 50])
    assert membership("triangular", [10, 30, 50], x).tolist() == [0, 0, 0.5, 1, 0.5, 0]


def test_trapezoidal_has_a_flat_top_and_open_shoulders():
    x = np.array([0, 10, 25, 30, 35, 50])
    assert membership("trapezoidal", [0, 0, 25, 35], x).tolist() == [1, 1, 1, 0.5, 0, 0]


def test_trapezoidal_accepts_infinite_shoulders():
    x = np.array([-1e9, 0.0, 5.0, 10.0])
    out = membership("trapezoidal", [-math.inf, -math.inf, 0, 10], x)
    assert out.tolist() == [1, 1, 0.5, 0]


def test_gaussian_is_one_at_the_mean_and_exp_minus_half_at_one_sigma():
    out = membership("gaussian", [50, 10], np.array([50, 60, 40]))
    assert out.tolist() == pytest.approx([1, math.exp(-0.5), math.exp(-0.5)])


def test_nan_input_stays_nan():
    assert np.isnan(membership("triangular", [0, 1, 2], np.array([np.nan]))).all()


@pytest.mark.parametrize(
    ("kind", "params", "problem"),
    [
        ("triangular", [1, 2], "takes 3 numbers"),
        ("triangular", [3, 2, 1], "ascending"),
        ("trapezoidal", [1, 1, 1, 1], "zero width"),
        ("gaussian", [0, 0], "sigma"),
        ("trapezoidal", [-math.inf, 0, 1, 2], "shoulder"),
        ("sigmoid", [1], "unknown membership type"),
    ],
)
def test_bad_parameters_are_explained(kind, params, problem):
    assert problem in check_parameters(kind, params)
