"""Epoch and step numbers from checkpoint file names (natural order, never lexicographic)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional


__all__ = ["CheckpointName", "CHECKPOINT_SUFFIXES", "parse_checkpoint_name"]

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".npz")


@dataclass(frozen=True)


class CheckpointName:
    """Epoch and step parsed from a checkpoint's file name.

    ``epoch`` comes from ``epoch12`` / ``epoch_12`` / ``epoch=12`` / ``epoch-12``; ``step`` from
    ``step``, ``global_step``, ``iter`` or ``iteration`` followed by a number; a file with
    neither but some other number (``ckpt_000100.pt``) gets that last number as ``number``.
    """

    epoch: Optional[int] = None
    step: Optional[int] = None
    number: Optional[int] = None

    @property
    def numbered(self) -> bool:
        return self.epoch is not None or self.step is not None or self.number is not None


_EPOCH_RE = re.compile(r"epoch[s]?[=_\-]?(\d+)", re.IGNORECASE)
_STEP_RE = re.compile(r"(?:global_step|step|iteration|iter)[s]?[=_\-]?(\d+)", re.IGNORECASE)
_NUMBER_RE = re.compile(r"(\d+)")


def _stem(name: str) -> str:
    base = os.path.basename(name)
    for suffix in CHECKPOINT_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return os.path.splitext(base)[0]


def parse_checkpoint_name(name: str) -> CheckpointName:
    """Parse epoch / step / bare number from a file name (natural numbers, never lexicographic).

    Examples
    --------
    >>> parse_checkpoint_name("model_epoch12.pt").epoch
    12
    >>> parse_checkpoint_name("epoch=3-step=1200.ckpt")
    CheckpointName(epoch=3, step=1200, number=None)
    >>> parse_checkpoint_name("ckpt_000100.pt").number
    100
    """
    stem = _stem(name)
    epoch = _EPOCH_RE.search(stem)
    step = _STEP_RE.search(stem)
    if epoch or step:
        return CheckpointName(epoch=int(epoch.group(1)) if epoch else None,
                              step=int(step.group(1)) if step else None)
    numbers = _NUMBER_RE.findall(stem)
    return CheckpointName(number=int(numbers[-1]) if numbers else None)
