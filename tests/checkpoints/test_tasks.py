"""Tasks: shapes, targets recomputed independently from the inputs, masks, losses, accuracy."""
import numpy as np
import pytest
import torch

from checkpoints.tasks import (TASKS, CueDiscrimination, DelayedActivation, DelayedAddition,
                               EvidenceAccumulation, FlipFlop, MatchToSample, get_task)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_shapes_dtypes_and_reproducibility(name):
    task = get_task(name)
    for dtype in (torch.float32, torch.float64):
        inputs, targets, mask = task.sample(5, _gen(3), dtype=dtype)
        assert inputs.shape == (5, task.n_steps, task.n_inputs)
        assert targets.shape == (5, task.n_steps, task.n_outputs)
        assert mask.shape == targets.shape
        assert inputs.dtype == targets.dtype == mask.dtype == dtype
        assert torch.isfinite(inputs).all() and torch.isfinite(targets).all()
        assert ((mask == 0) | (mask == 1)).all() and mask.sum() > 0
    again = task.sample(5, _gen(3))
    first = task.sample(5, _gen(3))
    for a, b in zip(first, again):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_perfect_output_scores_zero_loss_and_full_accuracy(name):
    task = get_task(name)
    inputs, targets, mask = task.sample(16, _gen(1))
    assert float(task.loss(targets, targets, mask)) == 0.0
    assert task.accuracy(targets, targets, mask) == 1.0


@pytest.mark.parametrize("name", sorted(TASKS))
def test_params_round_trip(name):
    task = get_task(name)
    assert get_task(**task.params()) == task


def test_get_task_errors_list_the_valid_choices():
    with pytest.raises(ValueError, match="valid names are .*flipflop"):
        get_task("flip_flop_typo")
    with pytest.raises(ValueError, match="n_bits"):
        get_task("flipflop", bits=3)


def test_flipflop_target_is_sign_of_last_pulse():
    task = FlipFlop(n_bits=3, trial_steps=60, pulse_prob=0.2)
    inputs, targets, mask = task.sample(8, _gen(5))
    x = inputs.numpy()
    assert set(np.unique(x)) <= {-1.0, 0.0, 1.0}
    assert (x[:, 0, :] != 0).all(), "every bit must get a pulse at t = 0"
    expected = np.zeros_like(x)
    for b in range(x.shape[0]):
        for bit in range(x.shape[2]):
            state = 0.0
            for t in range(x.shape[1]):
                if x[b, t, bit] != 0:
                    state = x[b, t, bit]
                expected[b, t, bit] = state
    np.testing.assert_array_equal(targets.numpy(), expected)
    assert (mask == 1).all()


def test_flipflop_pulse_rate_and_balance():
    task = FlipFlop(n_bits=3, trial_steps=200, pulse_prob=0.1)
    inputs, _, _ = task.sample(200, _gen(7))
    later = inputs[:, 1:]
    rate = float((later != 0).double().mean())
    n = later.numel()
    assert abs(rate - 0.1) < 5 * np.sqrt(0.1 * 0.9 / n)
    positive = float((later > 0).double().sum() / (later != 0).double().sum())
    assert abs(positive - 0.5) < 0.03


def test_flipflop_accuracy_counts_sign_errors():
    task = FlipFlop(n_bits=2, trial_steps=10)
    _, targets, mask = task.sample(4, _gen(0))
    assert task.accuracy(-targets, targets, mask) == 0.0
    half = targets.clone()
    half[..., 0] *= -1
    assert task.accuracy(half, targets, mask) == pytest.approx(0.5)


def test_delayed_activation_is_the_rank_one_setup():
    task = DelayedActivation()
    assert task.n_steps == 40 and task.n_inputs == 0 and task.deterministic
    inputs, targets, mask = task.sample(2)
    assert inputs.shape == (2, 40, 0)
    np.testing.assert_array_equal(targets[0, :, 0].numpy(), [0.0] * 20 + [1.0] * 20)
    # Σ(o − y)² / T with T = 20: an output stuck at 0 (or at 1) scores exactly 1.0
    assert float(task.loss(torch.zeros_like(targets), targets, mask)) == 1.0
    assert float(task.loss(torch.ones_like(targets), targets, mask)) == 1.0
    half = torch.full_like(targets, 0.5)
    assert float(task.loss(half, targets, mask)) == pytest.approx(40 * 0.25 / 20)


