"""The one exception of the checkpoints package: a bad file, why, and how to fix it."""
from __future__ import annotations

import os
from typing import Optional, Union

__all__ = ["CheckpointError", "NotACheckpointError"]


class CheckpointError(Exception):
    """A checkpoint (or a directory of them) that cannot be read or turned into a model.

    Parameters
    ----------
    path : str or os.PathLike or None
        The file or directory at fault (None when no file is involved).
    reason : str
        What is wrong, in one sentence.
    fix : str, optional
        What the user can do about it.

    Attributes
    ----------
    path : str or None
    reason : str
    fix : str

    ``str(error)`` is one line: ``"<path>: <reason>; fix: <fix>"``.
    """

    def __init__(self, path: Optional[Union[str, os.PathLike]], reason: str, fix: str = ""):
        self.path = None if path is None else os.fspath(path)
        self.reason = " ".join(str(reason).split())
        self.fix = " ".join(str(fix).split())
        super().__init__(self.path, self.reason, self.fix)

    def __str__(self) -> str:
        where = self.path if self.path is not None else "<no file>"
        text = f"{where}: {self.reason}"
        if self.fix:
            text += f"; fix: {self.fix}"
        return text

    def __repr__(self) -> str:
        return f"CheckpointError(path={self.path!r}, reason={self.reason!r}, fix={self.fix!r})"

    def __reduce__(self):
        return (type(self), (self.path, self.reason, self.fix))


class NotACheckpointError(CheckpointError):
    """A file with a checkpoint suffix that holds no model weights by design (an optimizer
    state, a ``final.npz`` of training histories): skipped by a series, never a problem."""
