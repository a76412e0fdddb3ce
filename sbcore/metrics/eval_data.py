"""The data every evaluation draws from: held-out ``eval.data`` (default: each training source's test
split), or the training sources (``split: train``), optionally every item of it (``n=all``).

In-run evaluation, ``sbcore eval`` and ``sbcore sample`` all pass through `evaluation_data`, so a number
measured on the test split never saw a training item. A side left out of ``eval.data`` is its training
source with ``split: test`` when the source has a test split (mnist, fashion_mnist, emnist_letters, an
image folder with a ``test``/``val`` folder, arrays with a ``test_path``); a distribution sampled
afresh on every draw (Gaussians, toy sets, noise) needs none; any other source is evaluated on its
training items, with a warning printed once.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any, Literal

import attrs
import torch
from torch import Tensor

from sbcore.config import DataConfig, DataSource, schema_for
from sbcore.data.base import PairedSource, Source
from sbcore.errors import UserError
from sbcore.launch import distributed

Split = Literal["train", "test"]
SIDES = ("x0", "x1", "pairs")
_warned: set[str] = set()


def warn_once(text: str) -> None:
    if text not in _warned:
        _warned.add(text)
        print(f"sbcore: warning: {text}", file=sys.stderr)


def _test_variant(spec: DataSource, registry: Any, side: str) -> tuple[DataSource, str]:
    """(the held-out version of a training source, where it comes from)."""
    cls = registry.get("dataset", spec.kind)
    where = f"data.{side} ({spec.kind})"
    if getattr(cls, "fresh_draws", False):
        return spec, f"{spec.kind}: fresh draws"
    if "split" not in attrs.fields_dict(schema_for(cls)):
        warn_once(f"{where} has no test split; evaluating on its training items (set eval.data.{side})")
        return spec, f"{spec.kind}: training items (no test split)"
    if spec.params.get("split") == "test":
        warn_once(f"{where} trains on its test split; evaluation sees training items (set eval.data.{side})")
        return spec, f"{spec.kind}[test]: training items"
    variant = DataSource(spec.kind, {**spec.params, "split": "test"})
    try:
        variant.build(registry)
    except (ValueError, OSError) as exc:
        warn_once(f"{where}: {str(exc).splitlines()[0]}; evaluating on its training items (set eval.data.{side})")
        return spec, f"{spec.kind}: training items (no test split)"
    return variant, f"{spec.kind}[test]"


def eval_data_config(config: Any, registry: Any, split: Split) -> tuple[DataConfig, dict[str, str]]:
    """(the ``data``-shaped section evaluation draws from, side -> where its items come from)."""
    if split == "train":
        return config.data, {s: f"{getattr(config.data, s).kind}: training items" for s in SIDES
                             if getattr(config.data, s) is not None}
    given = config.eval.data
    sides: dict[str, DataSource | None] = {}
    notes: dict[str, str] = {}
    for side in SIDES:
        train, chosen = getattr(config.data, side), getattr(given, side)
        if chosen is not None:
            sides[side], notes[side] = chosen, f"eval.data.{side} ({chosen.kind})"
        elif train is not None and not (side != "pairs" and given.pairs is not None):
            sides[side], notes[side] = _test_variant(train, registry, side)
    if given.pairs is None and (given.x0 is not None or given.x1 is not None):
        sides.pop("pairs", None)
    try:
        return DataConfig(**sides, latent=config.data.latent), notes  # held-out items in the same latent space
    except ValueError as exc:
        raise UserError(f"eval.data: {exc}") from None


def shard_range(total: int) -> tuple[int, int]:
    """(first item, count) of this rank's contiguous share of `total` items (`distributed.shard`)."""
    world, rank = distributed.world_size(), distributed.rank_of()
    return rank * (total // world) + min(rank, total % world), distributed.shard(total)


class WholeSplit(Source, PairedSource):
    """Every item of a finite source in storage order -- this rank's contiguous share under DDP, gathered
    back in rank order -- for ``n=all``. `sample`/`sample_pairs` return all of them whatever n is."""

    def __init__(self, source: Any) -> None:
        if not hasattr(source, "rows"):
            raise UserError(f"n=all needs a finite evaluation source held in memory; "
                            f"{getattr(source, 'name', type(source).__name__)} is not one (give n=N)")
        self.name, self.shape, self.total = getattr(source, "name", "data"), tuple(source.shape), len(source)
        start, count = shard_range(self.total)
        self.x, self.pair = source.rows(start, start + count)
        labels = getattr(source, "labels", None)
        self.labels = labels[start:start + count] if labels is not None else None

    def labels_of_draw(self, n: int, generator: torch.Generator) -> Tensor | None:
        return self.labels

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        if self.pair is not None:
            raise ValueError(f"{self.name}: this data is paired; use it as data.pairs")
        return self.x

    def sample_pairs(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        if self.pair is None:
            raise ValueError(f"{self.name}: this data is unpaired; use it as data.x0 or data.x1")
        return self.x, self.pair


@attrs.frozen
class EvalData:
    """What an evaluation drew from. split: train or test; sources: side -> where its items come from;
    total: the number of items of the largest finite source when every item is evaluated (``n=all``)."""

    split: Split
    sources: dict[str, str]
    total: int | None = None


def _whole(opened: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """`opened` with every finite source replaced by its `WholeSplit`; the largest total."""
    totals: list[int] = []

    def wrap(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: wrap(v) for k, v in value.items()}
        if isinstance(value, (Source, PairedSource)) and not getattr(value, "fresh_draws", False):
            whole = WholeSplit(value)
            totals.append(whole.total)
            return whole
        return value

    wrapped = {name: wrap(value) for name, value in opened.items()}
    return wrapped, max(totals) if totals else None


@contextlib.contextmanager
def evaluation_data(trainer: Any, split: Split, every_item: bool = False) -> Iterator[EvalData]:
    """Inside the block `trainer.draw` reads the evaluation data of `split` (every item of each finite
    source when `every_item`); the training data again after it."""
    config = trainer.run.config
    data, notes = eval_data_config(config, trainer.run.registry, split)
    if data == config.data and not every_item:  # the training sources themselves: nothing to rebuild
        yield EvalData(split, notes)
        return
    try:
        opened = trainer.open_data(data)
    except NotImplementedError as exc:
        if every_item:
            raise UserError(f"n=all: {exc}") from None
        warn_once(f"{exc}; evaluating on its training data")
        yield EvalData("train", {s: "training data" for s in notes})
        return
    for name, value in opened.items():
        for source in value.values() if isinstance(value, dict) else [value]:
            shape = getattr(source, "shape", None)
            if shape is not None and tuple(shape) != tuple(trainer.shape):
                raise UserError(f"eval.data: {name} has samples of shape {tuple(shape)}, the run's data "
                                f"{tuple(trainer.shape)}")
    total = None
    if every_item:
        opened, total = _whole(opened)
        if total is None:
            raise UserError("n=all needs a finite evaluation split; this run's data is drawn afresh (give n=N)")
    with trainer.drawing_from(opened):
        yield EvalData(split, notes, total)
