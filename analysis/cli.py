"""The ``ghostscope`` command line: a checkpoint directory in; portraits, events and a report out.

Subcommands::

    ghostscope demo [--out DIR]                 train a run with a plateau and a drop, report
    ghostscope analyze DIR --out OUT [...]      analyze every checkpoint of a directory
    ghostscope find FILE [...]                  fixed points, slow points and ghosts of one file
    ghostscope info DIR                         what the reader sees: files, epochs, model, problems
    ghostscope train TASK --out DIR [...]       train a built-in model and write checkpoints

Exit status: 0 on success, 2 on bad usage, 1 on failure. Errors are one line naming the file
and the fix (``-v`` adds the traceback). This module parses arguments and prints; the work is
done by public functions only (:func:`analysis.analyze_series`, :func:`analysis.analyze_checkpoint`,
:func:`analysis.write_report`, :func:`analysis.portraits.single_portrait`, ...): a test checks
that it imports no private name from another module.
"""
from __future__ import annotations

import os

# OpenMP's default busy-wait makes torch up to 100x slower on a shared machine; this must be set
# before torch is imported (the command imports it lazily, below).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import errno
import json
import logging
import math
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

__all__ = ["main", "build_parser", "UsageError", "DEMO_TRAINING"]

PROG = "ghostscope"
logger = logging.getLogger("analysis.cli")

#: The demo's training run: the ghost paper's rank-one RNN on delayed activation (SCIENCE.md:
#: N = 100, alpha = 0.5, plain SGD, one trial per epoch, seed 40), with output confidence 7
#: instead of 10 so that its long plateau ends in an abrupt drop near epoch 1,000 instead of
#: 10,000 (lr 0.01): a plateau, a restructuring of the flow, then the drop, in seconds.
DEMO_TRAINING: Dict[str, Any] = dict(task="delayed_activation", architecture="rank_one_rnn",
                                     n_states=100, epochs=1500, lr=0.01, optimizer="sgd",
                                     save_every=50, seed=40, confidence=7.0)


#: Extra per-epoch settings of the demo's analysis (tests shrink them).
_DEMO_SETTINGS: Dict[str, Any] = {}


class UsageError(Exception):
    """A command-line argument that cannot work (exit status 2)."""


class _Failure(Exception):
    """A failure already explained in one line (exit status 1)."""


# ------------------------------------------------------------------------------ parsing helpers
def _parse_floats(text: str, what: str) -> Tuple[float, ...]:
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise UsageError(f"{what} {text!r} is not a list of numbers; write e.g. '0,0,0'") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise UsageError(f"{what} {text!r} needs finite numbers; write e.g. '0,0,0'")
    return values


