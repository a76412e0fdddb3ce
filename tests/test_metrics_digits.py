"""The shipped digits/letters/fashion CNN: accuracy on held-out data, domain accuracy, feature distance."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F

from sbcore.metrics import digits
from sbcore.metrics.digits import (
    DOMAINS,
    OFFSETS,
    WEIGHTS,
    cnn_outputs,
    domain_accuracy,
    domain_probabilities,
    feature_distance,
    load_digits_cnn,
    load_domain,
)

#: test images per domain: enough for a 1% accuracy resolution, small enough for a fast CPU test.
N_TEST = 2000


@pytest.fixture(scope="module")
def test_sets() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Held-out images of each domain; letters: the CNN's held-out A-E images (800, 160 per letter)."""
    sets = {d: tuple(t[:N_TEST] for t in load_domain(d, "test")) for d in ("digits", "fashion")}
    x, y = load_domain("letters", "test")
    a_to_e = y < OFFSETS["letters"] + 5
    sets["letters"] = (x[a_to_e], y[a_to_e])
    return sets


@pytest.fixture(scope="module")
def probabilities(test_sets) -> dict[str, torch.Tensor]:
    """The CNN's class probabilities on each test set, computed once."""
    return {d: cnn_outputs(x)[1] for d, (x, _) in test_sets.items()}


def test_weights_match_their_sha256():
    assert digits.sha256_of(WEIGHTS) == digits.WEIGHTS_SHA256
    assert WEIGHTS.stat().st_size < 2_000_000


def test_tampered_weights_are_refused(tmp_path):
    copy = tmp_path / "digits_cnn.safetensors"
    shutil.copyfile(WEIGHTS, copy)
    with copy.open("r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(ValueError, match="SHA-256 .* does not match"):
        load_digits_cnn(copy)


@pytest.mark.parametrize(("domain", "floor"), [("digits", 0.98), ("fashion", 0.90), ("letters", 0.90)])
def test_cnn_accuracy_on_held_out_images(test_sets, probabilities, domain, floor):
    y = test_sets[domain][1]
    accuracy = float((probabilities[domain].argmax(-1) == y).double().mean())
    assert accuracy >= floor, f"{domain}: {accuracy:.4f} on {len(y)} images"


@pytest.mark.parametrize("domain", DOMAINS)
def test_domain_accuracy_on_real_data(test_sets, probabilities, domain):
    x, _ = test_sets[domain]
    index = DOMAINS.index(domain)
    assert float((domain_probabilities(probabilities[domain]).argmax(-1) == index).double().mean()) >= 0.97
    # the metric itself, on 32x32 images (zero-padded, as the image sources give them: cropped back, not
    # rescaled), with the target domain read off a batch of real target images
    padded = F.pad(x[:300], (2, 2, 2, 2), value=-1.0)
    assert domain_accuracy(padded, target=x[300:600]) >= 0.97
    assert domain_accuracy(x[:300], DOMAINS[(index + 1) % 3]) <= 0.03


def test_feature_distance_separates_domains(test_sets):
    digits_a, digits_b = test_sets["digits"][0][:500], test_sets["digits"][0][500:1000]
    letters = test_sets["letters"][0][:500]
    assert feature_distance(digits_a, digits_a) == pytest.approx(0.0, abs=1e-6)
    same = feature_distance(digits_a, digits_b)
    across = feature_distance(digits_a, letters)
    assert 0 < same < across / 10
    assert feature_distance(letters, digits_a) == pytest.approx(across, rel=1e-6)


def test_training_script_shifts_images_and_trains(monkeypatch):
    from sbcore.metrics import train_digits

    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    moved = train_digits.shift(x, torch.Generator().manual_seed(0), max_shift=1)
    # every output is the input translated by at most one pixel, the uncovered border filled with -1
    kept = moved[moved != -1]
    assert set(kept.tolist()) <= set(range(16)) and (moved == -1).any() and (moved != -1).sum(dim=(1, 2, 3)).min() >= 9
    monkeypatch.setattr(train_digits, "PASSES", {"digits": 0.002, "letters": 0.02, "fashion": 0.002})
    net = train_digits.train(epochs=1, batch_size=32, lr=1e-3, seed=0)
    _, logits = net(load_domain("digits", "test")[0][:8])
    assert not net.training and logits.shape == (8, digits.NUM_CLASSES) and torch.isfinite(logits).all()
