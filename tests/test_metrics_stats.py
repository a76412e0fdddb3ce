"""Reference statistics (`sbcore stats`) and the Fréchet distance on them, checked with the ``flatten``
stand-in extractor against closed forms; classifier accuracy against the digits CNN's own test accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sbcore.cli import main
from sbcore.config_text import ConfigError
from sbcore.data.images import MNIST
from sbcore.metrics.classifier import ClassifierAccuracy
from sbcore.metrics.digits import load_digits_cnn, load_domain
from sbcore.metrics.evaluate import build_metrics
from sbcore.metrics.features import Flatten, Stats, frechet, stats_of
from sbcore.metrics.train_digits import accuracy
from sbcore.metrics.translation import Translation
from sbcore.sampler.base import Trajectory

G = torch.Generator().manual_seed(0)


def points(n: int = 400, d: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) @ \
        torch.randn(d, d, generator=torch.Generator().manual_seed(99), dtype=torch.float64)


def test_identical_sets_sit_at_the_floor_and_a_mean_shift_gives_its_square():
    x = points()
    same = frechet(stats_of([x], Flatten()), stats_of([x], Flatten()))
    assert same == pytest.approx(0.0, abs=1e-9)
    shift = torch.tensor([0.5, -1.0, 2.0, 0.0, 0.25], dtype=torch.float64)
    moved = frechet(stats_of([x], Flatten()), stats_of([x + shift], Flatten()))
    assert moved == pytest.approx(float(shift.square().sum()), rel=1e-9)  # ||mu1 - mu2||^2, equal covariances


def test_statistics_accumulate_over_batches_like_one_fit():
    x = points(301)
    whole, parts = stats_of([x], Flatten()), stats_of(x.split(37), Flatten())
    torch.testing.assert_close(parts.mean, x.mean(0))
    torch.testing.assert_close(parts.cov, torch.cov(x.T))
    assert whole.n == parts.n == 301


def test_cached_statistics_give_the_on_the_fly_value(tmp_path, plugins, capsys):
    target, generated = points(500, seed=1).float(), (points(500, seed=2) + 0.3).float()
    np.save(tmp_path / "target.npy", target.numpy())
    assert main(["stats", str(tmp_path / "target.npy"), f"out={tmp_path / 'ref.npz'}", "extractor=flatten"]) == 0
    assert "n 500, extractor flatten, 5 features" in capsys.readouterr().out
    fly = build_metrics([{"kind": "fid", "extractor": "flatten"}], plugins.registry)["fid"]
    cached = build_metrics([{"kind": "fid", "extractor": "flatten", "reference": str(tmp_path / "ref.npz")}],
                           plugins.registry)["fid"]
    on_the_fly = fly(generated, target, G)
    from_file = cached(generated, target, G)
    assert from_file[""] == pytest.approx(on_the_fly, abs=1e-6)
    assert from_file["floor"] == pytest.approx(0.0, abs=1e-6)  # the reference's own items: the floor
    assert Stats.load(tmp_path / "ref.npz").n == 500


def test_statistics_of_another_extractor_are_refused_in_one_line(tmp_path, plugins):
    stats_of([points().float()], Flatten()).save(tmp_path / "flat.npz")
    with pytest.raises(ConfigError) as info:
        build_metrics([{"kind": "fid", "extractor": "digits", "reference": str(tmp_path / "flat.npz")}],
                      plugins.registry)
    (line,) = info.value.lines
    assert "extractor flatten" in line and "uses digits:" in line


def test_stats_command_refuses_bad_options_before_writing(tmp_path, capsys):
    assert main(["stats", "mnist", f"out={tmp_path / 'a.txt'}"]) == 2
    assert main(["stats", "nosuch", f"out={tmp_path / 'a.npz'}"]) == 2
    assert "unknown dataset" in capsys.readouterr().err.lower()
    assert not list(tmp_path.iterdir())


def test_digits_cnn_accuracy_metric_on_unchanged_test_digits_is_the_cnn_test_accuracy():
    """MNIST test digits passed through unchanged (32 px, labels from the source) score the accuracy the
    CNN's training script computes on the same 28 px images (here independently, on the first 2,000 test
    digits to keep the test short)."""
    source, n = MNIST(split="test"), 2000
    images, _ = source.rows(0, n)
    tr = Translation("forward", images, Trajectory(images, None, 0), images, None, source.labels[:n])
    value = ClassifierAccuracy()(tr.outputs.x, tr, G)
    x, y = load_domain("digits", "test")
    known = accuracy(load_digits_cnn(), x[:n], y[:n])
    assert value == known and 0.97 < value <= 1.0
