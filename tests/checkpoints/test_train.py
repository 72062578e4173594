"""Trainer: the directory layout, the epoch convention, determinism, TCR, SGD arithmetic, errors."""
import csv
import json
import math

import numpy as np
import pytest
import torch

from checkpoints.models import build_model
from checkpoints.tasks import CueDiscrimination, FlipFlop, get_task
from checkpoints.train import FLIPFLOP_DEMO, LOG_COLUMNS, TrainResult, tcr_penalty, train

SMALL_FLIPFLOP = FlipFlop(n_bits=2, trial_steps=12, pulse_prob=0.2)


def _small(out_dir, **kw):
    options = dict(epochs=7, lr=1e-2, seed=3, batch_size=4, save_every=3, n_states=8)
    options.update(kw)
    return train(SMALL_FLIPFLOP, "leaky_rnn", out_dir, **options)


def _read_log(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], np.array(rows[1:], dtype=float)


def _batch(result, task):
    """The batch of epoch 0, regenerated from the data seed recorded in config.json."""
    gen = torch.Generator().manual_seed(result.config["training"]["data_seed"])
    return task.sample(result.config["training"]["batch_size"], gen, dtype=torch.float32)


def test_writes_exactly_the_reader_layout(tmp_path):
    out = tmp_path / "run"
    result = _small(out)
    assert isinstance(result, TrainResult) and result.out_dir == out
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["config.json", "train_log.csv", "model_epoch0.pt", "model_epoch3.pt",
                            "model_epoch6.pt", "model_epoch7.pt"])
    header, rows = _read_log(out / "train_log.csv")
    assert tuple(header) == LOG_COLUMNS == ("epoch", "loss", "accuracy", "grad_norm")
    np.testing.assert_array_equal(rows[:, 0], np.arange(8))
    # the log holds the exact values of the result (repr round-trips floats)
    np.testing.assert_array_equal(rows[:, 1], result.losses)
    np.testing.assert_array_equal(rows[:, 2], result.accuracies)
    np.testing.assert_array_equal(rows[:, 3], result.grad_norms)
    assert result.final_loss == result.losses[-1]

    config = json.loads((out / "config.json").read_text())
    assert set(config) >= {"architecture", "model", "task", "training", "ghostscope_version"}
    assert config["architecture"] == "leaky_rnn"
    assert config["task"] == {"name": "flipflop", "n_bits": 2, "trial_steps": 12, "pulse_prob": 0.2}
    training = config["training"]
    for key, value in dict(optimizer="adam", lr=1e-2, epochs=7, seed=3, save_every=3,
                           tcr_lambda=0.0, batch_size=4, dtype="float32").items():
        assert training[key] == value, key
    assert config["result"]["final_loss"] == result.final_loss


def test_config_round_trips_to_rebuild_every_checkpoint(tmp_path):
    out = tmp_path / "run"
    result = _small(out)
    config = json.loads((out / "config.json").read_text())
    model = build_model(config["architecture"], **config["model"])
    for epoch in (0, 3, 6, 7):
        state = torch.load(out / f"model_epoch{epoch}.pt", weights_only=True)
        assert all(type(v) is torch.Tensor for v in state.values())
        model.load_state_dict(state, strict=True)
    for key, value in result.model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert get_task(**config["task"]) == SMALL_FLIPFLOP


def test_log_row_e_describes_checkpoint_e(tmp_path):
    """Epoch e = weights after e updates; row e is the loss of exactly those weights."""
    out = tmp_path / "run"
    task = get_task("delayed_activation", delay=5)
    result = train(task, "leaky_rnn", out, epochs=6, lr=0.5, optimizer="sgd", seed=1,
                   save_every=2, n_states=6, model_kwargs=dict(output="sigmoid"))
    config = json.loads((out / "config.json").read_text())
    inputs, targets, mask = task.sample(1, dtype=torch.float32)
    for epoch in (0, 2, 4, 6):
        model = build_model(config["architecture"], **config["model"])
        model.load_state_dict(torch.load(out / f"model_epoch{epoch}.pt", weights_only=True))
        with torch.no_grad():
            outputs, _ = model(inputs)
        loss = float(task.loss(outputs, targets, mask))
        assert loss == pytest.approx(result.losses[epoch], rel=1e-6)
    assert len(set(result.losses.tolist())) > 1, "training must change the loss"


