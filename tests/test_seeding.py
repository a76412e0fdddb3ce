"""Random streams: the data generator and the sampler's noise never share a seed."""

from __future__ import annotations

import torch
import yaml

from sbcore import sample as sample_module
from sbcore.cli import main
from sbcore.launch.distributed import micro_seeds
from sbcore.seeding import derive_seeds


def test_derived_seeds_are_deterministic_distinct_and_keyed():
    assert derive_seeds(3) == derive_seeds(3)
    assert len(set(derive_seeds(3, count=4))) == 4
    assert derive_seeds(3) != derive_seeds(4) and derive_seeds(3, 0, 0) != derive_seeds(3)
    assert micro_seeds(3, 7, 1) == derive_seeds(3, 7, 1)  # resume and DDP depend on these values
    assert all(0 <= s < 2**63 for s in derive_seeds(2**70, -1, count=8))


def test_neighbouring_keys_give_unrelated_seeds_and_streams():
    """The mixer's avalanche: consecutive steps flip about half of the 63 seed bits, and the torch
    streams they seed are uncorrelated (what training steps and evaluation streams rely on)."""
    flips = [bin(derive_seeds(0, step, 0)[0] ^ derive_seeds(0, step + 1, 0)[0]).count("1") for step in range(2000)]
    assert abs(sum(flips) / len(flips) - 31.5) < 0.5 and min(flips) > 10
    draws = torch.stack([torch.randn(4000, generator=torch.Generator().manual_seed(derive_seeds(0, step, 0)[0]))
                         for step in range(20)])
    corr = torch.corrcoef(draws) - torch.eye(20)
    assert corr.abs().max() < 4 / 4000**0.5  # 4 standard errors of a zero correlation


def test_sampling_noise_is_not_a_copy_of_the_start_points(tiny_gaussian, tmp_path, monkeypatch):
    """Regression: with one seed for both, a Gaussian start point x0 = mean + z and the first noise
    draw of the sampler were the same z, so generated samples were correlated with their inputs."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**tiny_gaussian, "train": {**tiny_gaussian["train"], "steps": 2}}))
    assert main(["run", str(path)]) == 0
    seen = {}
    original = sample_module.load_trainer

    def spy(*args, **kwargs):
        trainer, meta = original(*args, **kwargs)

        def sample(direction, x_start, **kwargs):
            seen["start"], seen["noise"] = x_start.clone(), torch.randn(x_start.shape)
            return type(trainer).sample(trainer, direction, x_start, **kwargs)

        trainer.sample = sample
        return trainer, meta

    monkeypatch.setattr(sample_module, "load_trainer", spy)
    run_dir = tmp_path / "runs" / "tiny"
    assert sample_module.sample_command([f"run={run_dir}", "n=500", "seed=5", f"out={tmp_path / 'o.npz'}"]) == 0
    z = seen["start"] + 1.0  # x0 ~ N(-1, I) in the tiny config
    assert not torch.allclose(z, seen["noise"])
    assert abs(torch.corrcoef(torch.stack([z.flatten(), seen["noise"].flatten()]))[0, 1]) < 0.1
