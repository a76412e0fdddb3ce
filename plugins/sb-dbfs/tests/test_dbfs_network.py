"""The operator transformer is one function of coordinates: any grid, zero at init, trainable (spec U8)."""

from __future__ import annotations

import pytest
import torch
from sb_dbfs.network import OperatorTransformer, cell_coordinates

from sbcore.testing import network_conformance

torch.set_num_threads(1)


def small(shape: tuple[int, ...], **kw) -> OperatorTransformer:
    return OperatorTransformer(shape, width=32, latents=8, heads=4, encoder_blocks=1, fourier_features=8, **kw)


@pytest.mark.parametrize("shape", [(1, 32), (3, 16, 16)], ids=["1d", "2d"])
def test_one_network_accepts_any_grid_and_starts_at_zero(shape: tuple[int, ...]) -> None:
    net = small(shape, decoder_self_attention=True)
    for n in (16, 32, 64, 128) if len(shape) == 2 else (16, 32, 64):
        grid = (n,) * (len(shape) - 1)
        x = torch.randn(2, shape[0], *grid)
        out = net(x, torch.rand(2))
        assert out.shape == x.shape
        assert torch.count_nonzero(out) == 0


def test_non_square_grids_and_a_scalar_time_work() -> None:
    net = small((2, 8, 8))
    assert net(torch.randn(3, 2, 12, 20), torch.tensor(0.3)).shape == (3, 2, 12, 20)


def test_trained_network_is_a_smooth_function_of_coordinates_at_two_resolutions() -> None:
    """Fit x1 = sin(2 pi p) at N=32; at N=64 the same network reproduces it on the finer cell centres."""
    torch.manual_seed(0)
    net = small((1, 32))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def target(n: int) -> torch.Tensor:
        return torch.sin(2 * torch.pi * cell_coordinates((n,))[:, 0]).expand(8, 1, n)

    for _ in range(300):
        x, t = torch.randn(8, 1, 32), torch.rand(8)
        loss = (net(x, t) - target(32)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        err32 = (net(torch.randn(8, 1, 32), torch.rand(8)) - target(32)).square().mean().sqrt()
        err64 = (net(torch.randn(8, 1, 64), torch.rand(8)) - target(64)).square().mean().sqrt()
    assert err32 < 0.1 and err64 < 0.15


def test_output_depends_on_time_and_on_the_input_values() -> None:
    torch.manual_seed(1)
    net = small((1, 16))
    for p in net.parameters():  # leave the zero init: every gate and the head become non-zero
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(2, 1, 16)
    assert not torch.allclose(net(x, torch.zeros(2)), net(x, torch.ones(2)))
    assert not torch.allclose(net(x, torch.zeros(2)), net(-x, torch.zeros(2)))


def test_constructor_records_its_arguments_and_rebuilds() -> None:
    net = small((1, 32), seed=3)
    again = OperatorTransformer(**net.hparams)
    again.load_state_dict(net.state_dict())
    assert torch.equal(again.frequencies, net.frequencies)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="shape: expected"):
        OperatorTransformer((32,))
    with pytest.raises(ValueError, match="multiple of heads"):
        OperatorTransformer((1, 32), width=30, heads=4)
    with pytest.raises(ValueError, match=r"input must have shape \(B, 1, N\)"):
        small((1, 32))(torch.randn(2, 2, 32), torch.rand(2))
    with pytest.raises(TypeError, match="no conditioning"):
        small((1, 32))(torch.randn(2, 1, 32), torch.rand(2), cond=torch.zeros(2))


# the core's Network conformance suite, at two resolutions in 1-D and in 2-D
test_operator_transformer = network_conformance(
    "operator_transformer",
    {"width": 16, "latents": 4, "encoder_blocks": 1, "fourier_features": 4, "decoder_self_attention": True},
    shapes=[(1, 16), (1, 32), (2, 8, 8), (2, 16, 16)],
)
