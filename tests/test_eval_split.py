"""Evaluation on held-out data: train and test items tagged, so no training item may reach in-run
evaluation, ``sbcore eval`` or ``sbcore sample`` when the split is ``test``; whole splits (``n=all``);
sampler and output chosen at evaluation time; the commands' options refused before anything is touched."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sbcore.cli import main
from sbcore.config import structure_config
from sbcore.launch.local import run_local
from sbcore.metrics import eval_data, evaluate, translation

DIM = 3
TRAIN_TAG, TEST_TAG = 1.0, -1.0
N_TRAIN, N_TEST = 40, 12


def tagged(n: int, tag: float, seed: int) -> np.ndarray:
    """n rows whose first coordinate is the tag (train +1, test -1) and the rest noise."""
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    x[:, 0] = tag
    return x


@pytest.fixture(scope="module")
def tagged_run(plugins, tmp_path_factory):
    """bm on arrays whose train and test files are tagged; in-run inputs captured per direction."""
    tmp = tmp_path_factory.mktemp("tagged")
    for i, side in enumerate(("x0", "x1")):
        np.save(tmp / f"{side}_train.npy", tagged(N_TRAIN, TRAIN_TAG, i))
        np.save(tmp / f"{side}_test.npy", tagged(N_TEST, TEST_TAG, 10 + i))
    raw = {
        "plugin": "bm", "name": "tagged", "out": str(tmp / "runs"), "seed": 0,
        "data": {side: {"source": "arrays", "path": str(tmp / f"{side}_train.npy"),
                        "test_path": str(tmp / f"{side}_test.npy")} for side in ("x0", "x1")},
        "network": {"kind": "mlp", "hidden": 16, "layers": 1},
        "train": {"steps": 4, "batch_size": 8, "log_every": 2, "eval_every": 2, "eval_samples": 30,
                  "progress": False, "threads": 1},
        "sampler": {"kind": "euler_maruyama", "steps": 3},
        "log": {"console": False},
    }
    seen: list[translation.Translation] = []
    original = translation.moment_metrics

    def capture(trainer, tr):
        seen.append(tr)
        return original(trainer, tr)

    translation.moment_metrics = capture
    try:
        run_local(structure_config(raw, plugins.registry), None, plugins)
    finally:
        translation.moment_metrics = original
    return tmp / "runs" / "tagged", seen


def tags(x) -> set[float]:
    return set(np.asarray(x)[:, 0].round(6).tolist())


def test_in_run_evaluation_sees_test_items_only(tagged_run):
    run, seen = tagged_run
    assert len(seen) == 2 * 2  # steps 2 and 4 (the final evaluation), two directions each
    for tr in seen:
        assert tags(tr.inputs) == {TEST_TAG} and tags(tr.data) == {TEST_TAG}
    records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    evals = [r for r in records if "eval/split" in r]
    assert evals and all(r["eval/split"] == "test" and r["eval/forward/n"] == 30 for r in evals)


def test_sbcore_eval_sees_test_items_only_and_all_of_them(tagged_run, monkeypatch):
    run, _ = tagged_run
    seen: list[dict] = []
    original = evaluate.evaluate_samples

    def capture(r, translations, metrics, generator):
        seen.append(translations)
        return original(r, translations, metrics, generator)

    monkeypatch.setattr(evaluate, "evaluate_samples", capture)
    assert main(["eval", f"run={run}", "n=all", "metrics=msd"]) == 0
    record = json.loads((run / "eval.json").read_text())
    assert record["split"] == "test" and record["n"] == {"forward": N_TEST, "backward": N_TEST}
    for tr in seen[-1].values():
        assert tags(tr.inputs) == {TEST_TAG} and tags(tr.data) == {TEST_TAG} and len(tr.inputs) == N_TEST
    # the items in file order, whole: every test row once
    np.testing.assert_array_equal(seen[-1]["forward"].inputs.numpy(), np.load(run.parent.parent / "x0_test.npy"))
    assert main(["eval", f"run={run}", "n=25", "metrics=msd", "split=train"]) == 0
    assert tags(seen[-1]["forward"].inputs) == {TRAIN_TAG}  # the tag tells the splits apart
    assert json.loads((run / "eval.json").read_text())["split"] == "train"


def test_sbcore_sample_draws_test_items_only(tagged_run, tmp_path):
    run, _ = tagged_run
    out = tmp_path / "s.npz"
    assert main(["sample", f"run={run}", "n=50", f"out={out}"]) == 0
    arrays = np.load(out)
    assert tags(arrays["x0"]) == {TEST_TAG} and str(arrays["split"]) == "test"
    assert main(["sample", f"run={run}", "n=all", f"out={out}", "direction=backward"]) == 0
    arrays = np.load(out)
    np.testing.assert_array_equal(arrays["x1"], np.load(run.parent.parent / "x1_test.npy"))
    assert main(["sample", f"run={run}", "n=50", f"out={out}", "split=train"]) == 0
    assert tags(np.load(out)["x0"]) == {TRAIN_TAG}


def test_eval_data_overrides_and_the_fallback_warning(tagged_run, capsys, monkeypatch):
    run, _ = tagged_run
    # eval.data names another source for one side: x1's items come from its training file
    train_x1 = run.parent.parent / "x1_train.npy"
    assert main(["sample", f"run={run}", "n=all", f"out={run.parent / 'o.npz'}", "direction=backward",
                 "eval.data.x1.source=arrays", f"eval.data.x1.path={train_x1}"]) == 0
    assert len(np.load(run.parent / "o.npz")["x1"]) == N_TRAIN
    monkeypatch.setattr(eval_data, "_warned", set())
    capsys.readouterr()
    config = {"data": {"x0": {"source": "arrays", "path": str(train_x1)},
                       "x1": {"source": "gaussian", "dim": DIM}}}
    from sbcore.plugins import get_plugins

    registry = get_plugins().registry
    parsed = structure_config({"plugin": "bm", **config}, registry)
    for _ in range(2):
        data, notes = eval_data.eval_data_config(parsed, registry, "test")
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "data.x0 (arrays)" in warnings[0] and "training items" in warnings[0]
    assert notes == {"x0": "arrays: training items (no test split)", "x1": "gaussian: fresh draws"}


def test_sampler_chosen_at_evaluation_time_is_used_and_recorded(tagged_run, capsys):
    run, _ = tagged_run
    assert main(["eval", f"run={run}", "metrics=msd", "n=20", "sampler.kind=euler", "sampler.steps=5"]) == 0
    record = json.loads((run / "eval.json").read_text())
    assert record["sampler"] == {"kind": "euler", "steps": 5} and record["nfe"] == {"forward": 5, "backward": 5}
    assert main(["eval", f"run={run}", "metrics=msd", "n=20", "sampler.steps=7"]) == 0  # the run's kind, 7 steps
    assert json.loads((run / "eval.json").read_text())["sampler"] == {"kind": "euler_maruyama", "steps": 7}
    before = (run / "eval.json").read_bytes()
    capsys.readouterr()
    assert main(["eval", f"run={run}", "sampler.kind=nosuch"]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err and "euler_maruyama" in err and "ddim" in err  # the valid samplers are listed
    assert (run / "eval.json").read_bytes() == before


def test_predicted_end_output(tagged_run):
    run, _ = tagged_run
    assert main(["eval", f"run={run}", "metrics=msd", "n=20", "eval.output=predicted_end"]) == 0
    record = json.loads((run / "eval.json").read_text())
    assert record["output"] == "predicted_end"
    final = record["metrics"]["forward/msd"]
    assert main(["eval", f"run={run}", "metrics=msd", "n=20"]) == 0
    assert json.loads((run / "eval.json").read_text())["metrics"]["forward/msd"] != final


@pytest.mark.parametrize("command", [
    ["sample", "n=-5"], ["eval", "n=abc"], ["eval", "n=0"], ["sample", "steps=-2"], ["sample", "steps=0"],
    ["sample", "out=x.txt"], ["sample", "n=5", "input=x0_test.npy"], ["eval", "eval.output=middle"],
    ["eval", "split=val"], ["report", "out"],
])
def test_bad_options_are_refused_before_anything_is_touched(tagged_run, command, capsys):
    run, _ = tagged_run
    folder = run.parent.parent
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    items = [i.replace("input=", f"input={folder}/") for i in command[1:]]
    assert main([command[0], f"run={run}", *items]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sbcore: invalid options of sbcore {command[0]}:") and "Traceback" not in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_missing_run_folder_exits_2_like_sbcore_run(tmp_path, capsys):
    for command in ("sample", "eval", "report"):
        assert main([command, f"run={tmp_path / 'nope'}"]) == 2
        assert "folder not found" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2


def test_sample_from_inputs_needs_only_the_run_folder(tagged_run, tmp_path):
    run, _ = tagged_run
    assert json.loads((run / "data.json").read_text())["shape"] == [DIM]
    for name in ("x0_train.npy", "x1_train.npy", "x0_test.npy", "x1_test.npy"):  # the data moved away
        (run.parent.parent / name).rename(tmp_path / name)
    try:
        np.save(tmp_path / "mine.npy", tagged(4, 0.0, 5))
        assert main(["sample", f"run={run}", f"input={tmp_path / 'mine.npy'}", f"out={tmp_path / 'o.npz'}"]) == 0
        assert np.load(tmp_path / "o.npz")["x1"].shape == (4, DIM)
    finally:
        for name in ("x0_train.npy", "x1_train.npy", "x0_test.npy", "x1_test.npy"):
            (tmp_path / name).rename(run.parent.parent / name)
    (run / "data.json").rename(tmp_path / "data.json")  # a run from before data.json: its data are rebuilt
    try:
        assert main(["sample", f"run={run}", f"input={tmp_path / 'mine.npy'}", f"out={tmp_path / 'p.npz'}"]) == 0
        np.testing.assert_array_equal(np.load(tmp_path / "p.npz")["x1"], np.load(tmp_path / "o.npz")["x1"])
    finally:
        (tmp_path / "data.json").rename(run / "data.json")


def test_shards_of_a_whole_split_cover_it_once(monkeypatch):
    from sbcore.launch import distributed

    for world in (1, 2, 3, 7):
        starts = []
        for rank in range(world):
            monkeypatch.setattr(distributed, "world_size", lambda w=world: w)
            monkeypatch.setattr(distributed, "rank_of", lambda r=rank: r)
            start, count = eval_data.shard_range(23)
            starts += list(range(start, start + count))
        assert starts == list(range(23))


def test_mnist_to_letters_whole_test_split(plugins, tmp_path):
    """`sbcore eval split=test n=all` on an MNIST -> letters run evaluates every test digit (10,000) and
    every held-out letter A-E (800)."""
    raw = {
        "plugin": "bm", "name": "digits2letters", "out": str(tmp_path), "seed": 0,
        "data": {"x0": {"source": "mnist", "size": 28}, "x1": {"source": "emnist_letters", "size": 28}},
        "network": {"kind": "mlp", "hidden": 8, "layers": 1},
        "train": {"steps": 2, "batch_size": 4, "log_every": 2, "eval_samples": 4, "progress": False, "threads": 1},
        "sampler": {"kind": "euler_maruyama", "steps": 1},
        "log": {"console": False},
    }
    run_local(structure_config(raw, plugins.registry), None, plugins)
    run = tmp_path / "digits2letters"
    assert main(["eval", f"run={run}", "split=test", "n=all", "metrics=msd"]) == 0
    record = json.loads((run / "eval.json").read_text())
    assert record["n"] == {"forward": 10000, "backward": 800} and record["split"] == "test"
    assert record["data"] == {"x0": "mnist[test]", "x1": "emnist_letters[test]"}
