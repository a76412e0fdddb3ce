"""Fuzzing the command line: every subcommand, driven in this process through `sbcore.cli.main` with
generated option values, generated config values of the wrong type, range and shape, and damaged
run-folder files. Whatever is generated:

- the exit status is 0, 1 or 2 (or argparse's 2), never an exception out of `main`;
- stderr holds no traceback (no ``--debug``);
- after a non-zero exit the run folder is byte-identical and nothing was written outside `out`.

CI runs a small, derandomized budget (``SBCORE_FUZZ_EXAMPLES``, default 4 per command). The long run
(README, "Fuzzing"): ``SBCORE_FUZZ_EXAMPLES=800 SBCORE_FUZZ_REPORT=fuzz.jsonl pytest
tests/test_faults_fuzz.py --hypothesis-seed=1`` -- a seed of your choice instead of the fixed one;
fuzz.jsonl gets each command's number of cases and exit statuses.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sbcore.cli import build_parser, main  # noqa: E402
from sbcore.plugins import get_plugins  # noqa: E402
from sbcore.testing import run_cli, tiny_run_config, write_tiny_config  # noqa: E402

EXAMPLES = int(os.environ.get("SBCORE_FUZZ_EXAMPLES", "4"))
LONG = "SBCORE_FUZZ_EXAMPLES" in os.environ
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not LONG, database=None,
                suppress_health_check=list(HealthCheck), print_blob=True,
                phases=[Phase.explicit, Phase.generate] if LONG else list(Phase))  # no slow shrinking when long

TINY = tiny_run_config(network={"kind": "mlp", "hidden": 8, "layers": 1},
                       train={"steps": 2, "batch_size": 8, "log_every": 1, "checkpoint_every": 1, "eval_samples": 8})

#: commands left out: none of them may reach the network in a test.
NETWORKED = {"data"}

#: each command's options (others get the generic names); prefixes are command words before the items.
OPTIONS = {
    "run": ["plugin", "name", "out", "resume", "seed", "train.steps", "train.lr", "train.grad_clip",
            "train.batch_size", "train.device", "train.precision", "train.ema_decay", "network", "network.hidden",
            "network.kind", "process", "process.kind", "process.sigma", "sampler.kind", "sampler.steps", "data",
            "data.x0", "data.x1.source", "data.x0.dim", "launcher.kind", "launcher.nproc", "log", "train",
            "method", "eval.metrics"],
    "sample": ["run", "n", "input", "key", "out", "direction", "steps", "path", "seed", "split", "device",
               "sampler.kind", "sampler.steps", "eval.output", "resolution"],
    "eval": ["run", "n", "split", "metrics", "seed", "steps", "device", "sampler.kind", "eval.output"],
    "report": ["run", "out"],
    "stats": ["source", "out", "extractor", "split", "n", "seed", "weights", "batch_size", "data"],
    "status": ["run"],
    "export": ["run", "out"],
    "plugins": [],
    "config": ["plugin", "network.hidden", "train.steps"],
    "shards": ["data.source", "data.name", "data.dim", "out", "maxcount", "block", "format", "shuffle", "seed",
               "count", "progress"],
    "translate": ["source", "target", "input", "key", "n", "steps", "sampler", "cycle", "seed", "device", "out"],
    "bench": ["plugin", "method", "dims", "seeds", "budgets", "n", "a", "out", "jobs", "config"],
    "import-weights": ["file", "out", "preset", "kind", "network", "network.hidden", "network.kind"],
}
PREFIX = {"shards": ["shards", "write"], "bench": ["bench", "gaussian"]}
GENERIC = ["run", "n", "out", "input", "steps", "seed", "source", "target"]

#: commands whose valid options start long jobs (a benchmark's training runs): every case carries an error.
ALWAYS_INVALID = {"bench", "stats"}

SCALARS = ["0", "-1", "-5", "1", "2", "3", "1e9", "99999999999999999999", "1.5", "-0.0", ".nan", ".inf", "-.inf",
           "nan", "inf", "true", "false", "yes", "null", "none", "~", "", " ", "abc", "x" * 300, "[1,2]", "[]",
           "{}", "{a: 1}", "[1", "{", "'", '"', "&a [*a]", "*x", "!!python/object:os.system", "%", "%06d",
           "{pipe:touch PWNED,x.tar}", "pipe:touch PWNED", "../..", "/", "/etc/passwd", "é\u0000", "auto", "cpu",
           "cuda:7", "forward", "backward", "all", "test", "train", "mlp", "brownian", "spectral", "euler_maruyama",
           "toy2d", "gaussian", "moons", "slurm", "torchrun", "bm", "dsbm", "imf,xyz", "5,0"]


def _digest(folder: Path) -> dict[str, str]:
    """Path -> sha256 (or "dir"/"link") of everything under `folder`."""
    out = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            out[key] = "link:" + os.readlink(path)
        elif path.is_dir():
            out[key] = "dir"
        else:
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module", autouse=True)
def _quick_pictures():
    """Pictures are written as placeholder bytes: matplotlib's layout is 90% of a short run's time and
    none of its input is generated here; every other write is the real one."""
    from sbcore.io import files, plots

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plots, "_save_figure", lambda path, fig: files.atomic_write(
            path, lambda tmp: Path(tmp).write_bytes(b"picture")))
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-base")
    write_tiny_config(root, **TINY, out=str(root / "out"))
    assert main(["run", str(root / "tiny.yaml")]) == 0
    return root


def _commands() -> list[str]:
    sub = next(a for a in build_parser(get_plugins())._actions if a.dest == "command")
    return sorted(set(sub.choices) - NETWORKED)


@st.composite
def _value(draw, paths: dict[str, str]) -> str:
    return draw(st.one_of(st.sampled_from(SCALARS), st.sampled_from(sorted(paths.values())),
                          st.integers(-10, 40).map(str), st.text(max_size=12)))


PARTS = ["config.yaml", "metrics.jsonl", "events.jsonl", "launch.json", ".lock", "checkpoints", "checkpoints/newest",
         "distributed.json"]
DAMAGES = ["truncate", "garbage", "json", "yaml", "dir", "file", "empty", "delete"]


#: options that make each command succeed quickly on the trained run; a case starts from them (half of
#: the cases) and replaces or adds generated items, so damaged folders reach the code past validation.
VALID = {
    "run": ["@ROOT/tiny.yaml"], "sample": ["run=@RUN", "n=2", "out=@OUT/s.npz"], "eval": ["run=@RUN", "n=4"],
    "report": ["run=@RUN"], "status": ["run=@RUN"], "export": ["run=@RUN"], "config": ["plugin=bm"],
    "translate": ["source=@RUN", "target=@RUN", "n=2", "cycle=false", "out=@OUT/translation"],
    "shards": ["data.source=toy2d", "out=@OUT/sh-%06d.tar", "count=8", "progress=false"],
}


@st.composite
def _case(draw, command: str):
    """(items, damage): the command's key=value items and the run-folder files to damage first."""
    names = OPTIONS.get(command, GENERIC)
    keys = draw(st.lists(st.one_of(st.sampled_from(names or ["x"]), st.sampled_from(GENERIC),
                                   st.text(alphabet="abcdefgh._", min_size=1, max_size=8)), max_size=4))
    damage = draw(st.lists(st.tuples(st.sampled_from(PARTS), st.sampled_from(DAMAGES)), max_size=2))
    values = [draw(_value(_PATHS)) for _ in keys]
    base = VALID.get(command, []) if draw(st.booleans()) and command not in ALWAYS_INVALID else []
    stray = [draw(st.sampled_from(["x", "--", "-n", "a b", "=", "=x", "run"]))] if draw(st.integers(0, 5)) == 0 else []
    return keys, values, damage, base, stray


