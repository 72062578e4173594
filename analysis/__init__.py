"""analysis: across-checkpoint analysis, plots, reports, the Python API and the CLI.

Python API::

    from analysis import RunOptions, analyze_checkpoint, analyze_series
    result = analyze_series("runs/flipflop", run=RunOptions(jobs=2))
    result.events, result.drop_epoch

The public names below are imported from their modules on first use (PEP 562), so that
``import analysis.cli`` does not import torch: the ``ghostscope`` command answers ``--help`` at
once, and with ``--jobs`` it starts its worker processes' imports alongside its own.
"""
from __future__ import annotations

import importlib

#: public name -> the module that defines it
_EXPORTS = {
    # tracking API (analysis.api / analysis.epoch)
    "analyze_series": "api", "SeriesAnalysis": "api", "FailedEpoch": "api",
    "analyze_checkpoint": "epoch", "EpochAnalysis": "epoch", "EpochSettings": "epoch",
    "make_settings": "epoch", "TopologyOptions": "topology", "RunOptions": "run_options",
    # restructuring (analysis.events / .topology / .matching / .localize / .learning)
    "RestructuringEvent": "events", "EventOptions": "events", "EVENT_KINDS": "events",
    "detect_events": "events", "describe_event": "events", "split_transients": "events",
    "RestructuringCurve": "restructuring", "restructuring_curve": "restructuring",
    "continue_series": "continuation",
    "Topology": "topology", "Signature": "topology", "build_topology": "topology",
    "same_topology": "topology", "cycle_events": "events",
    "bifurcation_diagram": "bifurcation", "BifurcationDiagram": "bifurcation",
    # several named inputs, and the fixed points of every checkpoint along an input path
    "analyze_conditions": "conditions", "ConditionsAnalysis": "conditions",
    "ConditionEvent": "conditions", "read_conditions": "conditions",
    "write_conditions_report": "conditions", "analyze_input_path": "input_path",
    "InputPathAnalysis": "input_path", "attach_input_path": "input_path",
    "mechanism_of": "mechanism", "MECHANISMS": "mechanism",
    "Matching": "matching", "Track": "matching", "match_points": "matching",
    "build_tracks": "matching", "state_spread": "matching",
    "Localization": "localize", "localize_event": "localize", "interpolate_modules": "localize",
    "LossCurve": "learning", "Drop": "learning", "DropOptions": "learning",
    "read_training_log": "learning", "detect_drop": "learning",
    # execution, projection and report (plots in analysis.plotting, the CLI in analysis.cli)
    "run_tasks": "execution", "Projection": "projection", "ProjectionFitter": "projection",
    "latent_basis": "projection", "PortraitOptions": "portraits", "write_report": "report",
    "ModelSource": "sources",
    # hostile and unlucky runs: memory estimates, the OUT lock, result files as data
    "estimate_cost": "resources", "check_cost": "resources", "ResourceLimits": "resources",
    "TooLarge": "resources", "OutLock": "outdir", "ResultFileError": "decoding",
    # during training: a background analysis every k epochs (plain loop and Lightning)
    "watch": "watching", "Watcher": "watching", "WatchCallback": "watching",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))