def _load_array(path: str, what: str) -> np.ndarray:
    """A numeric array from .npy, .npz (one array, or key drive/inputs/input), .json, .csv/.txt."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{path}: no such file for {what}; pass an existing .npy, .npz, .json, "
                         f".csv or .txt file")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(p, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(p, allow_pickle=False) as data:
                keys = list(data.files)
                key = next((k for k in ("drive", "inputs", "input") if k in keys), None)
                if key is None:
                    if len(keys) != 1:
                        raise UsageError(f"{path}: holds arrays {keys}; name the one for {what} "
                                         f"'drive', 'inputs' or 'input', or save just one")
                    key = keys[0]
                array = data[key]
        elif suffix == ".json":
            array = np.asarray(json.loads(p.read_text()), dtype=float)
        else:
            array = np.loadtxt(p, delimiter="," if suffix == ".csv" else None, ndmin=1)
    except UsageError:
        raise
    except (OSError, ValueError) as error:
        raise UsageError(f"{path}: cannot read {what} ({error}); save it with numpy.save, as JSON "
                         f"lists, or as comma-separated numbers") from None
    array = np.asarray(array, dtype=float)
    if not np.all(np.isfinite(array)):
        raise UsageError(f"{path}: {what} holds NaN or inf; replace them with numbers")
    return array


def _parse_epoch_range(text: str) -> Tuple[Optional[int], Optional[int]]:
    if ":" not in text:
        raise UsageError(f"--epochs {text!r}: write a range A:B (inclusive), A: or :B")
    a, _, b = text.partition(":")
    try:
        lo = int(a) if a.strip() else None
        hi = int(b) if b.strip() else None
    except ValueError:
        raise UsageError(f"--epochs {text!r}: A and B must be whole epochs, e.g. 100:500") from None
    if lo is not None and hi is not None and hi < lo:
        raise UsageError(f"--epochs {text!r}: the end comes before the start; write A:B with "
                         f"A <= B")
    return lo, hi


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value == 0 or value < -1:
        raise argparse.ArgumentTypeError(f"{text!r}: use N >= 1 worker processes, or -1 for "
                                         f"all cores")
    from .execution import max_jobs
    if value > max_jobs():
        raise argparse.ArgumentTypeError(f"{text!r} is more worker processes than this "
                                         f"machine's {os.cpu_count()} cores can use (at most "
                                         f"{max_jobs()}); pass -1 for one per core")
    return value


# ------------------------------------------------------------------------------ the parser
def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true",
                   help="more log output, and the traceback of an error")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bars and only warnings and errors")


def _add_model(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--model", metavar="SPEC",
                       help="a model factory for custom checkpoints: 'pkg.module:build' or "
                            "'path/to/file.py:build'")
    group.add_argument("--arch", metavar="NAME",
                       help="the built-in architecture (leaky_rnn, rank_one_rnn, plrnn, gru, "
                            "lstm, ...), when config.json does not say it")
    p.add_argument("--pattern", metavar="GLOB",
                   help="only files matching this shell pattern (e.g. 'model_epoch*.pt')")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow checkpoints that are whole pickled modules (runs code from the "
                        "file: trusted files only)")
    p.add_argument("--convention", choices=("row", "column"), default=None,
                   help="leaky RNNs whose weights cannot tell (a full-rank W_rec): 'row' for "
                        "code that computes r @ W_rec on row vectors (the ghost paper's "
                        "scripts), 'column' for W_rec @ r (the default)")


def _add_log_offset(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-offset", type=int, default=None, metavar="K",
                   help="add K to the log's epochs to align them with the checkpoints' "
                        "(default: -1 for the ghost paper's final.npz, whose entry e is the loss "
                        "of model_epoch{e-1}; else 0)")


def _add_system(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--input", metavar="VALUES",
                       help="the constant input at which fixed points are sought, e.g. '0,0,1' "
                            "(default: zeros)")
    group.add_argument("--inputs", metavar="FILE",
                       help="the constant input read from a file (.npy, .json, .csv, .txt) "
                            "holding one vector; for analyze, a JSON object such as "
                            "'{\"delay\": [0], \"cue+\": [1]}' names several input conditions, "
                            "each analyzed into OUT/conditions/NAME")
    p.add_argument("--drive", metavar="FILE",
                   help="task-like input sequences (T, n_inputs) or (b, T, n_inputs) that drive "
                        "the trajectories the search starts from (.npy, .npz, .json, .csv)")
    p.add_argument("--time", choices=("discrete", "continuous"),
                   help="for models with both forms: analyze the map or the flow")
    p.add_argument("--n-initial", type=_positive_int, metavar="N",
                   help="initial states of the fixed-point search (default 256)")
    p.add_argument("--seed", type=int, metavar="S", help="seed of the initial states")
    p.add_argument("--no-ghosts", action="store_true", help="skip ghost detection")
    p.add_argument("--no-warm-start", action="store_true",
                   help="search every checkpoint from scratch instead of polishing the previous "
                        "checkpoint's fixed points first (same points, slower)")
    p.add_argument("--min-ghost-strength", type=_non_negative_float, metavar="S",
                   help="report only ghosts that hold trajectories for at least S relaxation "
                        "times (strength = passage / relaxation time; default 0: all; strong "
                        "from 20)")
    p.add_argument("--max-states", type=_positive_int, metavar="N",
                   help="analyze models of up to N states even when the memory estimate "
                        "exceeds the free memory (default: refuse them)")
    p.add_argument("--device", default="cpu", metavar="DEV",
                   help="torch device for the math: cpu (default) or cuda")


def build_parser() -> argparse.ArgumentParser:
    """The ``ghostscope`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Fixed points, slow points, ghosts and restructuring events of "
                               "RNN checkpoints across training.",
        epilog="Start with `ghostscope demo`, then `ghostscope analyze DIR --out OUT`.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("analyze", help="analyze every checkpoint of a directory",
                       description="Analyze every checkpoint of DIR and write summary.json, "
                                   "events.csv, epochs/, portraits/, timeline.png, "
                                   "portraits.gif and report.html to OUT (with --inputs FILE "
                                   "naming several conditions: one such directory per "
                                   "condition in OUT/conditions/, and an index).")
    p.add_argument("dir", metavar="DIR", help="directory of checkpoints")
    p.add_argument("--out", "-o", required=True, metavar="OUT", help="output directory")
    _add_model(p)
    _add_system(p)
    p.add_argument("--every", type=_positive_int, metavar="K",
                   help="analyze every K-th checkpoint (the first and the last always)")
    p.add_argument("--epochs", metavar="A:B", help="only epochs A to B (inclusive; A: or :B)")
    p.add_argument("--log", metavar="FILE",
                   help="training log (train_log.csv or .npz with loss_history); found beside "
                        "the checkpoints when omitted")
    p.add_argument("--log-column", metavar="NAME", help="the loss column / key in the log")
    _add_log_offset(p)
    p.add_argument("--jobs", "-j", type=_jobs, default=1, metavar="N",
                   help="worker processes (default 1; -1 for all cores)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on an existing Dask cluster, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--force", action="store_true",
                   help="redo epochs already analyzed in OUT with the same settings")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first checkpoint that fails (exit 1)")
    p.add_argument("--localize", action="store_true",
                   help="place each event between its two checkpoints by bisection")
    p.add_argument("--projection", choices=("auto", "pca", "latent", "identity"), default="auto",
                   help="coordinates of the portraits (default: latent for rank-1/2 models, "
                        "else PCA across all epochs)")
    p.add_argument("--no-report", action="store_true",
                   help="write the data files only (no portraits, timeline, GIF or HTML)")
    p.add_argument("--input-path", metavar="A:B:n",
                   help="also continue every checkpoint's fixed points along the straight input "
                        "path from A to B (comma-separated vectors; at least n steps): folds and "
                        "Hopf points per epoch in summary.json and the report, diagrams in "
                        "OUT/bifurcation/ (write --input-path=-1:1:40 when A is negative)")
    _add_common(p)
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser("find", help="fixed points, slow points and ghosts of one checkpoint",
                       description="Analyze one checkpoint file and print its points.")
    p.add_argument("file", metavar="FILE", help="a checkpoint file")
    _add_model(p)
    _add_system(p)
    p.add_argument("--out", "-o", metavar="OUT",
                   help="also write epoch_XXXX.json/.npz and a portrait PNG there")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--input-path", metavar="A:B:n",
                   help="also continue the fixed points along the straight input path from A to "
                        "B (comma-separated vectors; at least n steps), report its folds and "
                        "Hopf points, and write bifurcation.json/.png to --out")
    _add_common(p)
    p.set_defaults(func=_cmd_find)

    p = sub.add_parser("info", help="what the reader sees in a directory",
                       description="List the checkpoint files, epochs, the model, the training "
                                   "log and any problem, without analyzing.")
    p.add_argument("dir", metavar="DIR", help="directory of checkpoints")
    _add_model(p)
    p.add_argument("--quick", action="store_true",
                   help="load only the first checkpoint (skip checking every file)")
    p.add_argument("--log", metavar="FILE", help="training log (found beside the checkpoints "
                                                  "when omitted)")
    p.add_argument("--log-column", metavar="NAME", help="the loss column / key / tag in the log")
    _add_log_offset(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_common(p)
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("train", help="train a built-in model on a task, writing checkpoints",
                       description="Train a built-in model and write model_epoch{e}.pt, "
                                   "train_log.csv and config.json to DIR.")
    p.add_argument("task", metavar="TASK",
                   help="flipflop, delayed_activation, cue_discrimination, match_to_sample, "
                        "delayed_addition or evidence_accumulation; dcdt or dmts for the "
                        "paper's runs (--paper)")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output directory")
    p.add_argument("--arch", default=None, metavar="NAME",
                   help="architecture (default: rank_one_rnn for delayed_activation, else "
                        "leaky_rnn)")
    p.add_argument("--epochs", type=int, default=400, metavar="N", help="updates (default 400)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 0.01; with --paper the paper's)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--n-states", type=_positive_int, default=100, metavar="N",
                   help="units (default 100)")
    p.add_argument("--rank", type=_positive_int, default=None, metavar="K",
                   help="low rank K of a leaky RNN")
    p.add_argument("--batch-size", type=_positive_int, default=None, metavar="B")
    p.add_argument("--save-every", type=_positive_int, default=None, metavar="K",
                   help="checkpoint every K epochs (default: about 20 checkpoints)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tcr-lambda", type=float, default=0.0, metavar="L",
                   help="weight of the temporal-consistency penalty (default 0)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the checkpoints, log and config already in DIR")
    p.add_argument("--paper", action="store_true",
                   help="the ghost paper's run (tasks dcdt / cue_discrimination, dmts / "
                        "match_to_sample): their model, settings and layout (DIR/models/"
                        "model_epoch{e}.pt every epoch, DIR/final.npz, DIR/model_final.pt)")
    p.add_argument("--repeats", type=_positive_int, default=None, metavar="R",
                   help="with --paper: tiling of the trial types (default 500, the paper's)")
    _add_common(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("demo", help="train a run with a plateau and an abrupt drop, analyze "
                                    "it, write the report",
                       description="Train the ghost paper's rank-one RNN on delayed activation "
                                   "(a plateau, then an abrupt drop) into a new directory, "
                                   "analyze its checkpoints and write the report.")
    p.add_argument("--out", "-o", metavar="DIR", default=None,
                   help="a new or empty directory (default: ./ghostscope_demo, numbered if it "
                        "exists)")
    p.add_argument("--jobs", "-j", type=_jobs, default=-1, metavar="N",
                   help="worker processes (default: all cores)")
    _add_common(p)
    p.set_defaults(func=_cmd_demo)
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("ghostscope")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "0.1.0 (source tree)"


# ------------------------------------------------------------------------------ logging / output
class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = " ".join(record.getMessage().split()) if record.levelno < logging.ERROR else \
            record.getMessage()
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"{PROG}: {level}{text}"


_LOGGERS = ("analysis", "checkpoints", "fixedpoints", "py.warnings")


def _configure_logging(verbose: bool, quiet: bool) -> logging.Handler:
    """Messages to stderr, one line each: this command's progress at INFO, the libraries'
    warnings (everything with -v; only warnings and errors with -q)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    for name in _LOGGERS:
        log = logging.getLogger(name)
        log.setLevel(logging.DEBUG if verbose else logging.WARNING)
        log.addHandler(handler)
        log.propagate = False
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    logging.captureWarnings(True)
    if not verbose:
        # the finder's convergence warnings are recorded per epoch in the results
        warnings.filterwarnings("ignore", category=RuntimeWarning, module="fixedpoints")
        warnings.filterwarnings("ignore", category=RuntimeWarning, module="analysis")
    return handler


def _remove_logging(handler: logging.Handler) -> None:
    for name in _LOGGERS:
        log = logging.getLogger(name)
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)
        log.propagate = True
    logger.setLevel(logging.NOTSET)
    logging.captureWarnings(False)


def _say(args, text: str) -> None:
    """A line of results for the user (stdout)."""
    print(text, flush=True)


def _progress(args) -> bool:
    return not args.quiet and sys.stderr is not None and sys.stderr.isatty()


# ------------------------------------------------------------------------------ shared pieces
def _settings_options(args) -> Dict[str, Any]:
    """EpochSettings fields from the command line."""
    options: Dict[str, Any] = {}
    if getattr(args, "input", None):
        options["input"] = _parse_floats(args.input, "--input")
    if getattr(args, "inputs", None) and _names_conditions(args.inputs):
        raise UsageError(f"{args.inputs}: names several input conditions, but `{PROG} "
                         f"{args.command}` analyzes one input; pass one with --input VALUES, or "
                         f"use `{PROG} analyze DIR --inputs {args.inputs}`")
    if getattr(args, "inputs", None):
        vector = _load_array(args.inputs, "--inputs")
        if vector.ndim > 2 or (vector.ndim == 2 and min(vector.shape) != 1):
            raise UsageError(f"{args.inputs}: holds {vector.shape[0]} input vectors; give one "
                             f"constant input (run once per input, each with its own --out)")
        options["input"] = tuple(float(v) for v in vector.reshape(-1))
    if getattr(args, "drive", None):
        drive = _load_array(args.drive, "--drive")
        if drive.ndim == 1:
            drive = drive[:, None]
        if drive.ndim not in (2, 3):
            raise UsageError(f"{args.drive}: --drive has shape {drive.shape}; save (T, n_inputs) "
                             f"or (b, T, n_inputs)")
        options["drive"] = drive
    if getattr(args, "time", None):
        options["time"] = args.time
    if getattr(args, "n_initial", None):
        options["n_initial"] = args.n_initial
    if getattr(args, "seed", None) is not None:
        options["seed"] = args.seed
    if getattr(args, "no_warm_start", False):
        options["warm_start"] = False
    if getattr(args, "no_ghosts", False):
        options["ghosts"] = False
    elif getattr(args, "min_ghost_strength", None) is not None:
        options["ghosts"] = {"min_strength": args.min_ghost_strength}
    _epoch_settings(options)  # bad values are bad usage (exit 2), named by their flags
    return options


