"""Run configuration: attrs classes structured by cattrs from YAML plus ``key.sub=value`` overrides.

One YAML file holds a run. Its top-level sections are ``plugin``, ``name``, ``seed``, ``out``,
``resume``, ``data``, ``method``, ``process``, ``network``, ``train``, ``sampler``, ``log``,
``launcher`` and ``eval``. The ``process:`` section alone owns the reference's parameters (sigma,
beta(t), a spectrum); methods and evaluation ask the process.
The ``method:`` section is the attrs ``Config`` class of the method named by ``plugin``; component
sections (``network``, ``sampler``, data sources, couplings) name a registered component by
``kind`` (``source`` for data) and are validated against that component's constructor signature.
Every error is collected before any work starts and names the key path, what was expected and
what was given, with the closest valid key for typos. The YAML text and the overrides that make the raw
mapping are `sbcore.config_text`.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import types
import typing
from typing import Any, Literal

import attrs
import cattrs
from attrs import validators as v
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.v import format_exception

from sbcore.config_text import ConfigError, shorten
from sbcore.errors import PluginFailure, SbcoreError
from sbcore.registry import Registry

# ------------------------------------------------------------------------------------------------
# Components chosen by name
# ------------------------------------------------------------------------------------------------


@attrs.frozen
class Component:
    """A registered component chosen by name, with validated constructor parameters.

    Subclasses say which registry kind they draw from and which key names the component.
    """

    registry_kind: typing.ClassVar[str] = "network"
    tag: typing.ClassVar[str] = "kind"

    kind: str
    params: dict[str, Any] = attrs.field(factory=dict)

    def build(self, registry: Registry, **runtime: Any) -> Any:
        """The component, constructed. A third-party constructor that fails other than with ValueError
        (its way to refuse parameters) is a `PluginFailure` naming the plugin, never a traceback."""
        factory = registry.get(self.registry_kind, self.kind)
        try:
            return factory(**runtime, **self.params)
        except (SbcoreError, ConfigError, ValueError, OSError):
            raise
        except Exception as exc:
            if getattr(factory, "__module__", "").partition(".")[0] == "sbcore":
                raise  # the core's own bug keeps its traceback
            owner = registry.owner(self.registry_kind, self.kind) or getattr(factory, "__module__", "?")
            raise PluginFailure(f"plugin {owner!r}: {self.registry_kind} {self.kind!r} failed to build "
                                f"({type(exc).__name__}: {shorten(str(exc))})") from exc


@attrs.frozen
class NetworkSpec(Component):
    registry_kind = "network"


@attrs.frozen
class SamplerSpec(Component):
    registry_kind = "sampler"


@attrs.frozen
class CouplingSpec(Component):
    registry_kind = "coupling"


@attrs.frozen
class ProcessSpec(Component):
    registry_kind = "process"


@attrs.frozen
class MetricSpec(Component):
    """One metric of ``eval.metrics``: a name, or ``{kind: NAME, ...constructor params}``."""

    registry_kind = "metric"


@attrs.frozen
class LatentSpec(Component):
    """``data.latent``: ``{kind: NAME, ...constructor params}`` of a latent codec (`sbcore.data.latent`)."""

    registry_kind = "latent"


@attrs.frozen
class DataSource(Component):
    """A data source section: ``{source: NAME, ...constructor params}``."""

    registry_kind = "dataset"
    tag = "source"


#: constructor arguments filled in at run time, never from YAML.
RUNTIME_ARGS = frozenset({"self", "shape", "generator"})


def passes_through(component: type) -> bool:
    """Whether the constructor takes ``**kwargs`` (keys handed on to a wrapped library's constructor)."""
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(component.__init__).parameters.values())


