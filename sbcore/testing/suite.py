"""What every conformance suite shares: finding the component, naming its checks, failing clearly.

A suite is a class whose ``check_*`` methods each test one property of one registered component
(the diffusers idea of one common test suite per interface). `conformance` turns a suite into a
pytest test parametrised over its checks, so a plugin's test file needs one line per component;
`Suite.verify()` runs every check without pytest (``import sbcore.testing`` never needs it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor

from sbcore.plugins import get_plugins
from sbcore.registry import Registry


class ConformanceError(AssertionError):
    """A component broke its interface's contract; the message names the component and the check."""


class Suite:
    """Checks for one component of a registry kind, given by its registered name or its class.

    params: constructor arguments (the component's own defaults fill the rest).
    registry: where a name is looked up (default: the installed plugins' registry).
    """

    kind: ClassVar[str]
    base: ClassVar[type]

    def __init__(self, component: str | type, params: dict[str, Any] | None = None, *,
                 registry: Registry | None = None) -> None:
        if isinstance(component, str):
            self.name, self.cls = component, _lookup(self.kind, component, registry)
        else:
            self.name, self.cls = component.__name__, component
        self.params = dict(params or {})
        #: the check being run, named in failure messages.
        self.current = "build"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, params={self.params})"

    @classmethod
    def checks(cls) -> list[str]:
        """The names of the checks, in the order they are defined (`check_NAME` -> NAME)."""
        names = [name for klass in reversed(cls.__mro__) for name in vars(klass) if name.startswith("check_")]
        return list(dict.fromkeys(name.removeprefix("check_") for name in names))

    def verify(self) -> None:
        """Run every check; the first failure raises `ConformanceError` (no pytest needed)."""
        for check in self.checks():
            self.run(check)

    def run(self, check: str) -> None:
        if check not in self.checks():
            raise ValueError(f"unknown {self.kind} check {check!r}; available: {', '.join(self.checks())}")
        self.current = check
        getattr(self, f"check_{check}")()

    # ---- helpers for the checks --------------------------------------------------------------

    def error(self, message: str) -> ConformanceError:
        return ConformanceError(f"{self.kind} {self.name!r}, check {self.current}: {message}")

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            raise self.error(message)

    def construct(self, **runtime: Any) -> Any:
        """cls(**runtime, **params) under a clear error; a component with no test parameters must build
        from its defaults, else the error names where its test parameters go."""
        try:
            component = self.cls(**runtime, **self.params)
        except Exception as exc:
            origin = f"the parameters {self.params}" if self.params else "its constructor defaults"
            extra = f" and {runtime}" if runtime else ""
            raise self.unbuildable(f"with {origin}{extra}: {type(exc).__name__}: {exc}") from exc
        self.expect(isinstance(component, self.base),
                    f"{type(component).__name__} is not a {self.base.__name__}")
        return component

    def unbuildable(self, why: str) -> ConformanceError:
        return self.error(
            f"{self.cls.__qualname__} cannot be built {why} - give it test parameters "
            f"({self.kind}_conformance({self.name!r}, params=...) in a plugin's tests, the "
            f"{self.kind.upper()}S table of the core's tests/test_conformance.py)"
        )

    def close(self, actual: Tensor, expected: Tensor, what: str, *, rtol: float = 1e-9, atol: float = 0.0) -> None:
        """actual == expected within atol + rtol * max|expected| (shapes must match exactly)."""
        if actual.shape != expected.shape:
            raise self.error(f"{what}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}")
        error = float((actual - expected).abs().max()) if actual.numel() else 0.0
        bound = atol + rtol * float(expected.abs().max()) if expected.numel() else atol
        if not error <= bound:  # also catches NaN
            raise self.error(f"{what}: max error {error:.3g} exceeds {bound:.3g}")


def _lookup(kind: str, name: str, registry: Registry | None) -> type:
    """The registered component; when it is missing and a plugin failed to load, that plugin's own
    exception is raised (chained), so a test run shows why rather than "unknown component"."""
    if registry is not None:
        return registry.get(kind, name)
    plugins = get_plugins()
    try:
        return plugins.registry.get(kind, name)
    except KeyError as missing:
        broken = {n: i for n, i in plugins.infos.items() if i.error}
        if not broken:
            raise
        cause = next((i.exception for i in broken.values() if i.exception is not None), None)
        failures = "; ".join(f"{n}: {i.error}" for n, i in broken.items())
        raise ConformanceError(f"{missing}; plugins that failed to load: {failures}") from cause


def json_round_trip(value: Any) -> Any:
    return json.loads(json.dumps(value))


def conformance(suite: Suite) -> Callable[[str], None]:
    """A pytest test running every check of `suite` as its own parametrised case."""
    import pytest

    @pytest.mark.parametrize("check", suite.checks())
    def test(check: str) -> None:
        suite.run(check)

    test.__name__ = f"test_{suite.kind}_{suite.name}_conformance"
    test.__doc__ = f"{suite!r} passes the {suite.kind} conformance suite."
    return test
