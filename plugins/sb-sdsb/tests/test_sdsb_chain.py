"""The gamma schedule parser, the four targets on a hand-computed chain, the next-state means, the
epoch-0 reference chains and the chain sampler."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from sb_sdsb.chain import ChainPath, ChainSampler, dsb_noiser, flow_noiser, next_mean, simulate, training_tuples
from sb_sdsb.gamma import parse_gamma

from sbcore.process.brownian import BrownianBridge
from sbcore.sampler.base import Predictor

torch.set_num_threads(1)


# ---- gamma --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, steps, expected", [
    ("linear", 4, [1e-4, 0.1, 0.1, 1e-4]),
    ("linear_1e-4_1e-3", 4, [1e-4, 1e-3, 1e-3, 1e-4]),
    ("linear_0.5_0.5", 2, [0.5, 0.5]),
    ("constant", 3, [5e-4] * 3),
    ("constant_0.001", 5, [1e-3] * 5),
    ("constant_0", 2, [0.0, 0.0]),
])
def test_gamma_schedules(text, steps, expected):
    assert parse_gamma(text).values(steps).tolist() == pytest.approx(expected, rel=1e-12)


def test_paper_2d_schedule_total_noise():
    gammas = parse_gamma("linear_1e-4_1e-3").values(16)
    assert torch.equal(gammas, gammas.flip(0))  # symmetric
    assert float(2 * gammas.sum()) == pytest.approx(0.0176, rel=1e-12)  # spec: total noise variance at N = 16


@pytest.mark.parametrize("text, message", [
    ("linear_1e-3_1e-4", "MIN must be <= MAX"),
    ("linear_-1e-4_1e-3", "must be >= 0"),
    ("constant_-0.1", "must be >= 0"),
    ("linear_1e-4", "expected"),
    ("constant_1_2", "expected"),
    ("cosine", "expected"),
    ("constant_abc", "not a number"),
    ("linear_1e-4_nan", "not a number"),
    ("", "expected"),
])
def test_bad_gamma_strings_name_the_key_and_the_string(text, message):
    with pytest.raises(ValueError, match=message) as err:
        parse_gamma(text, "method.gamma")
    assert str(err.value).startswith("method.gamma: ") and repr(text) in str(err.value)
    assert "\n" not in str(err.value)


def test_linear_gamma_needs_an_even_number_of_steps():
    with pytest.raises(ValueError, match=r"method.gamma: 'linear_1e-4_1e-3' is symmetric .* even .* got 15"):
        parse_gamma("linear_1e-4_1e-3", "method.gamma").values(15, "method.gamma")
    assert parse_gamma("constant").values(15).shape == (15,)


# ---- targets on a hand-computed chain -----------------------------------------------------------


def hand_chain() -> ChainPath:
    """y = (1, 3, 4), F_0(y) = y / 2 + 1, F_1(y) = 2 y: means F_j(y_j) = (1.5, 6), cross F_j(y_{j+1}) = (2.5, 8)."""
    col = lambda *v: torch.tensor(v, dtype=torch.float64).reshape(-1, 1, 1)  # noqa: E731
    return ChainPath(path=col(1.0, 3.0, 4.0), means=col(1.5, 6.0), cross=col(2.5, 8.0))


@pytest.mark.parametrize("target, expected", [
    ("simplified", [1.0, 3.0]),            # y_j
    ("dsb", [2.0, 2.0]),                   # y_{j+1} + F_j(y_j) - F_j(y_{j+1}): 3 + 1.5 - 2.5, 4 + 6 - 8
    ("term", [1.0, 1.0]),                  # y_0
    ("flow", [-4.0, -3.0]),                # (y_0 - y_{j+1}) / ((j + 1) / N): -2 / (1/2), -3 / 1
])
def test_targets_on_a_hand_computed_chain(target, expected):
    inputs, targets, labels = training_tuples(target, hand_chain())
    assert inputs.flatten().tolist() == [3.0, 4.0]
    assert labels.tolist() == [1, 0]  # the reversing network's step s = N - 1 - j
    assert targets.flatten().tolist() == expected


def test_dsb_target_needs_cross_means():
    chain = hand_chain()
    with pytest.raises(ValueError, match="cross"):
        training_tuples("dsb", ChainPath(chain.path, chain.means))
    with pytest.raises(ValueError, match="target must be one of"):
        training_tuples("drift", chain)


def test_next_means_by_hand():
    x = torch.zeros(1, 1, dtype=torch.float64)
    out = torch.full_like(x, 3.0)
    assert next_mean("mean", out, x, 0.25, 0.5).item() == 3.0
    assert next_mean("endpoint", out, x, 0.25, 0.5).item() == pytest.approx(1.0)  # x + (3 - x) / (N - s), N=4, s=1
    assert next_mean("velocity", out, x, 0.25, 0.5).item() == pytest.approx(0.75)  # x + v / N
    with pytest.raises(ValueError, match="mean, endpoint or velocity"):
        next_mean("drift", out, x, 0.0, 0.5)


def test_exact_term_and_flow_targets_give_the_same_step():
    """A network that outputs its target exactly moves to the same mean under TR and FR."""
    chain, n = hand_chain(), 2
    for target, kind in (("term", "endpoint"), ("flow", "velocity")):
        inputs, targets, labels = training_tuples(target, chain)
        means = [next_mean(kind, targets[j], inputs[j], labels[j] / n, (labels[j] + 1) / n) for j in range(n)]
        assert torch.stack(means).flatten().tolist() == pytest.approx([1.0, 2.5])  # y + (y_0 - y) / (j + 1)


# ---- reference chains and the simulator ---------------------------------------------------------


def test_noiseless_flow_noiser_walks_the_straight_line():
    n, start, anchor = 4, torch.tensor([[2.0, -1.0]]), torch.tensor([[-2.0, 3.0]])
    chain = simulate(flow_noiser(anchor, n), start, torch.zeros(n))
    expected = torch.stack([start + (anchor - start) * j / n for j in range(n + 1)])
    torch.testing.assert_close(chain.path, expected)
    _, targets, _ = training_tuples("flow", chain)  # the first network's velocity target: x1 - x0 everywhere
    torch.testing.assert_close(targets, (start - anchor).expand_as(targets))


def test_dsb_noiser_and_cross_means():
    gammas = torch.tensor([0.1, 0.2])
    chain = simulate(dsb_noiser(gammas), torch.ones(1, 1), torch.zeros(2), cross=True)
    torch.testing.assert_close(chain.path.flatten(), torch.tensor([1.0, 0.9, 0.72]))
    torch.testing.assert_close(chain.cross.flatten(), torch.tensor([0.81, 0.576]))


@pytest.mark.parametrize("last_noise, steps_with_noise", [(True, 4), (False, 3)])
def test_chain_noise_variance(last_noise, steps_with_noise):
    torch.manual_seed(0)
    gammas = torch.tensor([0.01, 0.02, 0.02, 0.01])
    chain = simulate(lambda y, j: y, torch.zeros(200_000, 1), gammas, last_noise=last_noise)
    expected = float(2 * gammas[:steps_with_noise].sum())
    assert float(chain.path[-1].var()) == pytest.approx(expected, rel=0.02)


# ---- the sampler --------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_chain_sampler_lands_on_a_constant_endpoint(direction):
    sampler = ChainSampler(steps=4, gamma="constant_0")
    grid = sampler.time_grid(BrownianBridge(0.0), direction, dtype=torch.float64)
    end = torch.tensor([[0.5, -2.0]], dtype=torch.float64)
    x = torch.randn(3, 2, dtype=torch.float64)
    net = lambda y, t: end.expand_as(y)  # noqa: E731
    traj = sampler.sample(Predictor(net, BrownianBridge(0.0), direction, "endpoint"), x, grid, return_path=True)
    torch.testing.assert_close(traj.x, end.expand_as(x))
    assert traj.path.shape == (5, 3, 2) and traj.nfe == 4
    velocity = sampler.sample(Predictor(lambda y, t: end.expand_as(y), BrownianBridge(0.0), direction, "velocity"),
                              x, grid)
    torch.testing.assert_close(velocity.x, x + end)  # x + v over the whole clock
    # record: every step's predicted end (eval.output=predicted_end); the endpoint network's own output, and
    # x + v (1 - tau) for the velocity one, which on this straight path is x + end at every step
    recorded = sampler.sample(Predictor(net, BrownianBridge(0.0), direction, "endpoint"), x, grid, record=True)
    torch.testing.assert_close(recorded.predictions, end.expand(4, 3, 2))
    recorded = sampler.sample(Predictor(lambda y, t: end.expand_as(y), BrownianBridge(0.0), direction, "velocity"),
                              x, grid, record=True)
    torch.testing.assert_close(recorded.predictions, (x + end).expand(4, 3, 2))
    mean = sampler.sample(Predictor(lambda y, t: y, BrownianBridge(0.0), direction, "mean"), x, grid, record=True)
    assert mean.predictions is None  # a mean network has no predicted end: the core refuses predicted_end


def test_chain_sampler_sees_the_core_time_and_checks_its_steps():
    seen = []
    net = lambda y, t: (seen.append(t[0].item()), y)[1]  # noqa: E731
    sampler = ChainSampler(steps=4, gamma="linear")
    grid = sampler.time_grid(BrownianBridge(0.0), "backward")
    sampler.sample(Predictor(net, BrownianBridge(0.0), "backward", "mean"), torch.zeros(2, 1), grid)
    assert seen == pytest.approx([1.0, 0.75, 0.5, 0.25])
    with pytest.raises(ValueError, match="tied to its 4 steps"):
        sampler.sample(Predictor(net, BrownianBridge(0.0), "backward", "mean"), torch.zeros(2, 1),
                       sampler.time_grid(BrownianBridge(0.0), "backward", steps=2))
    with pytest.raises(ValueError, match="even number of steps"):
        ChainSampler(steps=5, gamma="linear")


FIXTURE = Path(__file__).parent / "fixtures" / "sdsb_ou_reference.safetensors"


@pytest.mark.parametrize("target", ["flow", "term", "simplified"])
def test_ou_chain_targets_against_the_official_code(target):
    """Fixture: the official `DSBNoiser.trajectory` (N = 16, linear_1e-4_1e-3, 8 chains from x1 = randn(seed 3),
    torch.manual_seed(11)), numbers only. The same draws give the same chain; its flow target is reproduced
    by reference_compat only, the others agree either way."""
    ref = load_file(FIXTURE)
    gammas = parse_gamma("linear_1e-4_1e-3").values(16)
    torch.manual_seed(11)
    chain = simulate(dsb_noiser(gammas), ref["x1"], gammas)
    for compat in (False, True):
        x, y, labels = training_tuples(target, chain, reference_compat=compat)
        torch.testing.assert_close(x.reshape(-1, 2), ref[f"{target}_inputs"], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(labels.repeat_interleave(8).float(), ref[f"{target}_labels"])
        if target != "flow" or compat:
            torch.testing.assert_close(y.reshape(-1, 2), ref[f"{target}_targets"], atol=1e-5, rtol=1e-5)
        else:  # the remaining time (j + 1) / N: off by a factor (N - j) / (j + 1), N = 16 at the chain's start
            ratio = (y.reshape(-1, 2) / ref["flow_targets"]).reshape(16, 8, 2)
            j = torch.arange(16, dtype=ratio.dtype)
            torch.testing.assert_close(ratio, ((16 - j) / (j + 1))[:, None, None].expand_as(ratio), rtol=1e-3, atol=0)
