"""One suite every network must pass, plus UNet specifics."""

from __future__ import annotations

import inspect
import json

import pytest
import torch

from sbcore.network.base import Network, build_network
from sbcore.network.mlp import MLP
from sbcore.network.unet import SelfAttention, UNet

torch.set_num_threads(1)

#: (network class, constructor kwargs); small so the whole suite runs in seconds on a CPU.
CASES = {
    "mlp-2d": (MLP, dict(shape=(2,), hidden=32, layers=2, time_dim=16)),
    "mlp-image": (MLP, dict(shape=(1, 5, 5), hidden=24, layers=3, time_dim=9)),
    "mlp-raw-t": (MLP, dict(shape=(3,), hidden=16, layers=2, time_embedding="raw")),
    "mlp-fourier-t": (MLP, dict(shape=(3,), hidden=16, layers=2, time_dim=8, time_embedding="fourier", time_scale=4.0)),
    "unet-28": (UNet, dict(shape=(1, 28, 28), channels=8, channel_mults=(1, 2), groups=4)),
    "unet-attn-dropout": (
        UNet,
        dict(
            shape=(3, 12, 12),
            channels=8,
            channel_mults=(1, 1, 2),
            num_res_blocks=2,
            attention_levels=(1, 2),
            dropout=0.1,
            groups=2,
            num_heads=2,
        ),
    ),
}


def make(case: str, seed: int = 0) -> Network:
    cls, kwargs = CASES[case]
    torch.manual_seed(seed)
    return cls(**kwargs)


def inputs(net: Network, batch: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, *net.shape, generator=g), torch.rand(batch, generator=g)


def one_step(net: Network) -> Network:
    """One Adam step on a random regression, so zero-initialised output layers become non-zero."""
    x, t = inputs(net, seed=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    ((net(x, t) - torch.randn_like(x)) ** 2).mean().backward()
    opt.step()
    opt.zero_grad()
    return net


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> str:
    return request.param


def test_output_shape_equals_input_shape(case: str) -> None:
    net = make(case)
    x, t = inputs(net)
    out = net(x, t)
    assert out.shape == x.shape
    assert out.dtype == x.dtype
    assert torch.isfinite(out).all()


def test_hparams_are_the_constructor_arguments_and_json_serialisable(case: str) -> None:
    net = make(case)
    cls, kwargs = CASES[case]
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert params[0] == "shape"
    assert list(net.hparams) == params
    assert {k: net.hparams[k] for k in kwargs} == kwargs
    text = json.dumps(net.hparams)  # plain json, no custom encoder
    assert json.loads(text)["shape"] == list(kwargs["shape"])


def test_hparams_round_trip_through_json_rebuilds_an_identical_network(case: str) -> None:
    net = make(case).eval()
    one_step(net)
    rebuilt = build_network(type(net), json.loads(json.dumps(net.hparams))).eval()
    rebuilt.load_state_dict(net.state_dict())
    x, t = inputs(net)
    assert torch.equal(rebuilt(x, t), net(x, t))
    assert rebuilt.hparams == json.loads(json.dumps(net.hparams))


def test_output_depends_on_t(case: str) -> None:
    net = one_step(make(case)).eval()
    x, _ = inputs(net)
    a = net(x, torch.full((x.shape[0],), 0.2))
    b = net(x, torch.full((x.shape[0],), 0.7))
    assert (a - b).abs().max() > 1e-3 * a.abs().max() > 0


def test_scalar_t_is_broadcast_over_the_batch(case: str) -> None:
    net = one_step(make(case)).eval()
    x, _ = inputs(net)
    assert torch.equal(net(x, torch.tensor(0.3)), net(x, torch.full((x.shape[0],), 0.3)))
    with pytest.raises(ValueError, match=r"t must have shape \(3,\)"):
        net(x, torch.rand(2))


def test_gradients_reach_every_parameter(case: str) -> None:
    net = one_step(make(case))
    x, t = inputs(net)
    net(x, t).square().mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_samples_do_not_influence_each_other_in_eval_mode(case: str) -> None:
    net = one_step(make(case)).eval()
    x, t = inputs(net, batch=4)
    other_x, other_t = inputs(net, batch=4, seed=7)
    mixed_x = torch.cat([x[:1], other_x[1:]])
    mixed_t = torch.cat([t[:1], other_t[1:]])
    with torch.no_grad():
        full, mixed, alone = net(x, t), net(mixed_x, mixed_t), net(x[:1], t[:1])
    scale = full[0].abs().max().item()
    assert scale > 0
    torch.testing.assert_close(mixed[0], full[0], rtol=0, atol=1e-5 * scale)
    torch.testing.assert_close(alone[0], full[0], rtol=0, atol=1e-5 * scale)
    assert not torch.allclose(mixed[1], full[1])


def test_construction_and_training_mode_forward_are_deterministic_under_a_seed(case: str) -> None:
    a, b = one_step(make(case, seed=3)), one_step(make(case, seed=3))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    x, t = inputs(a)
    torch.manual_seed(5)
    out_a = a(x, t)  # train mode: dropout draws from the global generator
    torch.manual_seed(5)
    assert torch.equal(out_a, b(x, t))
    first = next(iter(a.state_dict()))
    assert not torch.equal(make(case, seed=3).state_dict()[first], make(case, seed=4).state_dict()[first])


def test_conditioning_inputs_are_rejected_rather_than_ignored(case: str) -> None:
    net = make(case)
    x, t = inputs(net)
    with pytest.raises(TypeError, match=r"takes no conditioning inputs, got \['y'\]"):
        net(x, t, y=x)


# --- MLP specifics ---


def test_mlp_rejects_inputs_of_the_wrong_shape() -> None:
    net = MLP((1, 5, 5), hidden=8, layers=1, time_dim=4)
    with pytest.raises(ValueError, match=r"shape \(B, \*\(1, 5, 5\)\), got \(2, 25\)"):
        net(torch.zeros(2, 25), torch.zeros(2))
    with pytest.raises(ValueError, match="MLP layers must be >= 1, got 0"):
        MLP((2,), layers=0)


# --- UNet specifics ---


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def tiny_unet(size: int, **kw: object) -> UNet:
    torch.manual_seed(0)
    return UNet((1, size, size), **{"channels": 8, "groups": 4, **kw})


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("mults", [(1, 2), (1, 2, 2, 2)])
def test_unet_handles_28_32_64_including_odd_sizes_after_downsampling(size: int, mults: tuple[int, ...]) -> None:
    # with 4 levels 28 -> 14 -> 7 -> 4 and back: 4 -> 7 -> 14 -> 28
    net = one_step(tiny_unet(size, channel_mults=mults)).eval()
    x = torch.randn(2, 1, size, size)
    out = net(x, torch.rand(2))
    assert out.shape == x.shape
    assert torch.isfinite(out).all() and out.abs().max() > 0


def test_unet_initial_output_is_exactly_zero() -> None:
    net = tiny_unet(28)
    assert torch.equal(net(torch.randn(2, 1, 28, 28), torch.rand(2)), torch.zeros(2, 1, 28, 28))


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        ((), 0),
        ((0,), 3),  # level 0: 1 down stage + 2 up stages
        ((2,), 4),  # deepest level: 1 down + 2 up + the middle block
        ((0, 1, 2), 10),
    ],
)
def test_unet_attention_is_placed_at_the_listed_levels(levels: tuple[int, ...], expected: int) -> None:
    net = tiny_unet(28, channel_mults=(1, 2, 2), attention_levels=levels)
    attn = [m for m in net.modules() if isinstance(m, SelfAttention)]
    assert len(attn) == expected
    # each block adds GroupNorm (2c) + qkv (3c^2 + 3c) + proj (c^2 + c) parameters and nothing else
    widths = [m.proj.in_channels for m in attn]
    assert count(net) - count(tiny_unet(28, channel_mults=(1, 2, 2))) == sum(4 * c * c + 6 * c for c in widths)
    out = one_step(net).eval()(torch.randn(2, 1, 28, 28), torch.rand(2))
    assert out.shape == (2, 1, 28, 28) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(shape=(28, 28)), r"shape must be 3-D \(C, H, W\) with positive sizes, got \(28, 28\)"),
        (
            dict(shape=(1, 28, 28), channels=12, groups=8),
            r"groups must divide every channel count \[12, 24, 24\].*got 8",
        ),
        (dict(shape=(1, 28, 28), channel_mults=()), r"channel_mults must be a non-empty list.*got \[\]"),
        (
            dict(shape=(1, 28, 28), attention_levels=(3,)),
            r"attention_levels must be level indices in \[0, 2\], got \[3\]",
        ),
        (
            dict(shape=(1, 28, 28), channels=12, groups=4, num_heads=8, attention_levels=(0,)),
            r"num_heads must divide the channel counts \[12\] at attention_levels, got 8",
        ),
        (dict(shape=(1, 28, 28), dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
        (dict(shape=(1, 28, 28), num_res_blocks=0), r"num_res_blocks must be >= 1, got 0"),
    ],
)
def test_unet_validation_names_the_argument_the_expectation_and_the_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UNet(**kwargs)


