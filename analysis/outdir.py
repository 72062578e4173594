"""An output directory shared safely: one run at a time, its own temporaries, no stale summary.

- :class:`OutLock` holds an exclusive lock on ``OUT/.ghostscope.lock`` while a run writes there;
  a second run on the same directory is refused with a message naming the process that holds it.
- :func:`remove_stale_temporaries` deletes the half-written files of processes that are no longer
  alive (the temporary names carry the writer's process id), never those of a live process.
- :func:`retire_stale_summary` removes ``summary.json`` and the files derived with it before a run
  with other settings starts writing epochs, so that an interrupted run never leaves an old
  summary beside epochs of new settings.
- :func:`epoch_name_problem` says why an epoch number cannot name output files (too many digits
  for a file name), so that the checkpoint fails alone instead of the whole run.
- :class:`OutputError` is an ``OSError`` whose message names the file and the fix (disk full,
  read-only directory).
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Union

__all__ = ["OutLock", "OutDirBusy", "OutputError", "remove_stale_temporaries",
           "retire_stale_summary", "epoch_name_problem", "output_error", "temporary_owner",
           "locks_out", "writing", "MAX_EPOCH_DIGITS", "LOCK_NAME", "DERIVED_FILES"]

logger = logging.getLogger(__name__)

#: The lock file inside OUT.
LOCK_NAME = ".ghostscope.lock"

#: Files written from all epochs together at the end of a run (stale once epochs change).
DERIVED_FILES = ("summary.json", "events.csv", "events.json", "tracks.json")

#: Most digits of an epoch number (beyond int64 no training run counts; names stay short).
MAX_EPOCH_DIGITS = 18

#: Temporary names: ``name.tmp<pid>`` and ``.name.<pid>.tmp`` (with a pid), ``name.tmp`` and
#: ``.name.tmp`` (without one).
_TEMPORARY = re.compile(r"(?:\.tmp(?P<a>\d+)$)|(?:^\..+\.(?P<b>\d+)\.tmp$)|(?:\.tmp$)")

#: A temporary without a process id is removed only when it is older than this (seconds).
_ANONYMOUS_AGE = 3600.0


class OutDirBusy(RuntimeError):
    """Another live run holds the lock on the output directory."""


class OutputError(OSError):
    """A result file that could not be written; the message names the file and the fix."""


def output_error(path: Union[str, os.PathLike], error: OSError) -> OutputError:
    """An :class:`OutputError` for ``error`` raised while writing ``path``."""
    reason = error.strerror or str(error)
    code = error.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        fix = "free space on that disk (or pass another --out) and re-run; finished files are kept"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make the directory writable or pass another --out"
    elif code == errno.ENAMETOOLONG:
        fix = "use a shorter --out path"
    else:
        fix = "check the output directory (pass another --out) and re-run"
    made = OutputError(code, f"{os.fspath(path)}: cannot write ({reason}); {fix}")
    made.filename = os.fspath(path)
    return made


# ------------------------------------------------------------------------------ the lock
_HELD: Dict[str, List[Any]] = {}  # resolved lock path -> [file handle, depth]
_HELD_LOCK = threading.Lock()


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:  # a zombie (ended, not yet reaped by its parent) is not alive
        return stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


class OutLock:
    """Exclusive lock on an output directory while a run writes there (re-entrant in a process).

    Parameters
    ----------
    out : path
        The output directory (created if missing).

    Raises
    ------
    OutDirBusy
        On entering, when another live process holds the lock.
    OutputError
        When the directory cannot be created or written.

    Notes
    -----
    Uses ``fcntl.flock`` where available (the lock ends with the process that holds it, even on
    ``kill -9``); elsewhere the lock is advisory only and always succeeds.
    """

    def __init__(self, out: Union[str, os.PathLike]):
        self.out = Path(out)
        self.path = self.out / LOCK_NAME
        self._key = ""

    def __enter__(self) -> "OutLock":
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise output_error(self.out, error) from None
        self._key = str(self.path.resolve())
        with _HELD_LOCK:
            held = _HELD.get(self._key)
            if held is not None:
                held[1] += 1
                return self
            try:
                handle = open(self.path, "a+")
            except OSError as error:
                raise output_error(self.path, error) from None
            try:
                import fcntl
                locking = True
            except ImportError:  # pragma: no cover - not POSIX
                locking = False
            if locking:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    handle.seek(0)
                    owner = handle.read().strip() or "unknown"
                    handle.close()
                    raise OutDirBusy(f"{self.out}: another ghostscope run (process {owner}) is "
                                     f"writing there; wait for it to finish or pass another "
                                     f"--out") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            _HELD[self._key] = [handle, 1]
        return self

    def __exit__(self, *exc: Any) -> None:
        with _HELD_LOCK:
            held = _HELD.get(self._key)
            if held is None:
                return
            held[1] -= 1
            if held[1] > 0:
                return
            del _HELD[self._key]
            handle = held[0]
            with contextlib.suppress(OSError):
                handle.seek(0)
                handle.truncate()
            handle.close()  # closing releases the flock


# ------------------------------------------------------------------------------ temporaries
def temporary_owner(name: str) -> Optional[int]:
    """The process id in a temporary file name, -1 for a temporary without one, None for a
    name that is not a temporary."""
    match = _TEMPORARY.search(name)
    if match is None:
        return None
    pid = match.group("a") or match.group("b")
    return int(pid) if pid else -1


def remove_stale_temporaries(out: Union[str, os.PathLike],
                             folders: tuple = ("", "epochs", "portraits")) -> List[Path]:
    """Delete the temporary files in ``out`` (and its ``epochs/``, ``portraits/``) whose writer
    is no longer alive; those of live processes (a concurrent run) are left alone.

    Returns
    -------
    list of Path
        The files removed.
    """
    removed: List[Path] = []
    now = time.time()
    for folder in folders:
        directory = Path(out) / folder
        if not directory.is_dir():
            continue
        for entry in directory.iterdir():
            owner = temporary_owner(entry.name)
            if owner is None or entry.name == LOCK_NAME:
                continue
            try:
                if not entry.is_file():
                    continue
                if owner == -1:
                    if now - entry.stat().st_mtime < _ANONYMOUS_AGE:
                        continue
                elif _pid_alive(owner):
                    continue
                entry.unlink()
                removed.append(entry)
                logger.debug("removed %s, left by an interrupted run", entry)
            except OSError:
                continue
    return removed


# ------------------------------------------------------------------------------ stale summary
def retire_stale_summary(out: Union[str, os.PathLike], settings_hash: str) -> bool:
    """Remove ``summary.json`` and the files derived with it when they describe other settings.

    Called before a run writes any epoch: an interrupted run then leaves no summary rather
    than an old one beside epochs of the new settings.

    Returns
    -------
    bool
        Whether files were removed.
    """
    out = Path(out)
    summary = out / "summary.json"
    if not summary.is_file():
        return False
    try:
        old = json.loads(summary.read_text()).get("settings_hash")
    except (OSError, ValueError, AttributeError):
        old = None
    if old == settings_hash:
        return False
    for name in DERIVED_FILES:
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()
    logger.info("%s described other settings (hash %s, now %s): removed it and the event "
                "files; they are written again at the end of this run", summary, old,
                settings_hash)
    return True


# ------------------------------------------------------------------------------ names
def epoch_name_problem(epoch: Optional[int]) -> Optional[str]:
    """Why ``epoch`` cannot name output files, or None when it can."""
    if epoch is None:
        return None
    digits = len(str(abs(int(epoch))))
    if digits > MAX_EPOCH_DIGITS:
        return (f"its epoch number has {digits} digits, more than the {MAX_EPOCH_DIGITS} an "
                f"output file name takes; rename the file with its real epoch number (or leave "
                f"it out with --pattern)")
    return None


@contextlib.contextmanager
def writing(path: Union[str, os.PathLike]) -> Iterator[None]:
    """Turn an ``OSError`` raised in the block into an :class:`OutputError` naming ``path``."""
    try:
        yield
    except OutputError:
        raise
    except OSError as error:
        raise output_error(path, error) from error


def locks_out(func):
    """Decorator: while ``func(..., out=OUT)`` or ``func(..., run=RunOptions(out=OUT))`` (or
    ``run={"out": OUT}``) runs, hold :class:`OutLock` on OUT and first remove the temporaries
    that dead processes left there (no OUT: nothing to do)."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any):
        out = kwargs.get("out")
        if out is None:
            run = kwargs.get("run")
            out = run.get("out") if isinstance(run, dict) else getattr(run, "out", None)
        if out is None:
            return func(*args, **kwargs)
        with OutLock(out):
            remove_stale_temporaries(out)
            return func(*args, **kwargs)

    return wrapper