@functools.cache
def schema_for(component: type) -> type:
    """An attrs class mirroring `component`'s keyword constructor parameters (for validation)."""
    init = component.__init__
    hints = typing.get_type_hints(init)
    fields: dict[str, Any] = {}
    for name, param in inspect.signature(init).parameters.items():
        if name in RUNTIME_ARGS or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = attrs.NOTHING if param.default is param.empty else param.default
        fields[name] = attrs.field(type=hints.get(name, Any), default=default)
    return attrs.make_class(f"{component.__name__}Params", fields, frozen=True, kw_only=True)


# ------------------------------------------------------------------------------------------------
# Sections
# ------------------------------------------------------------------------------------------------


@attrs.frozen
class DataConfig:
    """Either two unpaired sides `x0` and `x1`, or one `pairs` source for paired data; `x0` alone for a
    method that makes x1 from it (I2SB's corruption operators). `latent`: train the bridge between the
    latent codes of both sides (`sbcore.data.latent`)."""

    x0: DataSource | None = None
    x1: DataSource | None = None
    pairs: DataSource | None = None
    latent: LatentSpec | None = None

    def __attrs_post_init__(self) -> None:
        if self.pairs is None and self.x0 is None:
            raise ValueError("give both data.x0 and data.x1, or data.pairs")
        if self.pairs is not None and (self.x0 is not None or self.x1 is not None):
            raise ValueError("give data.pairs or data.x0/data.x1, not both")