def test_unet_rejects_inputs_with_the_wrong_channel_count() -> None:
    with pytest.raises(ValueError, match=r"shape \(B, 1, H, W\), got \(2, 3, 28, 28\)"):
        tiny_unet(28)(torch.zeros(2, 3, 28, 28), torch.zeros(2))


def test_unet_parameter_counts_for_the_paper_and_cpu_configurations() -> None:
    # DSBM's MNIST UNet (64/128/128 channels, 2 res-blocks, no attention at 28x28) has 6,615,361
    # parameters, 66,304 of them in the ADM middle-block attention (GroupNorm 256 + qkv 49,536 +
    # proj 16,512) that this UNet only adds when the deepest level is listed.
    paper = count(UNet((1, 28, 28), channels=64, channel_mults=(1, 2, 2), num_res_blocks=2, dropout=0.1))
    assert 0.95 * 6_615_361 < paper < 1.05 * 6_615_361
    # the 1.1 M-parameter CPU benchmark UNet (32 channels, mults 1/2/2, 1 block) ...
    cpu32 = count(UNet((1, 28, 28), channels=32))
    assert 1.05e6 < cpu32 < 1.2e6
    # ... and halving the width divides the (conv-dominated) count by about 4
    cpu16 = count(UNet((1, 28, 28), channels=16))
    assert 0.24 < cpu16 / cpu32 < 0.27
    print(f"UNet parameters: paper config {paper:,}, channels=32 {cpu32:,}, channels=16 {cpu16:,}")


def test_mlp_time_embedding_sets_the_input_width_and_rejects_unknown_kinds() -> None:
    # raw t adds one input feature (DSBM's Gaussian network); the embeddings add time_dim features
    assert MLP((4,), hidden=8, layers=1, time_embedding="raw").net[0].in_features == 5
    assert MLP((4,), hidden=8, layers=1, time_dim=6, time_embedding="fourier").net[0].in_features == 10
    with pytest.raises(ValueError, match="time_embedding must be one of raw, sinusoidal, fourier, got 'rff'"):
        MLP((4,), time_embedding="rff")
