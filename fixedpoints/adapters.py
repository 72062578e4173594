"""Turn torch models into :class:`~fixedpoints.dynamics.Dynamics` without touching them.

Supported:

* ``torch.nn.RNN`` (tanh or relu), ``GRU`` and ``LSTM`` with any number of layers, and their
  ``Cell`` versions. The state is every layer's hidden state concatenated, ``[h_0, ..., h_{L-1}]``;
  for an LSTM the cell states follow, ``[h_0, ..., h_{L-1}, c_0, ..., c_{L-1}]``. One step feeds
  the input to layer 0 and each layer's new ``h`` to the next layer (dropout is off, as in eval).
* Any ``nn.Module`` with ``step(x, u)`` (a map, discrete time) or ``velocity(x, u)`` (a vector
  field, continuous time) on batch-first 2-D tensors. Its sizes are read from ``n_states`` (or
  ``hidden_size``) and ``n_inputs`` (or ``input_size``). If it has both, ``time=`` picks one; the
  default is the module's own ``time`` attribute, else discrete. Closed-form derivatives are
  used when the module has them: ``step_jacobian(x, u)`` / ``velocity_jacobian(x, u)`` (or a
  plain ``jacobian`` for the form in use) and ``step_curvature(x, u, weights)`` /
  ``velocity_curvature`` (or ``curvature``), the weighted second derivative of
  :class:`~fixedpoints.dynamics.Dynamics`.
* A module with a ``recurrent_module`` attribute that is a torch ``RNN``/``GRU``/``LSTM`` whose
  dynamics (and state layout) it runs, such as ``checkpoints.TorchRNN``: treated as that module.

Torch ``RNN``, ``GRU`` and ``LSTM`` of any depth (and their cells) also get a closed-form
curvature (:func:`_torch_rnn_curvature`), so the exact Hessian of the speed costs one batched
matrix product per layer instead of n double-backward passes.

The user's model is never mutated: parameters are copied (detached, in the requested dtype and
device), the copy runs in eval mode, and ``requires_grad``, ``.grad`` and ``training`` of the
original are left as they were.
"""
from __future__ import annotations

import copy
import logging
from typing import Callable, Dict, List, Optional, Tuple, Union, cast

import torch
from torch import nn

from .dynamics import ContinuousDynamics, DiscreteDynamics, Dynamics
from .sources import attach_sources

__all__ = ["from_module"]

log = logging.getLogger(__name__)

_RECURRENT = (nn.RNN, nn.GRU, nn.LSTM)
_CELLS = (nn.RNNCell, nn.GRUCell, nn.LSTMCell)
_TorchRecurrent = Union[nn.RNNBase, nn.RNNCellBase]


def _check_finite(module: nn.Module) -> None:
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            n_bad = int((~torch.isfinite(tensor)).sum())
            raise ValueError(f"parameter {name!r} of {type(module).__name__} has {n_bad} "
                             f"non-finite value(s) (NaN/inf); the dynamics are undefined. Use a "
                             f"checkpoint from before training diverged")


def _weights(module: nn.Module, names: List[str], dtype, device) -> Dict[str, torch.Tensor]:
    return {n: getattr(module, n).detach().to(device=device, dtype=dtype).clone()
            for n in names if getattr(module, n, None) is not None}


def _cell_kind(module: nn.Module) -> Tuple[bool, bool, bool]:
    """``(lstm, gru, relu)``: which recurrence a torch RNN/GRU/LSTM (or cell) runs."""
    lstm = isinstance(module, (nn.LSTM, nn.LSTMCell))
    gru = isinstance(module, (nn.GRU, nn.GRUCell))
    return lstm, gru, (not lstm and not gru) and module.nonlinearity == "relu"


