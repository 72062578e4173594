"""checkpoints: directories of RNN checkpoints in, ordered series of models out (and a trainer).

Reading::

    from checkpoints import CheckpointSeries, load_checkpoint
    series = CheckpointSeries.from_dir("runs/flipflop")      # lazy, natural epoch order
    for checkpoint in series:                                # bad files -> series.problems
        model = checkpoint.model                             # step(x, u) / velocity(x, u)

This package never imports ``fixedpoints``; ``analysis`` composes the two.
"""
from .errors import CheckpointError
from .models import (ARCHITECTURES, LeakyRNN, PLRNN, RankOneRNN, RecurrentModel, TORCH_CELLS,
                     TorchRNN, XFormRNN, build_model)
from .factory import build_from_factory, load_factory
from .loading import (CHECKPOINT_SUFFIXES, Checkpoint, detect_architecture, find_config,
                      find_recurrent_modules, load_checkpoint, parse_checkpoint_name, read_config)
from .series import CheckpointSeries, SeriesEntry

__all__ = [
    "CheckpointError",
    "ARCHITECTURES", "TORCH_CELLS", "RecurrentModel", "LeakyRNN", "RankOneRNN", "XFormRNN",
    "PLRNN", "TorchRNN", "build_model",
    "load_factory", "build_from_factory",
    "CHECKPOINT_SUFFIXES", "Checkpoint", "load_checkpoint", "detect_architecture",
    "find_recurrent_modules", "parse_checkpoint_name", "find_config", "read_config",
    "CheckpointSeries", "SeriesEntry",
]