def _names_conditions(path: str) -> bool:
    """Whether an --inputs file is a JSON object (named input conditions), not one vector."""
    p = Path(path)
    if p.suffix.lower() != ".json" or not p.is_file():
        return False
    try:
        with open(p, encoding="utf-8", errors="replace") as handle:
            return handle.read(4096).lstrip().startswith("{")
    except OSError:
        return False


def _read_conditions(args) -> Optional[Dict[str, Tuple[float, ...]]]:
    """The named conditions of --inputs FILE (a JSON object), or None for one input."""
    if not getattr(args, "inputs", None) or not _names_conditions(args.inputs):
        return None
    from .conditions import read_conditions
    try:
        return read_conditions(args.inputs)
    except ValueError as error:
        raise UsageError(_one_line(error)) from None


def _check_model_args(args) -> None:
    """--arch and --model name something that exists (bad usage otherwise)."""
    from checkpoints import ARCHITECTURES, CheckpointError, load_factory

    arch = getattr(args, "arch", None)
    if arch and arch not in ARCHITECTURES:
        raise UsageError(f"--arch {arch!r} is not a built-in architecture; use one of "
                         f"{', '.join(sorted(ARCHITECTURES))}, or --model for your own")
    spec = getattr(args, "model", None)
    if spec:
        try:
            load_factory(spec)
        except CheckpointError as error:
            raise UsageError(f"--model {_one_line(error)}") from None


def _check_log(args) -> None:
    """--log names a readable log, and --log-column a column of it (bad usage otherwise)."""
    from .learning import find_training_log, read_training_log

    log = args.log
    if log is not None and not Path(log).is_file():
        raise UsageError(f"{log}: no such file for --log; pass the training log (train_log.csv "
                         f"or an .npz with loss_history), or leave --log out to use the one "
                         f"beside the checkpoints")
    if log is None and args.log_column is not None:
        log = find_training_log(args.dir)
        if log is None:
            raise UsageError(f"--log-column {args.log_column}: {args.dir} has no training log "
                             f"beside the checkpoints; pass it with --log")
    if log is not None:
        try:
            read_training_log(log, args.log_column)
        except (OSError, ValueError) as error:
            text = _one_line(error)
            raise UsageError(text if str(log) in text else f"{log}: {text}") from None


