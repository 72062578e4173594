"""Problems said once: identical reasons across many files grouped into one line."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple, Union

from .errors import CheckpointError

__all__ = ["ProblemGroup", "group_problems"]


@dataclass(frozen=True)
class ProblemGroup:
    """Files that failed for the same reason.

    Attributes
    ----------
    reason : str
        The reason, with the file's own path taken out.
    fix : str
    paths : tuple of str
        Every file with this reason, in the order given.
    """

    reason: str
    fix: str
    paths: Tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.paths:
            raise ValueError("ProblemGroup.paths is empty; a group holds at least one file")

    def __str__(self) -> str:
        """``"961 files: <reason>; fix: <fix>; first: model_epoch0.pt"`` (one file: as
        :class:`CheckpointError` prints it)."""
        fix = f"; fix: {self.fix}" if self.fix else ""
        if len(self.paths) == 1:
            return f"{self.paths[0]}: {self.reason}{fix}"
        first = os.path.basename(self.paths[0])
        return f"{len(self.paths)} files: {self.reason}{fix}; first: {first}"


def _parts(problem: Union[CheckpointError, Tuple[Optional[str], str]]) -> Tuple[str, str, str]:
    if isinstance(problem, CheckpointError):
        path, reason, fix = problem.path or "<no file>", problem.reason, problem.fix
    else:
        path, text = problem
        path = path or "<no file>"
        reason, _, fix = str(text).partition("; fix: ")
        fix = fix.strip()
    reason = " ".join(reason.split())
    for prefix in (f"{path}: ", f"CheckpointError: {path}: "):
        if reason.startswith(prefix):
            reason = reason[len(prefix):]
    if reason.startswith("CheckpointError: "):
        reason = reason[len("CheckpointError: "):]
    return path, reason.replace(path, "<file>"), fix


def group_problems(problems: Iterable[Union[CheckpointError, Tuple[Optional[str], str]]]
                   ) -> List[ProblemGroup]:
    """Group problems by identical reason and fix, in order of first appearance.

    Parameters
    ----------
    problems : iterable of CheckpointError or (path, message)
        ``message`` may be a full ``"path: reason; fix: fix"`` line.

    Returns
    -------
    list of ProblemGroup
    """
    groups: dict = {}
    for problem in problems:
        path, reason, fix = _parts(problem)
        groups.setdefault((reason, fix), []).append(path)
    return [ProblemGroup(reason, fix, tuple(paths)) for (reason, fix), paths in groups.items()]
