"""The ghost paper's leaky firing-rate RNN exactly as the authors' training scripts compute it.

Their code writes states as **row vectors** (trials are rows), so the recurrent matrix acts on
the right (SCIENCE.md §2)::

    z_t     = tanh( W_in(u_t) + r_t @ M )          M = S_l @ S_r (low rank) or W_rec (full rank)
    r_{t+1} = (1 - α) r_t + α z_t                  α = dt / τ = 0.5
    o_t     = g( W_out( r_t @ S_l ) )              reads the K-dimensional latent κ = r S_l

In the column form every other model of this package uses, the recurrent matrix is
``W = Mᵀ`` (for low rank ``W = S_rᵀ S_lᵀ``, not ``S_l S_r``). The readout reads the latent, so
``W_out.weight`` has shape ``(n_outputs, K)``: that shape is what tells these files apart from
the column-convention :class:`~checkpoints.models.LeakyRNN` (whose readout is ``(O, N)``). A
full-rank ``W_rec`` cannot be told apart by its shapes: a config key ``"convention": "row"``
or ``convention="row"`` (``--convention row``) selects this model.

Registry names: ``"paper_low_rank_rnn"`` (keys ``S_l (N, K)``, ``S_r (K, N)``) and
``"paper_rnn"`` (key ``W_rec (N, N)``), both with ``W_in.weight (N, M)``, ``W_in.bias (N,)``,
``W_out.weight (O, K or N)``, ``W_out.bias (O,)``.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch
from torch import nn

from .models import (ARCHITECTURES, RecurrentModel, _check_alpha, _check_positive_int,
                     _identity_plus, _input_layer, _tanh_derivatives)

__all__ = ["PaperRNN", "PAPER_OUTPUTS", "READOUT_SOURCES"]

PAPER_OUTPUTS = ("tanh", "sigmoid", "linear")
READOUT_SOURCES = ("latent", "state")
# numerical rank above which a full-rank W_rec has no low-rank form
_MAX_FORM_RANK = 3


class PaperRNN(RecurrentModel):
    r"""Row-convention leaky RNN of the ghost paper, low rank (``rank=K``) or full rank.

    Discrete map (row vectors ``r (b, N)``)::

        r ← (1 - α) r + α tanh(W_in u + b + r M),   M = S_l S_r  or  W_rec

    Continuous form (τ = 1): ``dr/dt = -r + tanh(W_in u + b + r M)``. Readout
    ``g(W_out κ + b_out)`` with ``κ = r S_l`` (``readout_from="latent"``, low rank only) or
    ``g(W_out r + b_out)`` (``"state"``), ``g`` one of tanh, sigmoid, identity.

    Initialization as the authors': ``S_l ~ N(0, 1/N)``, ``S_r ~ N(0, 1)`` (full rank:
    ``W_rec ~ N(0, 1/N)``), ``W_in.weight`` and ``W_out.weight`` Xavier-uniform,
    ``W_in.bias ~ N(0, 0.1²)``, ``W_out.bias`` the torch default.

    Parameters
    ----------
    n_inputs, n_states, n_outputs : int
    rank : int, optional
        K; full rank when omitted.
    alpha : float, default 0.5
    output : {"tanh", "sigmoid", "linear"}, default "tanh"
        g: tanh for cue discrimination, sigmoid for match-to-sample.
    readout_from : {"latent", "state"}, optional
        Default ``"latent"`` for low rank, ``"state"`` for full rank.
    """

    architecture = "paper_rnn"

    def __init__(self, n_inputs: int, n_states: int, n_outputs: int, rank: Optional[int] = None,
                 alpha: float = 0.5, output: str = "tanh", readout_from: Optional[str] = None):
        super().__init__()
        self.n_inputs = _check_positive_int(n_inputs, "n_inputs", allow_zero=True)
        self.n_states = _check_positive_int(n_states, "n_states")
        self.n_outputs = _check_positive_int(n_outputs, "n_outputs")
        self.rank = None if rank is None else _check_positive_int(rank, "rank")
        self.alpha = _check_alpha(alpha)
        if output not in PAPER_OUTPUTS:
            raise ValueError(f"output={output!r} is invalid; pass one of {list(PAPER_OUTPUTS)}")
        self.output = output
        if readout_from is None:
            readout_from = "state" if self.rank is None else "latent"
        if readout_from not in READOUT_SOURCES:
            raise ValueError(f"readout_from={readout_from!r} is invalid; pass one of "
                             f"{list(READOUT_SOURCES)}")
        if readout_from == "latent" and self.rank is None:
            raise ValueError("readout_from='latent' needs rank=K (a full-rank model has no "
                             "latent); pass readout_from='state'")
        self.readout_from = readout_from
        n = self.n_states
        if self.rank is not None:
            self.architecture = "paper_low_rank_rnn"
            self.S_l = nn.Parameter(torch.randn(n, self.rank) / math.sqrt(n))
            self.S_r = nn.Parameter(torch.randn(self.rank, n))
        else:
            self.W_rec = nn.Parameter(torch.randn(n, n) / math.sqrt(n))
        self.W_in = _input_layer(self.n_inputs, n)
        if self.n_inputs:
            nn.init.xavier_uniform_(self.W_in.weight)
        with torch.no_grad():
            self.W_in.bias.normal_(0.0, 0.1)
        width = self.rank if readout_from == "latent" and self.rank is not None else n
        self.W_out = nn.Linear(width, self.n_outputs)
        nn.init.xavier_uniform_(self.W_out.weight)

    # ------------------------------------------------------------------ dynamics
    @property
    def W(self) -> torch.Tensor:
        """The recurrent matrix in column form, ``(N, N)``: ``Mᵀ`` (``S_rᵀ S_lᵀ`` for low rank)."""
        return (self.S_l @ self.S_r).T if self.rank is not None else self.W_rec.T

    def _recurrent(self, r: torch.Tensor) -> torch.Tensor:
        if self.rank is None:
            return r @ self.W_rec
        return (r @ self.S_l) @ self.S_r

    def _pre(self, r: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        return self.W_in(self._inputs(r, u)) + self._recurrent(r)

    def velocity(self, x: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """dr/dt = -r + tanh(W_in u + b + r M), shape (b, n_states)."""
        return -x + torch.tanh(self._pre(x, u))

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """r ← (1 - α) r + α tanh(W_in u + b + r M), shape (b, n_states)."""
        return (1.0 - self.alpha) * x + self.alpha * torch.tanh(self._pre(x, u))

    def _scaled_rows(self, scale: torch.Tensor) -> torch.Tensor:
        """``diag(scale) W = diag(scale) Mᵀ`` for ``scale (b, N)``, shape (b, N, N)."""
        if self.rank is None:
            return scale.unsqueeze(-1) * self.W_rec.T
        return (scale.unsqueeze(-1) * self.S_r.T) @ self.S_l.T

    def _gram(self, scale: torch.Tensor) -> torch.Tensor:
        """``Wᵀ diag(scale) W = M diag(scale) Mᵀ`` for ``scale (b, N)``, shape (b, N, N)."""
        if self.rank is None:
            return self.W_rec @ (scale.unsqueeze(-1) * self.W_rec.T)
        inner = self.S_r @ (scale.unsqueeze(-1) * self.S_r.T)  # (b, K, K)
        return self.S_l @ inner @ self.S_l.T

    def velocity_jacobian(self, x, u=None):
        """∂(dr/dt)/∂r = -I + diag(tanh') Mᵀ, shape (b, N, N)."""
        slope, _ = _tanh_derivatives(self._pre(x, u))
        return _identity_plus(-1.0, self._scaled_rows(slope))

    def step_jacobian(self, x, u=None):
        """∂F/∂r = (1 - α) I + α diag(tanh') Mᵀ, shape (b, N, N)."""
        slope, _ = _tanh_derivatives(self._pre(x, u))
        return _identity_plus(1.0 - self.alpha, self._scaled_rows(self.alpha * slope))

    def velocity_curvature(self, x, u, weights):
        """Σ_k w_k ∇²(dr/dt)_k = M diag(w tanh'') Mᵀ, shape (b, N, N)."""
        _, bend = _tanh_derivatives(self._pre(x, u))
        return self._gram(weights * bend)

    def step_curvature(self, x, u, weights):
        """Σ_k w_k ∇²F_k = α M diag(w tanh'') Mᵀ, shape (b, N, N)."""
        _, bend = _tanh_derivatives(self._pre(x, u))
        return self._gram(self.alpha * weights * bend)

    # ------------------------------------------------------------------ readout, forms
    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """The authors' latent κ = r S_l, shape (b, K) (low rank only)."""
        if self.rank is None:
            raise ValueError("a full-rank paper_rnn has no latent r @ S_l; use readout()")
        return x @ self.S_l

    def latent_basis(self) -> Optional[torch.Tensor]:
        """``B = S_lᵀ (K, N)`` with κ = B r the authors' latent (None for full rank): the
        recurrent drive depends on r only through κ, so κ has closed K-dimensional dynamics."""
        return None if self.rank is None else self.S_l.T

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        """g(W_out(r S_l)) (latent readout) or g(W_out(r)), shape (b, n_outputs)."""
        z = self.W_out(self.latent(x) if self.readout_from == "latent" else x)
        if self.output == "tanh":
            return torch.tanh(z)
        if self.output == "sigmoid":
            return torch.sigmoid(z)
        return z

    def low_rank_form(self, u: Optional[torch.Tensor] = None) -> Optional[Dict[str, object]]:
        """Fixed points as ``r* = tanh(c + L κ)``, ``κ = R r*`` (see INTERFACES.md).

        Low rank: ``L = S_rᵀ (N, K)``, ``R = S_lᵀ (K, N)`` (so κ is the authors' latent
        ``r S_l``). Full rank: from the SVD of ``W = W_recᵀ`` when its numerical rank is at most
        3, else None. ``c = W_in u + b`` (u None: zero input).

        Returns
        -------
        dict or None
            ``{"left": (N, K), "right": (K, N), "bias": (N,), "nonlinearity": "tanh"}``, float64
            tensors detached from autograd.
        """
        with torch.no_grad():
            ref = self.W_in.bias
            if u is None:
                drive = ref.new_zeros(self.n_inputs)
            else:
                drive = torch.as_tensor(u, dtype=ref.dtype, device=ref.device).reshape(-1)
                if drive.numel() != self.n_inputs:
                    raise ValueError(f"u has {drive.numel()} entries; this model takes "
                                     f"{self.n_inputs} inputs")
            bias = (self.W_in(drive[None])[0]).detach().to(torch.float64)
            if self.rank is not None:
                left = self.S_r.T.detach().to(torch.float64).clone()
                right = self.S_l.T.detach().to(torch.float64).clone()
            else:
                w = self.W_rec.T.detach().to(torch.float64)
                u_s, s, vh = torch.linalg.svd(w)
                tol = s[0] * max(w.shape) * torch.finfo(torch.float64).eps if len(s) else 0.0
                k = int((s > tol).sum())
                if k > _MAX_FORM_RANK:
                    return None
                left = (u_s[:, :k] * s[:k]).clone()
                right = vh[:k].clone()
        return {"left": left, "right": right, "bias": bias, "nonlinearity": "tanh"}

    def config(self) -> Dict:
        cfg = dict(n_inputs=self.n_inputs, n_states=self.n_states, n_outputs=self.n_outputs,
                   alpha=self.alpha, output=self.output, readout_from=self.readout_from)
        if self.rank is not None:
            cfg["rank"] = self.rank
        return cfg


ARCHITECTURES.setdefault("paper_rnn", PaperRNN)
ARCHITECTURES.setdefault("paper_low_rank_rnn", PaperRNN)
