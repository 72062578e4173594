"""A real PyTorch Lightning run (GRU, ModelCheckpoint, CSVLogger, TensorBoardLogger) read as it
lies: `ghostscope analyze lightning_logs/` finds the checkpoints and the loss curve."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pl = pytest.importorskip("pytorch_lightning")
pytest.importorskip("tensorboard")

import torch  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*treespec:DeprecationWarning")
from torch import nn  # noqa: E402


class GRUModule(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(1, 6, batch_first=True)
        self.readout = nn.Linear(6, 1)

    def forward(self, x):
        h, _ = self.rnn(x)
        return self.readout(h)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.05)


@pytest.fixture(scope="module")
def lightning_run(tmp_path_factory):
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    root = tmp_path_factory.mktemp("pl")
    torch.manual_seed(0)
    x = torch.randn(64, 10, 1)
    y = 0.3 * torch.cumsum(x, 1)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    module = GRUModule()
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", devices=1, default_root_dir=root,
                         logger=[CSVLogger(root), TensorBoardLogger(root)],
                         callbacks=[ModelCheckpoint(save_top_k=-1, every_n_epochs=1)],
                         enable_progress_bar=False, enable_model_summary=False,
                         log_every_n_steps=1)
    trainer.fit(module, data, data)
    return root / "lightning_logs", module


def test_analyze_reads_the_checkpoints_and_the_loss_curve(lightning_run, tmp_path):
    logs, module = lightning_run
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "analysis.cli", "analyze", str(logs), "--out",
                           str(out), "--no-report", "-q", "--n-initial", "32"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == [0, 1, 2] and not summary["failed"]
    assert summary["loss_source"].endswith("version_0/metrics.csv")
    assert summary["loss_column"] == "train_loss_epoch"
    import csv
    with open(logs / "version_0" / "metrics.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["train_loss_epoch"]]
    expect = {int(r["epoch"]): float(r["train_loss_epoch"]) for r in rows}
    losses = [e["loss"] for e in summary["per_epoch"]]
    np.testing.assert_allclose(losses, [expect[e] for e in (0, 1, 2)], rtol=0, atol=0)
    # the last checkpoint's GRU is the trained module's GRU
    from checkpoints import CheckpointSeries
    series = CheckpointSeries.from_run(logs)
    last = series[len(series) - 1]
    assert last.architecture == "gru" and last.epoch == 2 and last.step == 12
    torch.testing.assert_close(last.model.rnn.weight_hh_l0, module.rnn.weight_hh_l0.double())
    torch.testing.assert_close(last.model.readout_layer.weight, module.readout.weight.double())


def test_tensorboard_events_give_the_same_curve(lightning_run):
    from analysis.training_logs import find_training_log, read_training_log

    logs, _ = lightning_run
    events = sorted(logs.glob("version_*/events.out.tfevents.*"))
    assert len(events) == 1
    assert find_training_log(events[0].parent) == events[0]
    curve = read_training_log(events[0])
    assert curve.column == "train_loss_epoch" and list(curve.epochs) == [0, 1, 2]
    csv_curve = read_training_log(logs / "version_0" / "metrics.csv")
    np.testing.assert_allclose(curve.loss, csv_curve.loss, rtol=1e-6)
    val = read_training_log(events[0], column="val_loss")
    assert len(val) == 3
    steps = read_training_log(logs / "version_0" / "metrics.csv", column="train_loss_step")
    assert list(steps.epochs) == [0, 1, 2] and "averaged" in steps.note
