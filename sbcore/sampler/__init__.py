"""Samplers integrate a learned SDE or ODE and count network evaluations (NFE)."""

from sbcore.sampler.base import Drift, Sampler, Trajectory
from sbcore.sampler.integrators import EulerMaruyama, EulerODE, HeunODE

__all__ = ["Drift", "EulerMaruyama", "EulerODE", "HeunODE", "Sampler", "Trajectory"]