def _layer_weights(module: nn.Module, dtype,
                   device) -> List[Dict[str, Optional[torch.Tensor]]]:
    """Per-layer weights ``w_ih, w_hh, b_ih, b_hh`` (biases may be absent)."""
    if isinstance(module, _CELLS):
        w = _weights(module, ["weight_ih", "weight_hh", "bias_ih", "bias_hh"], dtype, device)
        return [{"w_ih": w["weight_ih"], "w_hh": w["weight_hh"],
                 "b_ih": w.get("bias_ih"), "b_hh": w.get("bias_hh")}]
    if getattr(module, "bidirectional", False):
        raise ValueError(f"{type(module).__name__} is bidirectional: a bidirectional RNN has no "
                         f"forward-in-time dynamics; analyze a unidirectional model")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"LSTM with proj_size={module.proj_size} is not supported; train without "
                         f"projections or wrap the model in a module with step(x, u)")
    layers = []
    for layer in range(cast(nn.RNNBase, module).num_layers):
        w = _weights(module, [f"weight_ih_l{layer}", f"weight_hh_l{layer}",
                              f"bias_ih_l{layer}", f"bias_hh_l{layer}"], dtype, device)
        layers.append({"w_ih": w[f"weight_ih_l{layer}"], "w_hh": w[f"weight_hh_l{layer}"],
                       "b_ih": w.get(f"bias_ih_l{layer}"), "b_hh": w.get(f"bias_hh_l{layer}")})
    return layers


def _affine(x, w, b):
    out = x @ w.T
    return out if b is None else out + b


def _torch_rnn_step(module: nn.Module, dtype, device):
    """Build ``step(x, u)`` for a torch recurrent module. Returns (step, n_states, n_inputs)."""
    layers = _layer_weights(module, dtype, device)
    hidden = cast(_TorchRecurrent, module).hidden_size
    n_layers = len(layers)
    if isinstance(module, (nn.LSTM, nn.LSTMCell)):
        kind = "lstm"
    elif isinstance(module, (nn.GRU, nn.GRUCell)):
        kind = "gru"
    else:
        kind = "rnn_relu" if module.nonlinearity == "relu" else "rnn_tanh"
    n_states = hidden * n_layers * (2 if kind == "lstm" else 1)

    def step(x, u):
        hs = [x[:, k * hidden:(k + 1) * hidden] for k in range(n_layers)]
        cs = ([x[:, (n_layers + k) * hidden:(n_layers + k + 1) * hidden] for k in range(n_layers)]
              if kind == "lstm" else None)
        inp = u
        new_h, new_c = [], []
        for k, w in enumerate(layers):
            gi = _affine(inp, w["w_ih"], w["b_ih"])
            gh = _affine(hs[k], w["w_hh"], w["b_hh"])
            if kind == "gru":
                i_r, i_z, i_n = gi.chunk(3, dim=1)
                h_r, h_z, h_n = gh.chunk(3, dim=1)
                r = torch.sigmoid(i_r + h_r)
                z = torch.sigmoid(i_z + h_z)
                cand = torch.tanh(i_n + r * h_n)
                h = (1 - z) * cand + z * hs[k]
            elif kind == "lstm":
                i, f, g, o = (gi + gh).chunk(4, dim=1)
                c = torch.sigmoid(f) * cs[k] + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                new_c.append(c)
            elif kind == "rnn_relu":
                h = torch.relu(gi + gh)
            else:
                h = torch.tanh(gi + gh)
            new_h.append(h)
            inp = h
        return torch.cat(new_h + new_c, dim=1)

    return step, n_states, module.input_size, kind


