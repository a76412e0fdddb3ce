"""Reading ``.pt`` files without running anything in them, for data (`sbcore.data.arrays`) and for official
checkpoints (`sbcore.network.weights`): ``torch.load(weights_only=True)`` is the restricted unpickler that
builds tensors and plain containers and refuses every other object before it is created."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch


def load_pt(path: Path) -> Any:
    """The tensors and plain containers in a ``.pt`` file. ValueError in one line where the restricted
    unpickler refuses an object (naming it; nothing in the file was run) or the file is damaged."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except torch.serialization.pickle.UnpicklingError as exc:  # the restricted loader's refusal
        raise ValueError(f"{path}: cannot be read as .pt: refused, it holds objects other than tensors and plain "
                         f"containers ({_refused(exc)}); nothing in it was run") from None
    except (OSError, ValueError, RuntimeError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path}: cannot be read as .pt: {_first_line(exc)}") from None


def _refused(exc: Exception) -> str:
    """The line of torch's refusal that names what was refused (its first line advises turning the check off)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line or "Unsupported" in line]
    return (named or lines or [type(exc).__name__])[0].split(". Please")[0].rstrip(".")


def _first_line(exc: Exception) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
