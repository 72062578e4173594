"""analysis: across-checkpoint analysis, plots, reports, the Python API and the CLI.

Python API::

    from analysis import analyze_series, analyze_checkpoint
    result = analyze_series("runs/flipflop", jobs=2)
    result.events, result.drop_epoch
"""
from .epoch import EpochAnalysis, EpochSettings, analyze_checkpoint
from .api import FailedEpoch, SeriesAnalysis, analyze_series
from .events import EVENT_KINDS, EventOptions, RestructuringEvent, detect_events
from .topology import Signature, Topology, build_topology, same_topology
from .matching import Matching, Track, build_tracks, match_points, state_spread
from .localize import Localization, interpolate_modules, localize_event
from .learning import Drop, DropOptions, LossCurve, detect_drop, read_training_log
from .execution import run_tasks
from .projection import Projection, ProjectionFitter, latent_basis
from .report import PortraitOptions, write_report

__all__ = [
    # tracking API (analysis.api / analysis.epoch)
    "analyze_series", "analyze_checkpoint", "SeriesAnalysis", "EpochAnalysis", "EpochSettings",
    "FailedEpoch",
    # restructuring (analysis.events / .topology / .matching / .localize / .learning)
    "RestructuringEvent", "EventOptions", "EVENT_KINDS", "detect_events",
    "Topology", "Signature", "build_topology", "same_topology",
    "Matching", "Track", "match_points", "build_tracks", "state_spread",
    "Localization", "localize_event", "interpolate_modules",
    "LossCurve", "Drop", "DropOptions", "read_training_log", "detect_drop",
    # execution, projection and report (analysis.execution / .projection / .report; plots in
    # analysis.plotting, the command line in analysis.cli)
    "run_tasks", "Projection", "ProjectionFitter", "latent_basis", "PortraitOptions",
    "write_report",
]
