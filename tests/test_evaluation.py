"""One evaluation path: aligned (input, partner) draws, the typed result handed to hooks, paired PSNR/SSIM
during training equal to `sbcore eval`'s for the same seed, and the before/after picture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sbcore.config import structure_config
from sbcore.config_text import merge, parse_overrides
from sbcore.hookspecs import hookimpl
from sbcore.io.plots import before_after_grid
from sbcore.launch.local import run_local
from sbcore.log.plugin import read_metrics
from sbcore.metrics.evaluate import evaluate_run
from sbcore.metrics.translation import Evaluation, Translation, translate
from sbcore.sample import load_trainer


def paired_config(tmp_path: Path) -> dict:
    """bm on 48 paired 1x8x8 'images' whose partner is the negative (x1 = -x0), with extra metrics."""
    x0 = np.random.default_rng(0).uniform(-1, 1, size=(48, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "pairs.npz", x0=x0, x1=-x0)
    return {
        "plugin": "bm", "name": "paired", "out": str(tmp_path / "runs"), "seed": 7,
        "data": {"pairs": {"source": "arrays", "path": str(tmp_path / "pairs.npz")}},
        "process": {"kind": "brownian", "sigma": 0.5},
        "network": {"kind": "mlp", "hidden": 32, "layers": 2},
        "train": {"steps": 6, "batch_size": 16, "log_every": 3, "eval_every": 3, "eval_samples": 24,
                  "progress": False, "checkpoint_every": 0, "threads": 1},
        "sampler": {"kind": "euler_maruyama", "steps": 3},
        "eval": {"metrics": ["msd", "mmd"]},
        "log": {"console": False},
    }


class Captured:
    """A plugin that keeps what the `sbcore_evaluate` hook receives."""

    def __init__(self) -> None:
        self.seen: list[Evaluation] = []

    @hookimpl
    def sbcore_evaluate(self, run, evaluation: Evaluation) -> dict[str, float]:
        self.seen.append(evaluation)
        return {"captured": float(evaluation.step)}


@pytest.fixture(scope="module")
def paired_run(plugins, tmp_path_factory) -> tuple[Path, Captured]:
    tmp = tmp_path_factory.mktemp("paired")
    captured = Captured()
    plugins.pm.register(captured, name="captured")
    try:
        config = structure_config(paired_config(tmp), plugins.registry)
        run_local(config, None, plugins)
    finally:
        plugins.pm.unregister(name="captured")
    return Path(config.out) / config.name, captured


def test_hooks_receive_aligned_typed_translations(paired_run):
    _, captured = paired_run
    assert [e.step for e in captured.seen] == [3, 6]
    evaluation = captured.seen[-1]
    assert set(evaluation.translations) == {"forward", "backward"}
    for direction, tr in evaluation.translations.items():
        assert isinstance(tr, Translation) and tr.direction == direction and tr.nfe == 3
        assert tr.inputs.shape == tr.outputs.x.shape == tr.data.shape == tr.partner.shape == (24, 1, 8, 8)
        torch.testing.assert_close(tr.partner, -tr.inputs)  # each input's true partner, from the same draw
        assert not torch.equal(tr.data, tr.partner)  # the end-side data is an independent draw
    assert (tr.start, tr.end) == ("x1", "x0")
    assert evaluation.metrics["forward/nfe"] == 3  # the method's own numbers; hooks add theirs


def test_paired_psnr_ssim_are_logged_and_sbcore_eval_reproduces_them(paired_run):
    run_dir, _ = paired_run
    records = read_metrics(run_dir / "metrics.jsonl")
    evals = {r["step"]: r for r in records if "eval/forward/psnr" in r}
    assert sorted(evals) == [3, 6]
    final = evals[6]
    for key in ("forward/psnr", "forward/ssim", "backward/psnr", "backward/ssim", "forward/msd", "forward/mmd",
                "forward/mean_error", "captured"):
        assert f"eval/{key}" in final, key
    assert final["eval/captured"] == 6.0
    record = evaluate_run(run_dir, n=24, seed=7)  # the run's seed and eval_samples: its final evaluation
    # the configured metrics, plus PSNR/SSIM against the true partners (paired images)
    assert record["metrics"].keys() == {f"{d}/{m}" for d in ("forward", "backward")
                                        for m in ("msd", "mmd", "psnr", "ssim")}
    for key, value in record["metrics"].items():
        assert value == final[f"eval/{key}"], key
    paired = evaluate_run(run_dir, n=24, seed=7, metrics=["psnr", "ssim"])["metrics"]
    for key, value in paired.items():
        assert value == final[f"eval/{key}"], key
    assert evaluate_run(run_dir, n=24, seed=8, metrics=["psnr"])["metrics"]["forward/psnr"] != paired["forward/psnr"]
    assert json.loads((run_dir / "eval.json").read_text())["seed"] == 8
    assert (run_dir / "pictures" / "forward_step000006_partner.png").is_file()


def test_translate_is_a_function_of_the_seed_and_independent_of_chunking(paired_run):
    run_dir, _ = paired_run
    trainer, _ = load_trainer(run_dir)
    a = translate(trainer, 10, seed=1, chunk=4)
    b = translate(trainer, 10, seed=1, chunk=4)
    c = translate(trainer, 10, seed=2, chunk=4)
    for direction in ("forward", "backward"):
        assert torch.equal(a[direction].outputs.x, b[direction].outputs.x)
        assert torch.equal(a[direction].inputs, b[direction].inputs)
        assert not torch.equal(a[direction].inputs, c[direction].inputs)
        torch.testing.assert_close(a[direction].partner, -a[direction].inputs)
    # the backward inputs are the partners of the forward inputs (one draw of pairs per seed)
    torch.testing.assert_close(a["backward"].inputs, a["forward"].partner)


def test_unpaired_vector_evaluation_keeps_paths_and_no_partner(tiny_gaussian, plugins):
    captured = Captured()
    plugins.pm.register(captured, name="captured")
    try:
        raw = merge(tiny_gaussian, parse_overrides(["train.steps=2", "train.eval_samples=40", "sampler.steps=4"]))
        run_local(structure_config(raw, plugins.registry), None, plugins)
    finally:
        plugins.pm.unregister(name="captured")
    tr = captured.seen[-1].translations["forward"]
    assert tr.partner is None and tr.outputs.path.shape == (5, 40, 2)
    torch.testing.assert_close(tr.outputs.path[0], tr.inputs)


def test_before_after_grid_puts_each_output_under_its_input(tmp_path):
    before = -torch.ones(10, 1, 4, 4)
    after = torch.ones(10, 1, 4, 4)
    path = before_after_grid(tmp_path / "grid.png", before, after, nrow=4, rows=3)
    grid = np.asarray(Image.open(path).convert("L"))
    pad = 2  # torchvision's padding between tiles
    tile = 4 + pad
    assert grid.shape == (pad + 4 * tile, pad + 4 * tile)  # two whole rows of 4 pairs: 8 of the 10 kept
    rows = [grid[pad + r * tile + 1, pad + 1] for r in range(4)]
    assert rows == [0, 255, 0, 255]  # input (black), output (white), input, output
    with pytest.raises(ValueError, match=r"before and after: expected the same shape"):
        before_after_grid(tmp_path / "bad.png", before, after[:3])
