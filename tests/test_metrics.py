"""vitedge.metrics: the comparisons every validation report is judged by."""

from __future__ import annotations

import numpy as np

from vitedge.metrics import row_cosines


def test_a_zero_row_against_a_non_zero_one_is_orthogonal_and_two_zero_rows_agree():
    reference = np.array([[1.0, -2.0, 3.0], [0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    candidate = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [4.0, 0.0, 0.0]])
    np.testing.assert_allclose(row_cosines(reference, candidate), [0.0, 1.0, 1.0])


def test_row_cosines_are_the_cosines_of_each_row():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    expected = [x @ y / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a, b)]
    np.testing.assert_allclose(row_cosines(a, b), expected, rtol=1e-12)