def _check_cost(model, settings: Dict[str, Any], args, source: str) -> None:
    """Refuse (bad usage) a model whose analysis cannot fit in memory; warn when it is slow."""
    from .execution import resolve_jobs
    from .resources import ResourceLimits, TooLarge, check_cost

    jobs = getattr(args, "jobs", 1)
    share = 1.0 if getattr(args, "scheduler", None) else 1.0 / resolve_jobs(jobs)
    try:
        check_cost(model, _epoch_settings(settings), source=source,
                   device=getattr(args, "device", None),
                   limits=ResourceLimits(max_states=getattr(args, "max_states", None),
                                         share=share))
    except TooLarge as error:
        raise UsageError(str(error)) from None


def _epoch_settings(settings: Dict[str, Any]):
    from .epoch import make_settings
    try:
        return make_settings(None, **settings)
    except ValueError as error:
        raise UsageError(_one_line(error)) from None


def _preflight(series, settings: Dict[str, Any], args=None, conditions=None) -> None:
    """Load the first checkpoints and bind the input, the drive and the time form, so that
    options that cannot fit the model fail once, now, instead of once per epoch (with
    ``conditions``, each condition's input; with ``args.input_path``, the path)."""
    from checkpoints import CheckpointError

    from .sources import as_dynamics

    errors = []
    for index in range(min(3, len(series))):
        try:
            checkpoint = series.load(index)
        except CheckpointError as error:
            errors.append(error)
            continue
        if conditions or getattr(args, "input_path", None):
            try:
                n_inputs = as_dynamics(checkpoint.model, time=settings.get("time")).n_inputs
            except ValueError as error:
                raise UsageError(f"{checkpoint.path}: {_one_line(error)} (check --time)") \
                    from None
            if conditions:
                from .conditions import check_conditions
                try:
                    check_conditions(conditions, n_inputs, args.inputs)
                except ValueError as error:
                    raise UsageError(_one_line(error)) from None
                settings = {**settings, "input": next(iter(conditions.values()))}
            if getattr(args, "input_path", None):
                from fixedpoints.continuation import parse_input_path
                try:
                    parse_input_path(args.input_path, n_inputs)
                except ValueError as error:
                    raise UsageError(f"--input-path: {_one_line(error)}") from None
        try:
            dynamics = as_dynamics(checkpoint.model, input=settings.get("input"),
                                   time=settings.get("time"))
        except ValueError as error:
            raise UsageError(f"{checkpoint.path}: {_one_line(error)} (check --input / --inputs "
                             f"/ --time)") from None
        _check_cost(dynamics, settings, args, checkpoint.path)
        drive = settings.get("drive")
        if drive is not None and np.shape(drive)[-1] != dynamics.n_inputs:
            raise UsageError(f"--drive has {np.shape(drive)[-1]} input channel(s) but the model "
                             f"in {checkpoint.path} takes {dynamics.n_inputs}; save the drive "
                             f"with shape (T, {dynamics.n_inputs}) or (b, T, {dynamics.n_inputs})")
        return
    if errors and len({e.reason for e in errors}) == 1:
        raise errors[0]  # the same problem in every file tried: report it once


def _load_options(args) -> Dict[str, Any]:
    if getattr(args, "trust_pickle", False) and not getattr(args, "_trust_said", False):
        args._trust_said = True
        logger.warning("--trust-pickle: checkpoints that are pickled objects run code from the "
                       "file while they load; use it only for files you trust")
    options: Dict[str, Any] = {}
    if getattr(args, "arch", None):
        options["architecture"] = args.arch
    if getattr(args, "model", None):
        options["model_factory"] = args.model
    if getattr(args, "trust_pickle", False):
        options["trust_pickle"] = True
    if getattr(args, "convention", None):
        options["convention"] = args.convention
    return options


def _check_device(device: str) -> None:
    if device == "cpu":
        return
    import torch
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {device!r} is not a torch device; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: this torch build sees no CUDA GPU; use --device "
                         f"cpu, or install a CUDA build of torch on a GPU machine")


def _open_series(directory: str, args):
    from checkpoints import CheckpointSeries

    path = Path(directory)
    if not path.exists():
        raise UsageError(f"{directory}: no such directory; pass the directory that holds the "
                         f"checkpoint files")
    if not path.is_dir():
        raise UsageError(f"{directory}: is a file; pass its directory, or use "
                         f"`{PROG} find {directory}` for one checkpoint")
    return CheckpointSeries.from_run(path, pattern=getattr(args, "pattern", None),
                                     **_load_options(args))


def _select(series, epochs: Optional[str], every: Optional[int]):
    """The series restricted to --epochs A:B and every K-th file (first and last kept)."""
    positions = list(range(len(series.entries)))
    if epochs:
        lo, hi = _parse_epoch_range(epochs)
        positions = [i for i in positions if (epoch := series.entries[i].epoch) is not None
                     and (lo is None or epoch >= lo) and (hi is None or epoch <= hi)]
        if not positions:
            known = [e.epoch for e in series.entries if e.epoch is not None]
            span = f"{min(known)}..{max(known)}" if known else "none"
            raise UsageError(f"--epochs {epochs}: no checkpoint in that range (the directory has "
                             f"epochs {span})")
    if every and every > 1:
        keep = list(range(0, len(positions), every))
        if keep[-1] != len(positions) - 1:
            keep.append(len(positions) - 1)
        positions = [positions[i] for i in keep]
    if len(positions) == len(series.entries):
        return series
    return series.subset([series.entries[i] for i in positions])


def _prepare_out(out: str, resources=None) -> Path:
    """The output directory, created if missing; with ``resources`` (an ExitStack) the run holds
    its lock until the command ends, and temporaries of dead processes are removed."""
    from .outdir import OutLock, OutputError, remove_stale_temporaries

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{out}: --out is a file; pass a directory (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"{out}: cannot create the output directory ({error.strerror}); pass a "
                         f"writable path") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{out}: the output directory is not writable; make it writable or "
                         f"pass another --out")
    if resources is not None:
        try:
            resources.enter_context(OutLock(path))
        except OutputError as error:
            raise UsageError(str(error)) from None
    remove_stale_temporaries(path)
    return path


# ------------------------------------------------------------------------------ commands
def _rerun_options(args) -> Dict[str, Any]:
    """The options of an ``analyze`` command, as :func:`analysis.reuse.run_fingerprint` takes."""
    options = {k: v for k, v in vars(args).items()
               if k not in ("func", "resources") and not k.startswith("_")}
    options["dir"], options["out"] = (os.path.abspath(args.dir), os.path.abspath(args.out))
    return options


