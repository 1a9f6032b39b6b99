"""Training losses of the skim filter (multi-label: one logit per skim).

Every loss is built by name with :func:`build_loss` and called as::

    loss(logits, y, *, weight=None, epoch=0, disco_var=None) -> scalar tensor

with ``logits`` (B, S) (one column per skim, no sigmoid applied), ``y`` (B, S) skim flags in
{0, 1}, ``weight`` (B,) event weights (ones when None), ``epoch`` the 0-based training epoch and
``disco_var`` (B,) the variable the output is decorrelated from when the DisCo term is on.
A 1-D ``logits``/``y`` is one skim. Losses are computed in float32 whatever the input precision.

Names:

``entropy``
    Binary cross-entropy per skim, weighted mean over events and skims; optional class weights.
``speedup``
    -log S (``form="log"``, default) or 1/S (``form="inverse"``, the Belle II choice) of the
    speedup S of :mod:`smartbkg.metrics`, per skim on the batch, averaged over skims.
``entropeedup``
    exp(-epoch / tau) * entropy + speedup (tau = 10 by default): a classifier first, a speedup
    optimiser later. Its validation loss (:meth:`Loss.validation_loss`) is the speedup part.
``extreme``
    The extreme loss of J. Kim, "Training towards significance with the decorrelated
    event classifier transformer neural network" (Phys. Rev. D, 2024): y = 1: 1/p + ln((1-p)/p);
    y = 0: 1/(1-p) + ln(p/(1-p)), with p = sigmoid(logit) clamped to [0.001, 0.999].

Any of them takes ``disco_lambda`` (> 0 adds lambda * DisCo) and ``disco_subset``
("fail": background only, the default; "pass"; "all").

A loss of your own is a function registered with :func:`register_loss` (or published in the
``smartbkg.losses`` entry-point group, see :mod:`smartbkg.registry`); ``smartbkg-train --import
MODULE --loss NAME`` trains with it.
"""

import inspect
import math

import torch
import torch.nn.functional as F

from .errors import ConfigError
from .metrics import T_FAST, T_NN, T_SLOW, _check_eps, _check_timings, speedup_formula
from .registry import Registry

#: The subsets of events a DisCo term can be computed on, as functions of the skim flags.
DISCO_SUBSETS = {"fail": lambda y: 1 - y, "pass": lambda y: y, "all": torch.ones_like}

_TINY = 1e-30


# ----------------------------------------------------------------------------- input handling
def _prepare(logits, y, weight):
    """Shapes (B, S), (B, S), (B,) in float32 on the device of ``logits``."""
    logits = logits.float()
    if logits.ndim == 1:
        logits = logits[:, None]
    y = torch.as_tensor(y, dtype=torch.float32, device=logits.device)
    if y.ndim == 1:
        y = y[:, None]
    if logits.ndim != 2 or y.shape != logits.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and y {tuple(y.shape)} must both be (B, S)")
    if weight is None:
        weight = torch.ones(logits.shape[0], device=logits.device)
    weight = torch.as_tensor(weight, dtype=torch.float32, device=logits.device)
    if weight.shape != logits.shape[:1]:
        raise ValueError(f"weight {tuple(weight.shape)} must be (B,) = ({logits.shape[0]},)")
    return logits, y, weight


def _per_skim(value, logits, name):
    """A scalar or per-skim option as a float32 tensor broadcastable to (S,) (or (k, S))."""
    tensor = torch.as_tensor(value, dtype=torch.float32, device=logits.device)
    if tensor.ndim and tensor.shape[-1] not in (1, logits.shape[1]):
        raise ConfigError(f"{name} has {tensor.shape[-1]} values per skim but the batch has {logits.shape[1]} skims")
    return tensor


def _weighted_mean(elementwise, y, weight, class_weights):
    """sum_i weight_i mean_s(c_is * elementwise_is) / sum_i weight_i, c = class weight of y_is."""
    if class_weights is not None:
        w_fail, w_pass = (_per_skim(c, elementwise, "class_weights") for c in class_weights)
        elementwise = elementwise * (w_pass * y + w_fail * (1 - y))
    return (elementwise.mean(1) * weight).sum() / weight.sum().clamp_min(_TINY)


