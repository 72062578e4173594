"""Built-in recurrent architectures, each a :class:`RecurrentModel` with explicit dynamics.

Every model is a ``torch.nn.Module`` whose state is a flat vector of ``n_states`` numbers and
which exposes

* ``step(x, u) -> x_next``: one discrete step (the map F) on batch-first tensors
  ``x (b, n_states)``, ``u (b, n_inputs)``;
* ``velocity(x, u)``: the continuous-time vector field dx/dt (time unit τ = 1), only for models
  with a continuous form (:class:`LeakyRNN`, :class:`RankOneRNN`, :class:`XFormRNN`);
* ``readout(x) -> (b, n_outputs)``, ``initial_state(b) -> (b, n_states)``;
* ``forward(inputs (b, T, n_inputs), x0=None) -> (outputs (b, T, n_outputs), states (b, T, n))``
  where ``states[:, t]`` is the state after consuming ``inputs[:, t]``;
* ``config() -> dict`` of constructor keyword arguments, so ``build_model(m.architecture,
  **m.config())`` rebuilds an identical (untrained) model.

``step`` and ``velocity`` use no in-place operations and no ``.item()`` so that
``torch.func.vmap`` / ``jacrev`` can trace them.

Registry (:data:`ARCHITECTURES`, used by :func:`build_model`)::

    "leaky_rnn"     LeakyRNN         keys W_in.weight, W_in.bias, W_rec, W_out.weight, W_out.bias
    "low_rank_rnn"  LeakyRNN(rank=K) keys W_in.weight, W_in.bias, S_l, S_r, W_out.weight, W_out.bias
    "paper_rnn"     PaperRNN         the ghost paper's row-vector model, r @ W_rec (paper_model.py)
    "paper_low_rank_rnn"
                    PaperRNN(rank=K) r @ (S_l @ S_r), readout W_out(r @ S_l), W_out.weight (O, K)
    "rank_one_rnn"  RankOneRNN       keys m, n, b
    "xform_rnn"     XFormRNN         keys W_in.weight, W_in.bias, J, W_out.weight, W_out.bias
    "plrnn"         PLRNN            keys A, W, C, h, B
    "gru", "lstm", "rnn_tanh", "rnn_relu"
                    TorchRNN         keys rnn.weight_ih_l{k}, rnn.weight_hh_l{k},
                                     rnn.bias_ih_l{k}, rnn.bias_hh_l{k},
                                     readout_layer.weight, readout_layer.bias
"""
from __future__ import annotations

import math
import warnings
from typing import Dict, Optional, Tuple

import torch
from torch import nn

__all__ = [
    "RecurrentModel", "LeakyRNN", "RankOneRNN", "XFormRNN", "PLRNN", "TorchRNN",
    "ARCHITECTURES", "TORCH_CELLS", "build_model",
]

_OUTPUTS = ("linear", "sigmoid")


def _check_positive_int(value, name: str, *, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        what = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{name}={value!r} is invalid; pass {what} integer")
    return value


def _check_alpha(alpha) -> float:
    alpha = float(alpha)
    if not (0.0 < alpha <= 1.0):
        raise ValueError(f"alpha={alpha!r} is invalid; pass the leak dt/tau with 0 < alpha <= 1")
    return alpha


def _check_output(output: str) -> str:
    if output not in _OUTPUTS:
        raise ValueError(f"output={output!r} is invalid; pass one of {list(_OUTPUTS)}")
    return output


class RecurrentModel(nn.Module):
    """Base class of the built-in models: a discrete map on a flat state vector.

    Subclasses set the class attribute ``architecture`` and the instance attributes
    ``n_states``, ``n_inputs``, ``n_outputs`` and implement :meth:`step`, :meth:`readout` and
    :meth:`config`. ``time`` is ``"discrete"`` for every built-in model: the map is what the
    model computes during training; models with a continuous form also define
    :meth:`velocity`.

    Models whose derivatives have a closed form also define ``step_jacobian(x, u)`` (and
    ``velocity_jacobian``), ``(b, n, n)``, and ``step_curvature(x, u, weights)`` (and
    ``velocity_curvature``), ``Σ_k weights[:, k] ∇²F_k``, ``(b, n, n)``: the fixed-point finder
    uses them instead of automatic differentiation (O(b n²) Jacobians, exact Hessians of the
    speed in a few matrix products).
    """

    architecture: str = ""
    time: str = "discrete"

    n_states: int
    n_inputs: int
    n_outputs: int

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One discrete step ``x -> F(x, u)``; ``x (b, n_states)``, ``u (b, n_inputs)``."""
        raise NotImplementedError

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``(b, n_outputs)`` of states ``x (b, n_states)``."""
        raise NotImplementedError

    def config(self) -> Dict:
        """Constructor keyword arguments (JSON-serializable)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    def _reference(self) -> torch.Tensor:
        return next(self.parameters())

    def _inputs(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        if u is None:
            return x.new_zeros(x.shape[:-1] + (self.n_inputs,))
        return u

    def initial_state(self, batch_size: int) -> torch.Tensor:
        """Initial states: zeros ``(batch_size, n_states)`` unless a model says otherwise."""
        ref = self._reference()
        return torch.zeros(batch_size, self.n_states, dtype=ref.dtype, device=ref.device)

    def forward(self, inputs: torch.Tensor,
                x0: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Run the model over a batch of input sequences.

        Parameters
        ----------
        inputs : torch.Tensor of shape (b, T, n_inputs)
        x0 : torch.Tensor of shape (b, n_states), optional
            Initial states; :meth:`initial_state` when omitted.

        Returns
        -------
        outputs : torch.Tensor of shape (b, T, n_outputs)
        states : torch.Tensor of shape (b, T, n_states)
            ``states[:, t]`` is the state after consuming ``inputs[:, t]``.
        """
        inputs = self._check_sequence(inputs)
        batch, n_time = inputs.shape[0], inputs.shape[1]
        x = self.initial_state(batch) if x0 is None else x0
        states = []
        for t in range(n_time):
            x = self.step(x, inputs[:, t])
            states.append(x)
        states_t = (torch.stack(states, dim=1) if states
                    else inputs.new_zeros(batch, 0, self.n_states))
        outputs = self.readout(states_t.reshape(batch * n_time, self.n_states))
        return outputs.reshape(batch, n_time, self.n_outputs), states_t

    def _check_sequence(self, inputs: torch.Tensor) -> torch.Tensor:
        if (not isinstance(inputs, torch.Tensor) or inputs.dim() != 3
                or inputs.shape[2] != self.n_inputs):
            shape = (tuple(inputs.shape) if isinstance(inputs, torch.Tensor)
                     else type(inputs).__name__)
            raise ValueError(f"inputs has shape {shape}; {type(self).__name__}.forward expects a "
                             f"batch-first tensor of shape (batch, time, {self.n_inputs})")
        return inputs

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())