def _positive(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and not value > 0:  # NaN too
        raise ValueError(f"'{attribute.name}' must be > 0, got {value!r}")


#: optimisation steps of a run whose config and method leave `train.steps` open.
DEFAULT_STEPS = 1000


@attrs.frozen
class TrainConfig:
    """The `train:` section: the loop services of `sbcore.train.trainer.Trainer`.

    lr_schedule: the learning rate after warm-up, a closed form of the step (`sbcore.train.lr_schedule`):
        constant, cosine or linear (from lr down to min_lr at the span's end), or step (lr multiplied by
        lr_gamma every lr_step_size steps).
    lr_span: what one schedule (warm-up included) spans: the whole run, or each stage of an alternating
        method (DSBM, S-DSB, DBFS: every stage restarts warm-up and decay over its own length; for other
        methods the same as run).
    """

    #: the run's total number of optimisation steps, in every method. null: the method's schedule decides
    #: (alternating methods: their stages), else DEFAULT_STEPS; the run folder's config.yaml holds the number.
    steps: int | None = attrs.field(default=None, validator=_positive)
    batch_size: int = attrs.field(default=256, validator=_positive)
    lr: float = attrs.field(default=1.0e-3, validator=_positive)
    weight_decay: float = attrs.field(default=0.0, validator=v.ge(0.0))
    warmup_steps: int = attrs.field(default=0, validator=v.ge(0))
    lr_schedule: Literal["constant", "cosine", "linear", "step"] = "constant"
    lr_span: Literal["run", "stage"] = "run"
    min_lr: float = attrs.field(default=0.0, validator=v.ge(0.0))
    lr_gamma: float = attrs.field(default=0.1, validator=[v.gt(0.0), v.le(1.0)])
    lr_step_size: int = attrs.field(default=1000, validator=_positive)
    #: the largest gradient norm kept (> 0), or null for no clipping; 0 or less would reverse or zero the update.
    grad_clip: float | None = attrs.field(default=1.0, validator=v.optional(_positive))
    ema_decay: float = attrs.field(default=0.999, validator=[v.ge(0.0), v.lt(1.0)])
    grad_accum: int = attrs.field(default=1, validator=_positive)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: str = "auto"
    threads: int | None = None
    log_every: int = attrs.field(default=50, validator=_positive)
    eval_every: int = attrs.field(default=0, validator=v.ge(0))
    checkpoint_every: int = attrs.field(default=0, validator=v.ge(0))
    keep_checkpoints: int = attrs.field(default=3, validator=_positive)
    eval_samples: int = attrs.field(default=2000, validator=_positive)
    progress: bool = True
    #: a NaN/inf loss or gradient: ``stop`` the run (exit 1, no checkpoint of the bad step) or ``skip`` the step.
    nonfinite: Literal["stop", "skip"] = "stop"
    #: start from another run's networks (its folder or a checkpoint file; EMA weights), `sbcore.train.init_from`.
    init_from: str | None = None
    #: this run's network name -> the other run's (default: the same names).
    init_map: dict[str, str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.batch_size % self.grad_accum:
            raise ValueError(f"batch_size ({self.batch_size}) must be divisible by grad_accum ({self.grad_accum})")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")


@attrs.frozen
class NeptuneLogConfig:
    """neptune client logging. The hosted service is gone, so ``offline`` (files neptune's exporter
    can migrate, under the run folder's ``neptune/``) is the default; ``async`` falls back to
    offline when no token is set or the server cannot be reached. The token is read from
    ``NEPTUNE_API_TOKEN`` only and never stored."""

    enabled: bool = False
    project: str = "sbcore/runs"
    mode: Literal["offline", "async", "debug"] = "offline"
    tags: list[str] = attrs.field(factory=list)


@attrs.frozen
class TensorBoardLogConfig:
    """TensorBoard event files under the run folder's ``tensorboard/`` (``tensorboard --logdir``)."""

    enabled: bool = False


@attrs.frozen
class WandbLogConfig:
    """Weights & Biases logging, offline first: ``offline`` (the default) writes wandb's run files under the
    run folder's ``wandb/`` with no account (``wandb sync`` uploads them later); ``online`` needs
    ``WANDB_API_KEY`` in the environment and falls back to offline without it."""

    enabled: bool = False
    project: str = "sbcore"
    entity: str | None = None
    group: str | None = None
    mode: Literal["offline", "online", "disabled"] = "offline"
    tags: list[str] = attrs.field(factory=list)


@attrs.frozen
class LogConfig:
    console: bool = True
    jsonl: bool = True
    #: a logger or lifecycle hook that raises stops the run (true) or is reported and disabled (false).
    strict: bool = False
    neptune: NeptuneLogConfig = attrs.field(factory=NeptuneLogConfig)
    tensorboard: TensorBoardLogConfig = attrs.field(factory=TensorBoardLogConfig)
    wandb: WandbLogConfig = attrs.field(factory=WandbLogConfig)


@attrs.frozen
class LauncherConfig:
    """Where the run executes. ``local``: this process. ``torchrun``: `nproc` DDP workers on this
    machine. ``slurm``: a submitit job on a SLURM cluster (``nodes`` x ``tasks_per_node`` DDP
    ranks; one task per GPU when ``gpus_per_node`` is set). ``submitit-local``: the same job
    through submitit's local executor. ``array`` launches one run per listed seed."""

    kind: Literal["local", "torchrun", "slurm", "submitit-local"] = "local"
    nproc: int = attrs.field(default=1, validator=_positive)
    partition: str | None = None
    nodes: int = attrs.field(default=1, validator=_positive)
    gpus_per_node: int = attrs.field(default=0, validator=v.ge(0))
    cpus_per_task: int = attrs.field(default=1, validator=_positive)
    mem: str | None = None
    time: int = attrs.field(default=60, validator=_positive)
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array: list[int] = attrs.field(factory=list)
    folder: str = "slurm"


@attrs.frozen
class EvalDataConfig:
    """``eval.data``: the held-out sources evaluation draws from, in the schema of ``data``; a side left
    out is the training side's source with ``split: test`` (`sbcore.metrics.eval_data`)."""

    x0: DataSource | None = None
    x1: DataSource | None = None
    pairs: DataSource | None = None


@attrs.frozen
class EvalConfig:
    """What every evaluation (in-run and ``sbcore eval``/``sbcore sample``) computes and draws from.

    metrics: computed on EMA samples (``sbcore eval`` falls back to defaults chosen by data shape when
    empty). split: ``test`` draws the inputs from held-out data (``eval.data``, or each training source's
    test split), ``train`` from the training sources. output: ``final`` scores the sampler's last state,
    ``predicted_end`` the network's predicted end at the last step (as DBFS reports).
    """

    metrics: list[MetricSpec] = attrs.field(factory=list)
    split: Literal["train", "test"] = "test"
    data: EvalDataConfig = attrs.field(factory=EvalDataConfig)
    output: Literal["final", "predicted_end"] = "final"


def default_network() -> NetworkSpec:
    return NetworkSpec("mlp")


def default_process() -> ProcessSpec:
    return ProcessSpec("brownian", {"sigma": 1.0})


def default_sampler() -> SamplerSpec:
    return SamplerSpec("euler_maruyama", {"steps": 100})


@attrs.frozen
class Config:
    plugin: str
    method: Any
    data: DataConfig
    name: str = ""
    seed: int = 0
    out: str = "runs"
    #: continue from the newest checkpoint; ``force`` also accepts a changed network/method/process/data.
    resume: bool | Literal["force"] = False
    process: ProcessSpec = attrs.field(factory=default_process)
    network: NetworkSpec = attrs.field(factory=default_network)
    train: TrainConfig = attrs.field(factory=TrainConfig)
    sampler: SamplerSpec = attrs.field(factory=default_sampler)
    log: LogConfig = attrs.field(factory=LogConfig)
    launcher: LauncherConfig = attrs.field(factory=LauncherConfig)
    eval: EvalConfig = attrs.field(factory=EvalConfig)


# ------------------------------------------------------------------------------------------------
# Converter
# ------------------------------------------------------------------------------------------------

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}


def _type_name(t: Any) -> str:
    if t in _TYPE_NAMES:
        return _TYPE_NAMES[t]
    if t is type(None):
        return "null"
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(m) for m in typing.get_args(t))
    return getattr(t, "__name__", None) and str(t).replace("typing.", "") or str(t)


