"""The plugin's network and sampler kinds pass the core's conformance suites."""

from __future__ import annotations

import torch

from sbcore.testing import network_conformance, sampler_conformance

torch.set_num_threads(1)

test_resmlp = network_conformance("resmlp", {"hidden": 16, "blocks": 1, "steps": 8}, shapes=[(2,), (3,)])
test_uvit = network_conformance("uvit", {"patch": 4, "dim": 16, "depth": 3, "heads": 2}, shapes=[(1, 8, 8)])
# the chain records no predictions and takes no callback (it raises ValueError when asked)
test_chain = sampler_conformance("sdsb_chain", {"steps": 4, "gamma": "constant_0"}, callback=False)