def _input_layer(n_inputs: int, n_states: int) -> nn.Linear:
    """``nn.Linear(n_inputs, n_states)``; with no inputs its bias (b) starts at zero."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
        return nn.Linear(n_inputs, n_states)


def _output_map(z: torch.Tensor, output: str, confidence: float) -> torch.Tensor:
    return torch.sigmoid(confidence * z) if output == "sigmoid" else z


def _tanh_derivatives(pre: torch.Tensor):
    """``tanh'`` and ``tanh''`` at ``pre``, each of its shape."""
    t = torch.tanh(pre)
    slope = 1 - t * t
    return slope, -2.0 * t * slope


def _identity_plus(scale: float, matrix: torch.Tensor) -> torch.Tensor:
    """``c I + M`` for a batch of square matrices ``M (b, n, n)`` (in place on ``M``)."""
    matrix.diagonal(dim1=1, dim2=2).add_(scale)
    return matrix


class LeakyRNN(RecurrentModel):
    r"""Leaky firing-rate RNN, full rank or low rank.

    Discrete map (α = dt/τ)::

        r_{t+1} = (1 - α) r_t + α tanh(W r_t + W_in u_t + b)

    Continuous form (τ = 1)::

        dr/dt = -r + tanh(W r + W_in u + b)          (velocity)

    so ``step(r) - r = α · velocity(r)``. Full rank: ``W = W_rec``; low rank (``rank=K``):
    ``W = S_l S_r`` with ``S_l (N, K)``, ``S_r (K, N)``. Readout ``y = W_out r + b_out``
    (``output="linear"``) or ``sigmoid(confidence · (W_out r + b_out))``.

    State-dict keys (the ghost paper's own layout): ``W_in.weight (N, M)``, ``W_in.bias (N,)``
    (this is b), ``W_rec (N, N)`` or ``S_l (N, K)`` and ``S_r (K, N)``, ``W_out.weight (O, N)``,
    ``W_out.bias (O,)``.

    Initialization: ``W_rec ~ N(0, gain²/N)``; ``S_l ~ N(0, gain²/N)``, ``S_r ~ N(0, 1)``;
    ``W_in`` and ``W_out`` use ``nn.Linear`` defaults.

    Parameters
    ----------
    n_inputs, n_states, n_outputs : int
    alpha : float, default 0.5
    rank : int, optional
        Low-rank factorization of W; full rank when omitted.
    gain : float, default 1.0
    output : {"linear", "sigmoid"}, default "linear"
    confidence : float, default 1.0
        Gain of the sigmoid readout.
    """

    architecture = "leaky_rnn"

    def __init__(self, n_inputs: int, n_states: int, n_outputs: int, alpha: float = 0.5,
                 rank: Optional[int] = None, gain: float = 1.0, output: str = "linear",
                 confidence: float = 1.0):
        super().__init__()
        self.n_inputs = _check_positive_int(n_inputs, "n_inputs", allow_zero=True)
        self.n_states = _check_positive_int(n_states, "n_states")
        self.n_outputs = _check_positive_int(n_outputs, "n_outputs")
        self.alpha = _check_alpha(alpha)
        self.rank = None if rank is None else _check_positive_int(rank, "rank")
        self.gain = float(gain)
        self.output = _check_output(output)
        self.confidence = float(confidence)
        if self.rank is not None:
            self.architecture = "low_rank_rnn"
        n = self.n_states
        self.W_in = _input_layer(self.n_inputs, n)
        if self.rank is None:
            self.W_rec = nn.Parameter(torch.randn(n, n) * (self.gain / math.sqrt(n)))
        else:
            self.S_l = nn.Parameter(torch.randn(n, self.rank) * (self.gain / math.sqrt(n)))
            self.S_r = nn.Parameter(torch.randn(self.rank, n))
        self.W_out = nn.Linear(n, self.n_outputs)

    @property
    def W(self) -> torch.Tensor:
        """The recurrent weight matrix ``(N, N)`` (``S_l @ S_r`` for low rank)."""
        return self.W_rec if self.rank is None else self.S_l @ self.S_r

    def _recurrent(self, x: torch.Tensor) -> torch.Tensor:
        if self.rank is None:
            return x @ self.W_rec.T
        return (x @ self.S_r.T) @ self.S_l.T

    def _drive(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        inputs = nn.functional.linear(self._inputs(x, u), self.W_in.weight, self.W_in.bias)
        if x.ndim != 2 or inputs.shape != x.shape:
            return torch.tanh(self._recurrent(x) + inputs)
        # the same sums in fewer torch calls (the analysis steps these maps hundreds of times per
        # checkpoint): addmm adds the input drive where the product ends, bit for bit as above
        if self.rank is None:
            return torch.tanh(torch.addmm(inputs, x, self.W_rec.T))
        return torch.tanh(torch.addmm(inputs, x @ self.S_r.T, self.S_l.T))

    def velocity(self, x: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """dr/dt = -r + tanh(W r + W_in u + b), shape (b, n_states)."""
        return self._drive(x, u) - x

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """r ← (1 - α) r + α tanh(W r + W_in u + b), shape (b, n_states)."""
        return (1.0 - self.alpha) * x + self.alpha * self._drive(x, u)

    def _drive_derivatives(self, x, u):
        return _tanh_derivatives(self._recurrent(x) + self.W_in(self._inputs(x, u)))

    def _scaled_rows(self, scale: torch.Tensor) -> torch.Tensor:
        """``diag(scale) W`` for ``scale (b, N)``, shape (b, N, N)."""
        if self.rank is None:
            return scale.unsqueeze(-1) * self.W_rec
        return (scale.unsqueeze(-1) * self.S_l) @ self.S_r

    def _gram(self, scale: torch.Tensor) -> torch.Tensor:
        """``Wᵀ diag(scale) W`` for ``scale (b, N)``, shape (b, N, N)."""
        if self.rank is None:
            return self.W_rec.T @ (scale.unsqueeze(-1) * self.W_rec)
        inner = self.S_l.T @ (scale.unsqueeze(-1) * self.S_l)  # (b, K, K)
        return self.S_r.T @ inner @ self.S_r

    def velocity_jacobian(self, x, u=None):
        """∂(dr/dt)/∂r = -I + diag(tanh') W, shape (b, N, N)."""
        slope, _ = self._drive_derivatives(x, u)
        return _identity_plus(-1.0, self._scaled_rows(slope))

    def step_jacobian(self, x, u=None):
        """∂F/∂r = (1 - α) I + α diag(tanh') W, shape (b, N, N)."""
        slope, _ = self._drive_derivatives(x, u)
        return _identity_plus(1.0 - self.alpha, self._scaled_rows(self.alpha * slope))

    def velocity_curvature(self, x, u, weights):
        """Σ_k w_k ∇²(dr/dt)_k = Wᵀ diag(w tanh'') W, shape (b, N, N)."""
        _, bend = self._drive_derivatives(x, u)
        return self._gram(weights * bend)

    def step_curvature(self, x, u, weights):
        """Σ_k w_k ∇²F_k = α Wᵀ diag(w tanh'') W, shape (b, N, N)."""
        _, bend = self._drive_derivatives(x, u)
        return self._gram(self.alpha * weights * bend)

    def _constant_drive(self, u: Optional[torch.Tensor]) -> torch.Tensor:
        """``W_in u + b`` at a constant input ``u (n_inputs,)`` (None: zero input), shape (N,)."""
        ref = self.W_in.bias.detach().double()
        if u is None or self.n_inputs == 0:
            return ref.clone()
        u = torch.as_tensor(u, dtype=torch.float64, device=ref.device).reshape(-1)
        return self.W_in.weight.detach().double() @ u + ref

    def low_rank_form(self, u: Optional[torch.Tensor] = None,
                      max_rank: int = 3) -> Optional[Dict[str, object]]:
        """Fixed points are ``r* = tanh(c + L κ)`` with ``κ = R r*`` (INTERFACES.md).

        Low rank: ``L = S_l``, ``R = S_r``. Full rank: the truncated SVD when W has numerical
        rank ≤ ``max_rank`` (singular values above ``1e-12 · σ_max · N``), else None.

        Returns
        -------
        dict of float64 tensors ``left (N, K)``, ``right (K, N)``, ``bias (N,)`` and
        ``nonlinearity = "tanh"``, or None.
        """
        with torch.no_grad():
            c = self._constant_drive(u)
            if self.rank is not None:
                left, right = self.S_l.detach().double(), self.S_r.detach().double()
            else:
                w = self.W_rec.detach().double()
                u_svd, s, vh = torch.linalg.svd(w)
                k = int((s > 1e-12 * s[0] * w.shape[0]).sum()) if s[0] > 0 else 1
                if k > max_rank:
                    return None
                k = max(k, 1)
                left, right = u_svd[:, :k] * s[:k], vh[:k]
        return {"left": left.clone(), "right": right.clone(), "bias": c,
                "nonlinearity": "tanh"}

    def rate_form(self, u: Optional[torch.Tensor] = None) -> Dict[str, object]:
        """``r ← (1 − α) r + α tanh(W r + c)``: ``weight`` W (N, N), ``bias`` c (N,) at input
        ``u``, ``alpha``, ``nonlinearity`` (float64 tensors, detached)."""
        with torch.no_grad():
            return {"weight": self.W.detach().double().clone(), "bias": self._constant_drive(u),
                    "alpha": self.alpha, "nonlinearity": "tanh"}

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return _output_map(self.W_out(x), self.output, self.confidence)

    def config(self) -> Dict:
        cfg = dict(n_inputs=self.n_inputs, n_states=self.n_states, n_outputs=self.n_outputs,
                   alpha=self.alpha, gain=self.gain, output=self.output,
                   confidence=self.confidence)
        if self.rank is not None:
            cfg["rank"] = self.rank
        return cfg


class RankOneRNN(RecurrentModel):
    r"""Rank-one leaky RNN without input (the ghost paper's delayed-activation network).

    Discrete map::

        x_{t+1} = (1 - α) x_t + α tanh(m κ_t + b),   κ_t = n · x_t

    Continuous form (τ = 1): ``dx/dt = -x + tanh(m κ + b)``; the latent variable closes in one
    dimension, ``dκ/dt = -κ + n · tanh(m κ + b)`` (see :meth:`kappa_velocity`).
    Readout ``y = sigmoid(confidence · (κ - 1))`` (one output). Initial state ``x0 · 1``.

    State-dict keys: ``m (N,)``, ``n (N,)``, ``b (N,)``. Initialization: ``m, n ~ N(0, 1/N)``
    (m drawn first), ``b = 0``.

    Parameters
    ----------
    n_states : int, default 100
    alpha : float, default 0.5
    confidence : float, default 10.0
    x0 : float, default -0.3
    """

    architecture = "rank_one_rnn"

    def __init__(self, n_states: int = 100, alpha: float = 0.5, confidence: float = 10.0,
                 x0: float = -0.3):
        super().__init__()
        self.n_states = _check_positive_int(n_states, "n_states")
        self.n_inputs = 0
        self.n_outputs = 1
        self.alpha = _check_alpha(alpha)
        self.confidence = float(confidence)
        self.x0 = float(x0)
        scale = 1.0 / math.sqrt(self.n_states)
        self.m = nn.Parameter(torch.randn(self.n_states) * scale)
        self.n = nn.Parameter(torch.randn(self.n_states) * scale)
        self.b = nn.Parameter(torch.zeros(self.n_states))

    def kappa(self, x: torch.Tensor) -> torch.Tensor:
        """Latent variable κ = n · x, shape (b,)."""
        return x @ self.n

    def kappa_velocity(self, kappa: torch.Tensor) -> torch.Tensor:
        """dκ/dt = -κ + n · tanh(m κ + b) for κ of shape (b,); returns (b,)."""
        return -kappa + torch.tanh(kappa[..., None] * self.m + self.b) @ self.n

    def _drive(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.kappa(x)[..., None] * self.m + self.b)

    def velocity(self, x: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """dx/dt = -x + tanh(m (n·x) + b), shape (b, n_states); u is ignored (no inputs)."""
        return -x + self._drive(x)

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x ← (1 - α) x + α tanh(m (n·x) + b), shape (b, n_states); u is ignored."""
        return (1.0 - self.alpha) * x + self.alpha * self._drive(x)

    def _scaled_rows(self, scale: torch.Tensor) -> torch.Tensor:
        """``diag(scale) m nᵀ``, shape (b, N, N)."""
        return (scale * self.m).unsqueeze(-1) * self.n

    def _gram(self, scale: torch.Tensor) -> torch.Tensor:
        """``(m nᵀ)ᵀ diag(scale) m nᵀ = (Σ_k scale_k m_k²) n nᵀ``, shape (b, N, N)."""
        return (scale @ (self.m * self.m))[:, None, None] * torch.outer(self.n, self.n)

    def _drive_derivatives(self, x):
        return _tanh_derivatives(self.kappa(x)[..., None] * self.m + self.b)

    def velocity_jacobian(self, x, u=None):
        """-I + diag(tanh') m nᵀ, shape (b, N, N)."""
        slope, _ = self._drive_derivatives(x)
        return _identity_plus(-1.0, self._scaled_rows(slope))

    def step_jacobian(self, x, u=None):
        """(1 - α) I + α diag(tanh') m nᵀ, shape (b, N, N)."""
        slope, _ = self._drive_derivatives(x)
        return _identity_plus(1.0 - self.alpha, self._scaled_rows(self.alpha * slope))

    def velocity_curvature(self, x, u, weights):
        """Σ_k w_k ∇²(dx/dt)_k = (Σ_k w_k tanh''_k m_k²) n nᵀ, shape (b, N, N)."""
        _, bend = self._drive_derivatives(x)
        return self._gram(weights * bend)

    def step_curvature(self, x, u, weights):
        """α times :meth:`velocity_curvature`, shape (b, N, N)."""
        _, bend = self._drive_derivatives(x)
        return self._gram(self.alpha * weights * bend)

    def low_rank_form(self, u: Optional[torch.Tensor] = None) -> Dict[str, object]:
        """``L = m[:, None]``, ``R = n[None, :]``, ``c = b`` (no inputs; ``u`` is ignored)."""
        with torch.no_grad():
            return {"left": self.m.detach().double()[:, None].clone(),
                    "right": self.n.detach().double()[None, :].clone(),
                    "bias": self.b.detach().double().clone(), "nonlinearity": "tanh"}

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.confidence * (self.kappa(x) - 1.0))[..., None]

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return torch.full_like(self.m, self.x0).expand(batch_size, self.n_states).clone()

    def config(self) -> Dict:
        return dict(n_states=self.n_states, alpha=self.alpha, confidence=self.confidence,
                    x0=self.x0)


class XFormRNN(RecurrentModel):
    r"""Rate RNN in "x-form" (currents as state, rates r = tanh(x)).

    Continuous form (τ = 1)::

        dx/dt = -x + J tanh(x) + W_in u + b          (velocity)

    Discrete step: Euler with α = dt/τ, ``x ← x + α (-x + J tanh(x) + W_in u + b)``.
    Readout from the rates: ``y = W_out tanh(x) + b_out`` (or its sigmoid with ``confidence``).

    State-dict keys: ``W_in.weight (N, M)``, ``W_in.bias (N,)`` (this is b), ``J (N, N)``,
    ``W_out.weight (O, N)``, ``W_out.bias (O,)``. The recurrent matrix is named ``J`` (not
    ``W_rec``) so that an x-form checkpoint is never mistaken for a leaky-rate one.
    Initialization ``J ~ N(0, gain²/N)``.

    Parameters
    ----------
    n_inputs, n_states, n_outputs : int
    alpha : float, default 0.5
    gain : float, default 1.0
    output : {"linear", "sigmoid"}, default "linear"
    confidence : float, default 1.0
    """

    architecture = "xform_rnn"

    def __init__(self, n_inputs: int, n_states: int, n_outputs: int, alpha: float = 0.5,
                 gain: float = 1.0, output: str = "linear", confidence: float = 1.0):
        super().__init__()
        self.n_inputs = _check_positive_int(n_inputs, "n_inputs", allow_zero=True)
        self.n_states = _check_positive_int(n_states, "n_states")
        self.n_outputs = _check_positive_int(n_outputs, "n_outputs")
        self.alpha = _check_alpha(alpha)
        self.gain = float(gain)
        self.output = _check_output(output)
        self.confidence = float(confidence)
        n = self.n_states
        self.W_in = _input_layer(self.n_inputs, n)
        self.J = nn.Parameter(torch.randn(n, n) * (self.gain / math.sqrt(n)))
        self.W_out = nn.Linear(n, self.n_outputs)

    def velocity(self, x: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """dx/dt = -x + J tanh(x) + W_in u + b, shape (b, n_states)."""
        return -x + torch.tanh(x) @ self.J.T + self.W_in(self._inputs(x, u))

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x ← x + α (-x + J tanh(x) + W_in u + b), shape (b, n_states)."""
        return x + self.alpha * self.velocity(x, u)

    def velocity_jacobian(self, x, u=None):
        """-I + J diag(tanh'(x)), shape (b, N, N)."""
        slope, _ = _tanh_derivatives(x)
        return _identity_plus(-1.0, self.J * slope.unsqueeze(1))

    def step_jacobian(self, x, u=None):
        """I + α (-I + J diag(tanh'(x))), shape (b, N, N)."""
        slope, _ = _tanh_derivatives(x)
        return _identity_plus(1.0 - self.alpha, self.alpha * self.J * slope.unsqueeze(1))

    def velocity_curvature(self, x, u, weights):
        """Σ_k w_k ∇²(dx/dt)_k = diag(tanh''(x) ⊙ Jᵀw), shape (b, N, N)."""
        _, bend = _tanh_derivatives(x)
        return torch.diag_embed(bend * (weights @ self.J))

    def step_curvature(self, x, u, weights):
        """α times :meth:`velocity_curvature`, shape (b, N, N)."""
        return self.alpha * self.velocity_curvature(x, u, weights)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return _output_map(self.W_out(torch.tanh(x)), self.output, self.confidence)

    def config(self) -> Dict:
        return dict(n_inputs=self.n_inputs, n_states=self.n_states, n_outputs=self.n_outputs,
                    alpha=self.alpha, gain=self.gain, output=self.output,
                    confidence=self.confidence)


class PLRNN(RecurrentModel):
    r"""Piecewise-linear RNN (Durstewitz-style).

    Discrete map::

        z_t = A z_{t-1} + W ReLU(z_{t-1}) + C s_t + h,      y_t = B z_t

    with A diagonal (stored as the vector ``A (N,)``) and W off-diagonal: the diagonal of the
    stored ``W`` is ignored (masked in :meth:`step`), so a checkpoint with a non-zero diagonal
    still gives the documented map. Its fixed points are exact per ReLU sign pattern D:
    ``z* = (I - diag(A) - W D)^{-1} h`` (zero input) where consistent.

    State-dict keys: ``A (N,)``, ``W (N, N)``, ``C (N, M)``, ``h (N,)``, ``B (O, N)``.
    Initialization: ``A ~ U(0.5, 0.9)``, ``W ~ N(0, (gain · 0.5)²/N)`` off the diagonal,
    ``C ~ N(0, 1/M)``, ``h = 0``, ``B ~ N(0, 1/N)``.

    Parameters
    ----------
    n_inputs, n_states, n_outputs : int
    gain : float, default 1.0
    """

    architecture = "plrnn"

    def __init__(self, n_inputs: int, n_states: int, n_outputs: int, gain: float = 1.0):
        super().__init__()
        self.n_inputs = _check_positive_int(n_inputs, "n_inputs", allow_zero=True)
        self.n_states = _check_positive_int(n_states, "n_states")
        self.n_outputs = _check_positive_int(n_outputs, "n_outputs")
        self.gain = float(gain)
        n, m = self.n_states, self.n_inputs
        self.A = nn.Parameter(0.5 + 0.4 * torch.rand(n))
        w = torch.randn(n, n) * (0.5 * self.gain / math.sqrt(n))
        self.W = nn.Parameter(w - torch.diag(torch.diagonal(w)))
        self.C = nn.Parameter(torch.randn(n, m) / math.sqrt(max(m, 1)))
        self.h = nn.Parameter(torch.zeros(n))
        self.B = nn.Parameter(torch.randn(self.n_outputs, n) / math.sqrt(n))

    @property
    def W_offdiagonal(self) -> torch.Tensor:
        """W with its diagonal removed, shape (N, N)."""
        return self.W - torch.diag(torch.diagonal(self.W))

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """z ← A ⊙ z + W_off ReLU(z) + C s + h, shape (b, n_states)."""
        u = self._inputs(x, u)
        return self.A * x + torch.relu(x) @ self.W_offdiagonal.T + u @ self.C.T + self.h

    def step_jacobian(self, x, u=None):
        """diag(A) + W_off diag(ReLU'(z)), shape (b, N, N)."""
        active = (x > 0).to(x.dtype)
        return self.W_offdiagonal * active.unsqueeze(1) + torch.diag(self.A)

    def step_curvature(self, x, u, weights):
        """Zero: the map is piecewise linear (no curvature off the ReLU kinks), (b, N, N)."""
        return x.new_zeros(x.shape[0], self.n_states, self.n_states)

    def plrnn_form(self, u: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """The map at constant input ``u``: ``A (N,)``, ``W (N, N)`` (off-diagonal) and
        ``drive = C u + h (N,)``, float64 and detached (read by ``fixedpoints.plrnn``)."""
        with torch.no_grad():
            drive = self.h.detach().double().clone()
            if u is not None and self.n_inputs:
                drive = drive + self.C.detach().double() @ torch.as_tensor(
                    u, dtype=torch.float64, device=drive.device).reshape(-1)
            return {"A": self.A.detach().double().clone(),
                    "W": self.W_offdiagonal.detach().double().clone(), "drive": drive}

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.B.T

    def config(self) -> Dict:
        return dict(n_inputs=self.n_inputs, n_states=self.n_states, n_outputs=self.n_outputs,
                    gain=self.gain)


TORCH_CELLS = ("gru", "lstm", "rnn_tanh", "rnn_relu")
_GATES = {"gru": 3, "lstm": 4, "rnn_tanh": 1, "rnn_relu": 1}


class TorchRNN(RecurrentModel):
    r"""A torch ``nn.GRU`` / ``nn.LSTM`` / ``nn.RNN`` (any number of layers) with a linear readout.

    The module is ``self.rnn`` (``batch_first=True``) and the readout ``self.readout_layer``
    (``nn.Linear(hidden_size, n_outputs)`` on the last layer's h). The state is every layer's h
    concatenated, ``[h_0, …, h_{L-1}]`` (LSTM: ``[h_0, …, h_{L-1}, c_0, …, c_{L-1}]``), so
    ``n_states = L · hidden_size`` (LSTM: ``2 L · hidden_size``).

    :meth:`step` writes the cell equations out from the module's own weights (torch gate
    order; σ the logistic function; layer l's input is layer l-1's new h)::

        GRU   r = σ(W_ir x + b_ir + W_hr h + b_hr)      z = σ(W_iz x + b_iz + W_hz h + b_hz)
              n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))      h' = (1 - z) ⊙ n + z ⊙ h
        LSTM  i, f, g, o = σ, σ, tanh, σ of (W_i· x + b_i· + W_h· h + b_h·)
              c' = f ⊙ c + i ⊙ g                       h' = o ⊙ tanh(c')
        RNN   h' = tanh or relu of (W_ih x + b_ih + W_hh h + b_hh)

    :meth:`forward` runs the fused torch module (one call per time step, to expose every
    layer's state at every step).

    State-dict keys: ``rnn.weight_ih_l{k}``, ``rnn.weight_hh_l{k}``, ``rnn.bias_ih_l{k}``,
    ``rnn.bias_hh_l{k}`` for each layer k, ``readout_layer.weight``, ``readout_layer.bias``.

    Parameters
    ----------
    n_inputs, hidden_size, n_outputs : int
        ``hidden_size`` is the number of units per layer.
    cell : {"gru", "lstm", "rnn_tanh", "rnn_relu"}, default "gru"
    num_layers : int, default 1
    bias : bool, default True
    """

    def __init__(self, n_inputs: int, hidden_size: int, n_outputs: int, cell: str = "gru",
                 num_layers: int = 1, bias: bool = True):
        super().__init__()
        if cell not in TORCH_CELLS:
            raise ValueError(f"cell={cell!r} is not a torch recurrent cell; pass one of "
                             f"{list(TORCH_CELLS)}")
        self.cell = cell
        self.architecture = cell
        self.n_inputs = _check_positive_int(n_inputs, "n_inputs", allow_zero=True)
        self.hidden_size = _check_positive_int(hidden_size, "hidden_size")
        self.n_outputs = _check_positive_int(n_outputs, "n_outputs")
        self.num_layers = _check_positive_int(num_layers, "num_layers")
        self.bias = bool(bias)
        self.n_layer_states = 2 if cell == "lstm" else 1
        self.n_states = self.n_layer_states * self.num_layers * self.hidden_size
        kwargs = dict(input_size=self.n_inputs, hidden_size=self.hidden_size,
                      num_layers=self.num_layers, bias=self.bias, batch_first=True)
        self.rnn: nn.RNNBase
        if cell == "gru":
            self.rnn = nn.GRU(**kwargs)
        elif cell == "lstm":
            self.rnn = nn.LSTM(**kwargs)
        else:
            self.rnn = nn.RNN(nonlinearity=cell[4:], **kwargs)
        self.readout_layer = nn.Linear(self.hidden_size, self.n_outputs)

    @property
    def recurrent_module(self) -> nn.Module:
        """The torch module whose dynamics :meth:`step` computes (same state layout), so that
        analysis tools can use closed-form derivatives written for torch's own modules."""
        return self.rnn

    @classmethod
    def check_module(cls, module: nn.Module, name: str = "rnn") -> str:
        """The cell name of a torch recurrent module; ValueError for unsupported ones."""
        if isinstance(module, nn.GRU):
            cell = "gru"
        elif isinstance(module, nn.LSTM):
            cell = "lstm"
        elif isinstance(module, nn.RNN):
            cell = "rnn_" + module.nonlinearity
        else:
            raise ValueError(f"{name} is a {type(module).__name__}, not an nn.GRU, nn.LSTM or "
                             "nn.RNN")
        if module.bidirectional:
            raise ValueError(f"{name} is bidirectional; a bidirectional RNN reads the sequence "
                             "backwards too and has no forward-in-time dynamics to analyze: "
                             "use a unidirectional module")
        if getattr(module, "proj_size", 0):
            raise ValueError(f"{name} has proj_size={module.proj_size}; LSTMs with projections "
                             "are not supported: use proj_size=0")
        return cell

    # -------------------------------------------------------------- state layout
    def split_state(self, x: torch.Tensor):
        """Split ``x (b, n_states)`` into a list of per-layer ``h`` (and ``c`` for LSTM)."""
        hs = x.shape[-1] // (self.n_layer_states * self.num_layers)
        chunks = list(torch.split(x, hs, dim=-1))
        if self.cell == "lstm":
            return chunks[:self.num_layers], chunks[self.num_layers:]
        return chunks, None

    def _weights(self, layer: int):
        w_ih = getattr(self.rnn, f"weight_ih_l{layer}")
        w_hh = getattr(self.rnn, f"weight_hh_l{layer}")
        if self.bias:
            return (w_ih, w_hh, getattr(self.rnn, f"bias_ih_l{layer}"),
                    getattr(self.rnn, f"bias_hh_l{layer}"))
        return w_ih, w_hh, None, None

    @staticmethod
    def _affine(x, w, b):
        y = x @ w.T
        return y if b is None else y + b

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One step of every layer.

        ``x (b, n_states)``, ``u (b, n_inputs)`` -> ``(b, n_states)``.
        """
        u = self._inputs(x, u)
        hs, cs = self.split_state(x)
        new_h, new_c = [], []
        layer_input = u
        for layer in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self._weights(layer)
            gi = self._affine(layer_input, w_ih, b_ih)
            gh = self._affine(hs[layer], w_hh, b_hh)
            h = hs[layer]
            if self.cell == "gru":
                i_r, i_z, i_n = gi.chunk(3, dim=-1)
                h_r, h_z, h_n = gh.chunk(3, dim=-1)
                r = torch.sigmoid(i_r + h_r)
                z = torch.sigmoid(i_z + h_z)
                n = torch.tanh(i_n + r * h_n)
                h_next = (1.0 - z) * n + z * h
            elif self.cell == "lstm":
                gates = gi + gh
                i, f, g, o = gates.chunk(4, dim=-1)
                c_next = torch.sigmoid(f) * cs[layer] + torch.sigmoid(i) * torch.tanh(g)
                h_next = torch.sigmoid(o) * torch.tanh(c_next)
                new_c.append(c_next)
            elif self.cell == "rnn_tanh":
                h_next = torch.tanh(gi + gh)
            else:
                h_next = torch.relu(gi + gh)
            new_h.append(h_next)
            layer_input = h_next
        return torch.cat(new_h + new_c, dim=-1)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        hs, _ = self.split_state(x)
        return self.readout_layer(hs[-1])

    def _to_hidden(self, x: torch.Tensor):
        hs, cs = self.split_state(x)
        h = torch.stack(hs, dim=0).contiguous()
        if self.cell == "lstm":
            return h, torch.stack(cs, dim=0).contiguous()
        return h

    def _from_hidden(self, hidden) -> torch.Tensor:
        if self.cell == "lstm":
            h, c = hidden
            return torch.cat(list(h.unbind(0)) + list(c.unbind(0)), dim=-1)
        return torch.cat(list(hidden.unbind(0)), dim=-1)

    def forward(self, inputs: torch.Tensor,
                x0: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Run the fused torch module; same contract as :meth:`RecurrentModel.forward`."""
        inputs = self._check_sequence(inputs)
        batch, n_time = inputs.shape[0], inputs.shape[1]
        x = self.initial_state(batch) if x0 is None else x0
        if self.num_layers == 1 and self.cell != "lstm":
            # The module's output sequence is then the whole state sequence: one fused call.
            states_t, _ = self.rnn(inputs, self._to_hidden(x))
        else:
            hidden = self._to_hidden(x)
            states = []
            for t in range(n_time):
                _, hidden = self.rnn(inputs[:, t:t + 1], hidden)
                states.append(self._from_hidden(hidden))
            states_t = (torch.stack(states, dim=1) if states
                        else inputs.new_zeros(batch, 0, self.n_states))
        outputs = self.readout(states_t.reshape(batch * n_time, self.n_states))
        return outputs.reshape(batch, n_time, self.n_outputs), states_t

    def config(self) -> Dict:
        return dict(n_inputs=self.n_inputs, hidden_size=self.hidden_size,
                    n_outputs=self.n_outputs, cell=self.cell, num_layers=self.num_layers,
                    bias=self.bias)


ARCHITECTURES: Dict[str, type] = {
    "leaky_rnn": LeakyRNN,
    "low_rank_rnn": LeakyRNN,
    "rank_one_rnn": RankOneRNN,
    "xform_rnn": XFormRNN,
    "plrnn": PLRNN,
    "gru": TorchRNN,
    "lstm": TorchRNN,
    "rnn_tanh": TorchRNN,
    "rnn_relu": TorchRNN,
}


def build_model(architecture: str, **config) -> RecurrentModel:
    """Build a built-in model from its registry name and constructor keyword arguments.

    Parameters
    ----------
    architecture : str
        A key of :data:`ARCHITECTURES`.
    **config
        Constructor keyword arguments (as written by ``model.config()``). For the torch cells
        ``n_states`` is accepted as an alias of ``hidden_size`` (units per layer); ``cell``
        may be omitted (it is the architecture name). ``"low_rank_rnn"`` needs ``rank``.

    Returns
    -------
    RecurrentModel

    Raises
    ------
    ValueError
        Unknown architecture, or keyword arguments the constructor does not take (the message
        lists the valid ones).
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; pass one of "
                         f"{sorted(ARCHITECTURES)} or a custom model factory")
    cls = ARCHITECTURES[architecture]
    config = dict(config)
    if cls is TorchRNN:
        if "n_states" in config:
            n_states = config.pop("n_states")
            if config.setdefault("hidden_size", n_states) != n_states:
                raise ValueError(f"n_states={n_states} and hidden_size={config['hidden_size']} "
                                 "disagree; pass only hidden_size (units per layer)")
        cell = config.setdefault("cell", architecture)
        if cell != architecture:
            raise ValueError(f"cell={cell!r} contradicts architecture {architecture!r}; "
                             "drop one of them or make them equal")
    if architecture == "low_rank_rnn" and config.get("rank") is None:
        raise ValueError("architecture 'low_rank_rnn' needs rank=K (the number of columns of S_l)")
    if architecture == "leaky_rnn" and config.get("rank") is not None:
        architecture = "low_rank_rnn"
    import inspect
    accepted = set(inspect.signature(cls).parameters) - {"self"}
    unknown = sorted(set(config) - accepted)
    if unknown:
        raise ValueError(f"{cls.__name__} ({architecture!r}) does not take {unknown}; "
                         f"valid arguments are {sorted(accepted)}")
    try:
        return cls(**config)
    except TypeError as exc:
        raise ValueError(f"cannot build {architecture!r} from {config}: {exc}") from exc