def _check_options(eps, t_fast, t_nn, t_slow, max_weight, form):
    _check_eps(torch.as_tensor(eps, dtype=torch.float64).cpu().numpy())
    _check_timings(t_fast, t_nn, t_slow)
    if max_weight is None or not 1 <= max_weight < math.inf:
        raise ConfigError(f"the speedup loss needs a finite max_weight >= 1, got {max_weight}")
    if form not in ("log", "inverse"):
        raise ConfigError(f"speedup form must be 'log' or 'inverse', got {form!r}")


# ----------------------------------------------------------------------------- functional losses
def entropy_loss(logits, y, *, weight=None, class_weights=None):
    """Binary cross-entropy -[y ln p + (1-y) ln(1-p)], p = sigmoid(logit), per event and skim.

    Args:
        logits, y: (B, S); weight: (B,) event weights.
        class_weights: ``(w_fail, w_pass)`` multiplying the terms of failing / passing events;
            each a scalar or a per-skim sequence (S,). ``(1, k)`` equals torch's ``pos_weight=k``.

    Returns:
        scalar: sum_i w_i mean_s l_is / sum_i w_i (the plain mean without weights).
    """
    logits, y, weight = _prepare(logits, y, weight)
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return _weighted_mean(bce, y, weight, class_weights)


def extreme_loss(logits, y, *, weight=None, class_weights=None, p_min=1e-3):
    """Extreme loss (J. Kim, Phys. Rev. D 2024): y = 1: 1/p + ln((1-p)/p); y = 0: 1/(1-p) + ln(p/(1-p)).

    p = sigmoid(logit) is clamped to [p_min, 1 - p_min] (no gradient outside). With x the clamped
    logit this is 1 + e^{-x} - x for y = 1 and 1 + e^{x} + x for y = 0, computed in that form.
    Its derivative in p is (p - y) / (p^2 (1-p)^2): confident mistakes cost far more than in BCE.
    Arguments and reduction as in :func:`entropy_loss`.
    """
    logits, y, weight = _prepare(logits, y, weight)
    bound = math.log((1 - p_min) / p_min)
    x = logits.clamp(-bound, bound)
    elementwise = y * (1 + torch.exp(-x) - x) + (1 - y) * (1 + torch.exp(x) + x)
    return _weighted_mean(elementwise, y, weight, class_weights)


def batch_speedup(logits, y, eps, *, weight=None, t_fast=T_FAST, t_nn=T_NN, t_slow=T_SLOW, max_weight=100.0):
    """Differentiable speedup per skim on a batch, (S,).

    p = 1/max_weight + (1 - 1/max_weight) sigmoid(logit): a smooth floor (a clamp would stop the
    gradient of passing events with tiny p). The class-conditional means

        f_TP = sum_pass w p / sum_pass w,  f_FP = sum_fail w p / sum_fail w,
        a_eff = sum_pass w / sum_pass (w / p)

    are taken within each class, so the batch's class balance does not enter; the true retention
    rate ``eps`` (scalar or (S,)) weights the classes in :func:`smartbkg.metrics.speedup_formula`.

    A skim without passing events in the batch takes the perfect values f_TP = a_eff = 1, one
    without failing events f_FP = 1/max_weight (constants, no gradient); the other class still
    gets its gradient, and the value stays finite (at most the perfect-classifier limit).
    """
    logits, y, weight = _prepare(logits, y, weight)
    floor = 1.0 / max_weight
    p = floor + (1 - floor) * torch.sigmoid(logits)
    w_pass, w_fail = weight[:, None] * y, weight[:, None] * (1 - y)
    n_pass, n_fail = w_pass.sum(0), w_fail.sum(0)
    has_pass, has_fail = n_pass > 0, n_fail > 0
    one = torch.ones_like(n_pass)
    n_pass, n_fail = torch.where(has_pass, n_pass, one), torch.where(has_fail, n_fail, one)
    f_tp = torch.where(has_pass, (w_pass * p).sum(0) / n_pass, one)
    mean_inverse = torch.where(has_pass, (w_pass / p).sum(0) / n_pass, one)
    f_fp = torch.where(has_fail, (w_fail * p).sum(0) / n_fail, one * floor)
    eps = _per_skim(eps, logits, "eps")
    return speedup_formula(eps, f_tp, f_fp, 1 / mean_inverse, t_fast, t_nn, t_slow)


