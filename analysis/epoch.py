"""One checkpoint, one analysis: fixed points, ghosts, topology, signature, loss.

:func:`analyze_checkpoint` is the per-epoch unit of work of :func:`analysis.analyze_series`.
It takes a model (``nn.Module``), a :class:`fixedpoints.Dynamics`, or a checkpoint file, finds
its fixed and slow points from initial states sampled on the model's own trajectories, detects
ghosts, builds the topology graph (where each saddle's unstable directions and each ghost's
outflow lead), and returns a frozen :class:`EpochAnalysis`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["EpochSettings", "EpochAnalysis", "analyze_checkpoint", "make_settings"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochSettings:
    """Settings of the per-checkpoint analysis (all have defaults that keep small models fast).

    Attributes
    ----------
    n_initial : int, default 256
        Number of initial states for the fixed-point search.
    n_steps : int, default 100
        Length of the trajectories the initial states are sampled from.
    noise : float, default 0.01
        Gaussian noise added to the sampled states, relative to their spread.
    seed : int, default 0
    input : tuple of float, optional
        Constant input at which fixed points are sought (zeros when omitted).
    drive : tuple, optional
        Task-like input sequence, shape (T, n_inputs) or (b, T, n_inputs) as nested tuples, used
        to drive the trajectories that initial states are sampled from. When omitted, models
        with inputs run autonomously (at ``input``) from random states plus noise.
    time : {"discrete", "continuous"}, optional
        Which form of a model that has both (default: the model's own ``time``).
    finder : dict
        Extra keyword options for :func:`fixedpoints.find_fixed_points`.
    ghosts : bool, default True
        Detect ghosts (needs :mod:`fixedpoints.ghosts`; skipped with a log message if absent).
    ghost_options : dict
        Extra keyword options for :func:`fixedpoints.ghosts.detect_ghosts`.
    topology : bool, default True
        Integrate along unstable directions to connect saddles and ghosts to attractors.
    topology_eps : float, default 1e-2
        Offset along each unstable eigenvector, relative to the state spread.
    topology_steps : int, default 2000
        Maximum number of steps (discrete) / integration steps (continuous) per trajectory.
    """

    n_initial: int = 256
    n_steps: int = 100
    noise: float = 0.01
    seed: int = 0
    input: Optional[Tuple[float, ...]] = None
    drive: Optional[tuple] = None
    time: Optional[str] = None
    finder: Dict[str, Any] = field(default_factory=dict)
    ghosts: bool = True
    ghost_options: Dict[str, Any] = field(default_factory=dict)
    topology: bool = True
    topology_eps: float = 1e-2
    topology_steps: int = 2000

    def __post_init__(self):
        raise NotImplementedError  # filled below in the real implementation

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dictionary of the settings."""
        raise NotImplementedError

    def hash(self) -> str:
        """A short stable hash of the settings (used to resume an output directory)."""
        raise NotImplementedError


def make_settings(settings: Optional[EpochSettings] = None, **options) -> EpochSettings:
    """Build :class:`EpochSettings` from keyword options; unknown names raise a ValueError."""
    raise NotImplementedError


@dataclass(frozen=True)
class EpochAnalysis:
    """The analysis of one checkpoint.

    Attributes
    ----------
    epoch : int
    fixed_points : fixedpoints.FixedPoints
        Fixed and slow points (``x (k, n)``, ``kind``, ``n_unstable``, ``eigvals`` ...).
    ghosts : fixedpoints.ghosts.Ghosts or None
        Ghosts found (None when ghost detection was off or unavailable).
    topology : analysis.topology.Topology
        Nodes (fixed points, ghosts, slow regions) and edges (where unstable directions and
        ghost outflows lead); ``.graph`` gives the networkx DiGraph.
    scale : float
        Spread of the states visited (RMS distance to their centroid); distances are relative
        to it.
    loss : float
        Training loss at this epoch (NaN when unknown).
    source : str
        The checkpoint file, or a description of the model.
    settings_hash : str
    seconds : float
        Wall time of the analysis.
    info : dict
    """

    epoch: int
    fixed_points: Any
    ghosts: Any
    topology: Any
    scale: float
    loss: float = math.nan
    source: str = ""
    settings_hash: str = ""
    seconds: float = 0.0
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def signature(self):
        """The topology's signature (counts by kind and index, number of attractors)."""
        return self.topology.signature()

    def save(self, path) -> Path:
        """Write ``<path>.json`` + ``<path>.npz`` (write then rename). Returns the stem."""
        raise NotImplementedError

    @classmethod
    def load(cls, path) -> "EpochAnalysis":
        """Read what :meth:`save` wrote."""
        raise NotImplementedError


def analyze_checkpoint(model, *, epoch: int = 0, loss: float = math.nan, settings=None,
                       device: str = "cpu", architecture: Optional[str] = None,
                       **options) -> EpochAnalysis:
    """Analyze one model: fixed points, ghosts, topology.

    Parameters
    ----------
    model : torch.nn.Module, fixedpoints.Dynamics, str or path
        A recurrent model (built-in ``checkpoints.models`` class, torch RNN/GRU/LSTM, or any
        module with ``step``/``velocity``), a Dynamics, or a checkpoint file readable by
        :mod:`checkpoints`.
    epoch : int, default 0
    loss : float, optional
    settings : EpochSettings, optional
    device : str, default "cpu"
    **options
        Fields of :class:`EpochSettings` (e.g. ``n_initial=512, input=(0, 0, 0)``).

    Returns
    -------
    EpochAnalysis
    """
    raise NotImplementedError
