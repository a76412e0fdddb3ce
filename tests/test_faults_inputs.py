"""Unsafe and malformed inputs: YAML, config values, environment flags, images, shards and ``pipe:``
URLs. Each is refused with a short message and exit status 2 before any run folder exists."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from sbcore.config_text import ConfigError, load_yaml
from sbcore.data.image_folder import read_image
from sbcore.env import flag
from sbcore.errors import DataError, UserError
from sbcore.testing import cli_failure, snapshot, tiny_run_config, write_tiny_config


@pytest.fixture
def cfg(tmp_path):
    return write_tiny_config(tmp_path)


def _refused(cfg: Path, tmp_path: Path, args: list[str], *fragments: str) -> str:
    err = cli_failure(["run", str(cfg), *args], 2, *fragments)
    assert not (tmp_path / "runs").exists()
    return err


# ---- YAML ----------------------------------------------------------------------------------------------


def _alias_bomb(levels: int, width: int = 9) -> str:
    names = [chr(ord("a") + i) for i in range(levels + 1)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['1'] * width)}]"]
    lines += [f"{n}: &{n} [{', '.join([f'*{p}'] * width)}]" for p, n in zip(names, names[1:], strict=False)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [7, 9])
def test_yaml_alias_bomb_is_a_short_error_at_once(tmp_path, levels):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("plugin: bm\n" + _alias_bomb(levels))
    assert len(bomb.read_bytes()) < 700
    started = time.process_time()
    err = cli_failure(["run", str(bomb)], 2, "aliases")
    assert len(err) < 2000 and time.process_time() - started < 5


def test_yaml_alias_bomb_in_an_override(cfg, tmp_path):
    bomb = _alias_bomb(8).replace("\n", ", ")
    err = _refused(cfg, tmp_path, [f"train={{{bomb}}}"], "aliases")
    assert len(err) < 2000


def test_yaml_anchors_and_merge_keys_still_work():
    text = "base: &b {hidden: 8, layers: 2}\nnetwork:\n  <<: *b\n  hidden: 16\nother: *b\n"
    assert load_yaml(text) == {"base": {"hidden": 8, "layers": 2}, "network": {"hidden": 16, "layers": 2},
                               "other": {"hidden": 8, "layers": 2}}


def test_duplicated_section_is_refused(cfg, tmp_path):
    text = cfg.read_text() + "train: {steps: 2}\n"
    cfg.write_text(text)
    _refused(cfg, tmp_path, [], "found the key 'train' twice")
    with pytest.raises(yaml.YAMLError, match="'steps' twice"):
        load_yaml("train:\n  steps: 1\n  lr: 0.1\n  steps: 2\n")


def test_huge_config_file_is_refused_without_reading_it(cfg, tmp_path):
    with cfg.open("a") as f:
        f.write("# " + "x" * 1_100_000 + "\n")
    _refused(cfg, tmp_path, [], "a config file has at most")


def test_long_values_are_cut_in_messages(cfg, tmp_path):
    err = _refused(cfg, tmp_path, ["train.steps=" + "y" * 50_000], "@ config.train.steps", "more characters")
    assert len(err) < 1000


# ---- config values -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("override", "fragment"), [
    ("train.grad_clip=-1", "'grad_clip' must be > 0, got -1.0"),
    ("train.grad_clip=0", "'grad_clip' must be > 0, got 0.0"),
    ("train.lr=.inf", "expected a finite number, got inf @ config.train.lr"),
    ("train.lr=-.inf", "expected a finite number, got -inf @ config.train.lr"),
    ("process={kind: brownian, sigma: .inf}", "expected a finite number, got inf @ config.process.sigma"),
    ("train=[1,2]", "expected a mapping of TrainConfig keys, got list [1, 2] @ config.train"),
    ("log=3", "expected a mapping of LogConfig keys, got int 3 @ config.log"),
    ("launcher.neptune=x", "unknown key 'neptune'"),
    ("log.neptune=[a]", "expected a mapping of NeptuneLogConfig keys"),
    ("data=[1]", "@ config.data"),
    ("network.kind=[1]", "network: expected a name"),
    ("sampler.kind=ddim", "needs a deterministic path (c(t) = 0)"),
    ("sampler={kind: {a: 1}}", "sampler: expected a name"),
])
def test_config_value_of_wrong_range_or_shape(cfg, tmp_path, override, fragment):
    err = _refused(cfg, tmp_path, [override], fragment)
    assert "unknown error" not in err


def test_grad_clip_null_is_no_clipping(plugins):
    from sbcore.config import structure_config

    assert structure_config(tiny_run_config(train={"grad_clip": None}), plugins.registry).train.grad_clip is None


def test_spectral_process_on_vector_data_is_refused_at_start(cfg, tmp_path):
    _refused(cfg, tmp_path, ["process.kind=spectral"], "spectral with dims: 2", "shape (2,)", "@ config.process")


# ---- environment flags ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("1", True), ("true", True), ("YES", True), ("0", False),
                                             ("false", False), ("no", False), ("", False)])
def test_flags_read_strictly(monkeypatch, text, value):
    monkeypatch.setenv("SBCORE_X", text)
    assert flag("SBCORE_X") is value


@pytest.mark.parametrize("text", ["2", "maybe", "ture", "-1"])
def test_unreadable_flag_is_refused(monkeypatch, text):
    monkeypatch.setenv("SBCORE_X", text)
    with pytest.raises(UserError, match=f"SBCORE_X={text!r}: expected 1, true or yes"):
        flag("SBCORE_X")


def test_allow_pipe_false_is_no(cfg, tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setenv("SBCORE_ALLOW_PIPE", "false")
    _refused(cfg, tmp_path, [f"data.x1={{source: shards, urls: 'pipe:touch {marker}'}}"], "allow_pipe: true")
    assert not marker.exists()
    monkeypatch.setenv("SBCORE_ALLOW_PIPE", "sure")
    _refused(cfg, tmp_path, [f"data.x1={{source: shards, urls: 'pipe:touch {marker}'}}"], "SBCORE_ALLOW_PIPE='sure'")
    assert not marker.exists()


def test_debug_flag_is_read_strictly(cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("SBCORE_DEBUG", "maybe")
    cli_failure(["plugins"], 2, "SBCORE_DEBUG='maybe'")


# ---- pipe: after brace expansion -----------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["{{pipe:touch {m},x.tar}}", "x.tar::pipe:touch {m}", "{{x.tar,pipe:touch {m}}}"])
def test_pipe_inside_braces_in_a_run_folder_is_refused(tmp_path, cfg, pattern):
    from sbcore.cli import main

    assert main(["run", str(cfg)]) == 0
    run_dir = tmp_path / "runs" / "tiny"
    marker = tmp_path / "ran"
    raw = yaml.safe_load((run_dir / "config.yaml").read_text())
    raw["data"]["x1"] = {"source": "shards", "urls": pattern.format(m=marker), "allow_pipe": True}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(raw))
    before = snapshot(run_dir)
    cli_failure(["sample", f"run={run_dir}", "n=4", f"out={tmp_path / 's.npz'}"], 2, "SBCORE_ALLOW_PIPE=1")
    assert not marker.exists() and snapshot(run_dir) == before


def test_pipe_inside_braces_in_a_config_is_refused(cfg, tmp_path):
    marker = tmp_path / "ran"
    _refused(cfg, tmp_path, [f"data.x1={{source: shards, urls: '{{pipe:touch {marker},x.tar}}'}}"],
             "allow_pipe: true")
    assert not marker.exists()


# ---- shards --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"hello", bytes(range(256)) * 20, b"\x1f\x8b" + b"\0" * 600])
def test_shard_that_is_not_a_tar_is_a_data_error(cfg, tmp_path, content):
    shard = tmp_path / "s-000000.tar"
    shard.write_bytes(content)
    _refused(cfg, tmp_path, [f"data.x1={{source: shards, urls: {shard}}}"], str(shard))


def test_truncated_shard_is_a_data_error(cfg, tmp_path):
    from sbcore.cli import main

    pattern = tmp_path / "shards" / "m-%06d.tar"
    assert main(["shards", "write", "data.source=toy2d", "data.name=moons", f"out={pattern}", "count=64",
                 "block=16", "progress=false"]) == 0
    shard = tmp_path / "shards" / "m-000000.tar"
    shard.write_bytes(shard.read_bytes()[:700])
    _refused(cfg, tmp_path, [f"data.x1={{source: shards, urls: {shard}}}"], str(shard))


# ---- images --------------------------------------------------------------------------------------------


def _png_bomb(path: Path, side: int) -> None:
    """A 1-bit PNG of side x side zero pixels: a few kB on disk, side**2 pixels once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (side + 7) // 8)
    body = zlib.compressobj(9)
    data = b"".join(body.compress(row) for _ in range(side)) + body.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [10_000, 30_000])