def _already_done(args) -> bool:
    """Print the results of the run that left OUT as it is, when it was this very command
    (nothing changed since: no model, torch or matplotlib is loaded; see analysis.reuse)."""
    from .reuse import finished_run

    if args.force or not os.path.isdir(args.out):
        return False
    started = time.perf_counter()
    _prepare_out(args.out, getattr(args, "resources", None))  # the lock, as any run holds it
    record = finished_run(_rerun_options(args), args.dir, args.out)
    if record is None:
        return False
    n = int(record.get("n_epochs", 0))
    lines = [str(line) for line in record["lines"]]
    first = lines[0].split(";", 1)[0] if lines else ""
    rest = lines[1:] if first.startswith("analyzed ") else lines
    _say(args, f"analyzed {n} epoch{'s' if n != 1 else ''} in "
               f"{time.perf_counter() - started:.1f} s; {n} reused from an earlier run (nothing "
               f"changed since it; --force redoes everything)")
    for line in rest:
        _say(args, line)
    return True


def _cmd_analyze(args) -> int:
    if _already_done(args):
        return 0
    if args.jobs != 1 and not args.scheduler:  # workers import torch while this process does
        from .execution import prepare_workers
        prepare_workers(["analysis.api"] + ([] if args.no_report else ["analysis.report"]))
    from . import RunOptions, analyze_series
    from .portraits import PortraitOptions
    from .report import write_report

    conditions = _read_conditions(args)
    inputs_file = args.inputs
    if conditions is not None:
        args.inputs = None  # not one input: each condition sets it
    settings = _settings_options(args)
    args.inputs = inputs_file
    _check_device(args.device)
    _check_model_args(args)
    if args.scheduler and args.jobs not in (1, -1):
        logger.info("--scheduler given: --jobs %s is ignored (the cluster decides)", args.jobs)
    series = _select(_open_series(args.dir, args), args.epochs, args.every)
    _check_log(args)
    _preflight(series, settings, args, conditions)
    out = _prepare_out(args.out, getattr(args, "resources", None))
    progress = _progress(args)
    started = time.perf_counter()
    logger.info("analyzing %d checkpoint(s) of %s", len(series), args.dir)
    run = RunOptions(jobs=args.jobs, scheduler=args.scheduler, device=args.device,
                     progress=progress, strict=args.strict, out=out, force=args.force,
                     log_column=args.log_column, log_offset=args.log_offset,
                     localize=args.localize, max_states=args.max_states)
    title = f"ghostscope: {Path(args.dir).name or args.dir}"
    report_options = dict(models=series, jobs=args.jobs, scheduler=args.scheduler,
                          progress=progress, force=args.force, device=args.device,
                          options=PortraitOptions.make(projection=args.projection), title=title,
                          source=str(Path(args.dir).resolve()))
    from .conditions import CONDITIONS_FILE
    if conditions is None and (out / CONDITIONS_FILE).is_file():
        raise UsageError(f"{out}: holds an analysis at several input conditions "
                         f"({CONDITIONS_FILE}); re-run it with --inputs FILE, or pass another "
                         f"--out for one input")
    if conditions is not None:
        if (out / "summary.json").is_file():
            raise UsageError(f"{out}: holds an analysis at one input (summary.json); pass "
                             f"another --out for the conditions, or remove that analysis")
        return _analyze_conditions(args, series, conditions, settings, run, report_options,
                                   started)
    analysis = analyze_series(series, run=run, log=args.log, **settings)
    reused = analysis.options.get("reused_epochs", 0)
    if not analysis.results:
        raise _Failure(_nothing_analyzed(analysis))
    along = None
    if args.input_path:
        from .input_path import analyze_input_path, attach_input_path
        along = analyze_input_path(series, args.input_path,
                                   run=RunOptions.make(run, out=out / "bifurcation"),
                                   **settings)
        analysis = attach_input_path(analysis, along)
        analysis.write_summary(out)  # the epochs and events are written already
    report = None
    if not args.no_report:
        report = write_report(analysis, out, **report_options)
    seconds = time.perf_counter() - started
    lines = [_analysis_summary(analysis, reused, seconds)]
    if along is not None:
        lines.append(f"along {args.input_path}: {along.text()}")
    lines.append(f"results: {out}{os.sep}summary.json, events.csv, epochs{os.sep}")
    if report is not None:
        lines.append(f"report: {report}")
    for line in lines:
        _say(args, line)
    if not analysis.failed:  # a failure may pass next time: a re-run tries again
        from .reuse import record_run
        record_run(_rerun_options(args), args.dir, out, "\n".join(lines).split("\n"),
                   len(analysis.results))
    return 0


def _nothing_analyzed(analysis) -> str:
    first = analysis.failed[0] if analysis.failed else None
    reason = "nothing was analyzed" if first is None else (
        first.reason if first.source in first.reason else f"{first.source}: {first.reason}")
    return f"no checkpoint could be analyzed; first failure: {reason}"


def _analyze_conditions(args, series, conditions, settings, run, report_options,
                        started) -> int:
    """``analyze --inputs FILE`` with named conditions: one analysis per condition."""
    from .conditions import analyze_conditions, write_conditions_report

    out = run.out
    result = analyze_conditions(series, conditions, run=run, log=args.log,
                                input_path=args.input_path, **settings)
    if not any(a.results for a in result.conditions.values()):
        raise _Failure(_nothing_analyzed(next(iter(result.conditions.values()))))
    report = None
    if not args.no_report:
        report = write_conditions_report(result, out, **report_options)
    seconds = time.perf_counter() - started
    for name, analysis in result.conditions.items():
        if not analysis.results:
            _say(args, f"[{name}] {_nothing_analyzed(analysis)}")
            continue
        text = _analysis_summary(analysis, analysis.options.get("reused_epochs", 0),
                                 analysis.options.get("seconds", 0.0))
        _say(args, "\n".join(f"[{name}] {line}" for line in text.splitlines()))
    if result.input_path is not None:
        _say(args, f"along {args.input_path}: {result.input_path.text()}")
    _say(args, f"{len(result)} conditions in {seconds:.1f} s; results: {out}{os.sep}"
               f"conditions.json, events.csv, conditions{os.sep}NAME{os.sep}")
    if report is not None:
        _say(args, f"report: {report}")
    return 0


def _analysis_summary(analysis, reused: int, seconds: float) -> str:
    n = len(analysis.results)
    parts = [f"analyzed {n} epoch{'s' if n != 1 else ''} in {seconds:.1f} s"]
    if reused:
        parts.append(f"{reused} reused from an earlier run")
    if analysis.failed:
        parts.append(f"{len(analysis.failed)} failed (listed in summary.json)")
    kinds: Dict[str, int] = {}
    for e in analysis.events:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    events = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())) or "none"
    transients = getattr(analysis, "transients", ())
    if transients:
        plural = "s" if len(transients) != 1 else ""
        events += (f" ({len(transients)} transient ghost{plural} seen at one checkpoint only, "
                   f"not counted)")
    last = analysis.results[-1]
    from .epoch import counts_text
    from .restructuring import describe_restructuring
    story = "\n".join(describe_restructuring(analysis.restructuring(), analysis.drop))
    return (f"{'; '.join(parts)}\n"
            f"events: {events}\n"
            f"{story}\n"
            f"last epoch ({last.epoch}): {counts_text(last.counts())}")


