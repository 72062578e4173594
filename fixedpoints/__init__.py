"""fixedpoints: fixed points, slow points and ghosts of ONE dynamical system at ONE input.

Math only: no file I/O beyond saving results, no plotting. Import what you need from here::

    from fixedpoints import from_module, sample_initial_states, find_fixed_points
"""
from .dynamics import ContinuousDynamics, DiscreteDynamics, Dynamics
from .results import FinderStatus, FixedPoints, SlowRegion, KINDS
from .speed import speed, velocity
from .adapters import from_module
from .initial import sample_initial_states, state_spread, subspace_seeds
from .linearize import jacobian, linearize, classify
from .unique import deduplicate
from .finder import FinderOptions, FixedPointError, find_fixed_points, uses_latent_minima
from .ghosts import GHOST_KINDS, GhostOptions, Ghosts, detect_ghosts
from .lowrank import LowRankForm, ReducedSolution, low_rank_form, solve_reduced
from .certify import certify_points, exclusion_radius
from .cycles import (CycleOptions, LimitCycle, LimitCycles, find_limit_cycles, refine_flow_cycle,
                     refine_map_cycle)
from .continuation import (Bifurcation, Branch, Continuation, ContinuationOptions,
                           continue_fixed_points, parse_input_path)
from .plrnn import (PLRNNCycles, PLRNNFixedPoints, PLRNNForm, plrnn_cycles, plrnn_fixed_points,
                    plrnn_form)
from .ghost_certificates import certify_ghosts
from . import intervals, systems

__all__ = [
    "Dynamics", "DiscreteDynamics", "ContinuousDynamics",
    "FixedPoints", "SlowRegion", "FinderStatus", "KINDS",
    "speed", "velocity", "from_module", "sample_initial_states", "state_spread", "subspace_seeds",
    "jacobian", "linearize", "classify", "deduplicate",
    "FinderOptions", "FixedPointError", "find_fixed_points", "uses_latent_minima",
    "Ghosts", "GhostOptions", "GHOST_KINDS", "detect_ghosts", "systems",
    "LowRankForm", "ReducedSolution", "low_rank_form", "solve_reduced",
    "certify_points", "exclusion_radius", "certify_ghosts", "intervals",
    "PLRNNForm", "PLRNNFixedPoints", "PLRNNCycles", "plrnn_fixed_points", "plrnn_cycles",
    "plrnn_form", "CycleOptions", "LimitCycle", "LimitCycles", "find_limit_cycles",
    "refine_map_cycle", "refine_flow_cycle", "Bifurcation", "Branch", "Continuation",
    "ContinuationOptions", "continue_fixed_points", "parse_input_path",
]
