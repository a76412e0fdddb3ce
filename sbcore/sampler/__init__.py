"""Samplers integrate a network seen through a process (`Predictor`) and count network evaluations (NFE)."""

from sbcore.sampler.base import Callback, Estimate, FixedGridSampler, Predictor, Sampler, Trajectory, drift_model
from sbcore.sampler.grids import space_indices, time_grid
from sbcore.sampler.integrators import EulerMaruyama, EulerODE, HeunODE

__all__ = ["Callback", "Estimate", "EulerMaruyama", "EulerODE", "FixedGridSampler", "HeunODE", "Predictor",
           "Sampler", "Trajectory", "drift_model", "space_indices", "time_grid"]
