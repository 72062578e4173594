"""checkpoints: directories of RNN checkpoints in, ordered series of models out (and a trainer)."""
from .models import (ARCHITECTURES, LeakyRNN, PLRNN, RankOneRNN, RecurrentModel, TORCH_CELLS,
                     TorchRNN, XFormRNN, build_model)

__all__ = [
    "ARCHITECTURES", "TORCH_CELLS", "RecurrentModel", "LeakyRNN", "RankOneRNN", "XFormRNN",
    "PLRNN", "TorchRNN", "build_model",
]
