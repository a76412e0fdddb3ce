"""`sbcore bench`: the core command dispatching to registered suites, and the `images` suite's scores and row."""

import json

import pytest
import torch

from sbcore.bench import images
from sbcore.cli import main


@pytest.fixture(autouse=True)
def small_reference(monkeypatch):
    monkeypatch.setattr(images, "REFERENCE", 200)  # the feature statistics of 200 held-out images keep tests fast


def test_scores_of_the_identity_and_of_real_target_images():
    g = torch.Generator().manual_seed(0)
    letters = images.held_out("letters", "test", 64)
    digits = images.held_out("digits", "test", 64)
    same = images.score(digits, digits, "digits", g)
    assert same["msd"] == 0.0 and same["msd_random"] > 0.1
    assert same["domain_accuracy"] > 0.95  # held-out digits are digits to the CNN
    translated = images.score(digits, letters, "letters", g)  # "outputs" that are real letters
    assert translated["domain_accuracy"] > 0.95
    assert translated["msd"] == pytest.approx(float((letters - digits).square().mean()))
    assert 0 < translated["feature_floor"] < translated["feature_distance"] or translated["feature_distance"] < 50
    assert images.score(digits, digits, "letters", g)["domain_accuracy"] < 0.05
    assert same["class_accuracy"] > 0.95 and translated["class_accuracy"] > 0.9  # real letters are A-E


def test_class_accuracy_counts_only_the_recipe_classes():
    """Held-out letters F-M are letters to the CNN's domain sum but not A-E: the strict column says so."""
    raw, labels = images.load_domain("letters", "test")
    later = raw[labels >= images.OFFSETS["letters"] + images.LETTER_CLASSES][:200]
    g = torch.Generator().manual_seed(0)
    digits = images.held_out("digits", "test", 200)
    scores = images.score(digits, later, "letters", g)
    assert scores["domain_accuracy"] > 0.9 and scores["class_accuracy"] < 0.1
    assert images.target_classes("letters") == [10, 11, 12, 13, 14]
    assert images.target_classes("digits") == list(range(10))


def test_held_out_letters_are_a_to_e_and_padding_to_32():
    letters = images.held_out("letters", "test")
    assert letters.shape[1:] == (1, 28, 28) and len(letters) == 800  # 20 % of 5 x 800 letters
    padded = images.to_run_shape(letters[:2], (1, 32, 32))
    assert padded.shape == (2, 1, 32, 32) and torch.equal(padded[..., 2:30, 2:30], letters[:2])
    assert (padded[..., :2, :] == -1).all()


def test_row_formats_every_column():
    row = {"plugin": "dsbm", "seconds": 600.0, "steps": 8000}
    for d in ("forward", "backward"):
        row.update({f"{d}/domain_accuracy": 0.95, f"{d}/class_accuracy": 0.9, f"{d}/feature_distance": 12.3,
                    f"{d}/feature_floor": 1.5, f"{d}/msd": 0.4, f"{d}/msd_random": 0.6})
    header, rule, line = images.format_row(row).splitlines()
    cells = "| dsbm | 10.0 | 8000 | 0.950 | 0.950 | 0.900 | 0.900 | 12.3 (1.5) | 12.3 (1.5) | 0.4 (0.6) | 0.4 (0.6) |"
    assert line == cells
    assert header.count("|") == rule.count("|") == line.count("|")


def test_bench_images_trains_scores_and_writes_row_and_picture(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "images", "plugin=dsbm", "n=8", f"out={out}", "set.method.inner_iters=1",
                 "set.train.eval_samples=8", "set.method.cache_size=8", "set.method.cache_chunk=8",
                 "set.sampler.steps=2", "set.train.checkpoint_every=0", "set.train.batch_size=8"]) == 0
    row = json.loads((out / "dsbm" / "bench_images.json").read_text())
    assert row["steps"] == 3 and row["forward/n"] == 8 and row["backward/n"] == 8
    assert 0 <= row["forward/domain_accuracy"] <= 1 and 0 <= row["backward/class_accuracy"] <= 1
    assert row["forward/msd_random"] > 0
    assert (out / "dsbm" / "bench_images.png").stat().st_size > 0
    assert "| dsbm |" in (out / "dsbm" / "bench_images.md").read_text() and "| dsbm |" in capsys.readouterr().out
    # train=false scores the same runs again without training
    assert main(["bench", "images", "plugin=dsbm", "n=8", f"out={out}", "train=false"]) == 0


def test_bench_refuses_unknown_suite_and_options(capsys):
    assert main(["bench", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err and "images" in err and "gaussian" in err
    assert main(["bench", "images", "plugin=dsbm", "n=0", "colour=red"]) == 2
    err = capsys.readouterr().err
    assert "n" in err and "colour" in err
    assert main(["bench", "images", "plugin=dsbm", "config=nowhere.yaml"]) == 2
    assert "nowhere.yaml" in capsys.readouterr().err


def test_bench_gaussian_is_still_a_suite(capsys):
    assert main(["bench", "gaussian", "plugin=dsbm", "colour=red"]) == 2
    assert "sbcore bench gaussian" in capsys.readouterr().err


def test_a_recipe_may_put_the_letters_on_either_side():
    """Row keys stay digits -> letters (forward) whatever side of the run the letters are on."""
    digits, letters = {"source": "mnist"}, {"source": "emnist_letters"}
    assert images.sampling_directions({"x0": digits, "x1": letters}) == ("forward", "backward")
    assert images.sampling_directions({"x0": letters, "x1": digits}) == ("backward", "forward")


def test_bench_guidance_is_for_ddib_only(capsys):
    assert main(["bench", "images", "plugin=dsbm", "guidance.scale=2"]) == 2
    assert "only ddib" in capsys.readouterr().err