def test_decompression_bomb_is_refused_from_its_header(tmp_path, side):
    _png_bomb(tmp_path / "bomb.png", side)
    assert (tmp_path / "bomb.png").stat().st_size < 200_000
    with pytest.raises(DataError, match="bomb.png"):
        read_image(tmp_path / "bomb.png", 1)


def test_decompression_bomb_in_an_image_folder_run(cfg, tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(good / "ok.png")
    _png_bomb(bad / "bomb.png", 30_000)
    _refused(cfg, tmp_path, [f"data.x0={{source: image_folder, root: {good}, size: 8, channels: 1}}",
                             f"data.x1={{source: image_folder, root: {bad}, size: 8, channels: 1}}"], "bomb.png")


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 255, 256, 32768], [65535, 1000, 40000, 512]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as img:
        assert img.mode.startswith("I")
    gray = read_image(tmp_path / "deep.png", 1)
    assert gray.dtype.__str__() == "torch.uint8" and gray.shape == (1, 2, 4)
    np.testing.assert_array_equal(gray[0].numpy(), (values >> 8).astype(np.uint8))
    rgb = read_image(tmp_path / "deep.png", 3)
    assert rgb.shape == (3, 2, 4) and bool((rgb == gray).all())


def test_palette_and_cmyk_convert_explicitly(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2] = (200, 10, 30)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(tmp_path / "p.png")
    got = read_image(tmp_path / "p.png", 3)
    np.testing.assert_array_equal(got.permute(1, 2, 0).numpy(), rgb)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    got = read_image(tmp_path / "c.jpg", 3).permute(1, 2, 0).numpy().astype(int)
    assert np.abs(got - rgb).max() < 16


def test_float_image_is_refused(tmp_path):
    Image.fromarray(np.full((3, 3), 0.5, np.float32), mode="F").save(tmp_path / "f.tif")
    with pytest.raises(DataError, match="mode F"):
        read_image(tmp_path / "f.tif", 1)


def test_unreadable_image_is_a_data_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(DataError, match="not a readable image"):
        read_image(tmp_path / "x.png", 3)


def test_config_error_lines_are_short():
    assert len(str(ConfigError(["x" * 10_000]))) < 500


def test_a_list_where_a_name_belongs(tmp_path):
    cli_failure(["config", "plugin=[1, 2]"], 2, "[1, 2]")
