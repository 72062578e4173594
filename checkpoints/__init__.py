"""checkpoints: directories of RNN checkpoints in, ordered series of models out (and a trainer).

Reading::

    from checkpoints import CheckpointSeries, load_checkpoint
    series = CheckpointSeries.from_dir("runs/flipflop")      # lazy, natural epoch order
    for checkpoint in series:                                # bad files -> series.problems
        model = checkpoint.model                             # step(x, u) / velocity(x, u)

Writing (the trainer writes exactly the layout the reader reads)::

    from checkpoints import train, FLIPFLOP_DEMO
    result = train(out_dir="runs/flipflop", **FLIPFLOP_DEMO)

This package never imports ``fixedpoints``; ``analysis`` composes the two.
"""
from .errors import CheckpointError, NotACheckpointError
from .models import (ARCHITECTURES, LeakyRNN, PLRNN, RankOneRNN, RecurrentModel, TORCH_CELLS,
                     TorchRNN, XFormRNN, build_model)
from .paper_model import PaperRNN
from .factory import build_from_factory, load_factory
from .loading import (CHECKPOINT_SUFFIXES, Checkpoint, detect_architecture, find_config,
                      find_recurrent_modules, load_checkpoint, parse_checkpoint_name, read_config)
from .series import CheckpointSeries, SeriesEntry
from .runs import RunLayout, find_run
from .problems import ProblemGroup, group_problems
from .paper_runs import PAPER_TASKS, PaperRun, PaperTask, train_paper_run
from .tasks import (TASKS, CueDiscrimination, DelayedActivation, DelayedAddition,
                    EvidenceAccumulation, FlipFlop, MatchToSample, Task, get_task, masked_mse)
from .train import FLIPFLOP_DEMO, LOG_COLUMNS, TrainResult, checkpoint_name, tcr_penalty, train
from . import ghost_model

__all__ = [
    "CheckpointError", "NotACheckpointError", "ProblemGroup", "group_problems",
    "RunLayout", "find_run", "PAPER_TASKS", "PaperTask", "PaperRun", "train_paper_run",
    "ARCHITECTURES", "TORCH_CELLS", "RecurrentModel", "LeakyRNN", "RankOneRNN", "XFormRNN",
    "PLRNN", "TorchRNN", "PaperRNN", "build_model",
    "load_factory", "build_from_factory",
    "CHECKPOINT_SUFFIXES", "Checkpoint", "load_checkpoint", "detect_architecture",
    "find_recurrent_modules", "parse_checkpoint_name", "find_config", "read_config",
    "CheckpointSeries", "SeriesEntry",
    "Task", "FlipFlop", "DelayedActivation", "CueDiscrimination", "MatchToSample",
    "DelayedAddition", "EvidenceAccumulation", "TASKS", "get_task", "masked_mse",
    "train", "TrainResult", "tcr_penalty", "LOG_COLUMNS", "checkpoint_name", "FLIPFLOP_DEMO",
    "ghost_model",
]
