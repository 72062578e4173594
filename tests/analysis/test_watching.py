"""Analysis during training: ``analysis.watch`` in a plain loop and ``WatchCallback`` in a real
Lightning Trainer (CPU, tiny GRU). Both write the layout of ``ghostscope analyze``, which then
resumes from it (every watched epoch reused)."""
from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
import torch
from torch import nn

OPTIONS = dict(n_initial=32, n_trajectories=16)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(1, 4, batch_first=True)
        self.readout = nn.Linear(4, 1)

    def forward(self, x):
        return self.readout(self.rnn(x)[0])


def _data():
    torch.manual_seed(0)
    x = torch.randn(32, 10, 1)
    return x, 0.3 * torch.cumsum(x, 1)


def _check_out(out, epochs, losses):
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == epochs
    assert [e["loss"] for e in summary["per_epoch"]] == pytest.approx(losses, rel=1e-12)
    for e in epochs:
        assert (out / "epochs" / f"epoch_{e:04d}.npz").is_file()
        assert (out / "checkpoints" / f"epoch_{e:04d}.pt").is_file()
    page = (out / "report.html").read_text(encoding="utf-8")
    assert [int(e) for e in re.findall(r'<img data-epoch="(\d+)"', page)] == epochs
    with open(out / "checkpoints" / "train_log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == epochs


def _resumes(out, epochs):
    from analysis import analyze_series

    again = analyze_series(out / "checkpoints", **OPTIONS, run=dict(out=out))
    assert again.epochs == epochs
    assert again.options["reused_epochs"] == len(epochs)  # nothing recomputed


def test_watch_in_a_plain_loop(tmp_path):
    from analysis import watch

    net, (x, y) = Net(), _data()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    losses, states = {}, {}
    with watch(net, every=2, out=tmp_path, **OPTIONS) as w:
        for epoch in range(5):
            loss = nn.functional.mse_loss(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            queued = w.step(epoch, loss=loss.item())
            assert queued == (epoch % 2 == 0)
            if queued:
                losses[epoch] = loss.item()
                states[epoch] = {k: v.clone() for k, v in net.rnn.state_dict().items()}
    assert w.errors == [] and w.analyzed == [0, 2, 4]
    _check_out(tmp_path, [0, 2, 4], [losses[e] for e in (0, 2, 4)])
    for e, state in states.items():  # the snapshot is the model as it was at that epoch
        saved = torch.load(tmp_path / "checkpoints" / f"epoch_{e:04d}.pt", weights_only=True)
        assert set(saved) == set(state)
        for k in state:
            assert torch.equal(saved[k], state[k])
    assert not torch.equal(states[0]["weight_hh_l0"], states[4]["weight_hh_l0"])
    _resumes(tmp_path, [0, 2, 4])
    with pytest.raises(RuntimeError, match="closed"):
        w.step(6)


def test_watch_names_the_module_to_pass():
    from analysis.watching import recurrent_part

    two = nn.ModuleDict({"a": nn.GRU(1, 2), "b": nn.RNN(1, 2)})
    with pytest.raises(ValueError, match="pass rnn='name'"):
        recurrent_part(two)
    assert recurrent_part(two, "b") is two["b"]
    net = Net()
    assert recurrent_part(net) is net.rnn


def test_a_dead_background_process_is_reported_not_waited_for(tmp_path):
    from analysis import watch

    w = watch(nn.GRU(1, 3), every=1, out=tmp_path, report=False, **OPTIONS)
    w._process.kill()
    w._process.join(timeout=30)
    w.step(0)
    with pytest.raises(RuntimeError, match="process ended"):
        w.wait(timeout=60)
    w.close(timeout=60)
    assert not w._process.is_alive()


pl = pytest.importorskip("pytorch_lightning")


class LitNet(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = Net()

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.05)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_lightning_callback_watches_a_real_trainer(tmp_path):
    from analysis import WatchCallback

    x, y = _data()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    module = LitNet()
    seen = {}

    class Record(pl.Callback):  # the loss Lightning logged at each epoch end
        def on_train_epoch_end(self, trainer, pl_module):
            seen[trainer.current_epoch] = float(trainer.callback_metrics["train_loss"])

    callback = WatchCallback(every=1, out=tmp_path, **OPTIONS)
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[Record(), callback])
    trainer.fit(module, data)
    assert callback.watcher.errors == [] and callback.watcher.analyzed == [0, 1, 2]
    _check_out(tmp_path, [0, 1, 2], [seen[e] for e in range(3)])
    final = torch.load(tmp_path / "checkpoints" / "epoch_0002.pt", weights_only=True)
    for k, v in module.net.rnn.state_dict().items():
        assert np.array_equal(final[k].numpy(), v.numpy())
    _resumes(tmp_path, [0, 1, 2])