def _torch_rnn_jacobian(module: nn.Module, dtype, device):
    """Closed-form Jacobian ``∂F/∂x`` of the step built by :func:`_torch_rnn_step`.

    Every term is a row-scaled weight matrix, so the cost is O(b n²) per layer rather than the
    O(b n³) of generic autodiff; layers are chained with the input Jacobians.
    """
    layers = _layer_weights(module, dtype, device)
    hidden = cast(_TorchRecurrent, module).hidden_size
    n_layers = len(layers)
    lstm, gru, relu = _cell_kind(module)
    n_states = hidden * n_layers * (2 if lstm else 1)

    def rows(scale, weight):  # diag(scale) @ weight, batched: (b, H) x (H, K) -> (b, H, K)
        return scale.unsqueeze(-1) * weight

    def jacobian(x, u):
        b = x.shape[0]
        # every layer writes its rows of one preallocated Jacobian (one layer without a cell
        # state: the block is the whole Jacobian, returned early)
        out = x.new_zeros(b, n_states, n_states) if n_layers > 1 or lstm else None
        inp, d_inp = u, None  # d_inp: derivative of this layer's input w.r.t. the state
        for k, w in enumerate(layers):
            h = x[:, k * hidden:(k + 1) * hidden]
            gi = _affine(inp, w["w_ih"], w["b_ih"])
            gh = _affine(h, w["w_hh"], w["b_hh"])
            dh = out[:, k * hidden:(k + 1) * hidden] if out is not None else None
            own = slice(k * hidden, (k + 1) * hidden)
            if gru:
                i_r, i_z, i_n = gi.chunk(3, dim=1)
                h_r, h_z, h_n = gh.chunk(3, dim=1)
                w_hr, w_hz, w_hn = w["w_hh"].chunk(3, dim=0)
                w_ir, w_iz, w_in = w["w_ih"].chunk(3, dim=0)
                r = torch.sigmoid(i_r + h_r)
                z = torch.sigmoid(i_z + h_z)
                cand = torch.tanh(i_n + r * h_n)
                dn = 1 - cand ** 2
                s_n = (1 - z) * dn  # ∂h'/∂(pre-activation of n)
                s_z = (h - cand) * z * (1 - z)  # ∂h'/∂(pre-activation of z)
                s_r = s_n * h_n * r * (1 - r)  # ∂h'/∂(pre-activation of r)
                block = rows(s_n * r, w_hn)  # accumulated in place: this is the hot path
                block.addcmul_(s_z.unsqueeze(-1), w_hz).addcmul_(s_r.unsqueeze(-1), w_hr)
                block.diagonal(dim1=1, dim2=2).add_(z)
                if n_layers == 1:
                    return block
                dh[:, :, own] = block
                d_in = rows(s_n, w_in) + rows(s_z, w_iz) + rows(s_r, w_ir)
                h_new = (1 - z) * cand + z * h
            elif lstm:
                c = x[:, (n_layers + k) * hidden:(n_layers + k + 1) * hidden]
                own_c = slice((n_layers + k) * hidden, (n_layers + k + 1) * hidden)
                a_i, a_f, a_g, a_o = (gi + gh).chunk(4, dim=1)
                si, sf, so, tg = (torch.sigmoid(a_i), torch.sigmoid(a_f), torch.sigmoid(a_o),
                                  torch.tanh(a_g))
                c_new = sf * c + si * tg
                tc = torch.tanh(c_new)
                # ∂c'/∂(pre-activations i, f, g) and ∂h'/∂(pre-activation o)
                gates_c = (si * (1 - si) * tg, sf * (1 - sf) * c, si * (1 - tg ** 2))
                dc_dtc = so * (1 - tc ** 2)
                s_o = tc * so * (1 - so)
                w_hi, w_hf, w_hg, w_ho = w["w_hh"].chunk(4, dim=0)
                w_ii, w_if, w_ig, w_io = w["w_ih"].chunk(4, dim=0)
                dc = out[:, own_c]
                dc_h = dc[:, :, own]
                torch.mul(gates_c[0].unsqueeze(-1), w_hi, out=dc_h)
                dc_h.addcmul_(gates_c[1].unsqueeze(-1), w_hf).addcmul_(gates_c[2].unsqueeze(-1),
                                                                       w_hg)
                dc[:, :, own_c].diagonal(dim1=1, dim2=2).copy_(sf)
                block = dh[:, :, own]
                torch.mul(dc_dtc.unsqueeze(-1), dc_h, out=block)
                block.addcmul_(s_o.unsqueeze(-1), w_ho)
                dh[:, :, own_c].diagonal(dim1=1, dim2=2).copy_(dc_dtc * sf)
                if d_inp is not None:
                    d_in_c = (rows(gates_c[0], w_ii) + rows(gates_c[1], w_if)
                              + rows(gates_c[2], w_ig))
                    d_in = rows(s_o, w_io) + dc_dtc.unsqueeze(-1) * d_in_c
                h_new = so * tc
            else:
                pre = gi + gh
                h_new = torch.relu(pre) if relu else torch.tanh(pre)
                slope = (pre > 0).to(x.dtype) if relu else 1 - h_new ** 2
                if n_layers == 1:
                    return rows(slope, w["w_hh"])
                dh[:, :, own] = rows(slope, w["w_hh"])
                d_in = rows(slope, w["w_ih"])
            if d_inp is not None:
                dh.baddbmm_(d_in, d_inp)
                if lstm:
                    dc.baddbmm_(d_in_c, d_inp)
            inp, d_inp = h_new, dh
        return out

    return jacobian