def test_same_seed_same_run_different_seed_different_run():
    a = _small(None)
    b = _small(None)
    c = _small(None, seed=4)
    np.testing.assert_array_equal(a.losses, b.losses)
    np.testing.assert_array_equal(a.grad_norms, b.grad_norms)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key])
    assert not np.array_equal(a.losses, c.losses)


def test_training_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    _small(None, epochs=1)
    assert torch.equal(before, torch.get_rng_state())


def test_grad_norm_and_one_sgd_step_match_a_direct_computation():
    task = SMALL_FLIPFLOP
    lr = 0.05
    result = train(task, "leaky_rnn", None, epochs=1, lr=lr, optimizer="sgd", seed=11,
                   batch_size=4, n_states=8)
    torch.manual_seed(11)
    initial = build_model("leaky_rnn", **result.config["model"])
    inputs, targets, mask = _batch(result, task)
    outputs, _ = initial(inputs)
    loss = task.loss(outputs, targets, mask)
    names = [name for name, _ in initial.named_parameters()]
    grads = torch.autograd.grad(loss, [p for _, p in initial.named_parameters()])
    norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
    assert result.losses[0] == pytest.approx(float(loss.detach()), rel=1e-6)
    assert result.grad_norms[0] == pytest.approx(norm, rel=1e-5)
    trained = dict(result.model.named_parameters())
    for name, param, grad in zip(names, initial.parameters(), grads):
        torch.testing.assert_close(trained[name].detach(), (param - lr * grad).detach(),
                                   rtol=0, atol=1e-7)


def test_sgd_with_lr_zero_leaves_weights_unchanged(tmp_path):
    out = tmp_path / "run"
    result = _small(out, optimizer="sgd", lr=0.0, epochs=4, save_every=1)
    first = torch.load(out / "model_epoch0.pt", weights_only=True)
    for epoch in range(1, 5):
        state = torch.load(out / f"model_epoch{epoch}.pt", weights_only=True)
        for key in first:
            assert torch.equal(first[key], state[key])
    assert (result.grad_norms > 0).all(), "gradients exist; only the step is zero"


def test_tcr_penalty_adds_exactly_lambda_times_the_penalty():
    task = SMALL_FLIPFLOP
    lam = 0.7
    plain = train(task, "leaky_rnn", None, epochs=0, lr=1e-2, seed=5, batch_size=4, n_states=8)
    tcr = train(task, "leaky_rnn", None, epochs=0, lr=1e-2, seed=5, batch_size=4, n_states=8,
                tcr_lambda=lam)
    torch.manual_seed(5)
    model = build_model("leaky_rnn", **tcr.config["model"])
    inputs, targets, mask = _batch(tcr, task)
    x0 = model.initial_state(4)
    with torch.no_grad():
        _, states = model(inputs, x0)
    # direct: mean over trials and steps of the squared norm of each step's change
    h = torch.cat([x0[:, None], states], dim=1).double()
    expected = float(((h[:, 1:] - h[:, :-1]) ** 2).sum(-1).mean())
    assert expected > 0
    assert tcr.penalties[0] == pytest.approx(expected, rel=1e-6)
    assert plain.penalties[0] == 0.0
    assert tcr.losses[0] == plain.losses[0], "the logged loss is the task loss"
    assert tcr.objectives[0] - plain.objectives[0] == pytest.approx(lam * expected, rel=1e-6)
    assert tcr.grad_norms[0] != plain.grad_norms[0]


def test_tcr_mask_selects_time_steps():
    task = SMALL_FLIPFLOP
    weights = np.zeros(task.n_steps)
    weights[5:9] = 1.0
    result = train(task, "leaky_rnn", None, epochs=0, lr=1e-2, seed=5, batch_size=4, n_states=8,
                   tcr_lambda=1.0, tcr_mask=weights)
    torch.manual_seed(5)
    model = build_model("leaky_rnn", **result.config["model"])
    inputs, _, _ = _batch(result, task)
    with torch.no_grad():
        _, states = model(inputs)
    step_changes = ((states[:, 5:9] - states[:, 4:8]).double() ** 2).sum(-1).mean()
    assert result.penalties[0] == pytest.approx(float(step_changes), rel=1e-6)
    assert result.config["training"]["tcr_mask"] == weights.tolist()


def test_tcr_penalty_function_on_a_known_sequence():
    x0 = torch.zeros(1, 2)
    states = torch.tensor([[[1.0, 0.0], [1.0, 2.0], [1.0, 2.0]]])  # changes: 1, 4, 0
    assert float(tcr_penalty(states, x0)) == pytest.approx(5.0 / 3.0)
    assert float(tcr_penalty(states, x0, torch.tensor([0.0, 1.0, 1.0]))) == pytest.approx(2.0)


