"""Dynamics of compiled recurrent networks: stability, truncation, Lyapunov exponents, pruning."""

from topowire.dynamics.lyapunov import lyapunov_spectrum, max_lyapunov
from topowire.dynamics.truncation import last_inputs, truncated_forward, unroll
from topowire.train.stability import project_stable, spectral_norms

__all__ = ["lyapunov_spectrum", "max_lyapunov", "project_stable", "spectral_norms", "last_inputs",
           "truncated_forward", "unroll"]
