"""Webdataset shards: writing any source to tar shards, and a `Source` that streams them back.

Layout (pre-batched). One webdataset sample (tar members sharing a key) holds a *block* of up to
`block` data samples, not one: ``<key>.x.npy`` (or ``.x.png``) is the (B, *shape) storage array
(uint8 for images), ``<key>.x1.npy`` the row-aligned x1 of paired data, ``<key>.cls.npy`` the (B,)
int64 labels, ``<key>.meta.json`` the decode map (value = raw * scale + offset), shape, dtype, value range
and a CRC32 of every member, so damaged bytes inside a member are caught too. Python's tarfile
costs about 100 us per member and numpy's ``.npy`` header parse tens of us, so one sample per
member caps a reader near 3k samples/s; a block of 256 divides that overhead by 256 (see
``benchmarks/data_throughput.py``). Members carry mtime 0, so shards are byte-for-byte
reproducible. Every block is self-describing; ``<prefix>index.json`` next to the shards records,
per shard, the sample count, size and SHA-256, plus the shapes and dtype.

Reading (`ShardSource`): shards are split by DDP rank (``RANK``/``WORLD_SIZE`` or torch.distributed)
and then by DataLoader worker, so ranks and workers read disjoint shards; each worker cycles through
its own shards forever (`infinite`, reshuffling the shard order every pass) for step-based training,
mixes samples through a shuffle buffer and ships ready batches to the main process. A shard that
cannot be read (missing, truncated, corrupted, wrong shape) is skipped and counted in `skipped`,
unless `strict` is set.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
import tarfile
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm
from webdataset.gopen import gopen
from webdataset.shardlists import expand_urls as expand_braces
from webdataset.tariterators import tar_file_iterator
from webdataset.utils import pytorch_worker_info
from webdataset.writer import TarWriter

from sbcore.data.base import PairedSource, Source
from sbcore.data.memory import MemorySource, decode_affine, describe, hflip_rows
from sbcore.data.pipes import check_pipes
from sbcore.errors import DataError

FORMAT = "sbcore-shards/1"
ENCODINGS = ("npy", "png")


class ShardError(DataError, RuntimeError):
    """A shard could not be read (raised with strict: true, or when no shard is readable): a data error
    of the user's files (exit 2), whatever the format problem was (not a tar, truncated, corrupted)."""


#: what reading a missing, truncated or corrupted shard raises (anything else is a bug and propagates).
DAMAGE = (OSError, EOFError, ValueError, KeyError, tarfile.TarError, ShardError, Image.DecompressionBombError)


# ------------------------------------------------------------------------------------------ blocks
def _encode(a: np.ndarray, encoding: str) -> bytes:
    buf = io.BytesIO()
    if encoding == "npy":
        np.save(buf, a, allow_pickle=False)
    else:  # the block as one tall PNG: (B * H, W[, C])
        b, c, h, w = a.shape
        tall = a.transpose(0, 2, 3, 1).reshape(b * h, w, c)
        Image.fromarray(tall[..., 0] if c == 1 else tall).save(buf, format="PNG")
    return buf.getvalue()


def _decode(data: bytes, ext: str, shape: tuple[int, ...]) -> np.ndarray:
    if ext == "npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    c, h, w = shape
    tall = np.asarray(Image.open(io.BytesIO(data)))
    return tall.reshape(-1, h, w, c).transpose(0, 3, 1, 2)


def encode_block(key: str, x: np.ndarray, meta: dict[str, Any], x1: np.ndarray | None = None,
                 labels: np.ndarray | None = None) -> dict[str, Any]:
    """One webdataset sample holding a block of rows."""
    enc = meta["encoding"]
    members = {f"x.{enc}": _encode(x, enc)}
    if x1 is not None:
        members[f"x1.{enc}"] = _encode(x1, enc)
    if labels is not None:
        members["cls.npy"] = _encode(np.asarray(labels, dtype=np.int64), "npy")
    crc = {name: zlib.crc32(data) for name, data in members.items()}
    return {"__key__": key, **members, "meta.json": json.dumps({**meta, "count": len(x), "crc32": crc}).encode()}


