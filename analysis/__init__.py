"""analysis: across-checkpoint analysis, plots, reports, the Python API and the CLI.

Python API::

    from analysis import analyze_series, analyze_checkpoint
    result = analyze_series("runs/flipflop", jobs=2)
    result.events, result.drop_epoch
"""
from .epoch import EpochAnalysis, EpochSettings, analyze_checkpoint
from .api import FailedEpoch, SeriesAnalysis, analyze_series

__all__ = [
    # tracking API (analysis.api / analysis.epoch)
    "analyze_series", "analyze_checkpoint", "SeriesAnalysis", "EpochAnalysis", "EpochSettings",
    "FailedEpoch",
]
