"""Resizing between grids and the resolution-normalised spectral Fréchet distance."""

from __future__ import annotations

import math

import pytest
import torch
from sb_dbfs.resolution import normalised_coefficients, resize, spectral_fd


@pytest.mark.parametrize("n", [16, 32, 128])
def test_a_cosine_has_the_same_normalised_coefficient_on_every_grid(n: int) -> None:
    """sqrt(2) cos(pi k x) at the cell centres has orthonormal DCT coefficient sqrt(N) in mode k, 0 elsewhere."""
    x = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    f = (math.sqrt(2) * torch.cos(3 * math.pi * x)).reshape(1, 1, n)
    expected = torch.zeros(1, 12, dtype=torch.float64)
    expected[0, 3] = 1.0
    assert torch.allclose(normalised_coefficients(f), expected, atol=1e-12)


def test_resize_up_and_down() -> None:
    x = torch.randn(2, 3, 16, 16)
    assert resize(x, 64).shape == (2, 3, 64, 64)
    blocks = x.repeat_interleave(4, -1).repeat_interleave(4, -2)
    assert torch.allclose(resize(blocks, 16), x, atol=1e-6)  # down is the average over each cell
    line = torch.randn(2, 1, 8)
    assert resize(line, 8) is line and resize(line, 32).shape == (2, 1, 32)
    with pytest.raises(ValueError, match="resize expects"):
        resize(torch.zeros(4, 4), 8)


def test_spectral_fd_is_zero_for_one_sample_and_grows_with_a_shift() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(500, 1, 32, generator=gen)
    assert spectral_fd(a, a) == pytest.approx(0.0, abs=1e-9)
    shifted = a + 0.5  # a constant moves mode 0 only: normalised coefficient + 0.5
    assert spectral_fd(a, shifted) == pytest.approx(0.25, rel=1e-6)
