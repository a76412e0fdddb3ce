"""Class-conditional DDIB: labelled training with label dropout, and class-guided translation options."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from sb_ddib.guided import random_labels
from sb_ddib.method import DDIB

from sbcore.cli import main
from sbcore.config import structure_config
from sbcore.errors import UserError
from sbcore.network.adm import ADMClassifier
from sbcore.network.weights import WeightsInfo, write_weights
from sbcore.plugins import create_plugins
from sbcore.run import Run

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def plugins():
    return create_plugins()


def labelled(tmp_path, name="m", **method):
    return {
        "plugin": "ddib", "name": name, "out": str(tmp_path / "runs"), "seed": 0,
        "data": {"x0": {"source": "mnist", "split": "test", "size": 28, "limit": 200}},
        "process": {"kind": "vp", "steps": 100},
        "method": {"eps_skip": False, "label_dropout": 0.5, **method},
        "network": {"kind": "unet", "channels": 8, "channel_mults": [1, 2], "groups": 4, "num_classes": 10},
        "train": {"steps": 2, "batch_size": 8, "eval_samples": 8, "progress": False, "threads": 1},
        "sampler": {"kind": "ddim", "steps": 2, "grid": "respaced", "reference_compat": True},
        "log": {"console": False},
    }


def test_training_sees_each_rows_label_or_the_null_label(tmp_path, plugins):
    trainer = DDIB(Run(config=structure_config(labelled(tmp_path), plugins.registry), dir=tmp_path,
                       plugins=plugins, device=torch.device("cpu")))
    trainer.setup()
    seen = []
    network = trainer.networks["eps"]
    forward = network.forward
    network.forward = lambda x, t, **cond: seen.append((x.clone(), t, cond["label"])) or forward(x, t, **cond)
    state = trainer.data_generator.get_state()
    trainer.training_loss(64)
    twin = torch.Generator().set_state(state)
    rows = trainer.sources["x0"].labels_of_draw(64, twin)
    label = seen[0][2]
    kept = label != 10
    assert torch.equal(label[kept], rows[kept]) and 10 < int(kept.sum()) < 54  # about half dropped


def test_label_dropout_needs_a_null_label_and_labels_need_a_labelled_source(tmp_path, plugins, capsys):
    raw = labelled(tmp_path, "adm")
    raw["network"] = {"kind": "adm_unet", "num_channels": 32, "channel_mult": [1], "attention_resolutions": [],
                      "class_cond": True, "num_classes": 10}
    path = tmp_path / "adm.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path)]) != 0
    assert "null label" in capsys.readouterr().err


def test_class_guided_translation_reports_the_target_class_accuracy(tmp_path, capsys):
    for name in ("a", "b"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(labelled(tmp_path, name)))
        assert main(["run", str(path)]) == 0
    torch.manual_seed(0)
    classifier = ADMClassifier((1, 28, 28), num_channels=32, num_res_blocks=1, channel_mult=(1,),
                               attention_resolutions=(), num_head_channels=32, pool="adaptive", num_classes=10)
    weights = tmp_path / "clf.safetensors"
    write_weights(weights, classifier.state_dict(), WeightsInfo("classifier", "adm_classifier", classifier.hparams))
    runs, out = tmp_path / "runs", tmp_path / "tr"
    assert main(["translate", f"source={runs / 'a'}", f"target={runs / 'b'}", "n=6", "steps=2", "source_label=3",
                 "target_label=8", "guidance.scale=2", f"guidance.classifier={weights}", f"out={out}"]) == 0
    assert "target_class_accuracy" in capsys.readouterr().out
    record = json.loads((out / "translation.json").read_text())
    assert record["target_label"] == 8 and 0 <= record["target_class_accuracy"] <= 1
    assert record["guidance_classifier"] == str(weights) and record["n"] == 6
    assert main(["translate", f"source={runs / 'a'}", f"target={runs / 'b'}", "n=6", "guidance.scale=2"]) == 2
    assert "give target_label=K" in capsys.readouterr().err
    # target_label=random: each input decoded towards its own class, drawn from the target run's labels
    assert main(["translate", f"source={runs / 'a'}", f"target={runs / 'b'}", "n=6", "steps=2",
                 "target_label=random", "guidance.scale=2", f"out={out}"]) == 0
    record = json.loads((out / "translation.json").read_text())
    assert record["target_label"] == "random" and 0 <= record["target_class_accuracy"] <= 1
    assert main(["translate", f"source={runs / 'a'}", f"target={runs / 'b'}", "n=6", "target_label=any"]) == 2
    assert "target_label" in capsys.readouterr().err


def test_random_target_labels_need_a_class_conditional_target(tmp_path, plugins):
    raw = labelled(tmp_path, "plain", label_dropout=0.0)
    raw["network"].pop("num_classes")
    trainer = DDIB(Run(config=structure_config(raw, plugins.registry), dir=tmp_path, plugins=plugins,
                       device=torch.device("cpu")))
    trainer.setup()
    with pytest.raises(UserError, match="not class-conditional"):
        random_labels(trainer, 4, torch.Generator())


def test_sbcore_sample_takes_a_label_and_the_guidance_scale(tmp_path, capsys):
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(labelled(tmp_path, "a")))
    assert main(["run", str(path)]) == 0
    run, outs = tmp_path / "runs" / "a", {}
    for scale in ("0", "1", "3"):
        outs[scale] = tmp_path / f"s{scale}.npz"
        assert main(["sample", f"run={run}", "direction=backward", "n=4", "label=7", f"guidance.scale={scale}",
                     f"out={outs[scale]}"]) == 0
    x = {k: np.load(v)["x0"] for k, v in outs.items()}
    assert x["0"].shape == (4, 1, 28, 28) and not np.allclose(x["0"], x["1"]) and not np.allclose(x["1"], x["3"])
    # scale 3 = 3 * conditional - 2 * unconditional at the first step: the three are on one line only there,
    # so check instead that the same seed and scale reproduce
    again = tmp_path / "again.npz"
    assert main(["sample", f"run={run}", "direction=backward", "n=4", "label=7", "guidance.scale=3",
                 f"out={again}"]) == 0
    np.testing.assert_array_equal(np.load(again)["x0"], x["3"])
    assert main(["sample", f"run={run}", "direction=backward", "n=4", "guidance.scale=3"]) == 2
    assert "give the label" in capsys.readouterr().err
