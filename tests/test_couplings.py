"""Independent, paired, minibatch-OT and model-induced couplings."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from sbcore.coupling.independent import IndependentCoupling, PairedCoupling
from sbcore.coupling.model import ModelCoupling
from sbcore.coupling.ot import ExactOTCoupling, SinkhornCoupling, sample_rows

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def near_permutation(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x1 is a shuffled, slightly perturbed x0: an OT problem with a clear optimum."""
    g = gen(seed)
    x0 = torch.randn(n, d, dtype=F64, generator=g)
    x1 = x0[torch.randperm(n, generator=g)] + 0.1 * torch.randn(n, d, dtype=F64, generator=g)
    return x0, x1


def exact_permutation(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    return ExactOTCoupling().plan(x0, x1).argmax(dim=1)


# ----------------------------------------------------------------------------------------------
# independent and paired
# ----------------------------------------------------------------------------------------------


def test_independent_keeps_both_batches_as_given():
    x0, x1 = torch.randn(5, 3), torch.randn(5, 2, 2)
    pair = IndependentCoupling()(x0, x1)
    assert pair.x0 is x0 and pair.x1 is x1
    assert not IndependentCoupling.needs_pairs


def test_independent_errors():
    with pytest.raises(ValueError, match=r"IndependentCoupling needs an x1 batch, got x1=None"):
        IndependentCoupling()(torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"IndependentCoupling: x0 and x1 batch sizes differ \(4 vs 3\)"):
        IndependentCoupling()(torch.randn(4, 2), torch.randn(3, 2))


def test_paired_returns_dataset_pairs_and_errors():
    x0 = torch.randn(6, 2)
    x1 = x0 + 1
    pair = PairedCoupling()(x0, x1)
    assert pair.x0 is x0 and pair.x1 is x1
    assert PairedCoupling.needs_pairs
    with pytest.raises(ValueError, match=r"PairedCoupling needs the dataset's paired x1 batch"):
        PairedCoupling()(x0)
    with pytest.raises(ValueError, match=r"PairedCoupling: x0 and x1 batch sizes differ \(6 vs 5\)"):
        PairedCoupling()(x0, x1[:5])


# ----------------------------------------------------------------------------------------------
# exact OT
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 6])
@pytest.mark.parametrize("n", range(2, 8))
def test_exact_ot_is_the_brute_force_optimal_permutation(n: int, d: int):
    perms = torch.tensor(list(itertools.permutations(range(n))))
    for seed in range(3):
        g = gen(100 * n + seed)
        x0, x1 = torch.randn(n, d, dtype=F64, generator=g), torch.randn(n, d, dtype=F64, generator=g)
        cost = torch.cdist(x0, x1) ** 2
        totals = cost[torch.arange(n), perms].sum(dim=1)
        best = perms[totals.argmin()]

        coupling = ExactOTCoupling()
        plan = coupling.plan(x0, x1)
        assert torch.allclose(plan * n, torch.eye(n, dtype=F64)[best])
        assert torch.isclose((plan * cost).sum() * n, totals.min())

        pair = coupling(x0, x1)
        assert pair.x0 is x0
        assert torch.equal(pair.x1, x1[best])


def test_exact_ot_flattens_samples_and_keeps_dtype():
    g = gen(0)
    x0, x1 = torch.randn(5, 2, 3, 3, generator=g), torch.randn(5, 2, 3, 3, generator=g)
    pair = ExactOTCoupling()(x0, x1)
    assert pair.x1.shape == x1.shape and pair.x1.dtype == torch.float32
    assert torch.equal(pair.x1, x1[exact_permutation(x0.flatten(1).double(), x1.flatten(1).double())])


def test_exact_ot_unequal_batches_draws_from_the_plan_support():
    g = gen(1)
    x0, x1 = torch.randn(4, 2, dtype=F64, generator=g), torch.randn(6, 2, dtype=F64, generator=g)
    coupling = ExactOTCoupling(generator=gen(2))
    plan = coupling.plan(x0, x1)
    assert torch.allclose(plan.sum(1), torch.full((4,), 1 / 4, dtype=F64))
    assert torch.allclose(plan.sum(0), torch.full((6,), 1 / 6, dtype=F64))
    for _ in range(20):
        pair = coupling(x0, x1)
        j = torch.cdist(pair.x1, x1).argmin(dim=1)
        assert (plan[torch.arange(4), j] > 0).all()


