"""Plugin discovery: entry points, a broken plugin, a misspelled hook, SBCORE_PLUGINS, the template."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pluggy
import pytest

from sbcore import hookimpl
from sbcore.plugins import create_plugins

TEMPLATE = Path(__file__).resolve().parents[1] / "examples" / "plugin-template"


def fake_distribution(root: Path, dist: str, entry: str, module: str, source: str) -> None:
    """An importable module plus a .dist-info that declares it in the `sbcore` entry-point group."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[sbcore]\n{entry} = {module}\n")


@pytest.fixture
def fake_plugins(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "sb-broken", "broken", "sb_broken_mod", "import this_module_does_not_exist\n")
    fake_distribution(tmp_path, "sb-good", "good", "sb_good_mod", """
        from sbcore import hookimpl
        from sbcore.network.mlp import MLP

        class WideMLP(MLP):
            pass

        @hookimpl
        def sbcore_register(registry):
            registry.add("network", "wide_mlp", WideMLP)

        @hookimpl
        def sbcore_run_end(run, summary):
            pass
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtins_register_through_hooks(plugins):
    assert "bm" in plugins.registry.names("method")
    assert {"mlp", "unet"} <= set(plugins.registry.names("network"))
    assert plugins.registry.owned_by("train")["method"] == ["bm"]
    assert "sbcore_register" in plugins.hooks_of("train")


def test_broken_plugin_is_reported_and_others_load(fake_plugins):
    loaded = create_plugins()
    assert "ModuleNotFoundError" in loaded.infos["broken"].error
    assert "this_module_does_not_exist" in loaded.infos["broken"].error
    assert loaded.infos["good"].error is None
    assert loaded.infos["good"].distribution == "sb-good" and loaded.infos["good"].version == "0.3"
    assert "wide_mlp" in loaded.registry.owned_by("good")["network"]
    assert loaded.hooks_of("good") == ["sbcore_register", "sbcore_run_end"]


def test_sbcore_plugins_env_restricts(fake_plugins, monkeypatch):
    monkeypatch.setenv("SBCORE_PLUGINS", "good")
    loaded = create_plugins()
    assert "good" in loaded.infos and "broken" not in loaded.infos
    monkeypatch.setenv("SBCORE_PLUGINS", "")
    assert "good" not in create_plugins().infos


def test_misspelled_hook_fails_loudly():
    class Typo:
        @hookimpl
        def sbcore_registr(self, registry):  # no such hook
            pass

    with pytest.raises(pluggy.PluginValidationError, match="unknown hook 'sbcore_registr'"):
        create_plugins(extra=[Typo()])


def test_duplicate_component_names_both_plugins():
    class Clash:
        @hookimpl
        def sbcore_register(self, registry):
            registry.add("method", "bm", object)

    with pytest.raises(ValueError, match="method 'bm' is registered twice: by 'train' and by 'Clash'"):
        create_plugins(extra=[Clash()])


def test_cli_plugins_lists_broken_plugin(fake_plugins):
    import os

    env = {**os.environ, "PYTHONPATH": f"{fake_plugins}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-m", "sbcore", "plugins"], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert "broken (sb-broken 0.3): FAILED TO LOAD: ModuleNotFoundError" in out
    assert "good (sb-good 0.3)" in out and "network: wide_mlp" in out
    assert "train (sbcore" in out and "method: bm" in out


@pytest.fixture(scope="module")
def installed_template():
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", str(TEMPLATE)]
    subprocess.run(pip, check=True, capture_output=True)
    yield
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "sb-spiral"], capture_output=True)


def test_template_plugin_installs_and_runs(installed_template, tmp_path):
    out = subprocess.run([sys.executable, "-m", "sbcore", "plugins"], capture_output=True, text=True, check=True).stdout
    assert "spiral (sb-spiral 0.1.0)" in out and "dataset: spiral" in out and "method: power_time" in out
    # plugin=spiral: the plugin's name stands for its one method; the config is the one its wheel ships
    result = subprocess.run(
        [sys.executable, "-m", "sbcore", "run", "plugin=spiral",
         str(TEMPLATE / "sb_spiral" / "examples" / "spiral.yaml"), "train.steps=30", f"out={tmp_path}",
         "train.progress=false"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    saved = (tmp_path / "spiral" / "config.yaml").read_text()
    assert saved.count("source: spiral") == 1 and "plugin: power_time" in saved and "kind: quadratic" in saved
    assert list((tmp_path / "spiral" / "checkpoints").glob("step_*.safetensors"))
