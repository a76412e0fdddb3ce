"""The `Network` conformance suite: forward(x, t, **cond) -> a tensor like x, rebuilt from its hparams."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import torch
from torch import Tensor

from sbcore.network.base import Network, build_network
from sbcore.registry import Registry
from sbcore.testing.suite import Suite, conformance, json_round_trip

#: data shapes tried when none are given: a vector and a small one-channel image.
DEFAULT_SHAPES: tuple[tuple[int, ...], ...] = ((3,), (1, 8, 8))


def randomise(net: Network, seed: int = 0, scale: float = 0.1) -> Network:
    """Add seeded noise to every parameter, so zero-initialised output layers (UNet) pass t and
    gradients through."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p))
    return net


class NetworkSuite(Suite):
    """A network is built as cls(shape=shape, **params) and maps (B, *shape) to (B, *shape).

    shapes: data shapes it must support (default: those of `DEFAULT_SHAPES` it can be built for).
    cond_shape: None if the network takes no conditioning (then any keyword input must raise
        TypeError, never be ignored); else the shape of the ``cond=`` tensor it accepts, which must
        change its output.
    inert: constructor arguments that change neither the architecture nor the output in this test case
        (name -> why), added to the class's own `Network.inert_arguments` (e.g. a memory-saving switch);
        every other argument must change one of them.
    """

    kind = "network"
    base = Network

    def __init__(self, component: str | type, params: dict[str, Any] | None = None, *,
                 shapes: list[tuple[int, ...]] | None = None, cond_shape: tuple[int, ...] | None = None,
                 batch: int = 4, inert: dict[str, str] | None = None, registry: Registry | None = None) -> None:
        super().__init__(component, params, registry=registry)
        self.inert = {**getattr(self.cls, "inert_arguments", {}), **(inert or {})}
        self.given_shapes = [tuple(s) for s in shapes] if shapes is not None else None
        self.cond_shape = tuple(cond_shape) if cond_shape is not None else None
        self.batch = batch

    def shapes(self) -> list[tuple[int, ...]]:
        if self.given_shapes is not None:
            return self.given_shapes
        built, errors = [], []
        for shape in DEFAULT_SHAPES:
            try:
                self.cls(shape=shape, **self.params)
            except Exception as exc:  # reported below when no shape builds
                errors.append(f"{shape}: {type(exc).__name__}: {exc}")
                continue
            built.append(shape)
        if not built:
            origin = f"the parameters {self.params}" if self.params else "its constructor defaults"
            raise self.unbuildable(f"with {origin} for any default shape ({'; '.join(errors)})")
        return built

    def build(self, shape: tuple[int, ...], seed: int = 0) -> Network:
        torch.manual_seed(seed)
        return self.construct(shape=shape)

    def inputs(self, shape: tuple[int, ...], seed: int = 1, **like: Any) -> tuple[Tensor, Tensor]:
        """x of shape (B, *shape) and t spread over [0, 1], both ends included."""
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(self.batch, *shape, generator=g, dtype=torch.float64)
        t = torch.linspace(0, 1, self.batch, dtype=torch.float64)
        return x.to(**like), t.to(**like)

    def cond(self, x: Tensor, seed: int) -> dict[str, Tensor]:
        if self.cond_shape is None:
            return {}
        g = torch.Generator().manual_seed(seed)
        return {"cond": torch.randn(x.shape[0], *self.cond_shape, generator=g, dtype=torch.float64).to(x)}

    def output(self, net: Network, x: Tensor, t: Tensor, seed: int = 2) -> Tensor:
        return net(x, t, **self.cond(x, seed))

    # ---- checks ------------------------------------------------------------------------------

    def check_build(self) -> None:
        """Builds for every shape; hparams are the constructor arguments, JSON-serialisable."""
        for shape in self.shapes():
            net = self.build(shape)
            hparams = net.hparams
            self.expect(set(self.params) <= set(hparams), f"hparams {sorted(hparams)} miss {sorted(self.params)}")
            try:
                json_round_trip(hparams)
            except TypeError as exc:
                self.expect(False, f"hparams must be JSON-serialisable, got {hparams}: {exc}")

    def check_output_shape(self) -> None:
        for shape in self.shapes():
            net = self.build(shape)
            x, t = self.inputs(shape)
            out = self.output(net, x.float(), t.float())
            self.expect(isinstance(out, Tensor) and out.shape == x.shape,
                        f"output shape {tuple(getattr(out, 'shape', ()))} != input shape {tuple(x.shape)}")
            self.expect(bool(torch.isfinite(out).all()), "output is not finite for t in [0, 1]")

    def check_dtype_and_device(self) -> None:
        """The output follows the input's dtype (float32, float64) and device (CPU, CUDA if present)."""
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        shape = self.shapes()[0]
        for device in devices:
            for dtype in (torch.float32, torch.float64):
                net = self.build(shape).to(device=device, dtype=dtype)
                x, t = self.inputs(shape, device=device, dtype=dtype)
                out = self.output(net, x, t)
                self.expect(out.dtype == dtype and out.device.type == device,
                            f"input {dtype} on {device} gave output {out.dtype} on {out.device}")

    def check_seeded_construction(self) -> None:
        """The same seed builds the same weights and (train mode, e.g. dropout) the same output."""
        shape = self.shapes()[0]
        a, b = self.build(shape, seed=3), self.build(shape, seed=3)
        for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            self.expect(torch.equal(pa, pb), f"two builds under seed 3 differ in {name}")
        other = self.build(shape, seed=4).state_dict()
        self.expect(any(not torch.equal(v, other[k]) for k, v in a.state_dict().items()),
                    "builds under seeds 3 and 4 are identical: the initialisation ignores the seed")
        x, t = self.inputs(shape)
        outputs = []
        for net in (a, b):
            torch.manual_seed(5)
            outputs.append(self.output(net.train(), x.float(), t.float()))
        self.expect(torch.equal(*outputs), "train-mode outputs differ under the same seed")

    def check_time_dependence(self) -> None:
        """The output changes with t (a network that ignores t cannot learn a time-dependent drift)."""
        for shape in self.shapes():
            net = randomise(self.build(shape)).eval()
            x, _ = self.inputs(shape)
            x = x.float()
            with torch.no_grad():
                a = self.output(net, x, torch.full((x.shape[0],), 0.2))
                b = self.output(net, x, torch.full((x.shape[0],), 0.7))
            change, size = float((a - b).abs().max()), float(a.abs().max())
            self.expect(change > 1e-4 * size and size > 0,
                        f"output at t=0.2 and t=0.7 differ by {change:.3g} (output size {size:.3g}): t is ignored")

    def check_scalar_time(self) -> None:
        """A 0-d t is broadcast over the batch; a t of the wrong length raises ValueError."""
        shape = self.shapes()[0]
        net = randomise(self.build(shape)).eval()
        x, _ = self.inputs(shape)
        x = x.float()
        with torch.no_grad():
            scalar = self.output(net, x, torch.tensor(0.3))
            full = self.output(net, x, torch.full((x.shape[0],), 0.3))
        self.close(scalar, full, "output for t = 0-d 0.3 vs t = (B,) 0.3", rtol=1e-6)
        try:
            self.output(net, x, torch.rand(x.shape[0] + 1))
        except ValueError:
            return
        except Exception as exc:  # the wrong kind of error is the finding
            self.expect(False, f"t of length B+1 must raise ValueError, raised {type(exc).__name__}: {exc}")
        self.expect(False, f"t of length {x.shape[0] + 1} for a batch of {x.shape[0]} was accepted")

    def check_batch_independence(self) -> None:
        """In eval mode a sample's output depends only on its own (x, t) (no batch statistics)."""
        shape = self.shapes()[0]
        net = randomise(self.build(shape)).eval()
        x, t = self.inputs(shape)
        y, s = self.inputs(shape, seed=7)
        x, t, y, s = x.float(), t.float(), y.float(), s.flip(0).float()
        cond = self.cond(x, seed=2)
        mixed_x, mixed_t = torch.cat([x[:1], y[1:]]), torch.cat([t[:1], s[1:]])
        with torch.no_grad():
            full = net(x, t, **cond)
            mixed = net(mixed_x, mixed_t, **cond)
            alone = net(x[:1], t[:1], **{k: v[:1] for k, v in cond.items()})
        self.close(mixed[0], full[0], "row 0 with other rows changed", rtol=1e-5)
        self.close(alone[0], full[0], "row 0 alone vs in a batch", rtol=1e-5)

    def check_rebuild_from_hparams(self) -> None:
        """build_network(cls, hparams through JSON) gives the same architecture and, loaded, the same output."""
        for shape in self.shapes():
            net = randomise(self.build(shape)).eval()
            rebuilt = build_network(self.cls, json_round_trip(net.hparams)).eval()
            got = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
            want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
            self.expect(got == want, f"rebuilt from hparams {net.hparams} the state_dict differs: "
                        f"{sorted(set(got.items()) ^ set(want.items()))[:4]}")
            rebuilt.load_state_dict(net.state_dict())
            x, t = self.inputs(shape)
            with torch.no_grad():
                self.close(self.output(rebuilt, x.float(), t.float()), self.output(net, x.float(), t.float()),
                           "output of the rebuilt network", rtol=0)

    def check_gradients(self) -> None:
        """A loss on the output reaches every parameter."""
        for shape in self.shapes():
            net = randomise(self.build(shape)).train()
            x, t = self.inputs(shape)
            self.output(net, x.float(), t.float()).square().mean().backward()
            missing = [n for n, p in net.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
            self.expect(not missing, f"no gradient reaches {missing}")

    def check_arguments_are_used(self) -> None:
        """Each constructor argument with a default changes the parameters' shapes, the eval-mode output or
        the seeded train-mode output when given another value (bool flipped, a number doubled or moved,
        another Literal choice); an argument silently ignored would be recorded in hparams and mean nothing.
        Arguments no other value can be found for (strings, lists, None defaults) are not tried."""
        shape = self.shapes()[0]
        base = self._fingerprint(shape, self.params)
        ignored = []
        for name, values in self._alternatives().items():
            if name in self.inert:
                continue
            for value in values:
                try:
                    other = self._fingerprint(shape, {**self.params, name: value})
                except Exception:  # noqa: BLE001, S112 - this value is refused: try the next one
                    continue
                if other != base:
                    break
                ignored.append(f"{name}={value!r}")
                break
        self.expect(not ignored, f"changing {', '.join(ignored)} changes neither the parameter shapes nor the "
                                 "output: use the argument, or list it in inert= with the reason")

    def _alternatives(self) -> dict[str, list[Any]]:
        """Argument -> other values to try, from its annotation and its current value."""
        hints = typing.get_type_hints(inspect.unwrap(self.cls.__init__))
        out: dict[str, list[Any]] = {}
        for name, param in inspect.signature(inspect.unwrap(self.cls.__init__)).parameters.items():
            if name in ("self", "shape") or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            current = self.params.get(name, param.default)
            kind = hints.get(name)
            if typing.get_origin(kind) is typing.Literal:
                out[name] = [c for c in typing.get_args(kind) if c != current][:2]
            elif isinstance(current, bool):
                out[name] = [not current]
            elif isinstance(current, int):
                out[name] = [current * 2 if current else 1, current + 1]
            elif isinstance(current, float):
                out[name] = [current * 2 if current else 0.5, current / 2 if current else 0.25]
        return out

    def _fingerprint(self, shape: tuple[int, ...], params: dict[str, Any]) -> tuple[Any, ...]:
        """(parameter shapes, eval output, seeded train-mode output) of a network built with `params`."""
        torch.manual_seed(0)
        net = randomise(self.cls(shape=shape, **params))
        x, t = self.inputs(shape)
        x, t = x.float(), t.float()
        with torch.no_grad():
            evaluated = self.output(net.eval(), x, t)
            torch.manual_seed(1)
            trained = self.output(net.train(), x, t)
        shapes = tuple((k, tuple(v.shape)) for k, v in net.state_dict().items())
        return shapes, evaluated.numpy().tobytes(), trained.numpy().tobytes()

    def check_conditioning(self) -> None:
        """Conditioning is used when declared (cond_shape) and rejected with TypeError otherwise."""
        shape = self.shapes()[0]
        net = randomise(self.build(shape)).eval()
        x, t = self.inputs(shape)
        x, t = x.float(), t.float()
        unknown = {"y": x} if self.cond_shape is not None else {"cond": x, "y": x}
        for key, value in unknown.items():
            try:
                net(x, t, **self.cond(x, 2), **{key: value})
            except TypeError:
                continue
            self.expect(False, f"the keyword input {key}= was accepted and ignored; raise TypeError")
        if self.cond_shape is not None:
            with torch.no_grad():
                a, b = net(x, t, **self.cond(x, 2)), net(x, t, **self.cond(x, 3))
            self.expect(not torch.allclose(a, b), "the output does not depend on cond")


def network_conformance(component: str | type, params: dict[str, Any] | None = None, **options: Any):
    """A pytest test running the network suite: ``test_net = network_conformance("mlp", {"hidden": 8})``."""
    return conformance(NetworkSuite(component, params, **options))