def test_ot_errors():
    with pytest.raises(ValueError, match="ExactOTCoupling needs an x1 batch"):
        ExactOTCoupling()(torch.randn(3, 2))
    with pytest.raises(ValueError, match="SinkhornCoupling needs an x1 batch"):
        SinkhornCoupling()(torch.randn(3, 2))
    with pytest.raises(ValueError, match="same size on both sides, got 2 and 3 values"):
        SinkhornCoupling()(torch.randn(3, 2), torch.randn(3, 3))
    with pytest.raises(ValueError, match="reg must be > 0"):
        SinkhornCoupling(reg=0.0)


# ----------------------------------------------------------------------------------------------
# Sinkhorn
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("d", "seed"), [(2, 0), (2, 1), (5, 0)])
def test_sinkhorn_plan_approaches_exact_plan_as_reg_shrinks(d: int, seed: int):
    x0, x1 = near_permutation(6, d, seed)
    exact = ExactOTCoupling().plan(x0, x1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reg = 0.01 may use all its iterations
        dist = [
            (SinkhornCoupling(reg=reg, normalize_cost=True, max_iter=3000, tol=1e-10).plan(x0, x1) - exact).abs().sum()
            for reg in (1.0, 0.1, 0.01, 0.001)
        ]
    assert all(a > b for a, b in itertools.pairwise(dist)), dist
    assert dist[0] > 1.0  # the large-reg plan is spread out ...
    assert dist[-1] < 1e-3  # ... the small-reg one is the exact plan


def test_sinkhorn_marginals_are_uniform():
    g = gen(3)
    n0, n1 = 12, 9
    x0, x1 = torch.randn(n0, 3, dtype=F64, generator=g), torch.randn(n1, 3, dtype=F64, generator=g) + 1
    plan = SinkhornCoupling(reg=0.2, normalize_cost=True, tol=1e-12, max_iter=5000).plan(x0, x1)
    assert plan.shape == (n0, n1) and (plan > 0).all()
    assert torch.allclose(plan.sum(1), torch.full((n0,), 1 / n0, dtype=F64), rtol=1e-9)
    assert torch.allclose(plan.sum(0), torch.full((n1,), 1 / n1, dtype=F64), rtol=1e-9)


def test_sinkhorn_sb_value_reg_matches_its_definition():
    """At the SB value reg = 2 sigma^2 the plan is the EOT plan of that regularised problem: its
    log-density is -C/reg plus row and column potentials, so log pi has zero mixed differences."""
    g = gen(4)
    x0, x1 = torch.randn(5, 2, dtype=F64, generator=g), torch.randn(5, 2, dtype=F64, generator=g)
    sigma = 0.7
    plan = SinkhornCoupling(reg=2 * sigma**2, tol=1e-13, max_iter=5000).plan(x0, x1)
    k = plan.log() + torch.cdist(x0, x1) ** 2 / (2 * sigma**2)
    mixed = k - k[:, :1] - k[:1, :] + k[0, 0]
    assert mixed.abs().max() < 1e-9


def test_sinkhorn_log_domain_survives_costs_far_above_reg():
    """Costs ~ 2700 at reg = 0.05: exp(-C/reg) underflows to 0 in the plain (kernel) iteration."""
    x0, x1 = near_permutation(16, 3, seed=0)
    x1 = x1 + 30.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # not fully converged in max_iter = 1000
        plan = SinkhornCoupling().plan(x0, x1)
    assert torch.isfinite(plan).all()
    assert torch.equal(plan.argmax(dim=1), exact_permutation(x0, x1))
    assert torch.allclose(plan.sum(1) * 16, torch.ones(16, dtype=F64), atol=1e-9)
    assert torch.allclose(plan.sum(0) * 16, torch.ones(16, dtype=F64), atol=1e-2)


@pytest.mark.parametrize(("d", "seed"), [(2, 2), (2, 4), (5, 1)])
def test_sinkhorn_pairing_at_tiny_reg_is_the_exact_permutation(d: int, seed: int):
    x0, x1 = near_permutation(7, d, seed)
    perm = exact_permutation(x0, x1)
    coupling = SinkhornCoupling(reg=1e-3, normalize_cost=True, max_iter=3000)
    for s in range(5):
        pair = coupling(x0, x1, generator=gen(s))
        assert pair.x0 is x0
        assert torch.equal(pair.x1, x1[perm])


def test_sinkhorn_pairing_is_reproducible_under_a_seed():
    g = gen(5)
    x0, x1 = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g)
    coupling = SinkhornCoupling(reg=0.5)
    a = coupling(x0, x1, generator=gen(7)).x1
    assert torch.equal(a, coupling(x0, x1, generator=gen(7)).x1)
    assert torch.equal(a, SinkhornCoupling(reg=0.5, generator=gen(7))(x0, x1).x1)
    assert not torch.equal(a, coupling(x0, x1, generator=gen(8)).x1)


