"""Building a built-in model from the detected architecture and filling it with the weights."""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import nn

from .errors import CheckpointError
from .detection import ArchitectureMatch, _expected_keys
from .models import RecurrentModel, build_model

__all__: list = []


def _load_into(model: nn.Module, sub: Dict[str, torch.Tensor], path: str, what: str,
               prefix: str, config_path: Optional[str] = None) -> None:
    """Load ``sub`` into ``model`` strictly; ``config_path`` is the config that gave sizes (if
    any), so that a mismatch blames only a config that exists."""
    own = set(model.state_dict())
    missing = sorted(own - set(sub))
    unexpected = sorted(set(sub) - own)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {[prefix + k for k in missing][:10]}")
        if unexpected:
            parts.append(f"unexpected keys {[prefix + k for k in unexpected][:10]}")
        raise CheckpointError(path, f"the state dict does not fit {what}: " + ", ".join(parts),
                              "check the architecture (architecture=, config.json) or pass "
                              "prefix= to select the model's keys; a truncated save lacks keys")
    try:
        model.load_state_dict(sub, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        if config_path is not None:
            fix = (f"the sizes in {config_path} disagree with the file: fix them or drop them "
                   "so they are read from the shapes")
        else:
            fix = ("the shapes do not make one such model: check that the file holds this "
                   "architecture (pass --arch / architecture=, or a model factory --model)")
        raise CheckpointError(path, f"the weights do not fit {what}: {detail[:400]}",
                              fix) from exc


_UNSTORED = {
    "leaky_rnn": "alpha=0.5, output='linear'",
    "low_rank_rnn": "alpha=0.5, output='linear'",
    "paper_rnn": "alpha=0.5, output='tanh' (the authors' match-to-sample runs use 'sigmoid')",
    "paper_low_rank_rnn": "alpha=0.5, output='tanh' (the authors' match-to-sample runs use "
                          "'sigmoid')",
    "xform_rnn": "alpha=0.5, output='linear'",
    "rank_one_rnn": "alpha=0.5, confidence=10.0, x0=-0.3",
}


def _check_required_keys(arch: str, kwargs, state_dict, match: ArchitectureMatch, path) -> None:
    """Report missing keys before a size that only they could give is found missing."""
    if match.rnn is not None:
        return
    expected = _expected_keys(arch if arch != "low_rank_rnn" or kwargs.get("rank") else "leaky_rnn")
    missing = [match.prefix + k for k in expected if match.prefix + k not in state_dict]
    if missing:
        raise CheckpointError(path, f"the state dict does not fit {arch}: missing keys {missing}",
                              "a truncated or partial save lacks keys: re-save the full "
                              "state dict, or check the architecture (architecture=, config.json)")


def _build(architecture: str, kwargs: Dict[str, Any], path: str, source: str,
           config_path: Optional[str] = None) -> RecurrentModel:
    if architecture == "low_rank_rnn" and kwargs.get("rank") is None:
        architecture = "leaky_rnn"
    if architecture == "paper_low_rank_rnn" and kwargs.get("rank") is None:
        architecture = "paper_rnn"
    try:
        return build_model(architecture, **kwargs)
    except ValueError as exc:
        raise CheckpointError(path, f"{exc} (arguments from {source})",
                              f"fix the model arguments in {config_path}" if config_path else
                              "fix the model arguments given in the call") from exc