def _cmd_find(args) -> int:
    from . import analyze_checkpoint
    from .portraits import single_portrait
    from .sources import ModelSource

    path = Path(args.file)
    if not path.exists():
        raise UsageError(f"{args.file}: no such file; pass a checkpoint file")
    if path.is_dir():
        raise UsageError(f"{args.file}: is a directory; use `{PROG} analyze {args.file} --out "
                         f"OUT` for a series, or pass one of its files")
    settings = _settings_options(args)
    _check_device(args.device)
    _check_model_args(args)
    from checkpoints import CheckpointError, CheckpointSeries
    try:
        one = CheckpointSeries.from_files([path], strict=True, **_load_options(args))
    except CheckpointError:
        one = None  # analyze_checkpoint reports the file's problem below
    if one is not None:
        _preflight(one, settings, args)
    from .resources import ResourceLimits, TooLarge
    try:
        result = analyze_checkpoint(str(path), device=args.device,
                                    load_options=_load_options(args),
                                    limits=ResourceLimits(max_states=args.max_states), **settings)
    except TooLarge as error:
        raise UsageError(str(error)) from None
    except ValueError as error:  # the analysis's own reasons: one line naming the file
        text = _one_line(error)
        raise _Failure(text if str(path) in text else f"{path}: {text}") from None
    if args.out:
        out = _prepare_out(args.out, getattr(args, "resources", None))
        stem = result.save(out / f"epoch_{int(result.epoch):04d}")
        png = single_portrait(result, ModelSource(path=str(path), options=_load_options(args)),
                              out / f"epoch_{int(result.epoch):04d}.png",
                              input=settings.get("input"), drive=settings.get("drive"),
                              time=settings.get("time"), device=args.device)
        logger.info("wrote %s.json, %s.npz and %s", stem, stem, png)
    diagram = None
    if getattr(args, "input_path", None):
        from checkpoints.loading import load_checkpoint

        from .bifurcation import bifurcation_diagram
        from .epoch import make_settings
        model = load_checkpoint(str(path), **_load_options(args)).model
        options = {k: v for k, v in settings.items() if k != "input"}
        try:
            diagram = bifurcation_diagram(model, args.input_path, time=settings.get("time"),
                                          settings=make_settings(**options),
                                          out=_prepare_out(args.out) if args.out else None)
        except ValueError as error:
            raise UsageError(f"--input-path: {_one_line(error)}") from error
    if args.json:
        payload = result.summary()
        payload["points"] = result.fixed_points.to_dict()["points"]
        if diagram is not None:
            payload["input_path"] = diagram.to_dict()
        print(_to_json(payload))
    else:
        print(_points_table(result))
        if diagram is not None:
            bifs = diagram.continuation.bifurcations
            print(f"along {args.input_path}: {len(diagram.continuation.branches)} branch(es), "
                  f"{len(bifs)} bifurcation(s)")
            for b in bifs:
                print(f"  {b.kind} at s={b.s:.6f}, input={np.round(b.input, 6).tolist()}")
    return 0


def _to_json(payload) -> str:
    """Strict JSON (the project's one rule: :mod:`fixedpoints.serialization`)."""
    from fixedpoints.serialization import json_text
    return json_text(payload)


def _points_table(result) -> str:
    fp = result.fixed_points
    from .epoch import counts_text
    lines = [f"{result.source}: epoch {result.epoch}, {fp.n_states} states, {fp.time} time",
             (f"{len(fp)} point{'s' if len(fp) != 1 else ''}: "
              f"{counts_text(result.counts())}  (finder: {fp.status.name.lower()})"),
             fp.certification_text()]
    if len(fp):
        native = "|λ|max" if fp.time == "discrete" else "Re λmax"
        lines.append(f"{'#':>3}  {'kind':<9}{'index':>5}  {'speed q':>10}  {'|x|':>8}  "
                     f"{native:>8}  {'certified r':>11}  {'error':>8}  stability")
        order = np.lexsort((fp.speed, fp.n_unstable))
        for i in order[:200]:
            ev = fp.eigvals[i]
            top = np.max(np.abs(ev)) if fp.time == "discrete" else np.max(np.real(ev))
            lines.append(f"{i:>3}  {str(fp.kind[i]):<9}{int(fp.n_unstable[i]):>5}  "
                         f"{float(fp.speed[i]):>10.2e}  {float(np.linalg.norm(fp.x[i])):>8.3f}  "
                         f"{float(top):>8.4f}  {float(fp.certified_radius[i]):>11.2e}  "
                         f"{float(fp.error_bound[i]):>8.1e}  "
                         f"{'proved' if fp.stability_certified[i] else '-'}")
        if len(fp) > 200:
            lines.append(f"... {len(fp) - 200} more (use --json or --out)")
    ghosts = result.ghosts
    if ghosts is not None and len(ghosts):
        lines.append(f"{len(ghosts)} ghost(s):")
        for j in range(len(ghosts)):
            lines.append(f"  ghost {j}: |x|={float(np.linalg.norm(ghosts.x[j])):.3f}, "
                         f"speed={float(ghosts.speed[j]):.3g}, "
                         f"passage_time={float(ghosts.passage_time[j]):.3g}, "
                         f"strength={float(ghosts.strength[j]):.3g} "
                         f"({ghosts.strength_class[j]}), "
                         f"fixed_point_distance={float(ghosts.fixed_point_distance[j]):.3g}, "
                         f"exclusion_radius={float(ghosts.exclusion_radius[j]):.3g}")
    return "\n".join(lines)