def test_sample_rows_follows_the_row_conditionals():
    rows = torch.tensor([[0.2, 0.0, 0.6, 0.2], [0.0, 0.0, 0.05, 0.0]])
    plan = rows.repeat_interleave(20000, dim=0)
    j = sample_rows(plan, gen(0))
    for r, probs in enumerate(rows / rows.sum(1, keepdim=True)):
        freq = torch.bincount(j[r * 20000 : (r + 1) * 20000], minlength=4) / 20000
        assert (freq[probs == 0] == 0).all()
        assert torch.allclose(freq, probs, atol=0.01)


def test_sinkhorn_stays_on_the_host_tensors(monkeypatch):
    """No numpy conversion or device copy inside the solve: the path a GPU batch takes."""

    def forbidden(*args, **kwargs):
        raise AssertionError("tensor left its device")

    g = gen(6)
    x0, x1 = torch.randn(16, 3, generator=g), torch.randn(16, 3, generator=g)
    for name in ("cpu", "numpy", "tolist", "item"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    coupling = SinkhornCoupling(reg=0.1, normalize_cost=True)
    plan = coupling.plan(x0, x1)
    pair = coupling(x0, x1, generator=gen(0))
    monkeypatch.undo()
    assert plan.device == x0.device and plan.dtype == x0.dtype
    assert pair.x1.device == x0.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sinkhorn_on_cuda_stays_on_cuda():
    g = gen(7)
    x0, x1 = torch.randn(32, 3, generator=g), torch.randn(32, 3, generator=g)
    coupling = SinkhornCoupling(reg=0.1, normalize_cost=True)
    plan = coupling.plan(x0.cuda(), x1.cuda())
    assert plan.is_cuda
    assert torch.allclose(plan.cpu(), coupling.plan(x0, x1), atol=1e-5)
    cpu_pair = coupling(x0, x1, generator=gen(1))
    for generator in (gen(1), torch.Generator("cuda").manual_seed(1)):
        pair = coupling(x0.cuda(), x1.cuda(), generator=generator)
        assert pair.x0.is_cuda and pair.x1.is_cuda
    # a CPU generator draws the same uniforms whatever the plan's device
    assert torch.equal(coupling(x0.cuda(), x1.cuda(), generator=gen(1)).x1.cpu(), cpu_pair.x1)


# ----------------------------------------------------------------------------------------------
# model-induced coupling (IMF refresh)
# ----------------------------------------------------------------------------------------------


class Recorder:
    """draw_start hands out consecutive ids (so each sample says which refresh made it);
    simulate adds 1 and logs the sizes it was called with."""

    def __init__(self, start: int = 0) -> None:
        self.next_id = start
        self.sim_sizes: list[int] = []

    def draw_start(self, n: int) -> torch.Tensor:
        ids = torch.arange(self.next_id, self.next_id + n, dtype=F64)
        self.next_id += n
        return ids[:, None].repeat(1, 2)

    def simulate(self, x: torch.Tensor) -> torch.Tensor:
        self.sim_sizes.append(x.shape[0])
        return x + 1


def cached(rec: Recorder, direction: str = "forward", seed: int = 0, **kw) -> ModelCoupling:
    kw = {"cache_size": 10, "refresh_every": 3, "chunk_size": 4} | kw
    return ModelCoupling(rec.simulate, direction, draw_start=rec.draw_start, generator=gen(seed), **kw)


def test_model_coupling_without_cache_simulates_each_batch():
    rec = Recorder()
    x0, x1 = torch.randn(5, 2), torch.randn(5, 2)
    fwd = ModelCoupling(rec.simulate, "forward")(x0, x1)
    assert fwd.x0 is x0 and torch.equal(fwd.x1, x0 + 1)
    bwd = ModelCoupling(rec.simulate, "backward")(x0, x1)
    assert bwd.x1 is x1 and torch.equal(bwd.x0, x1 + 1)
    assert rec.sim_sizes == [5, 5]
    with pytest.raises(ValueError, match=r"ModelCoupling\('backward'\) without a cache simulates from x1, got None"):
        ModelCoupling(rec.simulate, "backward")(x0)


def test_model_coupling_runs_simulate_without_grad():
    w = torch.ones((), requires_grad=True)
    pair = ModelCoupling(lambda x: x * w)(torch.randn(3, 2))
    assert not pair.x1.requires_grad


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_model_coupling_cache_refreshes_at_0_K_2K_before_sampling(direction: str):
    rec = Recorder()
    coupling = cached(rec, direction)
    sims_per_refresh = [4, 4, 2]
    for call in range(8):
        pair = coupling(torch.zeros(6, 2), torch.zeros(6, 2))
        refreshes = call // 3 + 1
        assert rec.sim_sizes == sims_per_refresh * refreshes
        data, generated = (pair.x0, pair.x1) if direction == "forward" else (pair.x1, pair.x0)
        assert torch.equal(generated, data + 1)
        ids = data[:, 0]
        assert ((ids >= 10 * (refreshes - 1)) & (ids < 10 * refreshes)).all()  # drawn from the newest cache
        assert ids.unique().numel() == 6  # no repeats inside a batch


def test_model_coupling_cache_is_filled_by_chunks_and_drawn_without_replacement():
    rec = Recorder()
    coupling = cached(rec, cache_size=10, chunk_size=3)
    pair = coupling(torch.zeros(10, 2))
    assert rec.sim_sizes == [3, 3, 3, 1]
    assert coupling.cache is not None and coupling.cache.x0.shape == (10, 2)
    assert torch.equal(coupling.cache.x0[:, 0], torch.arange(10, dtype=F64))
    assert torch.equal(pair.x0[:, 0].sort().values, torch.arange(10, dtype=F64))
    with pytest.raises(ValueError, match="batch size 11 exceeds cache_size 10"):
        coupling(torch.zeros(11, 2))


def test_model_coupling_forced_refresh_restarts_the_schedule():
    rec = Recorder()
    coupling = cached(rec, refresh_every=3, chunk_size=10)
    coupling(torch.zeros(2, 2))
    coupling(torch.zeros(2, 2))
    coupling.refresh()
    assert len(rec.sim_sizes) == 2
    for _ in range(3):
        coupling(torch.zeros(2, 2))
    assert len(rec.sim_sizes) == 2
    coupling(torch.zeros(2, 2))
    assert len(rec.sim_sizes) == 3


def test_model_coupling_state_dict_resumes_bit_identically(tmp_path):
    rec = Recorder()
    coupling = cached(rec, refresh_every=4, chunk_size=4, seed=1)
    for _ in range(6):
        coupling(torch.zeros(5, 2))
    save_file(coupling.state_dict(), tmp_path / "coupling.safetensors")
    resumed_ids = rec.next_id
    expected = [coupling(torch.zeros(5, 2)) for _ in range(7)]  # crosses refreshes at calls 8 and 12

    rec2 = Recorder(start=resumed_ids)
    resumed = cached(rec2, refresh_every=4, chunk_size=4, seed=99)
    resumed.load_state_dict(load_file(tmp_path / "coupling.safetensors"))
    for want in expected:
        got = resumed(torch.zeros(5, 2))
        assert torch.equal(got.x0, want.x0) and torch.equal(got.x1, want.x1)
    assert rec2.sim_sizes == [4, 4, 2] * 2


def test_model_coupling_state_before_first_call_and_mismatched_cache():
    rec = Recorder()
    fresh = cached(rec).state_dict()
    assert set(fresh) == {"calls_since_refresh", "generator_state"}
    coupling = cached(rec)
    coupling(torch.zeros(2, 2))
    state = coupling.state_dict()
    with pytest.raises(ValueError, match="saved cache holds 10 / 10 pairs, this coupling's cache_size is 12"):
        cached(rec, cache_size=12).load_state_dict(state)


def test_model_coupling_argument_errors():
    rec = Recorder()
    with pytest.raises(ValueError, match="direction must be 'forward' or 'backward'"):
        ModelCoupling(rec.simulate, "sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs draw_start"):
        ModelCoupling(rec.simulate, cache_size=4)
    with pytest.raises(ValueError, match="refresh_every must be >= 1"):
        cached(rec, refresh_every=0)
    with pytest.raises(RuntimeError, match="refresh\\(\\) needs a cached ModelCoupling"):
        ModelCoupling(rec.simulate).refresh()


def test_sinkhorn_default_iterations_suffice_for_sb_cfm_in_high_dimension():
    """SB-CFM's coupling at d=50 (reg 2 sigma^2 = 2, cost ~ 2d): about 1 batch in 12 needs more
    than 1000 iterations, so a lower default would warn (and return an unconverged plan)."""
    g = gen(11)
    coupling = SinkhornCoupling(reg=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # POT's "Sinkhorn did not converge" would raise
        for _ in range(40):
            x0, x1 = torch.randn(128, 50, generator=g) - 0.1, torch.randn(128, 50, generator=g) + 0.1
            plan = coupling.plan(x0, x1)
    assert torch.allclose(plan.sum(1), torch.full((128,), 1 / 128), atol=1e-6)