def _strict(kind: type) -> Any:
    def structure(value: Any, _: Any) -> Any:
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise TypeError(f"expected {_TYPE_NAMES[kind]}, got {type(value).__name__} {shorten(repr(value), 80)}")
        if kind is float and not math.isfinite(value):  # no setting means anything at inf or NaN
            raise ValueError(f"expected a finite number, got {value!r}")
        return value

    return structure


def make_converter(registry: Registry) -> cattrs.Converter:
    """A strict converter (no silent int('3') or True -> 1) that knows the registry's components."""
    conv = cattrs.Converter(forbid_extra_keys=True)
    for kind in (int, float, str, bool):
        conv.register_structure_hook(kind, _strict(kind))

    def structure_component(value: Any, cls: type[Component]) -> Component:
        if isinstance(value, str):
            value = {cls.tag: value}
        if not isinstance(value, dict):
            raise TypeError(f"expected a mapping with a {cls.tag!r} key, got {type(value).__name__} {value!r}")
        params = dict(value)
        if cls.tag not in params:
            raise ValueError(f"missing {cls.tag!r}; available: {', '.join(registry.names(cls.registry_kind))}")
        name = params.pop(cls.tag)
        try:
            component = registry.get(cls.registry_kind, name)
        except KeyError as exc:
            raise ValueError(str(exc)) from None
        schema = schema_for(component)
        named = {k: v for k, v in params.items() if k in attrs.fields_dict(schema) or not passes_through(component)}
        checked = conv.structure(named, schema)
        # keys of a component taking **kwargs (diffusers_unet's UNet2DModel keys) are checked when it is built
        return cls(name, {k: getattr(checked, k) if k in named else v for k, v in params.items()})

    def unstructure_component(c: Component) -> dict[str, Any]:
        return {c.tag: c.kind, **conv.unstructure(c.params)}

    def is_union(t: Any) -> bool:
        return typing.get_origin(t) in (typing.Union, types.UnionType)

    def structure_union(value: Any, t: Any) -> Any:
        """Try each member in order (strictly), e.g. `float | list[float]` or `int | None`."""
        members = typing.get_args(t)
        if value is None:
            if type(None) in members:
                return None
            raise TypeError(f"expected {_type_name(t)}, got None")
        present = [m for m in members if m is not type(None)]
        if len(present) == 1:  # `X | None`: X's own error says what is wrong (e.g. a misspelt key)
            return conv.structure(value, present[0])
        for member in present:
            try:
                return conv.structure(value, member)
            except Exception:  # noqa: BLE001, S112 - the next member may fit
                continue
        raise TypeError(f"expected {_type_name(t)}, got {type(value).__name__} {value!r}")

    def structure_section(value: Any, cls: type) -> Any:
        """An attrs section from a mapping only: ``train=[1, 2]`` says so instead of a cattrs internal error."""
        if not isinstance(value, dict):
            raise TypeError(f"expected a mapping of {cls.__name__} keys, got {type(value).__name__} "
                            f"{shorten(repr(value), 80)}")
        return section_hook(cls)(value, cls)

    section_hook = functools.cache(conv.gen_structure_attrs_fromdict)
    is_section = lambda t: attrs.has(t) and not (isinstance(t, type) and issubclass(t, Component))  # noqa: E731
    conv.register_structure_hook_func(is_section, structure_section)
    conv.register_structure_hook_func(is_union, structure_union)
    is_component = lambda t: isinstance(t, type) and issubclass(t, Component)  # noqa: E731
    conv.register_structure_hook_func(is_component, structure_component)
    conv.register_unstructure_hook_func(is_component, unstructure_component)
    return conv


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------


