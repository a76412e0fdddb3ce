"""The `Network` interface.

Every network records the arguments it was constructed with (`hparams`), so a checkpoint can
re-create it without the config that made it (the diffusers `register_to_config` idea).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, ClassVar

from torch import Tensor, nn


class Network(nn.Module):
    """Base class: `forward(x, t, **cond)` with t of shape (B,) in [0, 1]."""

    #: constructor arguments that by design change neither the architecture nor the output (name -> why);
    #: the conformance suite (`sbcore.testing.NetworkSuite`) requires every other argument to change one.
    inert_arguments: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self: Network, *args: Any, **kw: Any) -> None:
            if "_hparams" not in vars(self):  # the outermost constructor records, an inherited one too
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                object.__setattr__(self, "_hparams", {k: v for k, v in bound.arguments.items() if k != "self"})
            init(self, *args, **kw)

        cls.__init__ = recording_init  # type: ignore[method-assign]

    @property
    def hparams(self) -> dict[str, Any]:
        return dict(self._hparams)

    def forward(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, t, **cond)")


def build_network(cls: type[Network], hparams: dict[str, Any]) -> Network:
    """Re-create a network from its recorded constructor arguments."""
    return cls(**hparams)
