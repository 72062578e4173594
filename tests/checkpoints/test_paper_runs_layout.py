"""The trainer for the paper's runs: their tasks, their forward pass, their file layout."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from checkpoints import CheckpointSeries, PaperRNN, load_checkpoint, train_paper_run
from checkpoints.paper_runs import PAPER_TASKS, paper_trials, run_trials


def test_tasks_have_the_papers_timings_and_targets():
    u, y = paper_trials("dcdt")
    assert u.shape == (1000, 22, 1) and y.shape == (1000, 22, 1)
    assert torch.equal(u[0, :2, 0], torch.ones(2)) and torch.equal(u[1, :2, 0], -torch.ones(2))
    assert float(u[:, 2:].abs().sum()) == 0
    assert float(y[:, :12].abs().sum()) == 0
    assert torch.equal(y[0, 12:, 0], torch.ones(10)) and torch.equal(y[1, 12:, 0], -torch.ones(10))
    assert torch.equal(u[2], u[0]) and torch.equal(u[999], u[1])  # 2 types tiled 500 times
    u, y = paper_trials("dmts")
    assert u.shape == (2000, 38, 1)
    cue1, cue2 = u[:4, 0, 0], u[:4, 22, 0]
    assert float(u[:4, 6:22].abs().sum()) == 0 and float(u[:4, 28:].abs().sum()) == 0
    match = (cue1 == cue2).to(torch.float32)
    assert torch.equal(y[:4, 28:, 0], match[:, None].expand(4, 10))
    assert float(y[:, :28].abs().sum()) == 0
    assert PAPER_TASKS["dcdt"].optimizer == "sgd" and PAPER_TASKS["dcdt"].lr == 1e-3
    assert PAPER_TASKS["dmts"].optimizer == "adam" and PAPER_TASKS["dmts"].sigma == 0.01


def test_forward_pass_is_the_authors_loop():
    torch.manual_seed(0)
    model = PaperRNN(1, 9, 1, rank=2).double()
    inputs = torch.randn(4, 7, 1, dtype=torch.float64)
    torch.manual_seed(5)
    r0 = torch.tanh(0.3 * torch.randn(4, 9, dtype=torch.float64)).numpy()
    torch.manual_seed(5)
    got = run_trials(model, inputs).detach().numpy()
    p = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    r, expect = r0, []
    for t in range(7):  # output read from r_t before the update, as their script does
        expect.append(np.tanh((r @ p["S_l"]) @ p["W_out.weight"].T + p["W_out.bias"]))
        z = np.tanh(inputs[:, t].numpy() @ p["W_in.weight"].T + p["W_in.bias"]
                    + r @ (p["S_l"] @ p["S_r"]))
        r = 0.5 * r + 0.5 * z
    np.testing.assert_allclose(got, np.stack(expect, 1), rtol=0, atol=1e-12)


def test_layout_histories_and_alignment(tmp_path):
    run = tmp_path / "results_dcdt" / "seed_0"
    result = train_paper_run("dcdt", run, epochs=4, n_states=12, repeats=3, seed=0)
    names = sorted(p.name for p in (run / "models").iterdir())
    assert names == [f"model_epoch{e}.pt" for e in range(4)]
    assert (run / "model_final.pt").is_file()
    with np.load(run / "final.npz") as data:
        assert sorted(data.files) == ["accuracy_history", "grad_history", "loss_history"]
        assert all(data[k].dtype == np.float64 and data[k].shape == (4,) for k in data.files)
        np.testing.assert_array_equal(data["loss_history"], result.loss_history)
    sd = torch.load(run / "models" / "model_epoch0.pt", weights_only=True)
    assert list(sd) == ["S_l", "S_r", "W_in.weight", "W_in.bias", "W_out.weight", "W_out.bias"]
    assert all(v.dtype == torch.float32 for v in sd.values()) and sd["W_out.weight"].shape == (1, 2)
    final = torch.load(run / "model_final.pt", weights_only=True)
    last = torch.load(run / "models" / "model_epoch3.pt", weights_only=True)
    assert all(torch.equal(final[k], last[k]) for k in final)
    # replay: loss_history[0] is the loss before update 0; model_epoch0 holds the weights after it
    torch.manual_seed(0)
    model = PaperRNN(1, 12, 1, rank=2, output="tanh")
    spec = PAPER_TASKS["dcdt"]
    inputs, targets = paper_trials(dataclasses.replace(spec, repeats=3))
    loss = torch.nn.MSELoss()(run_trials(model, inputs), targets)
    loss.backward()
    assert float(loss.detach()) == result.loss_history[0]
    grad = float(model.S_l.grad.norm()) + float(model.S_r.grad.norm())
    assert grad == pytest.approx(result.grad_history[0], rel=1e-6)
    with torch.no_grad():
        expect = model.S_l - 1e-3 * model.S_l.grad
    torch.testing.assert_close(sd["S_l"], expect, rtol=0, atol=1e-7)
    # the run's root loads as it lies; the log is aligned by the authors' offset
    series = CheckpointSeries.from_run(tmp_path / "results_dcdt")
    assert series.directory == str(run / "models") and len(series) == 4
    assert load_checkpoint(series.paths[0]).architecture == "paper_low_rank_rnn"
    from analysis.training_logs import find_training_log, read_training_log
    log = find_training_log(series.directory, also=(series.run.root,))
    assert log == run / "final.npz"
    curve = read_training_log(log)
    assert curve.offset == -1 and "model_epoch" in curve.note
    assert curve.at(0) == result.loss_history[1] and curve.at(2) == result.loss_history[3]
    assert read_training_log(log, offset=0).at(0) == result.loss_history[0]


def test_trainer_refuses_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="dcdt"):
        train_paper_run("flipflop", None, epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        train_paper_run("dcdt", None, epochs=0)
    (tmp_path / "x").write_text("")
    with pytest.raises(FileExistsError):
        train_paper_run("dcdt", tmp_path, epochs=1, repeats=1, n_states=4)
