"""One torch thread (small tensors run fastest so, and the test machines are small)."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_thread():
    yield
    torch.set_num_threads(1)
