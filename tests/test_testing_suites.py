"""`sbcore.testing` itself: usable without pytest, catches an ignored constructor argument, and shows
the real exception of a plugin that failed to load."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys
from typing import Literal

import pytest
import torch

from sbcore.network.base import Network
from sbcore.network.embedding import time_embedding
from sbcore.plugins import create_plugins
from sbcore.testing import ConformanceError, NetworkSuite
from sbcore.testing import suite as suite_module


class TinyNet(Network):
    """x + a linear map of [x, embedded t]; `mode` scales the map (or, broken, is ignored)."""

    honour_mode = True

    def __init__(self, shape: tuple[int, ...], width: int = 4, mode: Literal["plain", "doubled"] = "plain",
                 use_bias: bool = True) -> None:
        super().__init__()
        (dim,) = shape
        self.mode = mode
        self.embed, embed_dim = time_embedding("sinusoidal", width)
        self.layer = torch.nn.Linear(dim + embed_dim, dim, bias=use_bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.expand(x.shape[0]) if t.ndim == 0 else t
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")
        out = self.layer(torch.cat([x, self.embed(t).to(x)], dim=1))
        scale = 2.0 if self.mode == "doubled" and self.honour_mode else 1.0
        return x + scale * out


class IgnoresMode(TinyNet):
    """Takes `mode`, records it, and silently does nothing with it."""

    honour_mode = False


def test_a_network_that_uses_every_argument_passes_the_whole_suite():
    NetworkSuite(TinyNet, shapes=[(3,)]).verify()


def test_a_silently_ignored_argument_fails():
    suite = NetworkSuite(IgnoresMode, shapes=[(3,)])
    with pytest.raises(ConformanceError, match=r"check arguments_are_used: changing mode='doubled' changes "
                                               r"neither the parameter shapes nor the output"):
        suite.run("arguments_are_used")
    NetworkSuite(IgnoresMode, shapes=[(3,)], inert={"mode": "kept for old configs"}).run("arguments_are_used")


def test_importing_the_suites_needs_no_pytest():
    code = ("import sys; sys.modules['pytest'] = None; sys.modules['_pytest'] = None\n"
            "import sbcore.testing as t\n"
            "t.NetworkSuite('mlp', {'hidden': 8, 'layers': 1, 'time_dim': 4}, shapes=[(2,)]).verify()\n"
            "print('verified')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "verified"


def test_a_plugin_that_fails_to_import_shows_its_exception(monkeypatch):
    broken = md.EntryPoint(name="broken", value="sbcore_no_such_module_xyz.plugin", group="sbcore")
    monkeypatch.setattr(md, "entry_points", lambda group=None: [broken] if group == "sbcore" else [])
    monkeypatch.setattr(suite_module, "get_plugins", create_plugins)
    with pytest.raises(ConformanceError) as info:
        NetworkSuite("its_network")
    assert "plugins that failed to load: broken: ModuleNotFoundError: No module named 'sbcore_no_such_module_xyz'" \
        in str(info.value)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)  # pytest prints its traceback