#: the paths values may name, relative to the case's scratch root (filled in per case).
_PATHS = {"run": "@RUN", "out": "@OUT", "file": "@RUN/config.yaml", "ckpt": "@RUN/checkpoints", "missing": "@MISSING",
          "npz": "@OUT/samples.npz", "csv": "@OUT/m.csv", "yaml": "@ROOT/tiny.yaml", "outside": "@ROOT/elsewhere",
          "weights": "@RUN/checkpoints/step_00000002.safetensors", "new_weights": "@OUT/w.safetensors"}


def _damage(run_dir: Path, what: str, how: str) -> None:
    path = run_dir / what
    if what == "checkpoints/newest":
        folder = run_dir / "checkpoints"
        found = sorted(folder.glob("step_*.safetensors")) if folder.is_dir() else []
        if not found:
            return
        path = found[-1]
    with contextlib.suppress(OSError):
        if how == "delete":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        elif how == "dir":
            if path.is_file():
                path.unlink()
            path.mkdir(exist_ok=True)
        elif path.is_dir():
            shutil.rmtree(path)
            path.write_text("now a file\n")
        elif how == "truncate" and path.is_file():
            path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
        else:
            text = {"garbage": "\x00\xff{[\n", "json": '[1, {"step": "x"}]\n{"event": 3}\n', "yaml": "a: &a [*a]\n",
                    "file": "x\n", "empty": "", "truncate": '{"step": 1'}[how]
            path.write_bytes(text.encode("utf-8", "surrogateescape"))


