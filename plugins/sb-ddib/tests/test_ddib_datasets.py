"""The core's six DDIB 2-D sets against the reference generators' golden values (spec §2.2)."""

from __future__ import annotations

import numpy as np
import pytest

from sbcore.data.toy2d import generate

#: np.random.seed(0); generate(id, N=90000): points 0, 45 000 and 89 999 and sum |p| (spec §2.2 table).
GOLDEN = {
    "ddib-moons": ((0.993525, -0.495005), (-0.514627, 0.296234), (2.254113, 0.040284), 145850.6471),
    "ddib-checkerboard": ((1.731193, 1.030756), (-0.004736, 1.175807), (-1.732848, 0.254726), 155867.3015),
    "ddib-concentric-rings": ((0.671442, 0.002179), (-1.305378, -0.010843), (2.104225, 0.002635), 149676.1017),
    "ddib-concentric-squares": ((-0.477505, 0.478554), (1.091213, -1.090303), (-1.637714, 1.638094), 152786.1223),
    "ddib-parallel-rings": ((-1.000918, 0.001486), (-0.564039, -0.004115), (2.269878, 0.001674), 138203.5188),
    "ddib-parallel-squares": ((-2.003153, 0.441124), (0.484729, -0.483682), (1.096048, 0.468028), 140706.1720),
}
#: per-axis mean and std of the reference's normalised outputs (N = 300 000, spec §2.2).
MOMENTS = {
    "ddib-moons": ((0.174, -0.174), (1.209, 0.692)),
    "ddib-checkerboard": ((0.0, 0.0), (1.0, 1.0)),
    "ddib-concentric-rings": ((0.0, 0.0), (1.0, 1.0)),
    "ddib-concentric-squares": ((0.0, 0.0), (1.0, 1.0)),
    "ddib-parallel-rings": ((0.0, 0.0), (1.355, 0.404)),
    "ddib-parallel-squares": ((0.0, 0.0), (1.347, 0.430)),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_reference_order_matches_the_golden_values(name):
    p = generate(name, 90_000, np.random.RandomState(0))
    *points, total = GOLDEN[name]
    for index, expected in zip((0, 45_000, 89_999), points, strict=True):
        np.testing.assert_allclose(p[index], expected, atol=1e-5)
    assert abs(np.abs(p.astype(np.float64)).sum() - total) < 0.05


@pytest.mark.parametrize("name", sorted(MOMENTS))
def test_iid_draws_have_the_reference_moments(name):
    p = generate(name, 200_000, np.random.RandomState(1), iid=True).astype(np.float64)
    mean, std = MOMENTS[name]
    np.testing.assert_allclose(p.mean(0), mean, atol=0.01)
    np.testing.assert_allclose(p.std(0), std, atol=0.01)
