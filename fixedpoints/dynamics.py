"""The dynamical system seen by every finder: a velocity field on batches of states.

A :class:`Dynamics` wraps a batched function ``fn(x, u)`` of states ``x`` with shape
``(b, n_states)`` and inputs ``u`` with shape ``(b, n_inputs)``:

* discrete time (:class:`DiscreteDynamics`): ``fn`` is the map, ``x_{t+1} = F(x_t, u)``, and the
  velocity is ``v(x) = F(x, u) - x``;
* continuous time (:class:`ContinuousDynamics`): ``fn`` is the vector field, ``dx/dt = f(x, u)``,
  and the velocity is ``v(x) = f(x, u)``.

A constant input is bound at construction (zeros by default), so ``velocity(x)`` needs only the
states. Everything is float64 unless asked otherwise.
"""
from __future__ import annotations

from typing import Any, Callable, List, Literal, Optional

import numpy as np
import torch
from torch.func import jacfwd, vmap

from .gram import Gram

__all__ = ["Dynamics", "DiscreteDynamics", "ContinuousDynamics", "as_tensor"]

TimeKind = Literal["discrete", "continuous"]
StepFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def as_tensor(value, *, name: str, dtype: torch.dtype, device, shape_hint: str) -> torch.Tensor:
    """Convert an array-like to a finite floating tensor, or raise a ValueError naming ``name``.

    Parameters
    ----------
    value : array_like or torch.Tensor
    name : str
        Argument name used in error messages.
    dtype, device
        Target dtype and device.
    shape_hint : str
        The expected shape, written for the error message (e.g. ``"(b, 3)"``).
    """
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        try:
            array = np.asarray(value)
        except Exception as exc:  # pragma: no cover - exotic inputs
            raise ValueError(f"{name} could not be read as an array ({exc}); pass a numpy array or "
                             f"torch tensor of shape {shape_hint}") from exc
        if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                         or array.dtype == bool):
            raise ValueError(f"{name} has dtype {array.dtype}; pass a real-valued numpy array or "
                             f"torch tensor of shape {shape_hint}")
        tensor = torch.as_tensor(array)
    if tensor.is_complex():
        raise ValueError(f"{name} is complex ({tensor.dtype}); pass real-valued states of shape "
                         f"{shape_hint}")
    tensor = tensor.to(dtype=dtype, device=device)
    if not bool(torch.isfinite(tensor).all()):
        n_bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(f"{name} has {n_bad} non-finite value(s) (NaN or inf); remove or replace "
                         f"them before calling (expected a finite array of shape {shape_hint})")
    return tensor