def speedup_loss(
    logits, y, eps, *, weight=None, form="log", t_fast=T_FAST, t_nn=T_NN, t_slow=T_SLOW, max_weight=100.0
):
    """Mean over skims of -ln S (``form="log"``) or 1/S (``form="inverse"``), S from
    :func:`batch_speedup`. The log form has gradient -dS/S at every speedup; the inverse form
    (the Belle II choice) weakens as S grows (-dS/S^2)."""
    _check_options(eps, t_fast, t_nn, t_slow, max_weight, form)
    s = batch_speedup(logits, y, eps, weight=weight, t_fast=t_fast, t_nn=t_nn, t_slow=t_slow, max_weight=max_weight)
    return (-torch.log(s) if form == "log" else 1 / s).mean()


def distance_correlation_sq(x, z, weight=None):
    """Weighted squared distance correlation dCor^2(x, z), batched and differentiable.

    The V-statistic with weighted double centring (the DisCo estimator, arXiv:2001.05310; the
    formula is in :func:`smartbkg.metrics.distance_correlation`, which returns its square root).
    Memory O(... B^2).

    Args:
        x, z: (..., B) values; weight: (..., B) non-negative weights (ones when None); events of
            weight 0 are left out.

    Returns:
        (...,) in [0, 1]; 0 when x or z is constant or no event has weight.
    """
    x, z = torch.broadcast_tensors(x, z)
    weight = torch.ones_like(x) if weight is None else weight.expand_as(x)
    v = weight / weight.sum(-1, keepdim=True).clamp_min(_TINY)

    def centred(u):
        dist = (u[..., :, None] - u[..., None, :]).abs()
        row = (dist * v[..., None, :]).sum(-1)
        grand = (row * v).sum(-1)
        return dist - row[..., :, None] - row[..., None, :] + grand[..., None, None]

    def dcov(a, b):
        return (v[..., :, None] * a * b * v[..., None, :]).sum((-2, -1))

    a, b = centred(x), centred(z)
    return dcov(a, b) / torch.sqrt((dcov(a, a) * dcov(b, b)).clamp_min(_TINY))


def disco(logits, y, var, *, weight=None, subset="fail"):
    """DisCo penalty: mean over skims of dCor^2(sigmoid(logit_s), var) over the events of
    ``subset`` ("fail": y_s = 0, "pass": y_s = 1, "all"), weighted by ``weight``.

    Args:
        logits, y: (B, S); var: (B,) the variable to decorrelate from (e.g. a mass, GeV);
        weight: (B,).
    """
    logits, y, weight = _prepare(logits, y, weight)
    var = torch.as_tensor(var, dtype=torch.float32, device=logits.device)
    if var.shape != logits.shape[:1]:
        raise ValueError(f"disco_var {tuple(var.shape)} must be (B,) = ({logits.shape[0]},)")
    selected = (weight[:, None] * DISCO_SUBSETS[subset](y)).T
    return distance_correlation_sq(torch.sigmoid(logits).T, var, selected).mean()


def _entropeedup(logits, y, *, weight, epoch, tau, class_weights, **speedup_options):
    decay = math.exp(-epoch / tau)
    return decay * entropy_loss(logits, y, weight=weight, class_weights=class_weights) + speedup_loss(
        logits, y, weight=weight, **speedup_options
    )


