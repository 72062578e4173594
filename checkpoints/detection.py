"""Recognizing the architecture of a state dict from its key names and shapes."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from .errors import CheckpointError
from .layout import _key_list, _normalize_prefix
from .models import ARCHITECTURES, TORCH_CELLS, build_model

__all__ = ["RecurrentModuleKeys", "ArchitectureMatch", "CONVENTIONS", "find_recurrent_modules",
           "detect_architecture"]

_ARCH_FIX = ("pass architecture= (one of {archs}), put a config.json with "
             "{{\"architecture\": ..., \"model\": {{...}}}} beside the file, or give a model "
             "factory ('pkg.module:build' or 'file.py:build')")


def _arch_fix() -> str:
    return _ARCH_FIX.format(archs=sorted(ARCHITECTURES))


_RNN_KEY_RE = re.compile(r"^(?P<prefix>(?:.*\.)?)(?P<kind>weight|bias)_(?P<which>ih|hh|hr)_l"
                         r"(?P<layer>\d+)(?P<reverse>_reverse)?$")


@dataclass(frozen=True)


class RecurrentModuleKeys:
    """A torch ``nn.RNN``/``nn.GRU``/``nn.LSTM`` found in a state dict by its key pattern.

    Attributes
    ----------
    prefix : str
        Key prefix of the module (``""`` or ending in ``"."``, e.g. ``"model.rnn."``).
    keys : tuple of str
        The module's keys (full names).
    cells : tuple of str
        Cell names consistent with the shapes: ``("gru",)``, ``("lstm",)`` or
        ``("rnn_tanh", "rnn_relu")`` (these two cannot be told apart from weights).
    input_size, hidden_size, num_layers : int
    bias, bidirectional : bool
    proj_size : int
    """

    prefix: str
    keys: Tuple[str, ...]
    cells: Tuple[str, ...]
    input_size: int
    hidden_size: int
    num_layers: int
    bias: bool
    bidirectional: bool
    proj_size: int


def find_recurrent_modules(state_dict: Mapping[str, torch.Tensor], prefix: Optional[str] = None,
                           path: Optional[str] = None) -> Dict[str, RecurrentModuleKeys]:
    """Find torch recurrent modules in a state dict by their key pattern.

    Keys ``{prefix}weight_ih_l{k}``, ``{prefix}weight_hh_l{k}`` (and biases) mark an
    ``nn.RNN``/``nn.GRU``/``nn.LSTM`` with layers ``k = 0 … L-1``.

    Parameters
    ----------
    state_dict : mapping of str to torch.Tensor
    prefix : str, optional
        Keep only the module under this prefix (with or without the trailing dot).
    path : str, optional
        For error messages.

    Returns
    -------
    dict of str to RecurrentModuleKeys
        Keyed by prefix.

    Raises
    ------
    CheckpointError
        A module whose layers or shapes do not make a torch RNN.
    """
    groups: Dict[str, List[str]] = {}
    for key in state_dict:
        match = _RNN_KEY_RE.match(key)
        if match:
            groups.setdefault(match.group("prefix"), []).append(key)
    wanted = _normalize_prefix(prefix)
    found = {}
    for pre, keys in groups.items():
        if wanted is not None and pre != wanted:
            continue
        if f"{pre}weight_hh_l0" not in state_dict or f"{pre}weight_ih_l0" not in state_dict:
            continue
        found[pre] = _describe_rnn(state_dict, pre, keys, path)
    return found


def _describe_rnn(state_dict, pre: str, keys: List[str], path) -> RecurrentModuleKeys:
    layers = sorted({int(m.group("layer")) for m in map(_RNN_KEY_RE.match, keys) if m})
    if layers != list(range(len(layers))):
        raise CheckpointError(path, f"torch RNN under prefix {pre!r} has layers {layers}, not "
                              "0..L-1", "the checkpoint is missing layers: re-save the full model")
    w_ih, w_hh = state_dict[f"{pre}weight_ih_l0"], state_dict[f"{pre}weight_hh_l0"]
    if w_ih.dim() != 2 or w_hh.dim() != 2:
        raise CheckpointError(path, f"{pre}weight_ih_l0 has shape {tuple(w_ih.shape)} and "
                              f"{pre}weight_hh_l0 {tuple(w_hh.shape)}; torch RNN weights are 2-D",
                              "check the file was saved from an nn.RNN/GRU/LSTM")
    proj_size = 0
    if f"{pre}weight_hr_l0" in state_dict:
        proj_size = int(state_dict[f"{pre}weight_hr_l0"].shape[0])
    hidden = int(state_dict[f"{pre}weight_hr_l0"].shape[1]) if proj_size else int(w_hh.shape[1])
    rows = int(w_ih.shape[0])
    gates = rows // hidden if hidden and rows % hidden == 0 else None
    cells = {3: ("gru",), 4: ("lstm",), 1: ("rnn_tanh", "rnn_relu")}.get(gates or 0)
    if cells is None:
        raise CheckpointError(path, f"{pre}weight_ih_l0 has {rows} rows for hidden size {hidden}: "
                              "not 1, 3 or 4 gates of an RNN, GRU or LSTM",
                              "check the file was saved from an nn.RNN/GRU/LSTM")
    return RecurrentModuleKeys(
        prefix=pre, keys=tuple(sorted(keys)), cells=cells, input_size=int(w_ih.shape[1]),
        hidden_size=hidden, num_layers=len(layers), bias=f"{pre}bias_ih_l0" in state_dict,
        bidirectional=any(k.endswith("_reverse") for k in keys), proj_size=proj_size)


# Identifying keys of each built-in family (relative to the model's prefix).
_FAMILY_KEYS = {
    "low_rank_rnn": ("W_in.weight", "S_l", "S_r"),
    "leaky_rnn": ("W_in.weight", "W_rec"),
    "xform_rnn": ("W_in.weight", "J"),
    "rank_one_rnn": ("m", "n"),
    "plrnn": ("A", "W", "h"),
}
_FAMILY_OF = {"leaky_rnn": "leaky", "low_rank_rnn": "leaky", "paper_rnn": "leaky",
              "paper_low_rank_rnn": "leaky", "xform_rnn": "xform_rnn",
              "rank_one_rnn": "rank_one_rnn", "plrnn": "plrnn",
              **dict.fromkeys(TORCH_CELLS, "torch")}


@dataclass(frozen=True)


class ArchitectureMatch:
    """A model recognized in a state dict.

    Attributes
    ----------
    architecture : str
        Registry name (a key of ``ARCHITECTURES``), or ``"torch"`` for a torch RNN whose cell
        type the weights leave open (``rnn_tanh`` vs ``rnn_relu``).
    prefix : str
        Key prefix of the model (``""`` or ending in ``"."``).
    config : dict
        Constructor keyword arguments read from the shapes.
    rnn : RecurrentModuleKeys or None
        For torch recurrent modules.
    convention : {"row", "column"} or None
        For the leaky family: ``"row"`` when the model computes ``r @ M`` on row vectors (the
        ghost paper's scripts, :class:`~checkpoints.paper_model.PaperRNN`), ``"column"`` for
        ``W r`` (:class:`~checkpoints.models.LeakyRNN`).
    convention_reason : str
        Why that convention was chosen.
    """

    architecture: str
    prefix: str
    config: Dict[str, Any] = field(default_factory=dict)
    rnn: Optional[RecurrentModuleKeys] = None
    convention: Optional[str] = None
    convention_reason: str = ""

    @property
    def family(self) -> str:
        return _FAMILY_OF.get(self.architecture, self.architecture)


def _shape(state_dict, key, ndim, path) -> Tuple[int, ...]:
    tensor = state_dict[key]
    if tensor.dim() != ndim:
        raise CheckpointError(path, f"key {key!r} has shape {tuple(tensor.shape)}, expected a "
                              f"{ndim}-D tensor",
                              "check the file holds the model you think it does")
    return tuple(int(s) for s in tensor.shape)


def _builtin_match(state_dict, arch: str, pre: str, path) -> ArchitectureMatch:
    get = lambda key: f"{pre}{key}"  # noqa: E731
    cfg: Dict[str, Any] = {}
    if arch in ("leaky_rnn", "low_rank_rnn", "xform_rnn"):
        n_states, n_inputs = _shape(state_dict, get("W_in.weight"), 2, path)
        cfg.update(n_inputs=n_inputs, n_states=n_states)
        if get("W_out.weight") in state_dict:
            cfg["n_outputs"] = _shape(state_dict, get("W_out.weight"), 2, path)[0]
        if arch == "low_rank_rnn":
            cfg["rank"] = _shape(state_dict, get("S_l"), 2, path)[1]
    elif arch == "rank_one_rnn":
        cfg["n_states"] = _shape(state_dict, get("m"), 1, path)[0]
    elif arch == "plrnn":
        cfg["n_states"] = _shape(state_dict, get("A"), 1, path)[0]
        cfg["n_inputs"] = _shape(state_dict, get("C"), 2, path)[1] if get("C") in state_dict else 0
        if get("B") in state_dict:
            cfg["n_outputs"] = _shape(state_dict, get("B"), 2, path)[0]
    return ArchitectureMatch(arch, pre, cfg)


def _candidates(state_dict, path) -> List[ArchitectureMatch]:
    keys = set(state_dict)
    found: List[ArchitectureMatch] = []
    taken = set()
    for arch, ident in _FAMILY_KEYS.items():
        anchor = ident[-1]
        for key in keys:
            if key == anchor or key.endswith("." + anchor):
                pre = key[: len(key) - len(anchor)]
                if (pre, "leaky") in taken and arch == "leaky_rnn":
                    continue
                if all(f"{pre}{k}" in keys for k in ident):
                    found.append(_builtin_match(state_dict, arch, pre, path))
                    taken.add((pre, _FAMILY_OF[arch]))
    for pre, rnn in find_recurrent_modules(state_dict, path=path).items():
        # A TorchRNN saved by this package: rnn.* plus readout_layer.* under the parent prefix.
        found.append(ArchitectureMatch(rnn.cells[0] if len(rnn.cells) == 1 else "torch", pre,
                                       {}, rnn))
    return found


def detect_architecture(state_dict: Mapping[str, torch.Tensor], architecture: Optional[str] = None,
                        prefix: Optional[str] = None, path: Optional[str] = None,
                        convention: Optional[str] = None, convention_source: str = "convention="
                        ) -> ArchitectureMatch:
    """Recognize the model in a state dict from its key names and shapes.

    Parameters
    ----------
    state_dict : mapping of str to torch.Tensor
    architecture : str, optional
        Restrict the search to this registry name's family (``leaky_rnn`` and ``low_rank_rnn``
        are one family; so are the torch cells).
    prefix : str, optional
        Restrict the search to models under this key prefix.
    path : str, optional
        For error messages.
    convention : {"row", "column"}, optional
        Leaky family only: whether the recurrent matrix acts on row vectors (``r @ M``, the
        ghost paper's code) or on column vectors (``W r``). Needed only where the weights cannot
        tell: a low-rank ``W_out.weight`` of shape ``(O, K)`` reads the latent ``r @ S_l`` and
        means row; ``(O, N)`` means column; a full-rank ``W_rec`` (or no readout) is column
        unless told otherwise.
    convention_source : str, default "convention="
        Where ``convention`` came from, for the reason and the messages.

    Returns
    -------
    ArchitectureMatch

    Raises
    ------
    CheckpointError
        Nothing recognized, or several candidates (the message lists the keys or prefixes
        seen and how to choose).
    """
    if architecture is not None and architecture not in ARCHITECTURES:
        raise CheckpointError(path, f"unknown architecture {architecture!r}",
                              f"use one of {sorted(ARCHITECTURES)} or a model factory")
    found = _candidates(state_dict, path)
    wanted = _normalize_prefix(prefix)
    if wanted is not None:
        found_all = found
        found = [c for c in found if c.prefix == wanted]
        if not found:
            seen = sorted({c.prefix for c in found_all})
            raise CheckpointError(path, f"no recognized model under prefix {wanted!r}"
                                  + (f"; models were found under prefixes {seen}" if seen else
                                     f"; keys seen: {_key_list(state_dict)}"),
                                  "pass one of the prefixes found, or check the key names")
    if architecture is not None:
        family = _FAMILY_OF[architecture]
        same = [c for c in found if c.family == family
                or (family == "torch" and c.architecture == "torch")]
        if not same:
            seen = [f"{c.architecture} at {c.prefix!r}" for c in found]
            listed = ("found " + ", ".join(seen) if seen
                      else "keys seen: " + _key_list(state_dict))
            raise CheckpointError(path, f"architecture {architecture!r} was requested but its keys "
                                  f"are not in the file ({listed})",
                                  f"check the architecture name; {architecture} needs keys like "
                                  f"{_expected_keys(architecture)}")
        found = same
    if not found:
        raise CheckpointError(path, "unknown architecture: no built-in model or torch RNN "
                              f"matches the keys seen: {_key_list(state_dict)}", _arch_fix())
    if len(found) > 1:
        listing = ", ".join(f"{c.architecture} under prefix {c.prefix!r}" for c in found)
        raise CheckpointError(path, f"ambiguous: several recurrent models in the file ({listing})",
                              "pass prefix= (--prefix) naming the one to analyze")
    match = found[0]
    if match.rnn is not None:
        match = _torch_match(match, architecture, state_dict, path)
    elif match.family == "leaky":
        match = _leaky_convention(match, state_dict, architecture, convention, convention_source,
                                  path)
    return match


CONVENTIONS = ("row", "column")
_ROW_HINT = ("pass --convention row (convention='row', or \"convention\": \"row\" in "
             "config.json) if the training code computes r @ M on row vectors, as the ghost "
             "paper's scripts do")


def _leaky_convention(match: ArchitectureMatch, state_dict, architecture: Optional[str],
                      convention: Optional[str], source: str, path) -> ArchitectureMatch:
    """Row or column convention of a leaky-family match, and the architecture it gives."""
    if convention is not None and convention not in CONVENTIONS:
        raise CheckpointError(path, f"convention {convention!r} (from {source}) is not one of "
                              f"{list(CONVENTIONS)}", "pass 'row' (r @ M) or 'column' (W r)")
    if architecture in ("paper_rnn", "paper_low_rank_rnn"):
        if convention == "column":
            raise CheckpointError(path, f"architecture {architecture!r} is the row-convention "
                                  f"model but {source} says column", "drop one of the two")
        convention, source = "row", f"architecture={architecture!r}"
    elif architecture in ("leaky_rnn", "low_rank_rnn") and convention is None:
        convention, source = "column", f"architecture={architecture!r}"
    cfg = dict(match.config)
    n_states, rank = cfg["n_states"], cfg.get("rank")
    out_key = f"{match.prefix}W_out.weight"
    out = tuple(state_dict[out_key].shape) if out_key in state_dict else None
    latent = rank is not None and out is not None and len(out) == 2 and out[1] == rank \
        and rank != n_states
    state = out is not None and len(out) == 2 and out[1] == n_states
    if latent:
        assert out is not None, "latent implies a 2-D W_out.weight"
        if convention == "column":
            raise CheckpointError(path, f"W_out.weight has shape {out}: it reads the rank-{rank} "
                                  f"latent r @ S_l (the ghost paper's row-convention model), but "
                                  f"{source} says column", "drop the column convention; a "
                                  f"column-convention model reads the state, W_out.weight "
                                  f"({out[0]}, {n_states})")
        reason = (f"W_out.weight {out} reads the rank-{rank} latent r @ S_l: the ghost paper's "
                  f"row-vector model, z = tanh(W_in u + r @ (S_l @ S_r))")
        convention = "row"
    elif convention is not None:
        reason = f"{source} says {convention}"
    else:
        convention = "column"
        if rank is not None and state:
            assert out is not None, "state implies a 2-D W_out.weight"
            reason = (f"W_out.weight {out} reads the state (the ghost paper's row-vector model "
                      f"reads the latent, ({out[0]}, {rank})): column convention, W = S_l S_r; "
                      + _ROW_HINT)
        else:
            what = "a full-rank W_rec" if rank is None else "these S_l, S_r without a readout"
            reason = (f"{what} reads the same in both conventions: column (W r) by default; "
                      + _ROW_HINT)
    if convention == "row":
        arch = "paper_rnn" if rank is None else "paper_low_rank_rnn"
        if out is not None and len(out) == 2:
            cfg["readout_from"] = "latent" if latent else "state"
    else:
        arch = "leaky_rnn" if rank is None else "low_rank_rnn"
    return ArchitectureMatch(arch, match.prefix, cfg, None, convention, reason)


def _torch_match(match: ArchitectureMatch, architecture, state_dict, path) -> ArchitectureMatch:
    rnn = match.rnn
    assert rnn is not None, "called for torch RNN matches only"
    if rnn.bidirectional:
        raise CheckpointError(path, f"the torch RNN under prefix {rnn.prefix!r} is bidirectional "
                              "(keys *_reverse); it reads sequences backwards too and has no "
                              "forward-in-time dynamics", "analyze a unidirectional model")
    if rnn.proj_size:
        raise CheckpointError(path, f"the LSTM under prefix {rnn.prefix!r} has proj_size="
                              f"{rnn.proj_size} (keys weight_hr_l*); projected LSTMs are not "
                              "supported", "train with proj_size=0 or give a model factory")
    cell = architecture if architecture in TORCH_CELLS else None
    if cell is not None and cell not in rnn.cells:
        raise CheckpointError(path, f"architecture {cell!r} was requested but the weights under "
                              f"{rnn.prefix!r} have the shapes of {' or '.join(rnn.cells)}",
                              f"pass architecture={rnn.cells[0]!r}")
    if cell is None:
        if len(rnn.cells) > 1:
            raise CheckpointError(path, f"ambiguous: the plain RNN under prefix {rnn.prefix!r} "
                                  f"(keys {list(rnn.keys)[:6]}) may use tanh or relu; the weights "
                                  "do not say which", "pass architecture='rnn_tanh' or "
                                  "'rnn_relu', or write it in config.json")
        cell = rnn.cells[0]
    cfg = dict(n_inputs=rnn.input_size, hidden_size=rnn.hidden_size, cell=cell,
               num_layers=rnn.num_layers, bias=rnn.bias)
    readout = _find_readout(state_dict, rnn)
    cfg["n_outputs"] = int(state_dict[readout[0]].shape[0]) if readout else rnn.hidden_size
    return ArchitectureMatch(cell, rnn.prefix, cfg, rnn)


def _parent(prefix: str) -> str:
    if not prefix:
        return ""
    parts = prefix[:-1].split(".")
    return ".".join(parts[:-1]) + "." if len(parts) > 1 else ""


def _find_readout(state_dict, rnn: RecurrentModuleKeys) -> Optional[Tuple[str, Optional[str]]]:
    """The linear readout next to a torch RNN: ``readout_layer`` or the only fitting Linear."""
    parent = _parent(rnn.prefix)
    own = f"{parent}readout_layer.weight"
    if (own in state_dict and state_dict[own].dim() == 2
            and state_dict[own].shape[1] == rnn.hidden_size):
        bias = f"{parent}readout_layer.bias"
        return own, bias if bias in state_dict else None
    fits = []
    for key, tensor in state_dict.items():
        if not key.startswith(parent) or key.startswith(rnn.prefix) or not key.endswith(".weight"):
            continue
        name = key[len(parent): -len(".weight")]
        if "." in name or tensor.dim() != 2 or tensor.shape[1] != rnn.hidden_size:
            continue
        bias = f"{parent}{name}.bias"
        fits.append((key, bias if bias in state_dict else None))
    return fits[0] if len(fits) == 1 else None


def _expected_keys(architecture: str) -> List[str]:
    if architecture in TORCH_CELLS:
        return ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0",
                "readout_layer.weight", "readout_layer.bias"]
    low = dict(n_inputs=1, n_states=2, n_outputs=1, rank=1)
    cfg = {"rank_one_rnn": {}, "low_rank_rnn": low, "paper_low_rank_rnn": low}
    model = build_model(architecture, **cfg.get(architecture, dict(n_inputs=1, n_states=2,
                                                                     n_outputs=1)))
    return sorted(model.state_dict())