class Dynamics:
    """A batched dynamical system ``x -> fn(x, u)`` with a bound constant input.

    Parameters
    ----------
    fn : callable
        ``fn(x, u) -> (b, n_states)`` for ``x`` of shape ``(b, n_states)`` and ``u`` of shape
        ``(b, n_inputs)``. Must be written with torch operations that ``torch.func.vmap`` and
        ``jacrev`` can trace (no in-place updates of ``x``, no ``.item()``).
    n_states : int
        Dimension of the state.
    n_inputs : int, default 0
        Dimension of the input.
    input : array_like of shape (n_inputs,), optional
        Constant input bound to the system; zeros when omitted.
    dtype : torch.dtype, default torch.float64
    device : str or torch.device, default "cpu"
    dt : float, default 1.0
        Time step used to simulate a continuous system (ignored in discrete time).
    jacobian_fn : callable, optional
        ``jacobian_fn(x, u) -> (b, n_states, n_states)``: the Jacobian of ``fn`` in closed form.
        When omitted it is computed with ``torch.func.vmap(jacfwd(...))`` (forward mode: the
        same n passes as reverse mode for a square Jacobian, without the multi-second import of
        torch._dynamo that reverse-mode ``torch.func`` triggers in every new process).
    curvature_fn : callable, optional
        ``curvature_fn(x, u, weights) -> (b, n_states, n_states)``: the second derivatives of
        ``fn`` contracted with ``weights`` of shape ``(b, n_states)``,
        ``Σ_k weights[:, k] ∇²fn_k(x)``, in closed form. It makes :meth:`speed_hessian` cost a
        few batched matrix products instead of n double-backward passes. When omitted the
        Hessian of the speed comes from autograd.
    name : str, optional
        A label used in messages.
    """

    time: TimeKind = "discrete"
    #: Context a builder may attach: the copied ``nn.Module`` behind
    #: :func:`fixedpoints.adapters.from_module`, and the rotation ``Q`` (and scales ``D``) of
    #: the reference systems in :mod:`fixedpoints.systems`.
    module: Any = None
    Q: Optional[np.ndarray] = None
    D: Optional[np.ndarray] = None
    #: ``H`` when the last ``H`` state columns of ``J_v`` are diagonal in every block of ``H``
    #: rows (a one-layer LSTM's cell state; set by the adapters): the finder then forms ``JᵀJ``
    #: and solves its systems by blocks (:mod:`fixedpoints.gram`, which checks the layout).
    diagonal_tail: Optional[int] = None
    #: Optional closed-form Jacobian–vector products of ``fn``, for the matrix-free Newton–Krylov
    #: phase of large networks (:mod:`fixedpoints.krylov`): ``jvp_fn(x, u)`` returns a function
    #: ``t -> (∂fn/∂x)(x) t`` applied row by row to ``t`` of shape ``(b, n_states)`` (the map's
    #: Jacobian in discrete time, as ``jacobian_fn``). Without it the products come from autograd.
    jvp_fn: Optional[Callable] = None

    def __init__(self, fn: StepFunction, n_states: int, *, n_inputs: int = 0, input=None,
                 dtype: torch.dtype = torch.float64, device="cpu", dt: float = 1.0,
                 jacobian_fn: Optional[Callable] = None, curvature_fn: Optional[Callable] = None,
                 name: Optional[str] = None):
        if type(self) is Dynamics:
            raise TypeError("Dynamics is abstract; use DiscreteDynamics (maps) or "
                            "ContinuousDynamics (vector fields)")
        if not callable(fn):
            raise ValueError(f"fn must be callable, got {type(fn).__name__}")
        if int(n_states) < 1:
            raise ValueError(f"n_states must be a positive integer, got {n_states!r}")
        if int(n_inputs) < 0:
            raise ValueError(f"n_inputs must be >= 0, got {n_inputs!r}")
        if not (dtype.is_floating_point):
            raise ValueError(f"dtype must be a floating dtype such as torch.float64, got {dtype}")
        if not np.isfinite(dt) or dt <= 0:
            raise ValueError(f"dt must be a positive finite number, got {dt!r}")
        self.fn = fn
        self.n_states = int(n_states)
        self.n_inputs = int(n_inputs)
        self.dtype = dtype
        self.device = torch.device(device)
        self.dt = float(dt)
        self.jacobian_fn = jacobian_fn
        self.curvature_fn = curvature_fn
        self.name = name or type(self).__name__
        if input is None:
            self.input = torch.zeros(self.n_inputs, dtype=dtype, device=self.device)
        else:
            u = as_tensor(input, name="input", dtype=dtype, device=self.device,
                          shape_hint=f"({self.n_inputs},)").reshape(-1)
            if u.numel() != self.n_inputs:
                raise ValueError(f"input has {u.numel()} value(s) but {self.name} takes "
                                 f"{self.n_inputs} input(s); pass an array of shape "
                                 f"({self.n_inputs},)")
            self.input = u

    # ------------------------------------------------------------------ helpers
    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, n_states={self.n_states}, "
                f"n_inputs={self.n_inputs}, time={self.time!r}, dtype={self.dtype})")

    def _replace(self, **changes) -> "Dynamics":
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    def with_input(self, input) -> "Dynamics":
        """Return the same system with another constant input bound.

        Parameters
        ----------
        input : array_like of shape (n_inputs,)
        """
        u = as_tensor(input, name="input", dtype=self.dtype, device=self.device,
                      shape_hint=f"({self.n_inputs},)").reshape(-1)
        if u.numel() != self.n_inputs:
            raise ValueError(f"input has {u.numel()} value(s) but {self.name} takes "
                             f"{self.n_inputs} input(s); pass an array of shape ({self.n_inputs},)")
        return self._replace(input=u)

    def to(self, device=None, dtype: Optional[torch.dtype] = None) -> "Dynamics":
        """Return a copy that evaluates on ``device`` in ``dtype``.

        Only the bound input moves; ``fn`` must accept tensors on that device (the adapters in
        :mod:`fixedpoints.adapters` rebuild their parameters there).
        """
        device = torch.device(device) if device is not None else self.device
        dtype = dtype or self.dtype
        return self._replace(device=device, dtype=dtype, input=self.input.to(device, dtype))

    def states(self, x, name: str = "x") -> torch.Tensor:
        """Validate and convert states to a ``(b, n_states)`` tensor of this system's dtype."""
        t = as_tensor(x, name=name, dtype=self.dtype, device=self.device,
                      shape_hint=f"(b, {self.n_states})")
        if t.ndim == 1 and t.numel() == self.n_states:
            t = t.reshape(1, -1)
        if t.ndim != 2 or t.shape[1] != self.n_states:
            raise ValueError(f"{name} has shape {tuple(t.shape)} but {self.name} has "
                             f"{self.n_states} state dimension(s); pass an array of shape "
                             f"(b, {self.n_states})")
        return t

    def _inputs(self, x: torch.Tensor, u=None) -> torch.Tensor:
        if u is None:
            return self.input.expand(x.shape[0], self.n_inputs)
        u = torch.as_tensor(u, dtype=self.dtype, device=self.device)
        if u.ndim == 1:
            u = u.expand(x.shape[0], -1)
        if u.shape[-1] != self.n_inputs:
            raise ValueError(f"u has {u.shape[-1]} input dimension(s) but {self.name} takes "
                             f"{self.n_inputs}; pass u of shape (b, {self.n_inputs})")
        return u

    # ------------------------------------------------------------------ the system
    def velocity(self, x: torch.Tensor, u=None) -> torch.Tensor:
        """Velocity ``v(x)``: ``F(x, u) - x`` in discrete time, ``f(x, u)`` in continuous time.

        Parameters
        ----------
        x : torch.Tensor of shape (b, n_states)
        u : torch.Tensor of shape (b, n_inputs) or (n_inputs,), optional
            Defaults to the bound constant input.

        Returns
        -------
        torch.Tensor of shape (b, n_states)
        """
        raise NotImplementedError

    def speed(self, x: torch.Tensor, u=None) -> torch.Tensor:
        """Speed ``q(x) = ½‖v(x)‖²``, shape ``(b,)``."""
        v = self.velocity(x, u)
        return 0.5 * (v * v).sum(-1)

    def jacobian(self, x: torch.Tensor, u=None) -> torch.Tensor:
        """Jacobian of the velocity, ``J_v = ∂v/∂x``, shape ``(b, n_states, n_states)``.

        In discrete time the map's Jacobian is ``J_v + I``.
        """
        x = x.to(self.dtype)
        u = self._inputs(x, u)
        if self.jacobian_fn is not None:
            jac_fn = self.jacobian_fn(x, u)
        else:
            def single(xi, ui):
                return self.fn(xi.unsqueeze(0), ui.unsqueeze(0)).squeeze(0)
            jac_fn = vmap(jacfwd(single))(x, u)
        if self.time == "discrete":
            jac_fn = jac_fn - torch.eye(self.n_states, dtype=x.dtype, device=x.device)
        return jac_fn

    def curvature(self, x: torch.Tensor, weights: torch.Tensor, u=None) -> torch.Tensor:
        """Second derivatives of the velocity contracted with ``weights``, ``Σ_k w_k ∇²v_k``.

        Closed form with ``curvature_fn``; otherwise the Hessian of ``x -> w · v(x)`` by double
        backward (see :meth:`speed_hessian`).

        Parameters
        ----------
        x : torch.Tensor of shape (b, n_states)
        weights : torch.Tensor of shape (b, n_states)
        u : torch.Tensor of shape (b, n_inputs) or (n_inputs,), optional

        Returns
        -------
        torch.Tensor of shape (b, n_states, n_states)
        """
        x = x.detach().to(self.dtype)
        weights = weights.detach().to(self.dtype)
        if self.curvature_fn is not None:
            with torch.no_grad():
                return self.curvature_fn(x, self._inputs(x, u), weights)
        return _batched_hessian(lambda y: (weights * self.velocity(y, u)).sum(), x)

    def speed_hessian(self, x: torch.Tensor, u=None,
                      jacobian: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Hessian of the speed, ``∇²q = J_vᵀ J_v + Σ_k v_k ∇²v_k``, shape ``(b, n, n)``.

        The second term is what Gauss-Newton drops; it dominates near a slow point, where
        ``J_v`` is singular but ``v`` is not zero. With ``curvature_fn`` it is computed in closed
        form (a few batched matrix products); otherwise by double backward through ``fn``.

        Parameters
        ----------
        x : torch.Tensor of shape (b, n_states)
        u : torch.Tensor of shape (b, n_inputs) or (n_inputs,), optional
        jacobian : torch.Tensor of shape (b, n_states, n_states), optional
            ``J_v`` at ``x`` when the caller already has it (used with ``curvature_fn`` only).

        Returns
        -------
        torch.Tensor of shape (b, n_states, n_states)
        """
        x = x.detach().to(self.dtype)
        if self.curvature_fn is None:
            return _batched_hessian(lambda y: self.speed(y, u).sum(), x)
        with torch.no_grad():
            v = self.velocity(x, u)
            jac = self.jacobian(x, u) if jacobian is None else jacobian
            gram = Gram(jac, self.diagonal_tail).matrix()  # JᵀJ, by blocks where it can
            return gram + self.curvature_fn(x, self._inputs(x, u), v)

    def step(self, x: torch.Tensor, u=None, dt: Optional[float] = None) -> torch.Tensor:
        """Advance the states by one step (one map iteration, or one RK4 step of length ``dt``)."""
        raise NotImplementedError

    def simulate(self, x0, n_steps: int, inputs=None, dt: Optional[float] = None) -> torch.Tensor:
        """Simulate trajectories.

        Parameters
        ----------
        x0 : array_like of shape (b, n_states)
        n_steps : int
            Number of steps; the result includes the initial state.
        inputs : array_like of shape (n_steps, n_inputs) or (b, n_steps, n_inputs), optional
            Time-varying input; the bound constant input when omitted.
        dt : float, optional
            Step length in continuous time (defaults to ``self.dt``).

        Returns
        -------
        torch.Tensor of shape (b, n_steps + 1, n_states)
        """
        x = self.states(x0, name="x0")
        if inputs is not None:
            inputs = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, torch.Tensor)
                                     else inputs, dtype=self.dtype, device=self.device)
            if inputs.ndim == 2:
                inputs = inputs.unsqueeze(0).expand(x.shape[0], -1, -1)
            if inputs.ndim != 3 or inputs.shape[-1] != self.n_inputs or inputs.shape[1] < n_steps:
                raise ValueError(f"inputs has shape {tuple(inputs.shape)}; pass (n_steps, "
                                 f"{self.n_inputs}) or (b, n_steps, {self.n_inputs}) with "
                                 f"n_steps >= {n_steps}")
            if inputs.shape[0] != x.shape[0]:
                raise ValueError(f"inputs has batch size {inputs.shape[0]} but x0 has "
                                 f"{x.shape[0]} states; make them match")
        # written in place step by step (stacking the steps at the end copied them once more)
        out = x.new_empty((x.shape[0], int(n_steps) + 1, x.shape[1]))
        out[:, 0] = x
        with torch.no_grad():
            for t in range(int(n_steps)):
                u = None if inputs is None else inputs[:, t]
                x = self.step(x, u, dt)
                out[:, t + 1] = x
        return out

    def eigvals_native(self, eig_velocity: np.ndarray) -> np.ndarray:
        """Convert eigenvalues of ``J_v`` to this time type's native spectrum.

        Continuous time: unchanged. Discrete time: eigenvalues of the map's Jacobian, ``λ + 1``.
        """
        return eig_velocity + 1.0 if self.time == "discrete" else eig_velocity

    def unstable_mask(self, eig_native: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
        """Boolean mask of unstable eigenvalues in the native spectrum.

        Continuous time: ``Re λ > rtol``; discrete time: ``|λ| > 1 + rtol``.
        """
        if self.time == "discrete":
            return np.abs(eig_native) > 1.0 + rtol
        return np.real(eig_native) > rtol


def _batched_hessian(total: Callable[[torch.Tensor], torch.Tensor],
                     x: torch.Tensor) -> torch.Tensor:
    """Per-state Hessians ``(b, n, n)`` of ``total(x) = Σ_i f(x_i)`` (states independent).

    Double backward with plain autograd, the n rows batched into one pass
    (``is_grads_batched``); one pass per row where an operation has no batching rule.
    """
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(total(xg), xg, create_graph=True)
        n = x.shape[1]
        if not grad.requires_grad:  # linear in x: no second derivative
            return x.new_zeros(x.shape[0], n, n)
        basis = torch.eye(n, dtype=x.dtype, device=x.device).unsqueeze(1).expand(n, *x.shape)
        try:
            (rows,) = torch.autograd.grad(grad, xg, grad_outputs=basis, is_grads_batched=True,
                                          allow_unused=True)
        except RuntimeError:  # an operation without a batching rule: one pass per row
            per_row: List[torch.Tensor] = []
            for i in range(n):
                (row,) = torch.autograd.grad(grad[:, i].sum(), xg, retain_graph=True,
                                             allow_unused=True)
                per_row.append(torch.zeros_like(x) if row is None else row)
            rows = torch.stack(per_row)
        if rows is None:  # the gradient does not depend on x
            return x.new_zeros(x.shape[0], n, n)
        return rows.transpose(0, 1).detach()


class DiscreteDynamics(Dynamics):
    """A map ``x_{t+1} = F(x_t, u)``; velocity ``F(x, u) - x``. See :class:`Dynamics`."""

    time: TimeKind = "discrete"

    def velocity(self, x, u=None):
        return self.fn(x, self._inputs(x, u)) - x

    def step(self, x, u=None, dt=None):
        return self.fn(x, self._inputs(x, u))


class ContinuousDynamics(Dynamics):
    """A vector field ``dx/dt = f(x, u)``; velocity ``f(x, u)``. See :class:`Dynamics`.

    :meth:`step` integrates with classical fourth-order Runge-Kutta over ``dt``
    (``self.dt`` when not given).
    """

    time: TimeKind = "continuous"

    def velocity(self, x, u=None):
        return self.fn(x, self._inputs(x, u))

    def step(self, x, u=None, dt=None):
        h = self.dt if dt is None else float(dt)
        u = self._inputs(x, u)
        k1 = self.fn(x, u)
        k2 = self.fn(x + 0.5 * h * k1, u)
        k3 = self.fn(x + 0.5 * h * k2, u)
        k4 = self.fn(x + h * k3, u)
        return x + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