def _signature_defaults(function, skip):
    """{option: default} of the keyword-only parameters of ``function`` not in ``skip`` (None
    for a parameter without default)."""
    return {
        name: None if par.default is par.empty else par.default
        for name, par in inspect.signature(function).parameters.items()
        if par.kind is par.KEYWORD_ONLY and name not in skip
    }


def _adopt(name, function):
    register_loss(name)(function)


#: name -> (function(logits, y, *, weight, epoch, **options), default options).
_REGISTRY = Registry("loss", "smartbkg.losses", adopt=_adopt)


def register_loss(name, defaults=None):
    """Function decorator: make ``function`` buildable as ``build_loss(name, **options)``.

    ``function(logits, y, *, weight, epoch, **options) -> scalar tensor`` takes ``logits`` and
    ``y`` (B, S), ``weight`` (B,) event weights or None (no weights: all ones) and the 0-based
    ``epoch``; ``defaults`` is {option: default value} of the options it takes (default:
    its keyword-only parameters but ``weight`` and ``epoch``, with their defaults; None for one
    without). Of the sampling context (:data:`SAMPLING_CONTEXT`) it receives the options it
    names (e.g. ``eps``, the true retention per skim). The DisCo term (``disco_lambda``) is added
    by :class:`Loss` for any loss. Example::

        @register_loss("focal")
        def focal(logits, y, *, weight, epoch, gamma=2.0):
            p = torch.sigmoid(logits)
            ...

    Raises:
        ValueError: ``name`` is taken by another loss.
    """
    def register(function):
        options = _signature_defaults(function, {"weight", "epoch"}) if defaults is None else dict(defaults)
        _REGISTRY.register(name, (function, options))
        return function
    return register


_SPEEDUP_OPTIONS = {"eps": None, **_signature_defaults(speedup_loss, {"weight"})}

register_loss("entropy", _signature_defaults(entropy_loss, {"weight"}))(
    lambda logits, y, *, weight, epoch, **o: entropy_loss(logits, y, weight=weight, **o))
register_loss("extreme", _signature_defaults(extreme_loss, {"weight"}))(
    lambda logits, y, *, weight, epoch, **o: extreme_loss(logits, y, weight=weight, **o))
register_loss("speedup", _SPEEDUP_OPTIONS)(
    lambda logits, y, *, weight, epoch, **o: speedup_loss(logits, y, weight=weight, **o))
register_loss("entropeedup", {"tau": 10.0, "class_weights": None, **_SPEEDUP_OPTIONS})(_entropeedup)

#: The losses shipped with smartbkg (:func:`list_losses` adds the registered ones).
LOSS_NAMES = ("entropy", "extreme", "speedup", "entropeedup")


def list_losses():
    """Names of the registered losses (and of those the ``smartbkg.losses`` entry points offer), sorted."""
    return _REGISTRY.names()


#: Options every loss accepts (the speedup losses use them, the others ignore them).
#: Losses that are a mean over events, so their value does not depend on which events share a
#: batch (unlike ``speedup``, ``entropeedup`` and DisCo, computed on the whole batch).
PER_EVENT_LOSSES = ("entropy", "extreme")
#: Options of the sampling context a loss may take: the retention eps, the timings and max_weight.
SAMPLING_CONTEXT = ("eps", "t_fast", "t_nn", "t_slow", "max_weight")