def _expand(text: str, root: Path) -> str:
    return (text.replace("@RUN", str(root / "out" / "tiny")).replace("@OUT", str(root / "out"))
            .replace("@MISSING", str(root / "missing")).replace("@ROOT", str(root)))


def _check(command: str, trained: Path, case) -> int:
    keys, values, damage, base, stray = case
    with tempfile.TemporaryDirectory(prefix="fuzz-") as scratch:
        root = Path(scratch)
        shutil.copytree(trained, root, dirs_exist_ok=True, symlinks=True)
        write_tiny_config(root, **TINY, out=str(root / "out"))
        run_dir = root / "out" / "tiny"
        for what, how in damage:
            _damage(run_dir, what, how)
        generated = {k: _expand(v, root) for k, v in zip(keys, values, strict=True)}
        items = [_expand(item, root) for item in base if item.split("=", 1)[0] not in generated]
        items += [f"{k}={v}" for k, v in generated.items()]
        if command == "run":
            items += ["train.threads=1"]
        if command in ALWAYS_INVALID:
            items.append("n=-1")
        items += stray
        args = [*PREFIX.get(command, [command]), *items]
        before, outside = _digest(run_dir) if run_dir.exists() else None, _digest(root)
        cwd = Path.cwd()
        os.chdir(root / "out")  # relative outputs land inside out
        try:
            code, _, err = run_cli(args)
        finally:
            os.chdir(cwd)
        assert code in (0, 1, 2), (args, code, err)
        assert "Traceback" not in err, (args, err)
        assert not (root / "PWNED").exists() and not (root / "out" / "PWNED").exists(), args
        if code != 0:
            after = _digest(run_dir) if run_dir.exists() else None
            assert after == before, (args, err)
            now = _digest(root)
            assert {k: v for k, v in now.items() if not k.startswith("out")} == \
                   {k: v for k, v in outside.items() if not k.startswith("out")}, (args, err)
        return code


@pytest.mark.parametrize("command", _commands())
def test_fuzz_command(command, trained):
    exits: dict[int, int] = {}

    @FUZZ
    @given(case=_case(command))
    def check(case):
        code = _check(command, trained, case)
        exits[code] = exits.get(code, 0) + 1

    check()
    if report := os.environ.get("SBCORE_FUZZ_REPORT"):  # the long run's count of cases and exit statuses
        with open(report, "a") as f:
            f.write(json.dumps({"command": command, "cases": sum(exits.values()), "exits": exits}) + "\n")
