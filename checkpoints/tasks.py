"""Tasks that RNNs are trained on: trial generators with targets, loss masks and accuracy.

Every task is a small frozen dataclass with the same interface:

- ``n_inputs``, ``n_outputs``, ``n_steps`` (trial length in steps);
- ``sample(batch_size, generator=None, *, dtype=torch.float64)`` returning
  ``(inputs (b, T, n_inputs), targets (b, T, n_outputs), mask (b, T, n_outputs))``;
- ``loss(outputs, targets, mask)``: a scalar tensor (masked mean squared error unless stated);
- ``accuracy(outputs, targets, mask)``: a float in [0, 1];
- ``params()``: the dataclass fields, JSON-ready (written to ``config.json``);
- ``default_batch_size``: what the trainer uses when no batch size is given.

``outputs[:, t]`` is the network's readout of the state after it consumed ``inputs[:, t]``.
Build tasks by name with :func:`get_task`; :data:`TASKS` maps names to classes.

Where SCIENCE.md leaves a choice open (which periods are scored, non-match targets, marker
placement), the choice is a documented field with a default.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Optional, Tuple

import torch

__all__ = [
    "Task", "FlipFlop", "DelayedActivation", "CueDiscrimination", "MatchToSample",
    "DelayedAddition", "EvidenceAccumulation", "TASKS", "get_task",
]

Batch = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _positive_int(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")


def _probability(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{owner}: {name} must be a probability in [0, 1], got {value!r}")


def _non_negative(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or float(value) < 0.0:
        raise ValueError(f"{owner}: {name} must be a non-negative number, got {value!r}")


def _ms_to_steps(owner: str, name: str, ms: float, dt_ms: float) -> int:
    """Convert a duration in ms to a whole number of steps of ``dt_ms``; refuse fractions."""
    steps = ms / dt_ms
    if ms <= 0 or abs(steps - round(steps)) > 1e-9:
        raise ValueError(f"{owner}: {name}={ms!r} ms must be a positive multiple of "
                         f"dt_ms={dt_ms!r}; choose a duration that is a whole number of steps")
    return int(round(steps))


def _check_batch(owner: str, batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{owner}.sample: batch_size must be a positive integer, "
                         f"got {batch_size!r}")


def masked_mse(outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``(outputs - targets)**2`` over the entries where ``mask`` is non-zero (weighted).

    Parameters
    ----------
    outputs, targets, mask : Tensor of shape (b, T, n_outputs)

    Returns
    -------
    Tensor of shape ()
    """
    weight = mask.to(outputs.dtype)
    return (weight * (outputs - targets) ** 2).sum() / weight.sum().clamp_min(1.0)


def _sign_accuracy(outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                   threshold: float = 0.0) -> float:
    """Fraction of scored entries whose output is on the target's side of ``threshold``."""
    scored = mask > 0
    if not bool(scored.any()):
        return float("nan")
    hit = (outputs > threshold) == (targets > threshold)
    return float(hit[scored].to(torch.float64).mean())


def _trial_accuracy(outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                    threshold: float) -> float:
    """Per trial: is the mean output over the scored response steps on the target's side?

    Only steps whose target differs from the pre-response value matter here, so tasks pass
    a response-only mask (see ``_response_mask``).
    """
    weight = mask.to(outputs.dtype)
    n = weight.sum(dim=1).clamp_min(1.0)
    mean_out = (weight * outputs).sum(dim=1) / n
    mean_target = (weight * targets).sum(dim=1) / n
    hit = (mean_out > threshold) == (mean_target > threshold)
    return float(hit.to(torch.float64).mean())