def _format(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        valid = [a.name for a in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        parts = []
        for key in sorted(exc.extra_fields):
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {', '.join(valid)})"
            parts.append(f"unknown key {key!r}{hint}")
        return "; ".join(parts)
    if isinstance(exc, KeyError):
        return "required key missing"
    if isinstance(exc, (TypeError, ValueError)):
        text = str(exc)
        if text.startswith("expected") or isinstance(exc, ValueError):
            return text
        return f"{format_exception(exc, type_)}: {text}"
    return format_exception(exc, type_)


def error_lines(exc: Exception, path: str) -> list[str]:
    """One ``message @ key.path`` line per problem in a cattrs structuring error."""
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        return cattrs.transform_error(exc, path=path, format_exception=_format)
    return [f"{_format(exc, None)} @ {path}"]


def structure_config(raw: dict[str, Any], registry: Registry) -> Config:
    """Validate a raw dict into a `Config`, collecting every error before raising."""
    conv = make_converter(registry)
    raw = dict(raw)
    plugin = raw.get("plugin")
    if not isinstance(plugin, str):
        raise ConfigError([f"required key missing @ config.plugin (available: {', '.join(registry.names('method'))})"])
    errors: list[str] = []
    try:
        raw["plugin"] = plugin = registry.method_name(plugin)  # the run folder's config names the method
    except KeyError as exc:
        raise ConfigError([f"{exc} @ config.plugin"]) from None
    trainer_cls = registry.get("method", plugin)
    method_cls = trainer_cls.Config
    method_raw = raw.pop("method", {}) or {}
    method = None
    if isinstance(method_raw, dict) and "sigma" in method_raw and "sigma" not in attrs.fields_dict(method_cls):
        errors.append(f"method.sigma moved to the process section: write process: {{kind: brownian, sigma: "
                      f"{method_raw.pop('sigma')}}} (or the override process.sigma=...) @ config.method.sigma")
    try:
        method = conv.structure(method_raw, method_cls)
    except Exception as exc:  # noqa: BLE001 - collected and reported with the others
        errors += error_lines(exc, "config.method")
    raw["method"] = None
    try:
        config = conv.structure(raw, Config)
    except Exception as exc:  # noqa: BLE001
        errors += error_lines(exc, "config")
        config = None
    if errors or config is None:
        raise ConfigError(errors)
    return trainer_cls.resolve_config(attrs.evolve(config, method=method))
