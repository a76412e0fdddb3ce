"""Task runner: `nox -s tests lint`, one session per plugin, `demo`.

torch is installed once into `.nox/_torch` and shared by every session through a .pth file, so
sessions do not each download and unpack several gigabytes.
"""

from __future__ import annotations

import pathlib
import sys

import nox

nox.needs_version = ">=2024.4.15"
nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests"]

ROOT = pathlib.Path(__file__).parent.resolve()
PLUGINS = sorted(p.name for p in (ROOT / "plugins").glob("sb-*") if (p / "pyproject.toml").exists())
TORCH = ("torch==2.14.1", "torchvision==0.29.1")
TORCH_LAYER = ROOT / ".nox" / "_torch"


def _torch_layer(session: nox.Session) -> None:
    if not (TORCH_LAYER / ".complete").exists():
        session.run("python", "-m", "pip", "install", "--quiet", "--target", str(TORCH_LAYER), *TORCH)
        (TORCH_LAYER / ".complete").write_text(" ".join(TORCH))
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site = pathlib.Path(session.virtualenv.location) / "lib" / version / "site-packages"
    (site / "_sbcore_torch_layer.pth").write_text(f"{TORCH_LAYER}\n")


def _install(session: nox.Session, *plugins: str) -> None:
    """Core and plugins in one pip call (their names are not on PyPI)."""
    _torch_layer(session)
    args = ["-e", ".[test,ops]"]
    for name in plugins:
        args += ["-e", f"plugins/{name}"]
    session.install(*args)


@nox.session
def tests(session: nox.Session) -> None:
    """Core tests (and every plugin's): `nox -s tests -- tests/test_config.py` runs a subset."""
    _install(session, *PLUGINS)
    plugin_tests = [f"plugins/{p}/tests" for p in PLUGINS if (ROOT / "plugins" / p / "tests").is_dir()]
    paths = session.posargs or ["tests", *plugin_tests]
    session.run("pytest", "-q", *paths)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, built as CI builds it (warnings are errors): `nox -s docs`."""
    _torch_layer(session)
    session.install("-e", ".[docs]", *[arg for p in PLUGINS for arg in ("-e", f"plugins/{p}")])
    session.run("mkdocs", "build", "--strict", env={"DISABLE_MKDOCS_2_WARNING": "true"})


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "sbcore", "tests", "plugins", "examples", "benchmarks", "docs", "noxfile.py")


@nox.session
def demo(session: nox.Session) -> None:
    """The README's demo: bridge matching between two Gaussians, compared with the closed form."""
    _install(session)
    session.run("sbcore", "run", "plugin=bm", "examples/bm/gaussian.yaml", *session.posargs)


for _plugin in PLUGINS:

    @nox.session(name=_plugin.removeprefix("sb-"))
    def plugin_tests(session: nox.Session, _plugin: str = _plugin) -> None:
        _install(session, _plugin)
        session.run("pytest", "-q", f"plugins/{_plugin}/tests", *session.posargs)