def test_cue_discrimination_periods_and_targets():
    task = CueDiscrimination()
    assert task.periods == (2, 10, 10) and task.n_steps == 22
    inputs, targets, mask = task.sample(32, _gen(2))
    cue_sign = inputs[:, 0, 0]
    assert set(cue_sign.tolist()) == {-1.0, 1.0}
    assert (inputs[:, :2, 0] == cue_sign[:, None]).all() and (inputs[:, 2:] == 0).all()
    assert (targets[:, :12] == 0).all() and (targets[:, 12:, 0] == cue_sign[:, None]).all()
    assert (mask == 1).all()
    _, _, response_only = CueDiscrimination(score_delay=False).sample(4, _gen(2))
    assert (response_only[:, :12] == 0).all() and (response_only[:, 12:] == 1).all()
    with pytest.raises(ValueError, match="cue_ms"):
        CueDiscrimination(cue_ms=7.0)


def test_cue_discrimination_accuracy_uses_response_period():
    task = CueDiscrimination()
    _, targets, mask = task.sample(10, _gen(4))
    outputs = targets.clone()
    outputs[:, :12] = -5.0 * targets[:, 12:13]  # wrong sign during cue/delay only
    assert task.accuracy(outputs, targets, mask) == 1.0
    assert task.accuracy(-targets, targets, mask) == 0.0


def test_match_to_sample_target_is_the_match():
    task = MatchToSample()
    assert task.periods == (6, 16, 6, 10) and task.n_steps == 38
    inputs, targets, mask = task.sample(64, _gen(8))
    first, second = inputs[:, 0, 0], inputs[:, 22, 0]
    assert (inputs[:, :6, 0] == first[:, None]).all() and (inputs[:, 6:22] == 0).all()
    assert (inputs[:, 22:28, 0] == second[:, None]).all() and (inputs[:, 28:] == 0).all()
    match = (first == second).double()
    assert 0 < match.mean() < 1
    assert (targets[:, 28:, 0] == match[:, None]).all() and (targets[:, :28] == 0).all()
    wrong = targets.clone()
    wrong[:, 28:] = 1.0 - wrong[:, 28:]
    assert task.accuracy(wrong, targets, mask) == 0.0
    with pytest.raises(ValueError, match="must differ"):
        MatchToSample(match_target=1.0, nonmatch_target=1.0)


def test_delayed_addition_target_is_sum_of_marked_numbers():
    task = DelayedAddition(trial_steps=30, delay=5)
    inputs, targets, mask = task.sample(50, _gen(9))
    numbers, markers = inputs[..., 0].numpy(), inputs[..., 1].numpy()
    stimulus = 25
    assert (markers.sum(axis=1) == 2).all()
    assert (markers[:, :12].sum(axis=1) == 1).all() and (markers[:, 12:25].sum(axis=1) == 1).all()
    assert (numbers[:, stimulus:] == 0).all() and (markers[:, stimulus:] == 0).all()
    assert ((numbers[:, :stimulus] >= 0) & (numbers[:, :stimulus] < 1)).all()
    np.testing.assert_allclose(targets[:, -1, 0].numpy(), (numbers * markers).sum(axis=1))
    assert mask[:, -1].sum() == 50 and mask[:, :-1].sum() == 0
    off = targets.clone()
    off[:, -1] += 0.05
    assert task.accuracy(off, targets, mask) == 0.0


def test_evidence_accumulation_target_is_sign_of_the_sum():
    task = EvidenceAccumulation(stimulus_steps=20, response_steps=5, mean=0.1, noise=1.0)
    inputs, targets, mask = task.sample(200, _gen(10))
    total = inputs[:, :20, 0].sum(dim=1)
    assert (inputs[:, 20:] == 0).all()
    assert (targets[:, 20:, 0] == torch.sign(total)[:, None]).all()
    assert (targets[:, :20] == 0).all() and (mask[:, :20] == 0).all() and (mask[:, 20:] == 1).all()
    assert task.accuracy(-targets, targets, mask) == 0.0


@pytest.mark.parametrize("bad", [dict(n_bits=0), dict(trial_steps=-1), dict(pulse_prob=1.5)])
def test_flipflop_rejects_bad_parameters(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        FlipFlop(**bad)


def test_sample_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        FlipFlop().sample(0)
