"""Webdataset shards: writing, the streaming source, damage handling, DDP splitting, and training."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import warnings

import numpy as np
import pytest
import torch

from sbcore.cli import main
from sbcore.config import structure_config
from sbcore.data.arrays import ArraysSource
from sbcore.data.images import MNIST
from sbcore.data.shards import ShardError, ShardSource, brace_urls, index_path, write_shards
from sbcore.data.toy2d import Toy2D
from sbcore.hookspecs import hookimpl
from sbcore.launch.local import run_local
from sbcore.plugins import create_plugins

N, MAXCOUNT = 5000, 1000


@pytest.fixture(scope="module")
def mnist() -> MNIST:
    return MNIST(split="test", limit=N)


@pytest.fixture(scope="module")
def shards(tmp_path_factory, mnist):
    """5000 MNIST test digits in 5 shards of 1000 (blocks of 128), and their index."""
    pattern = str(tmp_path_factory.mktemp("shards") / "mnist-%06d.tar")
    index = write_shards(mnist, pattern, maxcount=MAXCOUNT, block=128, progress=False)
    return index["urls"], index, pattern


def _multiset(x: torch.Tensor, labels: torch.Tensor) -> list[tuple[int, bytes]]:
    return sorted(zip(labels.tolist(), (row.numpy().tobytes() for row in x), strict=True))


def _one_pass(urls, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    source = ShardSource(urls=urls, infinite=False, seed=0, **kw)
    chunks = list(source.chunks())
    return (source._decode(torch.cat([c["x"] for c in chunks]), torch.Generator()),
            torch.cat([c["cls"] for c in chunks]))


def test_index_and_layout(shards):
    urls, index, pattern = shards
    assert urls.endswith("mnist-{000000..000004}.tar") and index_path(pattern).name == "mnist-index.json"
    on_disk = json.loads(index_path(pattern).read_text())
    assert on_disk == index
    assert index["count"] == N and [s["count"] for s in index["shards"]] == [MAXCOUNT] * 5
    assert index["shape"] == [1, 32, 32] and index["dtype"] == "uint8" and index["labels"]
    for shard in index["shards"]:
        data = (index_path(pattern).parent / shard["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == shard["sha256"] and len(data) == shard["bytes"]
    with tarfile.open(pattern % 0) as tar:
        members = tar.getmembers()
    assert {m.mtime for m in members} == {0} and members[0].name == "000000000.cls.npy"
    assert len(members) == 3 * 8  # 1000 samples = 7 blocks of 128 + 1 of 104; x, cls, meta each


def test_writing_is_reproducible(tmp_path, mnist, shards):
    index = write_shards(mnist, str(tmp_path / "again-%06d.tar"), maxcount=MAXCOUNT, block=128, progress=False)
    assert [s["sha256"] for s in index["shards"]] == [s["sha256"] for s in shards[1]["shards"]]


def test_round_trip_multiset(shards, mnist):
    x, labels = _one_pass(shards[0], shuffle=1000)
    assert x.shape == (N, 1, 32, 32)
    assert _multiset(x, labels) == _multiset(mnist.decode(mnist.data), mnist.labels)
    assert labels[:200].tolist() != mnist.labels[:200].tolist()  # the stream is shuffled


def test_round_trip_with_two_workers_and_png(tmp_path, mnist, shards):
    x, labels = _one_pass(shards[0], shuffle=500, workers=2)
    assert _multiset(x, labels) == _multiset(mnist.decode(mnist.data), mnist.labels)
    small = MNIST(split="test", limit=300)
    index = write_shards(small, str(tmp_path / "png-%06d.tar"), maxcount=100, block=32, encoding="png",
                         progress=False)
    x, labels = _one_pass(index["urls"], shuffle=0)
    assert _multiset(x, labels) == _multiset(small.decode(small.data), small.labels)


def test_two_ranks_see_disjoint_shards(monkeypatch, shards, mnist):
    seen = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        seen.append(_multiset(*_one_pass(shards[0], shuffle=100)))
    assert [len(s) for s in seen] == [3 * MAXCOUNT, 2 * MAXCOUNT]  # rank 0: shards 0, 2, 4; rank 1: 1, 3
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == _multiset(mnist.decode(mnist.data), mnist.labels)
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match=r"5 shard\(s\) cannot feed 3 rank\(s\) x 2 worker\(s\)"):
        ShardSource(urls=shards[0], workers=2)


def test_stream_determinism_and_sample_sizes(shards):
    def draw(seed, generator_seed=0):
        source = ShardSource(urls=shards[0], seed=seed, shuffle=2000, batch=100)
        g = torch.Generator().manual_seed(generator_seed)
        return torch.cat([source.sample(n, g) for n in (1, 250, 37, 1500)])

    a = draw(seed=1)
    assert a.shape == (1788, 1, 32, 32) and a.min() == -1 and a.max() == 1
    assert torch.equal(a, draw(seed=1)) and not torch.equal(a, draw(seed=2))
    assert torch.equal(draw(None, generator_seed=4), draw(None, generator_seed=4))  # seed from the generator
    assert not torch.equal(draw(None, generator_seed=4), draw(None, generator_seed=5))


def test_infinite_stream_cycles_and_finite_one_ends(shards):
    source = ShardSource(urls=shards[0], seed=0, shuffle=0, batch=500)
    g = torch.Generator()
    x = source.sample(3 * N, g)  # three passes over 5000 samples
    one = source._decode(torch.cat([c["x"] for c in ShardSource(urls=shards[0], infinite=False, shuffle=0).chunks()]),
                         g)
    rows = lambda t: sorted(r.numpy().tobytes() for r in t)  # noqa: E731
    assert x.shape[0] == 3 * N and rows(x[:N]) == rows(one) and rows(x[2 * N:]) == rows(one)
    finite = ShardSource(urls=shards[0], infinite=False, shuffle=0)
    finite.sample(N, g)
    with pytest.raises(ShardError, match=r"the stream ended \(infinite: false\) with 0 of the 1 samples"):
        finite.sample(1, g)


def test_damaged_shards_are_skipped_and_counted(tmp_path, shards):
    folder = tmp_path / "damaged"
    shutil.copytree(index_path(shards[2]).parent, folder)
    truncated, garbage, flipped = (folder / f"mnist-00000{i}.tar" for i in (1, 2, 3))
    truncated.write_bytes(truncated.read_bytes()[:300_000])  # cut in the middle of its third block
    garbage.write_bytes(np.random.default_rng(0).bytes(50_000))
    data = bytearray(flipped.read_bytes())
    data[400_000:400_008] = b"XXXXXXXX"  # inside a block's pixels: only the CRC can tell
    flipped.write_bytes(bytes(data))
    urls = str(folder / "mnist-{000000..000004}.tar") + f"::{folder}/missing.tar"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = ShardSource(urls=urls, infinite=False, shuffle=0, seed=0)
        got = sum(len(c["x"]) for c in source.chunks())
    assert len(source.skipped) == 4
    assert set(source.skipped) == {str(p) for p in (truncated, garbage, flipped, folder / "missing.tar")}
    assert "CRC32 mismatch" in source.skipped[str(flipped)]
    assert "4 shard(s) skipped so far" in str(caught[-1].message)
    assert 2 * MAXCOUNT + 256 <= got < 4 * MAXCOUNT  # 2 intact shards, plus the blocks read before damage
    with pytest.raises(ShardError, match=r"mnist-000001\.tar: ReadError"):
        list(ShardSource(urls=urls, infinite=False, shuffle=0, seed=0, strict=True).chunks())
    with pytest.raises(ShardError, match="none of the 2 shards could be read"), pytest.warns(RuntimeWarning):
        ShardSource(urls=[str(garbage), str(folder / "missing.tar")])


def test_pipe_urls_and_brace_patterns(shards):
    first = shards[2] % 0
    x, labels = _one_pass(f"pipe:cat {first}", shuffle=0, allow_pipe=True)
    assert len(x) == MAXCOUNT
    assert brace_urls("a/b-%04d.tar", 12) == "a/b-{0000..0011}.tar" and brace_urls("c-%d.tar", 1) == "c-0.tar"


def test_paired_and_generated_sources(tmp_path):
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(300, 4)).astype(np.float32)
    np.savez(tmp_path / "pairs.npz", x0=x0, x1=x0 + 10)
    index = write_shards(ArraysSource(path=str(tmp_path / "pairs.npz")), str(tmp_path / "p-%06d.tar"),
                         maxcount=100, block=64, progress=False)
    paired = ShardSource(urls=index["urls"], seed=0)
    a, b = paired.sample_pairs(250, torch.Generator())
    torch.testing.assert_close(b - a, torch.full_like(a, 10.0))
    with pytest.raises(ValueError, match="these shards hold pairs"):
        paired.sample(3, torch.Generator())
    assert ShardSource(urls=index["urls"], side="x1").sample(50, torch.Generator()).min() > 5
    with pytest.raises(ValueError, match="give count=N"):
        write_shards(Toy2D("moons"), str(tmp_path / "t-%06d.tar"), progress=False)
    toy = write_shards(Toy2D("moons"), str(tmp_path / "t-%06d.tar"), count=1000, maxcount=400, progress=False)
    assert [s["count"] for s in toy["shards"]] == [400, 400, 200] and toy["dtype"] == "float32"
    expected = Toy2D("moons").sample(256, torch.Generator().manual_seed(0))[:64]  # written in blocks of 256
    stream = ShardSource(urls=toy["urls"], shuffle=0, seed=0)
    assert torch.equal(stream.sample(64, torch.Generator()), expected)  # drawn with seed 0, in order


def test_cli_write(tmp_path, capsys):
    out = tmp_path / "cli" / "letters-%06d.tar"
    code = main(["shards", "write", "data.source=emnist_letters", "data.limit=300", "data.size=28",
                 f"out={out}", "maxcount=128", "block=64", "progress=false"])
    assert code == 0
    index = json.loads((tmp_path / "cli" / "letters-index.json").read_text())
    assert index["count"] == 300 and index["shape"] == [1, 28, 28] and len(index["shards"]) == 3
    assert "letters-{000000..000002}.tar" in capsys.readouterr().out
    assert main(["shards", "write", "data.source=mnist", "data.size=30", f"out={out}"]) == 2
    assert "size: expected 28" in capsys.readouterr().err
    assert main(["shards", "write", "data.source=mnist", "maxcount=ten"]) == 2
    err = capsys.readouterr().err
    assert "required option missing: out=..." in err
    assert "expected an integer, got 'ten' @ sbcore shards write maxcount" in err


def _image_run(tmp_path, x0: dict) -> dict:
    return {
        "plugin": "bm", "name": "img", "out": str(tmp_path / "runs"), "seed": 0,
        "data": {"x0": x0, "x1": {"source": "emnist_letters", "limit": 200}},
        "method": {"loss_reduction": "mean"},
        "network": {"kind": "unet", "channels": 8, "channel_mults": [1, 2], "groups": 4},
        "train": {"steps": 3, "batch_size": 8, "log_every": 1, "eval_samples": 8, "progress": False},
        "sampler": {"kind": "euler_maruyama", "steps": 2},
        "log": {"console": False, "jsonl": False},  # no metrics file: skips the end-of-run curve plot
    }


def test_mnist_config_switches_to_shards_and_trains(tmp_path, shards):
    """`data.x0: {source: mnist}` -> `{source: shards, urls: ...}` with no other change."""
    losses: list[float] = []

    class Recorder:
        @hookimpl
        def sbcore_step_end(self, step: int, metrics: dict[str, float]) -> None:
            if "loss" in metrics:
                losses.append(metrics["loss"])

    plugins = create_plugins(extra=[Recorder()])
    for x0 in ({"source": "mnist", "split": "test", "limit": N}, {"source": "shards", "urls": shards[0]}):
        config = structure_config(_image_run(tmp_path, x0), plugins.registry)
        summary = run_local(config, None, plugins)
        assert summary["step"] == 3 and np.isfinite(summary["forward/mean_error"])
    assert len(losses) == 6 and all(np.isfinite(losses))