class Task:
    """Base class: shared helpers. Subclasses are frozen dataclasses."""

    name: str = ""
    #: Trials per epoch when the trainer is given no batch size.
    default_batch_size: int = 64
    #: True when every trial is identical (the trainer then samples once).
    deterministic: bool = False

    @property
    def n_inputs(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def n_outputs(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def n_steps(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def sample(self, batch_size: int, generator: Optional[torch.Generator] = None, *,
               dtype: torch.dtype = torch.float64) -> Batch:  # pragma: no cover - overridden
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
        """Masked mean squared error, a scalar tensor (differentiable)."""
        return masked_mse(outputs, targets, mask)

    def accuracy(self, outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> float:
        """Fraction of scored entries with the target's sign."""
        return _sign_accuracy(outputs, targets, mask)

    def params(self) -> Dict[str, Any]:
        """The task's name and fields, JSON-ready: ``get_task(**task.params())`` rebuilds it."""
        return {"name": self.name, **asdict(self)}  # type: ignore[call-overload]


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlipFlop(Task):
    """N-bit flip-flop: remember the sign of the last pulse on each of ``n_bits`` channels.

    At every step each bit receives a pulse (±1 with equal probability) with probability
    ``pulse_prob``; at t = 0 every bit receives one, so the target is always defined. The target
    of bit i at step t is the sign of the last pulse on bit i at or before t. All steps are
    scored. A trained network has 2**n_bits stable fixed points (8 for 3 bits).
    """

    n_bits: int = 3
    trial_steps: int = 50
    pulse_prob: float = 0.1

    name = "flipflop"

    def __post_init__(self) -> None:
        _positive_int("FlipFlop", "n_bits", self.n_bits)
        _positive_int("FlipFlop", "trial_steps", self.trial_steps)
        _probability("FlipFlop", "pulse_prob", self.pulse_prob)

    @property
    def n_inputs(self) -> int:
        return self.n_bits

    @property
    def n_outputs(self) -> int:
        return self.n_bits

    @property
    def n_steps(self) -> int:
        return self.trial_steps

    def sample(self, batch_size: int, generator: Optional[torch.Generator] = None, *,
               dtype: torch.dtype = torch.float64) -> Batch:
        _check_batch("FlipFlop", batch_size)
        shape = (batch_size, self.trial_steps, self.n_bits)
        pulse = torch.rand(shape, generator=generator) < self.pulse_prob
        pulse[:, 0, :] = True
        sign = torch.where(torch.rand(shape, generator=generator) < 0.5, -1.0, 1.0)
        inputs = torch.where(pulse, sign, torch.zeros(()))
        # index of the last pulse at or before t, per bit: running max of (t where pulsed, else 0)
        steps = torch.arange(self.trial_steps).view(1, -1, 1).expand(shape)
        pulsed_at = torch.where(pulse, steps, torch.zeros((), dtype=steps.dtype))
        last = torch.cummax(pulsed_at, dim=1).values
        targets = torch.gather(inputs, 1, last)
        mask = torch.ones(shape)
        return inputs.to(dtype), targets.to(dtype), mask.to(dtype)


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DelayedActivation(Task):
    """Delayed activation (ghost paper, rank-one setup): no input; stay at 0, then switch to 1.

    Target 0 for the first ``delay`` steps and 1 for the next ``delay`` steps. Deterministic:
    every trial is the same, so one trial per epoch is the natural batch. Loss per trial is
    ``Σ_t (o_t − y_t)² / delay`` (SCIENCE.md's ``Σ(o−y)²/T`` with T the delay), averaged over the
    batch, so an output stuck at 0 scores exactly 1.0.
    """

    delay: int = 20

    name = "delayed_activation"
    default_batch_size = 1
    deterministic = True

    def __post_init__(self) -> None:
        _positive_int("DelayedActivation", "delay", self.delay)

    @property
    def n_inputs(self) -> int:
        return 0

    @property
    def n_outputs(self) -> int:
        return 1

    @property
    def n_steps(self) -> int:
        return 2 * self.delay

    def sample(self, batch_size: int, generator: Optional[torch.Generator] = None, *,
               dtype: torch.dtype = torch.float64) -> Batch:
        _check_batch("DelayedActivation", batch_size)
        inputs = torch.zeros(batch_size, self.n_steps, 0, dtype=dtype)
        targets = torch.zeros(batch_size, self.n_steps, 1, dtype=dtype)
        targets[:, self.delay:] = 1.0
        mask = torch.ones(batch_size, self.n_steps, 1, dtype=dtype)
        return inputs, targets, mask

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
        weight = mask.to(outputs.dtype)
        return (weight * (outputs - targets) ** 2).sum() / (self.delay * outputs.shape[0])

    def accuracy(self, outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> float:
        """Fraction of steps where the output is on the target's side of 0.5."""
        return _sign_accuracy(outputs, targets, mask, threshold=0.5)


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CueDiscrimination(Task):
    """Delayed cue discrimination (ghost paper, Fig. 4): report the sign of a brief cue.

    One input channel carries a cue of ±1 for ``cue_ms``; after ``delay_ms`` the single output
    must equal the cue's sign for ``response_ms``. Durations are in ms at step ``dt_ms``
    (defaults 10 / 50 / 50 ms at 5 ms: 2 + 10 + 10 = 22 steps). During cue and delay the target
    is 0; those steps are scored only if ``score_delay`` (a choice SCIENCE.md leaves open).
    Accuracy is per trial: the mean response-period output has the cue's sign.
    """

    cue_ms: float = 10.0
    delay_ms: float = 50.0
    response_ms: float = 50.0
    dt_ms: float = 5.0
    score_delay: bool = True

    name = "cue_discrimination"

    def __post_init__(self) -> None:
        if not isinstance(self.dt_ms, (int, float)) or self.dt_ms <= 0:
            raise ValueError(f"CueDiscrimination: dt_ms must be positive, got {self.dt_ms!r}")
        for name in ("cue_ms", "delay_ms", "response_ms"):
            _ms_to_steps("CueDiscrimination", name, getattr(self, name), self.dt_ms)

    @property
    def periods(self) -> Tuple[int, int, int]:
        """Steps in (cue, delay, response)."""
        return tuple(_ms_to_steps("CueDiscrimination", n, getattr(self, n), self.dt_ms)
                     for n in ("cue_ms", "delay_ms", "response_ms"))  # type: ignore[return-value]

    @property
    def n_inputs(self) -> int:
        return 1

    @property
    def n_outputs(self) -> int:
        return 1

    @property
    def n_steps(self) -> int:
        return sum(self.periods)

    def sample(self, batch_size: int, generator: Optional[torch.Generator] = None, *,
               dtype: torch.dtype = torch.float64) -> Batch:
        _check_batch("CueDiscrimination", batch_size)
        cue, delay, response = self.periods
        sign = torch.where(torch.rand(batch_size, generator=generator) < 0.5, -1.0, 1.0)
        inputs = torch.zeros(batch_size, self.n_steps, 1)
        inputs[:, :cue, 0] = sign[:, None]
        targets = torch.zeros(batch_size, self.n_steps, 1)
        targets[:, cue + delay:, 0] = sign[:, None]
        mask = torch.zeros(batch_size, self.n_steps, 1)
        mask[:, cue + delay:] = 1.0
        if self.score_delay:
            mask[:, :cue + delay] = 1.0
        return inputs.to(dtype), targets.to(dtype), mask.to(dtype)

    def accuracy(self, outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> float:
        cue, delay, _ = self.periods
        response = torch.zeros_like(mask)
        response[:, cue + delay:] = 1.0
        return _trial_accuracy(outputs, targets, response, threshold=0.0)


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MatchToSample(Task):
    """Delayed match-to-sample (ghost paper, Fig. 7/8): do two cues separated by a delay match?

    One input channel: a first cue ±1 for ``cue_ms``, a delay of ``delay_ms``, a second cue ±1
    for ``cue_ms``, then ``response_ms`` in which the output must be ``match_target`` (1) if both
    cues share a sign and ``nonmatch_target`` (0 by default; SCIENCE.md does not say) otherwise.
    Defaults 30 / 80 / 30 / 50 ms at 5 ms: 6 + 16 + 6 + 10 = 38 steps. Before the response the
    target is 0 and is scored only if ``score_delay``. Accuracy is per trial: the mean response
    output lies on the correct side of the midpoint between the two targets.
    """

    cue_ms: float = 30.0
    delay_ms: float = 80.0
    response_ms: float = 50.0
    dt_ms: float = 5.0
    match_target: float = 1.0
    nonmatch_target: float = 0.0
    score_delay: bool = True

    name = "match_to_sample"

    def __post_init__(self) -> None:
        if not isinstance(self.dt_ms, (int, float)) or self.dt_ms <= 0:
            raise ValueError(f"MatchToSample: dt_ms must be positive, got {self.dt_ms!r}")
        for name in ("cue_ms", "delay_ms", "response_ms"):
            _ms_to_steps("MatchToSample", name, getattr(self, name), self.dt_ms)
        if self.match_target == self.nonmatch_target:
            raise ValueError("MatchToSample: match_target and nonmatch_target must differ, got "
                             f"{self.match_target!r} for both")

    @property
    def periods(self) -> Tuple[int, int, int, int]:
        """Steps in (first cue, delay, second cue, response)."""
        cue = _ms_to_steps("MatchToSample", "cue_ms", self.cue_ms, self.dt_ms)
        delay = _ms_to_steps("MatchToSample", "delay_ms", self.delay_ms, self.dt_ms)
        response = _ms_to_steps("MatchToSample", "response_ms", self.response_ms, self.dt_ms)
        return cue, delay, cue, response

    @property
    def n_inputs(self) -> int:
        return 1

    @property
    def n_outputs(self) -> int:
        return 1

    @property
    def n_steps(self) -> int:
        return sum(self.periods)

    def sample(self, batch_size: int, generator: Optional[torch.Generator] = None, *,
               dtype: torch.dtype = torch.float64) -> Batch:
        _check_batch("MatchToSample", batch_size)
        cue, delay, _, response = self.periods
        first = torch.where(torch.rand(batch_size, generator=generator) < 0.5, -1.0, 1.0)
        second = torch.where(torch.rand(batch_size, generator=generator) < 0.5, -1.0, 1.0)
        start2 = cue + delay
        start_response = start2 + cue
        inputs = torch.zeros(batch_size, self.n_steps, 1)
        inputs[:, :cue, 0] = first[:, None]
        inputs[:, start2:start_response, 0] = second[:, None]
        answer = torch.where(first == second, float(self.match_target), float(self.nonmatch_target))
        targets = torch.zeros(batch_size, self.n_steps, 1)
        targets[:, start_response:, 0] = answer[:, None]
        mask = torch.zeros(batch_size, self.n_steps, 1)
        mask[:, start_response:] = 1.0
        if self.score_delay:
            mask[:, :start_response] = 1.0
        return inputs.to(dtype), targets.to(dtype), mask.to(dtype)

    def accuracy(self, outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> float:
        start_response = sum(self.periods[:3])
        response = torch.zeros_like(mask)
        response[:, start_response:] = 1.0
        midpoint = 0.5 * (float(self.match_target) + float(self.nonmatch_target))
        flip = -1.0 if self.match_target < self.nonmatch_target else 1.0
        return _trial_accuracy(flip * (outputs - midpoint), flip * (targets - midpoint), response,
                               0.0)


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DelayedAddition(Task):
    """Delayed addition: add the two marked numbers, answer after a delay.

    Two input channels: channel 0 carries a number drawn uniformly from [0, 1) at each of the
    first ``trial_steps − delay`` steps (zero afterwards); channel 1 is a marker, 1 at exactly two
    of those steps (one in the first half of the stimulus, one in the second half). The single
    output is scored at the last step only; its target is the sum of the two marked numbers.
    Accuracy: fraction of trials with ``|output − target| < tolerance``.
    """

    trial_steps: int = 30
    delay: int = 5
    tolerance: float = 0.04

    name = "delayed_addition"

    def __post_init__(self) -> None:
        _positive_int("DelayedAddition", "trial_steps", self.trial_steps)
        if isinstance(self.delay, bool) or not isinstance(self.delay, int) or self.delay < 0:
            raise ValueError(f"DelayedAddition: delay must be a non-negative integer, "
                             f"got {self.delay!r}")
        if self.trial_steps - self.delay < 2:
            raise ValueError("DelayedAddition: trial_steps - delay must be at least 2 "
                             f"(two markers), got trial_steps={self.trial_steps}, "
                             f"delay={self.delay}")
        _non_negative("DelayedAddition", "tolerance", self.tolerance)

    @property
    def n_inputs(self) -> int:
        return 2

    @property
    def n_outputs(self) -> int:
        return 1

    @property
    def n_steps(self) -> int:
        return self.trial_steps

    def sample(self, batch_size: int, generator: Optional[torch.Generator] = None, *,
               dtype: torch.dtype = torch.float64) -> Batch:
        _check_batch("DelayedAddition", batch_size)
        stimulus = self.trial_steps - self.delay
        half = stimulus // 2
        numbers = torch.rand(batch_size, self.trial_steps, generator=generator)
        numbers[:, stimulus:] = 0.0
        first = torch.randint(0, half, (batch_size,), generator=generator)
        second = torch.randint(half, stimulus, (batch_size,), generator=generator)
        rows = torch.arange(batch_size)
        markers = torch.zeros(batch_size, self.trial_steps)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        inputs = torch.stack([numbers, markers], dim=-1)
        targets = torch.zeros(batch_size, self.trial_steps, 1)
        targets[:, -1, 0] = numbers[rows, first] + numbers[rows, second]
        mask = torch.zeros(batch_size, self.trial_steps, 1)
        mask[:, -1] = 1.0
        return inputs.to(dtype), targets.to(dtype), mask.to(dtype)

    def accuracy(self, outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> float:
        scored = mask > 0
        close = (outputs - targets).abs() < self.tolerance
        return float(close[scored].to(torch.float64).mean())


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvidenceAccumulation(Task):
    """Evidence accumulation: integrate noisy evidence, report the sign of its sum.

    One input channel: for ``stimulus_steps`` steps the input is ``s·mean + noise·ε`` with a trial
    sign s = ±1 and ε ~ N(0, 1); then ``response_steps`` of zero input in which the output must
    equal the sign of the **sum of the evidence actually shown** (not s). Only the response is
    scored. A line attractor is the expected solution. Accuracy: per trial, the mean response
    output has the target's sign.
    """

    stimulus_steps: int = 30
    response_steps: int = 10
    mean: float = 0.1
    noise: float = 0.5

    name = "evidence_accumulation"

    def __post_init__(self) -> None:
        _positive_int("EvidenceAccumulation", "stimulus_steps", self.stimulus_steps)
        _positive_int("EvidenceAccumulation", "response_steps", self.response_steps)
        _non_negative("EvidenceAccumulation", "mean", self.mean)
        _non_negative("EvidenceAccumulation", "noise", self.noise)
        if self.mean == 0 and self.noise == 0:
            raise ValueError("EvidenceAccumulation: mean and noise are both 0, so there is no "
                             "evidence; make at least one positive")

    @property
    def n_inputs(self) -> int:
        return 1

    @property
    def n_outputs(self) -> int:
        return 1

    @property
    def n_steps(self) -> int:
        return self.stimulus_steps + self.response_steps

    def sample(self, batch_size: int, generator: Optional[torch.Generator] = None, *,
               dtype: torch.dtype = torch.float64) -> Batch:
        _check_batch("EvidenceAccumulation", batch_size)
        sign = torch.where(torch.rand(batch_size, generator=generator) < 0.5, -1.0, 1.0)
        evidence = (sign[:, None] * self.mean
                    + self.noise * torch.randn(batch_size, self.stimulus_steps,
                                               generator=generator))
        total = evidence.sum(dim=1)
        answer = torch.where(total > 0, 1.0, torch.where(total < 0, -1.0, sign))
        inputs = torch.zeros(batch_size, self.n_steps, 1)
        inputs[:, :self.stimulus_steps, 0] = evidence
        targets = torch.zeros(batch_size, self.n_steps, 1)
        targets[:, self.stimulus_steps:, 0] = answer[:, None]
        mask = torch.zeros(batch_size, self.n_steps, 1)
        mask[:, self.stimulus_steps:] = 1.0
        return inputs.to(dtype), targets.to(dtype), mask.to(dtype)

    def accuracy(self, outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> float:
        return _trial_accuracy(outputs, targets, mask, threshold=0.0)


# --------------------------------------------------------------------------------------------
TASKS: Dict[str, type] = {cls.name: cls for cls in (
    FlipFlop, DelayedActivation, CueDiscrimination, MatchToSample, DelayedAddition,
    EvidenceAccumulation)}


def get_task(name: str, **params: Any) -> Task:
    """Build a task by registry name.

    Parameters
    ----------
    name : str
        One of ``TASKS``: flipflop, delayed_activation, cue_discrimination, match_to_sample,
        delayed_addition, evidence_accumulation.
    **params
        The task's dataclass fields (e.g. ``n_bits=3`` for flipflop).

    Raises
    ------
    ValueError
        Unknown name (the message lists the valid ones) or an unknown parameter (lists the
        task's parameters).
    """
    if name not in TASKS:
        raise ValueError(f"get_task: unknown task {name!r}; valid names are {sorted(TASKS)}")
    cls = TASKS[name]
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"get_task: task {name!r} has no parameter(s) {unknown}; "
                         f"its parameters are {valid}")
    return cls(**params)