def test_tcr_changes_training():
    a = _small(None, epochs=5)
    b = _small(None, epochs=5, tcr_lambda=1.0)
    assert a.losses[0] == b.losses[0]
    assert not np.array_equal(a.losses[1:], b.losses[1:])


def test_low_rank_float64_and_confidence_options(tmp_path):
    out = tmp_path / "run"
    task = CueDiscrimination()
    result = train(task, "leaky_rnn", out, epochs=2, lr=1e-3, optimizer="sgd", seed=0,
                   batch_size=3, n_states=10, rank=2, confidence=4.0, dtype="float64",
                   model_kwargs=dict(output="sigmoid"))
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "low_rank_rnn"
    assert config["model"]["rank"] == 2 and config["model"]["confidence"] == 4.0
    assert config["training"]["dtype"] == "float64"
    state = torch.load(out / "model_epoch2.pt", weights_only=True)
    assert state["S_l"].shape == (10, 2) and state["S_r"].shape == (2, 10)
    assert all(v.dtype == torch.float64 for v in state.values())
    model = build_model(config["architecture"], **config["model"]).double()
    model.load_state_dict(state, strict=True)
    assert result.model.S_l.dtype == torch.float64


def test_rank_one_delayed_activation_runs_with_batch_one(tmp_path):
    result = train("delayed_activation", "rank_one_rnn", tmp_path / "r1", epochs=3, lr=0.02,
                   optimizer="sgd", seed=40)
    assert result.config["training"]["batch_size"] == 1
    assert result.config["model"] == {"n_states": 100, "alpha": 0.5, "confidence": 10.0, "x0": -0.3}
    # at initialization the output stays far below 0.5: the loss is just under its maximum 1
    assert 0.99 < result.losses[0] < 1.0


def test_demo_settings_are_valid_and_train():
    settings = dict(FLIPFLOP_DEMO)
    settings.update(epochs=2)
    result = train(out_dir=None, **settings)
    assert result.model.n_states == 100 and len(result.losses) == 3


def test_refuses_to_overwrite_unless_asked(tmp_path):
    out = tmp_path / "run"
    _small(out, epochs=1)
    (out / "model_epoch99.pt").write_bytes(b"stale")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        _small(out, epochs=1)
    _small(out, epochs=2, save_every=1, overwrite=True)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["config.json", "train_log.csv", "model_epoch0.pt", "model_epoch1.pt",
                            "model_epoch2.pt"])


def test_progress_callable_sees_every_epoch():
    seen = []
    _small(None, epochs=3, progress=lambda e, loss, acc: seen.append((e, loss, acc)))
    assert [e for e, _, _ in seen] == [0, 1, 2, 3]


def test_diverging_training_raises_and_keeps_the_log(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(FloatingPointError, match="lower lr"):
        train("delayed_addition", "plrnn", out, epochs=20, lr=1e4, optimizer="sgd", seed=0,
              n_states=20)
    header, rows = _read_log(out / "train_log.csv")
    assert tuple(header) == LOG_COLUMNS and len(rows) >= 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(optimizer="rmsprop"), "adam"),
    (dict(lr=-1.0), "lr"),
    (dict(epochs=1.5), "epochs"),
    (dict(save_every=0), "save_every"),
    (dict(tcr_mask=[1.0, 1.0]), "tcr_mask"),
    (dict(tcr_mask=[0.0] * 12, tcr_lambda=1.0), "tcr_mask"),
    (dict(dtype="float16"), "dtype"),
    (dict(seed=-1), "seed"),
    (dict(model_kwargs=dict(n_inputs=5)), "n_inputs"),
])
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _small(None, **kwargs)


def test_architecture_errors():
    with pytest.raises(ValueError, match="valid|pass one of"):
        train(SMALL_FLIPFLOP, "transformer", None, epochs=1, lr=1e-2)
    with pytest.raises(ValueError, match="rank_one_rnn.*n_inputs|n_inputs.*delayed_activation"):
        train(SMALL_FLIPFLOP, "rank_one_rnn", None, epochs=1, lr=1e-2)
    with pytest.raises(ValueError, match="n_states"):
        train(SMALL_FLIPFLOP, "plrnn", None, epochs=1, lr=1e-2)
    with pytest.raises(ValueError, match="takes no rank"):
        train(SMALL_FLIPFLOP, "gru", None, epochs=1, lr=1e-2, n_states=4, rank=2)