def _torch_rnn_curvature(module: nn.Module, dtype, device):
    """Closed-form ``Σ_k w_k ∇²F_k`` of a torch RNN, GRU or LSTM step (any depth, and cells)."""
    if not isinstance(module, (nn.LSTM, nn.LSTMCell)) and getattr(module, "num_layers", 1) == 1:
        return _one_layer_curvature(module, dtype, device)
    return _stacked_curvature(module, dtype, device)


def _one_layer_curvature(module: nn.Module, dtype, device):
    """Closed-form ``Σ_k w_k ∇²F_k`` of a one-layer torch RNN (tanh/relu) or GRU step.

    For ``F = φ(W_hh h + ...)`` it is ``W_hhᵀ diag(w φ'') W_hh``. For a GRU,
    ``F = c + z (h - c)`` with ``r = σ(a_r)``, ``z = σ(a_z)``, ``c = tanh(i_n + r g)`` and
    ``g = W_hn h + b_hn``; writing ``B = diag(r) W_hn + diag(g r') W_hr`` (the rows of
    ``∂(i_n + r g)/∂h``) and primes for derivatives of the gate nonlinearities,

    ``Σ_k w_k ∇²F_k = Bᵀ diag(w(1-z)c'') B + sym(W_hrᵀ M_r + W_hzᵀ M_z)`` with
    ``M_r = diag(w(1-z)c'r') W_hn + ½ diag(w(1-z)c'g r'') W_hr`` and
    ``M_z = diag(w z') (I - diag(c') B) + ½ diag(w(h-c)z'') W_hz``, ``sym(M) = M + Mᵀ``.

    Three batched matrix products, against n double-backward passes: about half the time of
    the general :func:`_stacked_curvature`, so these common models keep it.
    """
    (w,) = _layer_weights(module, dtype, device)
    gru = isinstance(module, (nn.GRU, nn.GRUCell))

    def sym(m):
        return m + m.transpose(1, 2)

    def curvature(x, u, weights):
        gi = _affine(u, w["w_ih"], w["b_ih"])
        gh = _affine(x, w["w_hh"], w["b_hh"])
        if not gru:
            if module.nonlinearity == "relu":  # piecewise linear: no curvature off the kinks
                return x.new_zeros(x.shape[0], x.shape[1], x.shape[1])
            t = torch.tanh(gi + gh)
            scale = weights * (-2.0 * t * (1 - t ** 2))
            return w["w_hh"].T @ (scale.unsqueeze(-1) * w["w_hh"])
        i_r, i_z, i_n = gi.chunk(3, dim=1)
        _, _, g = gh.chunk(3, dim=1)
        w_hr, w_hz, w_hn = w["w_hh"].chunk(3, dim=0)
        r = torch.sigmoid(i_r + gh[:, :x.shape[1]])
        z = torch.sigmoid(i_z + gh[:, x.shape[1]:2 * x.shape[1]])
        c = torch.tanh(i_n + r * g)
        dr, dz, dc = r * (1 - r), z * (1 - z), 1 - c ** 2
        ddr, ddz, ddc = dr * (1 - 2 * r), dz * (1 - 2 * z), -2 * c * dc
        keep = weights * (1 - z)
        b_rows = r.unsqueeze(-1) * w_hn + (g * dr).unsqueeze(-1) * w_hr  # (b, n, n)
        m_r = ((keep * dc * dr).unsqueeze(-1) * w_hn
               + (0.5 * keep * dc * g * ddr).unsqueeze(-1) * w_hr)
        m_z = (torch.diag_embed(weights * dz) - (weights * dz * dc).unsqueeze(-1) * b_rows
               + (0.5 * weights * (x - c) * ddz).unsqueeze(-1) * w_hz)
        outer = torch.cat([w_hr, w_hz], dim=0).T @ torch.cat([m_r, m_z], dim=1)
        return b_rows.transpose(1, 2) @ ((keep * ddc).unsqueeze(-1) * b_rows) + sym(outer)

    return curvature


def _spans(spans: List[slice]):
    """Pairs (span of the state, span of the packed columns) for spans packed side by side."""
    at = 0
    for span in spans:
        width = span.stop - span.start
        yield span, slice(at, at + width)
        at += width