def _cmd_info(args) -> int:
    from checkpoints import CheckpointError

    _check_model_args(args)
    series = _open_series(args.dir, args)
    entries = series.entries
    info: Dict[str, Any] = {"directory": str(Path(series.directory or args.dir).resolve()),
                            "files": len(entries)}
    run = series.run
    if run is not None and os.path.abspath(run.root) != os.path.abspath(run.checkpoint_dir):
        info["run"] = {"root": str(Path(run.root).resolve()), "reason": run.reason}
    epochs = [e.epoch for e in entries if e.epoch is not None]
    info["epochs"] = {"first": min(epochs) if epochs else None,
                      "last": max(epochs) if epochs else None, "count": len(epochs),
                      "unnumbered": series.unnumbered}
    config = series.config
    info["config"] = None if config is None else config.get("path")
    try:
        from .training_logs import curves_summary, find_training_log, read_training_log
        log = args.log or find_training_log(series.directory or args.dir,
                                            also=(run.root,) if run is not None else ())
        if log is not None:
            curve = read_training_log(log, args.log_column, args.log_offset)
            info["training_log"] = curves_summary(curve)
        else:
            info["training_log"] = None
    except Exception as error:  # noqa: BLE001 - a bad log is a problem to report, not a crash
        info["training_log"] = f"unreadable: {error}"
    model: Dict[str, Any] = {}
    for i in range(len(entries)):
        try:
            checkpoint = series.load(i)
        except CheckpointError:
            continue
        m = checkpoint.model
        model = {"file": checkpoint.path, "architecture": checkpoint.architecture,
                 "class": type(m).__name__,
                 "n_states": getattr(m, "n_states", getattr(m, "hidden_size", None)),
                 "n_inputs": getattr(m, "n_inputs", getattr(m, "input_size", None)),
                 "n_outputs": getattr(m, "n_outputs", None),
                 "time": getattr(m, "time", "discrete"),
                 "continuous_form": callable(getattr(m, "velocity", None)),
                 "config": checkpoint.config, "notes": list(checkpoint.notes),
                 "convention": checkpoint.convention,
                 "convention_reason": checkpoint.convention_reason}
        break
    info["model"] = model or None
    if not args.quick:
        series.validate()
    from checkpoints import group_problems
    info["problems"] = [str(p) for p in series.problems]
    info["problem_groups"] = [{"reason": g.reason, "fix": g.fix, "count": len(g.paths),
                               "first": g.paths[0], "text": str(g)}
                              for g in group_problems(series.problems)]
    info["skipped"] = [{"file": path, "reason": reason} for path, reason in series.skipped]
    info["files_list"] = [{"file": e.name, "epoch": e.epoch, "step": e.step}
                          for e in entries]
    if args.json:
        print(_to_json(info))
    else:
        print(_info_text(info, args.quick))
    return 0 if model else 1


def _info_text(info: Dict[str, Any], quick: bool) -> str:
    e = info["epochs"]
    lines = []
    if info.get("run"):
        lines.append(f"run: {info['run']['root']} ({info['run']['reason']})")
    lines += [f"directory: {info['directory']}",
              f"files: {info['files']} checkpoint(s), epochs {e['first']}..{e['last']}"
             + (f", {len(e['unnumbered'])} without a number (last)" if e["unnumbered"] else "")]
    names = [f["file"] for f in info["files_list"]]
    shown = names if len(names) <= 8 else names[:4] + ["..."] + names[-3:]
    lines.append("  " + "  ".join(shown))
    lines.append(f"config: {info['config'] or 'none found (sizes read from the weights)'}")
    log = info["training_log"]
    if isinstance(log, dict):
        lines.append(f"training log: {log['path']} ({log['column']}, {log['rows']} rows, loss "
                     f"{log['first_loss']:.4g} -> {log['last_loss']:.4g})")
        if log.get("note"):
            lines.append(f"  note: {log['note']}")
    else:
        lines.append(f"training log: {log or 'none found (no loss curve, no drop detection)'}")
    m = info["model"]
    if m:
        form = " (also a continuous form: --time continuous)" if m["continuous_form"] else ""
        lines.append(f"model: {m['architecture']} ({m['class']}), {m['n_states']} states, "
                     f"{m['n_inputs']} inputs, {m['n_outputs']} outputs, {m['time']} time{form}")
        if m.get("convention"):
            lines.append(f"  convention: {m['convention']} ({m['convention_reason']})")
        for note in m["notes"]:
            lines.append(f"  note: {note}")
    else:
        lines.append("model: no checkpoint could be loaded (see problems)")
    for item in info.get("skipped", []):
        lines.append(f"skipped (not a checkpoint): {Path(item['file']).name}: {item['reason']}")
    problems = info["problems"]
    checked = "first loadable file only (--quick)" if quick else "every file loaded"
    groups = info.get("problem_groups", [])
    distinct = f" ({len(groups)} distinct)" if len(groups) > 1 else ""
    lines.append(f"problems ({checked}): {len(problems) or 'none'}{distinct}")
    lines.extend(f"  {g['text']}" for g in groups)
    return "\n".join(lines)


def _cmd_train_paper(args) -> int:
    from checkpoints import train_paper_run

    started = time.perf_counter()
    try:
        run = train_paper_run(args.task, args.out, epochs=args.epochs, n_states=args.n_states,
                              rank=args.rank if args.rank is not None else 2, seed=args.seed,
                              lr=args.lr, repeats=args.repeats,
                              save_every=args.save_every or 1, overwrite=args.overwrite)
    except ValueError as error:
        raise UsageError(str(error)) from None
    except FileExistsError as error:
        raise UsageError(f"{args.out}: {error}") from None
    _say(args, f"trained the paper's model on {args.task} for {args.epochs} epochs in "
               f"{time.perf_counter() - started:.1f} s: loss {run.loss_history[0]:.4g} -> "
               f"{run.loss_history[-1]:.4g}, accuracy {run.accuracy_history[-1]:.3f}")
    _say(args, f"wrote {args.out}/models/model_epoch*.pt, final.npz and model_final.pt "
               f"(analyze them with `{PROG} analyze {args.out} --out {args.out}-analysis`)")
    return 0


