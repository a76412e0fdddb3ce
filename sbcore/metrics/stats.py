"""``sbcore stats``: the feature statistics of a whole split, once, as the reference of FID-type metrics
(``eval: {metrics: [{kind: fid, reference: FILE}]}``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import Tensor
from tqdm import tqdm

from sbcore.config import DataSource, error_lines, make_converter, schema_for
from sbcore.config_text import ConfigError
from sbcore.data.arrays import SUFFIXES
from sbcore.metrics.features import Stats, default_extractor, make_extractor, stats_of
from sbcore.plugins import get_plugins


def source_spec(text: str, params: dict[str, Any], split: str, registry: Any) -> DataSource:
    """A folder is an image folder, an array file an arrays source (each its own split); any other text
    names a registered dataset, which gets `split` when it takes one."""
    path = Path(text).expanduser()
    if path.is_dir():
        return DataSource("image_folder", {"root": str(path), **params})
    if path.suffix.lower() in SUFFIXES:
        return DataSource("arrays", {"path": str(path), **params})
    fields = attrs.fields_dict(schema_for(registry.get("dataset", text)))
    return DataSource(text, {**params, "split": split} if "split" in fields and "split" not in params else params)


def build_source(spec: DataSource, registry: Any) -> Any:
    """`spec` validated like a config's data section and built."""
    cls = registry.get("dataset", spec.kind)
    try:
        checked = make_converter(registry).structure(spec.params, schema_for(cls))
        return cls(**{k: getattr(checked, k) for k in spec.params})
    except Exception as exc:  # noqa: BLE001 - a bad parameter or file, reported with its key
        raise ConfigError([f"source {spec.kind!r}: {line}" for line in error_lines(exc, "data")]) from None


def batches(source: Any, n: int | str, seed: int, size: int) -> Iterator[Tensor]:
    """Every item of a finite source in order (n="all"), else n items drawn with `seed`."""
    if n == "all":
        if not hasattr(source, "rows"):
            raise ConfigError([f"n=all: {getattr(source, 'name', source)} is not held in memory; give n=N"])
        starts = range(0, len(source), size)
        for start in tqdm(starts, desc="statistics", unit="batch", leave=False, disable=len(starts) < 2):
            yield source.rows(start, start + size)[0]
        return
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, int(n), size):
        yield source.sample(min(size, int(n) - start), generator)


def write_stats(opts: Any) -> Stats:
    """Compute and write the statistics `opts` (`sbcore.metrics.plugin.StatsOptions`) ask for."""
    registry = get_plugins().registry
    spec = source_spec(opts.source, opts.data, opts.split, registry)
    source = build_source(spec, registry)
    extractor = make_extractor(opts.extractor or default_extractor(tuple(source.shape)), opts.weights)
    stats = stats_of(batches(source, opts.n, opts.seed, opts.batch_size), extractor,
                     source=f"{getattr(source, 'name', spec.kind)}")
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    stats.save(opts.out)
    return stats