def _stacked_curvature(module: nn.Module, dtype, device):
    """Closed-form ``Σ_k w_k ∇²F_k`` of a torch RNN (tanh/relu), GRU or LSTM step, any depth.

    Every unit j of a layer computes its outputs (``h'_j``, and ``c'_j`` for an LSTM) from a
    few scalar *features* at that unit, each affine in the layer's own state and its input
    (the previous layer's new h)::

        RNN   a = W_hh h + W_ih y + b                     h' = φ(a)
        GRU   a_r, a_z, i_n = W_in y + b_in,              h' = (1-z) tanh(i_n + r g) + z h
              g = W_hn h + b_hn, h
        LSTM  a_i, a_f, a_g, a_o, c                       c' = σ(a_f) c + σ(a_i) tanh(a_g),
                                                          h' = σ(a_o) tanh(c')

    With ``G_p = ∂(feature p)/∂x`` (rows per unit, through the lower layers' Jacobians), and the
    layer's scalar ``ψ = λ·h' + μ·c'`` (``μ`` the weights on its c, ``λ`` those on its h plus
    what the layers above pass down), the second-order chain rule gives

        Σ_k w_k ∇²F_k = Σ_layers Σ_{p,q} G_pᵀ diag(∂²ψ/∂p∂q) G_q,

    and the lower layer's ``λ`` gains ``Σ_p (∂ψ/∂p) W^y_p`` (the reverse pass). The elementwise
    derivatives are written out below; the cost is one batched product per layer,
    ``(b, N, P·H) @ (b, P·H, N)``, against N double-backward passes.
    """
    layers = _layer_weights(module, dtype, device)
    hidden = cast(_TorchRecurrent, module).hidden_size
    n_layers = len(layers)
    lstm, gru, relu = _cell_kind(module)
    if relu:  # piecewise linear at every depth: no curvature off the kinks
        return lambda x, u, weights: x.new_zeros(x.shape[0], x.shape[1], x.shape[1])

    def features(x, inp, d_inp, k, w):
        """Layer k's features: a dict and the layer's new h.

        ``grads`` (b, P_g, H, C): the gate features' G_p on the C columns ``cols``; ``ident``:
        the slice of the state that is itself a feature (GRU h, LSTM c), else None; ``hp``
        (b, H, P) and ``hpq`` (b, H, P, P): first and second derivatives of h' in the features
        (gates first, then ``ident``); ``f1c``, ``f2c``: those of c' (LSTM); ``y_weights``: per
        gate the (H, m) matrix multiplying the layer input (None where it does not read it).
        """
        b, n_states = x.shape
        h = x[:, k * hidden:(k + 1) * hidden]
        own = slice(k * hidden, (k + 1) * hidden)
        gi = _affine(inp, w["w_ih"], w["b_ih"])
        gh = _affine(h, w["w_hh"], w["b_hh"])
        n_g = 4 if lstm else 3 if gru else 1
        w_h = list(w["w_hh"].chunk(n_g, dim=0))
        w_y = list(w["w_ih"].chunk(n_g, dim=0))
        one = torch.ones_like(h)
        zero = torch.zeros_like(h)
        if lstm:
            own_c = slice((n_layers + k) * hidden, (n_layers + k + 1) * hidden)
            c = x[:, own_c]
            a_i, a_f, a_g, a_o = (gi + gh).chunk(4, dim=1)
            si, sf, tg, so = (torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g),
                              torch.sigmoid(a_o))
            dsi, dsf, dso = si * (1 - si), sf * (1 - sf), so * (1 - so)
            dtg = 1 - tg ** 2
            c_new = sf * c + si * tg
            t = torch.tanh(c_new)
            dt = 1 - t ** 2
            # features i, f, g, o, c: ∂c'/∂p and ∂²c'/∂p∂q
            cp = torch.stack([dsi * tg, dsf * c, si * dtg, zero, sf], dim=-1)
            cpq = h.new_zeros(b, hidden, 5, 5)
            cpq[..., 0, 0] = dsi * (1 - 2 * si) * tg
            cpq[..., 0, 2] = cpq[..., 2, 0] = dsi * dtg
            cpq[..., 2, 2] = si * (-2 * tg * dtg)
            cpq[..., 1, 1] = dsf * (1 - 2 * sf) * c
            cpq[..., 1, 4] = cpq[..., 4, 1] = dsf
            # h' = σ(a_o) tanh(c'): feature o enters directly
            hp = (so * dt).unsqueeze(-1) * cp
            hp[..., 3] = dso * t
            hpq = ((so * dt)[..., None, None] * cpq
                   + (so * -2 * t * dt)[..., None, None] * cp.unsqueeze(-1) * cp.unsqueeze(-2))
            hpq[..., 3, :] = (dso * dt).unsqueeze(-1) * cp
            hpq[..., :, 3] = hpq[..., 3, :].clone()
            hpq[..., 3, 3] = dso * (1 - 2 * so) * t
            mats = [(w_h[p], w_y[p]) for p in range(4)]
            ident: Optional[slice] = own_c
            h_new, f1c, f2c = so * t, cp, cpq
        elif gru:
            i_r, i_z, i_n = gi.chunk(3, dim=1)
            h_r, h_z, g = gh.chunk(3, dim=1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            cand = torch.tanh(i_n + r * g)
            dr, dz, dc = r * (1 - r), z * (1 - z), 1 - cand ** 2
            ddc = -2 * cand * dc
            # features a_r, a_z, i_n, g, h; m = i_n + r g is the candidate's pre-activation
            mp = torch.stack([dr * g, zero, one, r, zero], dim=-1)
            hp = ((1 - z) * dc).unsqueeze(-1) * mp
            hp[..., 1] = dz * (h - cand)
            hp[..., 4] = z
            hpq = ((1 - z) * ddc)[..., None, None] * mp.unsqueeze(-1) * mp.unsqueeze(-2)
            hpq[..., 0, 0] += (1 - z) * dc * dr * (1 - 2 * r) * g
            hpq[..., 0, 3] += (1 - z) * dc * dr
            hpq[..., 3, 0] = hpq[..., 0, 3]
            hpq[..., 1, :] = -(dz * dc).unsqueeze(-1) * mp
            hpq[..., 1, 1] = dz * (1 - 2 * z) * (h - cand)
            hpq[..., 1, 4] = dz
            hpq[..., :, 1] = hpq[..., 1, :].clone()
            mats = [(w_h[0], w_y[0]), (w_h[1], w_y[1]), (None, w_y[2]), (w_h[2], None)]
            ident = own
            h_new, f1c, f2c = (1 - z) * cand + z * h, None, None
        else:
            pre = gi + gh
            if relu:
                h_new = torch.relu(pre)
                hp = (pre > 0).to(x.dtype).unsqueeze(-1)
                hpq = torch.zeros_like(hp).unsqueeze(-1)
            else:
                h_new = torch.tanh(pre)
                hp = (1 - h_new ** 2).unsqueeze(-1)
                hpq = (-2 * h_new * (1 - h_new ** 2))[..., None, None]
            mats = [(w_h[0], w_y[0])]
            ident, f1c, f2c = None, None, None
        # columns the gate features can depend on: the own h, and (through the input) every
        # lower layer's state; a gate with no dependence on x (layer 0's input part) is dropped
        # (as contiguous spans of the state: views, not gathers)
        cols = [slice(0, (k + 1) * hidden)]
        if lstm and k > 0:
            cols.append(slice(n_layers * hidden, (n_layers + k) * hidden))
        keep = [p for p, (mat, y_mat) in enumerate(mats)
                if mat is not None or (y_mat is not None and d_inp is not None)]
        n_gates = len(keep)
        if ident is not None:
            keep.append(len(mats))
        hp, hpq = hp[..., keep], hpq[..., keep, :][..., keep]
        if f1c is not None and f2c is not None:
            f1c, f2c = f1c[..., keep], f2c[..., keep, :][..., keep]
        mats = [mats[p] for p in keep[:n_gates]]
        own_cols = slice(k * hidden, (k + 1) * hidden)  # the first span starts at 0
        d_cols = (torch.cat([d_inp[:, :, span] for span in cols], dim=2)
                  if d_inp is not None else None)
        width = sum(span.stop - span.start for span in cols)
        grads = x.new_zeros(b, n_gates, hidden, width)  # G_p on the columns cols
        for p, (mat, y_mat) in enumerate(mats):
            if mat is not None:
                grads[:, p, :, own_cols] = mat
            if y_mat is not None and d_cols is not None:
                grads[:, p] += y_mat @ d_cols
        layer = dict(grads=grads, cols=cols, ident=ident, hp=hp, hpq=hpq, f1c=f1c, f2c=f2c,
                     y_weights=[y_mat for _, y_mat in mats])
        return layer, h_new

    def curvature(x, u, weights):
        b, n_states = x.shape
        saved = []
        inp, d_inp = u, None
        for k, w in enumerate(layers):
            layer, h_new = features(x, inp, d_inp, k, w)
            saved.append(layer)
            if k + 1 < n_layers:  # ∂h'/∂x = Σ_p diag(∂h'/∂p) G_p feeds the next layer
                grads, hp = layer["grads"], layer["hp"]
                d_inp = x.new_zeros(b, hidden, n_states)
                local = sum(hp[..., p, None] * grads[:, p] for p in range(grads.shape[1]))
                for span, at in _spans(layer["cols"]):
                    d_inp[:, :, span] = local[:, :, at]
                if layer["ident"] is not None:
                    d_inp[:, :, layer["ident"]] += torch.diag_embed(hp[..., -1])
            inp = h_new
        total = x.new_zeros(b, n_states, n_states)
        lam = weights[:, (n_layers - 1) * hidden:n_layers * hidden]
        for k in range(n_layers - 1, -1, -1):
            layer = saved[k]
            grads, cols, ident = layer["grads"], layer["cols"], layer["ident"]
            s2, s1 = lam[..., None, None] * layer["hpq"], lam.unsqueeze(-1) * layer["hp"]
            if lstm:
                mu = weights[:, (n_layers + k) * hidden:(n_layers + k + 1) * hidden]
                s2 = s2 + mu[..., None, None] * layer["f2c"]
                s1 = s1 + mu.unsqueeze(-1) * layer["f1c"]
            n_g, n_c = grads.shape[1], grads.shape[3]
            # gates x gates: Gᵀ S G, one batched product on the columns the gates touch
            scaled = torch.stack([sum(s2[..., p, q, None] * grads[:, q] for q in range(n_g))
                                  for p in range(n_g)], dim=1)
            block = (grads.reshape(b, n_g * hidden, n_c).transpose(1, 2)
                     @ scaled.reshape(b, n_g * hidden, n_c))
            for span_a, at_a in _spans(cols):
                for span_b, at_b in _spans(cols):
                    total[:, span_a, span_b] += block[:, at_a, at_b]
            if ident is not None:  # the state itself as a feature (GRU h, LSTM c): G = I
                cross = sum(s2[..., p, n_g, None] * grads[:, p] for p in range(n_g))
                for span, at in _spans(cols):
                    total[:, span, ident] += cross[:, :, at].transpose(1, 2)
                    total[:, ident, span] += cross[:, :, at]
                total[:, ident, ident].diagonal(dim1=1, dim2=2).add_(s2[..., n_g, n_g])
            if k > 0:  # the reverse pass: what layer k's ψ puts on layer k-1's new h
                lam = weights[:, (k - 1) * hidden:k * hidden].clone()
                for p, y_mat in enumerate(layer["y_weights"]):
                    if y_mat is not None:
                        lam = lam + s1[..., p] @ y_mat
        return total

    return curvature


def _size(module: nn.Module, names, what: str) -> Optional[int]:
    for name in names:
        value = getattr(module, name, None)
        if isinstance(value, int):
            return value
    return None


def from_module(module: nn.Module, input=None, time: Optional[str] = None,
                dtype: torch.dtype = torch.float64, device=None) -> Dynamics:
    """Wrap a torch model as a :class:`Dynamics` with a constant input bound.

    Parameters
    ----------
    module : torch.nn.Module
        ``nn.RNN``/``GRU``/``LSTM`` (any number of layers), their ``Cell`` versions, or a module
        with ``step(x, u)`` and/or ``velocity(x, u)`` on batch-first tensors.
    input : array_like of shape (n_inputs,), optional
        Constant input; zeros by default.
    time : {"discrete", "continuous"}, optional
        Which dynamics to use when the module defines both ``step`` and ``velocity``.
    dtype : torch.dtype, default torch.float64
    device : str or torch.device, optional
        Where to evaluate (default: CPU).

    Returns
    -------
    Dynamics

    Raises
    ------
    ValueError
        For unsupported modules, non-finite weights, a wrong ``time`` or a wrong input size.
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"module must be a torch.nn.Module, got {type(module).__name__}; for a "
                         f"plain function use DiscreteDynamics(fn, n_states) or "
                         f"ContinuousDynamics(fn, n_states)")
    if time not in (None, "discrete", "continuous"):
        raise ValueError(f"time={time!r} is invalid; pass 'discrete', 'continuous' or None")
    device = torch.device(device) if device is not None else torch.device("cpu")
    _check_finite(module)
    name = type(module).__name__

    inner = getattr(module, "recurrent_module", None)
    if isinstance(inner, _RECURRENT + _CELLS) and not isinstance(module, _RECURRENT + _CELLS):
        module = inner  # a wrapper that runs a torch RNN's dynamics: use its closed forms
    if isinstance(module, _RECURRENT + _CELLS):
        if time == "continuous":
            raise ValueError(f"{name} is a discrete-time map; pass time='discrete' (or None)")
        step, n_states, n_inputs, kind = _torch_rnn_step(module, dtype, device)
        dyn: Dynamics = DiscreteDynamics(
            step, n_states, n_inputs=n_inputs, input=input, dtype=dtype, device=device,
            name=f"{name}({kind})", jacobian_fn=_torch_rnn_jacobian(module, dtype, device),
            curvature_fn=_torch_rnn_curvature(module, dtype, device))
        if kind == "lstm" and getattr(module, "num_layers", 1) == 1:
            # c_i enters only h'_i and c'_i: J_v's last H columns are diagonal in each row block
            dyn.diagonal_tail = cast(_TorchRecurrent, module).hidden_size
        attach_sources(dyn, module, "discrete")  # enclosures for the certificates
        return dyn

    has_step = callable(getattr(module, "step", None))
    has_velocity = callable(getattr(module, "velocity", None))
    if not (has_step or has_velocity):
        raise ValueError(f"{name} has no dynamics: define step(x, u) (discrete time) or "
                         f"velocity(x, u) (continuous time) on batch-first tensors, or pass a "
                         f"torch nn.RNN/GRU/LSTM")
    if time is None:
        own = getattr(module, "time", None)
        if has_step and has_velocity:
            time = own if own in ("discrete", "continuous") else "discrete"
        else:
            time = "discrete" if has_step else "continuous"
    if time == "discrete" and not has_step:
        raise ValueError(f"{name} defines velocity(x, u) only; pass time='continuous' or add "
                         f"step(x, u)")
    if time == "continuous" and not has_velocity:
        raise ValueError(f"{name} defines step(x, u) only; pass time='discrete' or add "
                         f"velocity(x, u)")
    n_states = _size(module, ("n_states", "hidden_size"), "states")
    if n_states is None:
        raise ValueError(f"{name} does not say its state size: give it an integer attribute "
                         f"n_states (or hidden_size)")
    n_inputs = _size(module, ("n_inputs", "input_size"), "inputs") or 0

    try:
        clone = copy.deepcopy(module)
    except Exception as exc:
        raise ValueError(f"{name} could not be copied ({exc}); ghostscope copies models so it "
                         f"never changes yours. Make the module deep-copyable") from exc
    clone = clone.to(device=device, dtype=dtype).eval()
    for p in clone.parameters():
        p.requires_grad_(False)
        p.grad = None
    fn = cast(Callable, clone.step if time == "discrete" else clone.velocity)
    # derivatives of the form in use: step_jacobian / velocity_jacobian (and *_curvature) name
    # it; a plain jacobian / curvature method is taken to be of that form too
    jac = getattr(clone, f"{'step' if time == 'discrete' else 'velocity'}_jacobian", None)
    curvature = getattr(clone, f"{'step' if time == 'discrete' else 'velocity'}_curvature", None)
    jac = jac if callable(jac) else getattr(clone, "jacobian", None)
    curvature = curvature if callable(curvature) else getattr(clone, "curvature", None)
    cls = DiscreteDynamics if time == "discrete" else ContinuousDynamics
    dyn = cls(fn, n_states, n_inputs=n_inputs, input=input, dtype=dtype, device=device,
              jacobian_fn=jac if callable(jac) else None,
              curvature_fn=curvature if callable(curvature) else None, name=name)
    dyn.module = clone
    attach_sources(dyn, clone, time)  # low_rank_form / rate_form, for the certificates
    return dyn