def _cmd_train(args) -> int:
    from checkpoints.train import train

    if args.paper or args.task in ("dcdt", "dmts"):
        return _cmd_train_paper(args)
    if args.lr is None:
        args.lr = 0.01
    arch = args.arch or ("rank_one_rnn" if args.task == "delayed_activation" else "leaky_rnn")
    if args.epochs < 1:
        raise UsageError(f"--epochs {args.epochs}: train at least 1 epoch")
    save_every = args.save_every or max(1, args.epochs // 20)
    out = Path(args.out)
    started = time.perf_counter()
    try:
        result = train(args.task, arch, out, epochs=args.epochs, lr=args.lr,
                       optimizer=args.optimizer, seed=args.seed, batch_size=args.batch_size,
                       save_every=save_every, n_states=args.n_states, rank=args.rank,
                       tcr_lambda=args.tcr_lambda, overwrite=args.overwrite,
                       progress=True if _progress(args) else None)
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from None
    except FileExistsError as error:
        raise UsageError(f"{args.out}: {error}".replace("train: out_dir=", "")) from None
    n_files = len(list(out.glob("model_epoch*.pt")))
    _say(args, f"trained {arch} on {args.task} for {args.epochs} epochs in "
               f"{time.perf_counter() - started:.1f} s: loss {result.losses[0]:.4g} -> "
               f"{result.final_loss:.4g}, accuracy {result.accuracies[-1]:.3f}")
    _say(args, f"checkpoints: {n_files} files in {out} (analyze them with `{PROG} analyze "
               f"{out} --out {out}-analysis`)")
    return 0


def _demo_dir(out: Optional[str]) -> Path:
    if out is not None:
        path = Path(out)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise UsageError(f"{out}: exists and is not empty; pass a new directory with --out")
        return path
    base = Path("ghostscope_demo")
    path, k = base, 2
    while path.exists():
        path = Path(f"{base}_{k}")
        k += 1
    return path


def _cmd_demo(args) -> int:
    if args.jobs != 1:  # the workers' imports overlap with the training
        from .execution import prepare_workers
        prepare_workers(["analysis.api", "analysis.report"])
    from checkpoints.train import train

    from . import RunOptions, analyze_series
    from .report import write_report

    root = _demo_dir(args.out)
    ckpt_dir, out = root / "checkpoints", root / "analysis"
    progress = _progress(args)
    started = time.perf_counter()
    cfg = DEMO_TRAINING
    names = {"rank_one_rnn": "rank-one RNN", "leaky_rnn": "leaky RNN"}
    logger.info("training a %d-unit %s on %s (%d epochs) into %s", cfg["n_states"],
                names.get(cfg["architecture"], cfg["architecture"]),
                cfg["task"].replace("_", " "), cfg["epochs"], ckpt_dir)
    train(cfg["task"], cfg["architecture"], ckpt_dir, epochs=cfg["epochs"], lr=cfg["lr"],
          optimizer=cfg["optimizer"], seed=cfg["seed"], save_every=cfg["save_every"],
          n_states=cfg["n_states"], confidence=cfg.get("confidence"),
          progress=True if progress else None)
    trained = time.perf_counter()
    from checkpoints import CheckpointSeries
    series = CheckpointSeries.from_dir(ckpt_dir)
    logger.info("analyzing %d checkpoints", len(series))
    analysis = analyze_series(series, run=RunOptions(jobs=args.jobs, progress=progress, out=out),
                              **_DEMO_SETTINGS)
    report = write_report(analysis, out, models=series, jobs=args.jobs, progress=progress,
                          title="ghostscope demo: rank-one RNN, delayed activation",
                          source=str(ckpt_dir.resolve()))
    done = time.perf_counter()
    _say(args, f"trained {len(series)} checkpoints in {trained - started:.1f} s")
    _say(args, _analysis_summary(analysis, 0, done - trained).replace(
        "epochs in", "epochs and wrote the report in", 1))
    _say(args, f"re-run the analysis (reuses what is done): {PROG} analyze {ckpt_dir} "
               f"--out {out}")
    _say(args, f"report: {report}")
    return 0


# ------------------------------------------------------------------------------ entry point
#: Python keyword -> the flag a command-line user types instead.
_FLAGS = {"pattern": "--pattern", "architecture": "--arch", "model_factory": "--model",
          "log_column": "--log-column", "n_initial": "--n-initial", "seed": "--seed",
          "max_states": "--max-states", "time": "--time", "input": "--input",
          "drive": "--drive", "device": "--device", "jobs": "--jobs"}
_KEYWORDS = "|".join(_FLAGS)


def _cli_words(text: str) -> str:
    """A library message in command-line words: ``pattern=`` becomes ``--pattern``."""
    import re

    flag = lambda m: _FLAGS[m.group(1)]  # noqa: E731
    text = re.sub(rf"\b({_KEYWORDS}|trust_pickle)=(?:True\b)?\s*\((--[\w-]+)\)", r"\2", text)
    text = re.sub(rf"\s*\(({_KEYWORDS})=[^()\s,]*\)", "", text)
    text = re.sub(r"\btrust_pickle=True\b", "--trust-pickle", text)
    text = re.sub(rf"\b({_KEYWORDS})=(?=[\s,;)]|$)", flag, text)
    return re.sub(rf"\b({_KEYWORDS})=", lambda m: flag(m) + " ", text)


def _one_line(error: BaseException) -> str:
    text = _cli_words(" ".join(str(error).split()))
    if not text:
        text = type(error).__name__
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``ghostscope`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help/--version (0) or bad usage (2)
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    command = f"{PROG} {args.command}"
    from contextlib import ExitStack

    from .execution import interrupt_on_signals
    with warnings.catch_warnings(), interrupt_on_signals(), ExitStack() as resources:
        args.resources = resources  # e.g. the lock on --out, held until the command ends
        handler = _configure_logging(args.verbose, args.quiet)
        try:
            return _run(args, command)
        finally:
            _remove_logging(handler)


#: errno values of a write that failed for want of space or permission.
_WRITE_ERRNOS = {getattr(errno, n) for n in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM")
                 if hasattr(errno, n)}


def _run(args, command: str) -> int:
    try:
        return int(args.func(args) or 0)
    except UsageError as error:
        print(f"{command}: error: {_one_line(error)}", file=sys.stderr)
        if args.verbose:
            traceback.print_exc()
        return 2
    except BrokenPipeError:  # `ghostscope info DIR | head`: the reader has what it wanted
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes
        except (OSError, ValueError):
            pass
        return 141
    except (OverflowError, FloatingPointError) as error:
        where = getattr(args, "file", None) or getattr(args, "dir", None) or "the input"
        print(f"{command}: error: {where}: numbers overflowed float64 ({_one_line(error)}); "
              f"the states or weights are too large (diverged training?): analyze earlier "
              f"checkpoints, or pass smaller --input / --drive values", file=sys.stderr)
        return 1
    except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM / SIGHUP (execution.Interrupted)
        print(f"{command}: interrupted; files written so far are complete, re-run to resume",
              file=sys.stderr)
        return int(getattr(error, "exit_status", 130))
    except Exception as error:  # noqa: BLE001 - every failure becomes one line
        from checkpoints import CheckpointError

        from .decoding import ResultFileError
        from .outdir import OutDirBusy, OutputError, output_error
        if isinstance(error, OSError) and not isinstance(error, OutputError) and \
                error.errno in _WRITE_ERRNOS:  # disk full, read-only: name the file and fix
            error = output_error(error.filename or getattr(args, "out", None) or ".", error)
        if isinstance(error, (CheckpointError, _Failure, OutDirBusy, OutputError,
                              ResultFileError)):
            text = _one_line(error)
        else:
            text = f"{type(error).__name__}: {_one_line(error)}"
        hint = "" if args.verbose else " (run with -v for the traceback)"
        print(f"{command}: error: {text}{hint}", file=sys.stderr)
        if args.verbose:
            traceback.print_exc()
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