class Loss:
    """A configured loss: ``loss(logits, y, *, weight=None, epoch=0, disco_var=None)``.

    Built by :func:`build_loss`; ``config`` is the full resolved option dict (save it with the
    run), ``build_loss(**loss.config)`` rebuilds it.
    """

    def __init__(self, name, options, disco_lambda, disco_subset):
        self.name = name
        self._function = _REGISTRY.get(name)[0]
        self._options = options
        self.disco_lambda = float(disco_lambda)
        self.disco_subset = disco_subset

    @property
    def config(self):
        disco_options = {"disco_lambda": self.disco_lambda, "disco_subset": self.disco_subset}
        return {"name": self.name, **self._options, **disco_options}

    def validation_loss(self):
        """The loss to validate and select models with: one that does not depend on the epoch.

        ``entropeedup`` gives its speedup part (with the same options and DisCo term): "speedup
        always as validation loss", as in the Belle II smart background studies. Its full value exp(-epoch/tau) * entropy + speedup
        falls from epoch to epoch for an unchanged model, so as a validation loss it would make
        the last epoch look best. Every other loss is epoch-independent and returns itself.
        """
        if self.name != "entropeedup":
            return self
        speedup_options = {k: v for k, v in self._options.items() if k in _SPEEDUP_OPTIONS}
        return Loss("speedup", speedup_options, self.disco_lambda, self.disco_subset)

    def __call__(self, logits, y, *, weight=None, epoch=0, disco_var=None):
        value = self._function(logits, y, weight=weight, epoch=epoch, **self._options)
        if self.disco_lambda:
            if disco_var is None:
                raise ConfigError(
                    f"the {self.name} loss has a DisCo term (disco_lambda={self.disco_lambda}) but no disco_var was given"
                )
            penalty = disco(logits, y, disco_var, weight=weight, subset=self.disco_subset)
            value = value + self.disco_lambda * penalty
        return value

    def __repr__(self):
        return f"Loss({', '.join(f'{k}={v!r}' for k, v in self.config.items())})"


def build_loss(name, *, disco_lambda=0.0, disco_subset="fail", **options):
    """Build a loss by name (:func:`list_losses`; :func:`register_loss` adds one) with its options.

    Options: entropy / extreme: ``class_weights`` (extreme also ``p_min``, default 0.001);
    speedup: ``eps`` (required: the true retention rate, scalar or one per skim, e.g. the pass
    fraction of the training set), ``form`` ("log" or "inverse"), ``t_fast``, ``t_nn``,
    ``t_slow`` (ms), ``max_weight`` (default 100); entropeedup: those of speedup plus ``tau``
    (default 10) and ``class_weights``. Every loss: ``disco_lambda`` (default 0: off) and
    ``disco_subset`` ("fail", "pass" or "all").

    The sampling context (:data:`SAMPLING_CONTEXT`: eps, timings, max_weight) is accepted by
    every loss, so a training loop can always pass it; losses that do not use it (entropy,
    extreme) leave it out of their ``config``.

    Raises:
        ConfigError: unknown name or option, missing ``eps``, impossible values.
    """
    defaults = _REGISTRY.get(name)[1]
    unknown = sorted(set(options) - set(defaults) - set(SAMPLING_CONTEXT))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for the {name} loss; it takes "
            f"{', '.join(sorted(defaults) + ['disco_lambda', 'disco_subset'])}"
        )
    options = {**defaults, **{k: v for k, v in options.items() if k in defaults}}
    if "eps" in options:
        if options["eps"] is None:
            raise ConfigError(
                f"the {name} loss needs eps, the true retention rate of each skim (e.g. the training pass fraction)"
            )
        options["eps"] = torch.as_tensor(options["eps"], dtype=torch.float64).tolist()
        if set(_SPEEDUP_OPTIONS) <= set(options):  # the speedup losses
            _check_options(**{k: options[k] for k in ("eps", "t_fast", "t_nn", "t_slow", "max_weight", "form")})
    if options.get("tau", 1) <= 0:
        raise ConfigError(f"tau must be > 0, got {options['tau']}")
    if options.get("class_weights") is not None and len(options["class_weights"]) != 2:
        raise ConfigError(f"class_weights must be a pair (w_fail, w_pass), got {options['class_weights']}")
    if not 0 < options.get("p_min", 0.1) < 0.5:
        raise ConfigError(f"p_min must lie in (0, 0.5), got {options['p_min']}")
    if disco_lambda < 0:
        raise ConfigError(f"disco_lambda must be >= 0, got {disco_lambda}")
    if disco_subset not in DISCO_SUBSETS:
        raise ConfigError(f"disco_subset must be one of {', '.join(DISCO_SUBSETS)}, got {disco_subset!r}")
    return Loss(name, options, disco_lambda, disco_subset)