def decode_block(members: dict[str, bytes], where: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """tar members of one key -> ({"x": ..., "x1": ..., "cls": ...}, meta), validated."""
    if "meta.json" not in members:
        raise ShardError(f"{where}: block without meta.json (not written by sbcore shards write?)")
    meta = json.loads(members["meta.json"])
    for name, crc in meta["crc32"].items():
        if name not in members:
            raise ShardError(f"{where}: block lacks {name}")
        if zlib.crc32(members[name]) != crc:
            raise ShardError(f"{where}: {name} is corrupted (CRC32 mismatch)")
    shape, enc, count = tuple(meta["shape"]), meta["encoding"], meta["count"]
    out: dict[str, np.ndarray] = {}
    for name in ("x", "x1") if meta.get("paired") else ("x",):
        a = _decode(members[f"{name}.{enc}"], enc, shape)
        if a.shape != (count, *shape) or str(a.dtype) != meta["dtype"]:
            raise ShardError(f"{where}: {name} has shape {a.shape} {a.dtype}, the block meta says "
                             f"{(count, *shape)} {meta['dtype']}")
        out[name] = a
    if "cls.npy" in members:
        out["cls"] = _decode(members["cls.npy"], "npy", ())
        if out["cls"].shape != (count,):
            raise ShardError(f"{where}: cls has shape {out['cls'].shape}, expected ({count},)")
    return out, meta


def read_blocks(url: str) -> Iterator[tuple[dict[str, np.ndarray], dict[str, Any]]]:
    """Blocks of one shard in file order; any damage raises (the caller decides to skip or stop)."""
    stream = gopen(url, "rb")
    try:
        key, members = None, {}
        for member in tar_file_iterator(stream):
            base, _, ext = member["fname"].partition(".")
            if base != key and members:
                yield decode_block(members, f"{url} block {key}")
                members = {}
            key, members[ext] = base, member["data"]
        if not members:
            raise ShardError(f"{url}: no blocks (empty or not a tar file)")
        yield decode_block(members, f"{url} block {key}")
    finally:
        stream.close()


# ------------------------------------------------------------------------------------------ writing
def index_path(pattern: str) -> Path:
    """``shards/mnist-%06d.tar`` -> ``shards/mnist-index.json``."""
    path = Path(pattern)
    stem = path.name.split("%", 1)[0].rstrip("-_.")
    return path.with_name(f"{stem}-index.json" if stem else "index.json")


def brace_urls(pattern: str, n: int) -> str:
    """The brace pattern naming shards 0..n-1 of a printf `pattern`."""
    if n == 1:
        return pattern % 0
    first, last = pattern % 0, pattern % (n - 1)
    spec = re.search(r"%0?\d*d", pattern)
    assert spec is not None
    head, tail = pattern[: spec.start()], pattern[spec.end():]
    return f"{head}{{{first[len(head):len(first) - len(tail)]}..{last[len(head):len(last) - len(tail)]}}}{tail}"


def _layout(total: int, maxcount: int, block: int) -> Iterator[tuple[int, int, int]]:
    """(shard, start, stop) row ranges: `maxcount` rows per shard, `block` rows per block within it."""
    for shard, first in enumerate(range(0, total, maxcount)):
        last = min(first + maxcount, total)
        for start in range(first, last, block):
            yield shard, start, min(start + block, last)


Block = tuple[int, np.ndarray, "np.ndarray | None", "np.ndarray | None"]


def _blocks(source: Any, count: int | None, shuffle: bool, seed: int, maxcount: int,
            block: int) -> tuple[int, Iterator[Block], dict[str, Any]]:
    """(total, iterator of (shard, x, x1, labels) storage blocks, meta) for a finite or a generative source."""
    if isinstance(source, MemorySource):
        order = (np.random.default_rng(seed).permutation(len(source)) if shuffle else np.arange(len(source)))
        order = order[:count] if count is not None else order
        meta = {"shape": list(source.shape), "dtype": str(source.data.numpy().dtype), "scale": source.scale,
                "offset": source.offset, "value_range": list(source.value_range), "hflip": source.hflip,
                "paired": source.paired}
        arrays = [None if a is None else a.numpy() for a in (source.data, source.pair, source.labels)]

        def stored() -> Iterator[Block]:
            for shard, start, stop in _layout(len(order), maxcount, block):
                idx = order[start:stop]
                yield (shard, *(None if a is None else a[idx] for a in arrays))

        return len(order), stored(), meta
    if count is None:
        raise ValueError(f"{type(source).__name__} draws samples without end; give count=N to write N of them")
    paired = isinstance(source, PairedSource) and not isinstance(source, Source)
    value_range = getattr(source, "value_range", None)
    meta = {"shape": list(source.shape), "dtype": "float32", "scale": 1.0, "offset": 0.0,
            "value_range": None if value_range is None else list(value_range), "hflip": False, "paired": paired}
    generator = torch.Generator().manual_seed(seed)

    def drawn() -> Iterator[Block]:
        for shard, start, stop in _layout(count, maxcount, block):
            if paired:
                x0, x1 = source.sample_pairs(stop - start, generator)
                yield shard, x0.numpy(), x1.numpy(), None
            else:
                yield shard, source.sample(stop - start, generator).numpy(), None, None

    return count, drawn(), meta


def _finish(writer: TarWriter, tmp: Path, final: Path, count: int) -> dict[str, Any]:
    """Close a shard, move it into place, and return its index entry."""
    writer.close()
    tmp.replace(final)
    data = final.read_bytes()
    return {"file": final.name, "count": count, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write_shards(source: Any, pattern: str, maxcount: int = 10_000, block: int = 256, encoding: str = "npy",
                 shuffle: bool = True, seed: int = 0, count: int | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Write `source` to shards named by the printf `pattern` (e.g. ``out/mnist-%06d.tar``).

    A finite (in-memory) source is written whole, each sample once, in a seeded random order when
    `shuffle` (so a label-sorted file like EMNIST's does not give single-class shards), or its first
    `count` samples of that order; a generative source needs `count` and draws with `seed`.
    Every shard holds `maxcount` samples (the last one fewer), in blocks of `block`.
    Returns the index (also written to `index_path(pattern)`).
    """
    if not re.search(r"%0?\d*d", pattern):
        raise ValueError(f"out: expected a printf pattern with a shard number such as shards/mnist-%06d.tar, "
                         f"got {pattern!r}")
    if maxcount < 1 or block < 1:
        raise ValueError(f"maxcount and block must be positive, got maxcount={maxcount}, block={block}")
    if encoding not in ENCODINGS:
        raise ValueError(f"format: expected one of {ENCODINGS}, got {encoding!r}")
    total, blocks, meta = _blocks(source, count, shuffle, seed, maxcount, block)
    if encoding == "png" and (meta["dtype"] != "uint8" or len(meta["shape"]) != 3 or meta["shape"][0] not in (1, 3)):
        raise ValueError(f"format: png needs uint8 images of shape (1 or 3, H, W), got {meta['dtype']} "
                         f"{tuple(meta['shape'])}; use format=npy")
    meta.update(encoding=encoding, format=FORMAT, source=getattr(source, "name", type(source).__name__))
    Path(pattern).parent.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, Any]] = []
    writer, tmp, written, labelled = None, Path(), 0, False
    with tqdm(total=total, unit="sample", desc="writing shards", disable=not progress, file=sys.stderr) as bar:
        for key, (shard, x, x1, labels) in enumerate(blocks):
            if shard == len(shards) + 1:  # the previous shard is full
                shards.append(_finish(writer, tmp, Path(pattern % len(shards)), written))
                writer = None
            if writer is None:
                tmp = Path(pattern % shard + ".tmp")
                writer, written = TarWriter(str(tmp), encoder=False, mtime=0), 0
            writer.write(encode_block(f"{key:09d}", x, meta, x1, labels))
            written += len(x)
            labelled = labels is not None
            bar.update(len(x))
    if writer is None:
        raise ValueError(f"{meta['source']}: nothing to write (0 samples)")
    shards.append(_finish(writer, tmp, Path(pattern % len(shards)), written))
    index = {**meta, "count": sum(s["count"] for s in shards), "block": block, "labels": labelled,
             "urls": brace_urls(pattern, len(shards)), "shards": shards}
    index_file = index_path(pattern)
    tmp = index_file.with_name(index_file.name + ".tmp")
    tmp.write_text(json.dumps(index, indent=1) + "\n")
    tmp.replace(index_file)
    return index


# ------------------------------------------------------------------------------------------ reading
class _ShuffleBuffer:
    """A pool of up to `size` + one block of rows; `take(n)` removes n rows picked at random.

    Removal fills the holes with the pool's last rows (O(n) per take, never O(size)), so the pool
    stays contiguous. size 0: rows leave in arrival order.
    """

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size, self.rng = size, rng
        self.pool: dict[str, np.ndarray] = {}
        self.n = 0

    def add(self, rows: dict[str, np.ndarray]) -> None:
        m = len(rows["x"])
        if not self.pool:
            self.pool = {k: np.empty((self.size + 2 * m, *v.shape[1:]), v.dtype) for k, v in rows.items()}
        if self.n + m > len(self.pool["x"]):
            self.pool = {k: np.concatenate([v[: self.n], np.empty((self.n + m, *v.shape[1:]), v.dtype)])
                         for k, v in self.pool.items()}
        for k, v in rows.items():
            self.pool[k][self.n:self.n + m] = v
        self.n += m

    def take(self, n: int) -> dict[str, np.ndarray]:
        n = min(n, self.n)
        if self.size == 0:
            out = {k: v[:n].copy() for k, v in self.pool.items()}
            for v in self.pool.values():
                v[: self.n - n] = v[n:self.n]
        else:
            idx = self.rng.choice(self.n, n, replace=False)
            out = {k: v[idx] for k, v in self.pool.items()}
            keep = self.n - n
            holes = idx[idx < keep]
            tail = np.ones(n, bool)
            tail[idx[idx >= keep] - keep] = False
            movers = keep + np.flatnonzero(tail)
            for v in self.pool.values():
                v[holes] = v[movers]
        self.n -= n
        return out


class _BlockStream(torch.utils.data.IterableDataset):
    """Batches of storage rows from this rank's and this worker's shards, plus the shards skipped."""

    def __init__(self, urls: list[str], shape: tuple[int, ...], shuffle: int, batch: int, infinite: bool,
                 strict: bool, seed: int) -> None:
        self.urls, self.shape, self.shuffle, self.batch = urls, shape, shuffle, batch
        self.infinite, self.strict, self.seed = infinite, strict, seed

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world, worker, workers = pytorch_worker_info()
        mine = self.urls[rank::world][worker::workers]
        rng = np.random.default_rng([self.seed, rank, worker])
        buffer = _ShuffleBuffer(self.shuffle, rng)
        skipped: list[tuple[str, str]] = []
        while True:
            read_any = False
            for i in rng.permutation(len(mine)) if self.shuffle else range(len(mine)):
                try:
                    for rows, meta in read_blocks(mine[i]):
                        if tuple(meta["shape"]) != self.shape:
                            raise ShardError(f"samples of shape {tuple(meta['shape'])}, the stream's are {self.shape}")
                        buffer.add(rows)
                        read_any = True
                        while buffer.n >= self.shuffle + self.batch:
                            yield self._batch(buffer.take(self.batch), skipped)
                            skipped = []
                except DAMAGE as exc:  # a damaged shard is skipped, not fatal
                    reason = f"{type(exc).__name__}: {exc}"
                    if self.strict:
                        raise ShardError(f"{mine[i]}: {reason}") from exc
                    skipped.append((mine[i], reason))
            if not read_any:
                raise ShardError(f"none of the {len(mine)} shards of rank {rank} worker {worker} could be read: "
                                 + "; ".join(f"{u}: {r}" for u, r in skipped[-3:]))
            if not self.infinite:
                break
        while buffer.n:
            yield self._batch(buffer.take(self.batch), skipped)
            skipped = []
        if skipped:
            yield {"skipped": skipped}

    @staticmethod
    def _batch(rows: dict[str, np.ndarray], skipped: list[tuple[str, str]]) -> dict[str, Any]:
        return {**{k: torch.from_numpy(v) for k, v in rows.items()}, "skipped": skipped}


def expand_urls(urls: str | list[str]) -> list[str]:
    """Brace patterns (``a-{000..009}.tar``), ``::``-separated lists and ``pipe:`` commands -> URLs."""
    items = [urls] if isinstance(urls, str) else list(urls)
    out = [u for item in items for u in expand_braces(item)]
    if not out or any(not u for u in out):
        raise ValueError(f"urls: expected shard paths or a brace pattern such as shards/mnist-{{000000..000005}}.tar, "
                         f"got {urls!r}")
    return out


class ShardSource(Source, PairedSource):
    """Samples streamed from webdataset shards written by `sbcore shards write`.

    urls: local paths, brace patterns or a list of them; ``pipe:`` commands only with `allow_pipe`.
    shuffle: shuffle-buffer size in samples, per worker (0 keeps file order and shard order).
    workers: DataLoader worker processes (0 reads in the training process).
    batch: rows per batch shipped from a worker; `sample(n)` concatenates or splits them as needed
        (each shipment costs a shared-memory hand-over, so larger batches stream faster with workers).
    infinite: cycle through the shards forever (step-based training); false stops after one pass.
    strict: stop at the first unreadable shard instead of skipping it.
    seed: the stream's seed; null draws it from the generator of the first `sample` call.
    side: for paired shards, serve one side (x0 or x1) as an unpaired source.
    allow_pipe: let ``pipe:`` URLs run their shell command (or ``SBCORE_ALLOW_PIPE=1``).

    Determinism: the stream is a function of (seed, rank, world size, workers, shuffle, batch), so
    the same config gives the same batches. `sample(n, generator)` returns the next n samples of the
    stream; `generator` is used only for the seed (when null) and for random flips. Resume: the stream
    restarts with a seed drawn from the restored generator, a fresh pass rather than the exact
    continuation (the position in a shuffled multi-worker stream is not checkpointed).
    """

    def __init__(
        self, urls: str | list[str] = "", shuffle: int = 10_000, workers: int = 0, batch: int = 1024,
        infinite: bool = True, strict: bool = False, seed: int | None = None, side: str | None = None,
        allow_pipe: bool = False,
    ) -> None:
        if shuffle < 0 or workers < 0 or batch < 1:
            raise ValueError(f"expected shuffle >= 0, workers >= 0, batch >= 1; got {shuffle}, {workers}, {batch}")
        if side not in (None, "x0", "x1"):
            raise ValueError(f"side: expected x0, x1 or null, got {side!r}")
        self.urls = expand_urls(urls)
        check_pipes(self.urls, allow_pipe)
        self.shuffle, self.workers, self.batch, self.infinite = shuffle, workers, batch, infinite
        self.strict, self.seed, self.side = strict, seed, side
        self.skipped: dict[str, str] = {}
        meta = self._probe()
        self.shape = tuple(meta["shape"])
        self.paired = bool(meta.get("paired"))
        self.scale, self.offset, self.hflip = float(meta["scale"]), float(meta["offset"]), bool(meta["hflip"])
        self.value_range = None if meta.get("value_range") is None else tuple(meta["value_range"])
        self.name = f"shards[{meta.get('source', '?')}]"
        if side is not None and not self.paired:
            raise ValueError(f"side: {urls!r} holds unpaired samples; side applies to paired shards only")
        rank, world, _, _ = pytorch_worker_info()
        readers = world * max(1, workers)
        if len(self.urls) < readers:
            raise ValueError(
                f"urls: {len(self.urls)} shard(s) cannot feed {world} rank(s) x {max(1, workers)} worker(s) "
                f"(every reader needs its own shard); write smaller shards (lower maxcount) or use fewer workers")
        self._iter: Iterator[dict[str, Any]] | None = None
        self._pending: list[dict[str, Tensor]] = []

    def _probe(self) -> dict[str, Any]:
        """The first block's meta (shape, dtype, decode map); unreadable leading shards count as skipped."""
        for url in self.urls:
            try:
                return next(read_blocks(url))[1]
            except DAMAGE as exc:
                if self.strict:
                    raise ShardError(f"{url}: {type(exc).__name__}: {exc}") from exc
                self._skip([(url, f"{type(exc).__name__}: {exc}")])
        raise ShardError(f"none of the {len(self.urls)} shards could be read: "
                         + "; ".join(f"{u}: {r}" for u, r in list(self.skipped.items())[:3]))

    def _skip(self, events: list[tuple[str, str]]) -> None:
        for url, reason in events:
            if url not in self.skipped:
                self.skipped[url] = reason
                warnings.warn(f"shards: skipped {url} ({reason}); {len(self.skipped)} shard(s) skipped so far",
                              RuntimeWarning, stacklevel=3)

    def __repr__(self) -> str:
        return describe(self) + f" from {len(self.urls)} shard(s)"

    # ---- the stream -----------------------------------------------------------------------------

    def chunks(self, seed: int | None = None) -> Iterator[dict[str, Tensor]]:
        """Storage batches ({"x", "x1"?, "cls"?}) in stream order; skipped shards are recorded.

        seed: overrides the source's seed; 0 when both are null.
        """
        seed = seed if seed is not None else self.seed if self.seed is not None else 0
        dataset = _BlockStream(self.urls, self.shape, self.shuffle, self.batch, self.infinite, self.strict, seed)
        source: Any = dataset if self.workers == 0 else torch.utils.data.DataLoader(
            dataset, batch_size=None, num_workers=self.workers, prefetch_factor=4)
        for item in source:
            self._skip([tuple(s) for s in item.pop("skipped")])
            if item:
                yield item

    def close(self) -> None:
        """Stop the stream (and its worker processes)."""
        self._iter = None
        self._pending = []

    def _take(self, n: int, generator: torch.Generator) -> dict[str, Tensor]:
        """The next n rows of the stream (views of the shipped batches where possible, never re-copied)."""
        if self._iter is None:
            seed = self.seed if self.seed is not None else int(torch.randint(2**31 - 1, (1,), generator=generator))
            self._iter = self.chunks(seed)
        parts, need = [], n
        while need:
            if not self._pending:
                try:
                    self._pending.append(next(self._iter))
                except StopIteration:
                    raise ShardError(f"{self.name}: the stream ended (infinite: false) with {n - need} of the {n} "
                                     "samples asked for") from None
            chunk = self._pending[0]
            size = len(chunk["x"])
            if size <= need:
                parts.append(self._pending.pop(0))
                need -= size
            else:
                parts.append({k: v[:need] for k, v in chunk.items()})
                self._pending[0] = {k: v[need:] for k, v in chunk.items()}
                need = 0
        return parts[0] if len(parts) == 1 else {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    def _decode(self, raw: Tensor, generator: torch.Generator) -> Tensor:
        x = decode_affine(raw, self.scale, self.offset)
        return hflip_rows(x, generator) if self.hflip else x

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        if self.paired and self.side is None:
            raise ValueError(f"{self.name}: these shards hold pairs; use them as data.pairs, or set side: x0|x1")
        raw = self._take(n, generator)
        return self._decode(raw["x1" if self.side == "x1" else "x"], generator)

    def sample_pairs(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        if not self.paired:
            raise ValueError(f"{self.name}: these shards are unpaired; use them as data.x0 or data.x1")
        raw = self._take(n, generator)
        return (decode_affine(raw["x"], self.scale, self.offset), decode_affine(raw["x1"], self.scale, self.offset))
