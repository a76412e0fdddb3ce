"""sbcore: Schrödinger bridges and diffusion bridges behind one plugin interface."""

from sbcore.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
