import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from smartbkg.errors import ConfigError
from smartbkg.losses import (
    LOSS_NAMES,
    batch_speedup,
    build_loss,
    disco,
    distance_correlation_sq,
    entropy_loss,
    extreme_loss,
    speedup_loss,
)
from smartbkg.metrics import distance_correlation, perfect_speedup, speedup

T1, T2, T3 = 0.08 + 0.63 + 97.04, 0.08 + 0.63, 0.08 + 97.04


def logit(p):
    return math.log(p / (1 - p))


def toy_batch(n=256, skims=2, seed=0):
    """Features, labels (B, S) that depend on the features, event weights, a nuisance variable."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, :skims] + 0.5 * torch.randn(n, skims, generator=g) > 1.0).float()
    weight = torch.rand(n, generator=g) + 0.5
    var = x[:, 0] + 0.3 * torch.randn(n, generator=g)
    return x, y, weight, var


# ----------------------------------------------------------------------------- entropy
def test_entropy_equals_torch_bce():
    x, y, weight, _ = toy_batch()
    logits = x[:, 2:4] * 2
    assert entropy_loss(logits, y) == pytest.approx(F.binary_cross_entropy_with_logits(logits, y).item(), rel=1e-6)
    expected = (F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(1) * weight).sum() / weight.sum()
    assert entropy_loss(logits, y, weight=weight) == pytest.approx(expected.item(), rel=1e-6)
    # class weights (1, k) are torch's pos_weight = k, per skim too
    pos = torch.tensor([3.0, 0.5])
    expected = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos)
    assert entropy_loss(logits, y, class_weights=(1.0, [3.0, 0.5])) == pytest.approx(expected.item(), rel=1e-6)
    # a single skim may be given as 1-D tensors
    assert entropy_loss(logits[:, 0], y[:, 0]) == pytest.approx(entropy_loss(logits[:, :1], y[:, :1]).item())


# ----------------------------------------------------------------------------- extreme
@pytest.mark.parametrize(
    ("p", "y", "expected"),
    [
        (0.5, 1, 2.0),  # 1/0.5 + ln 1
        (0.5, 0, 2.0),
        (0.2, 1, 5 + math.log(4)),  # 1/p + ln((1-p)/p)
        (0.2, 0, 1.25 + math.log(0.25)),  # 1/(1-p) + ln(p/(1-p))
        (0.9, 0, 10 + math.log(9)),
        (0.9999, 1, 1 / 0.999 + math.log(0.001 / 0.999)),  # clamped to 0.999
        (1e-6, 1, 1000 + math.log(0.999 / 0.001)),  # clamped to 0.001
    ],
)
def test_extreme_loss_values(p, y, expected):
    value = extreme_loss(torch.tensor([logit(p)]), torch.tensor([float(y)]))
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_extreme_loss_gradient_matches_seed_derivative():
    # dE/dp = (p - y) / (p^2 (1 - p)^2), so dE/dlogit = (p - y) / (p (1 - p))
    for p, y in [(0.3, 1.0), (0.3, 0.0), (0.8, 1.0)]:
        x = torch.tensor([logit(p)], requires_grad=True)
        extreme_loss(x, torch.tensor([y])).backward()
        assert x.grad.item() == pytest.approx((p - y) / (p * (1 - p)), rel=1e-5)


# ----------------------------------------------------------------------------- speedup
def test_batch_speedup_perfect_and_trivial():
    y = torch.tensor([[1.0], [1.0], [0.0], [0.0], [0.0]])
    perfect = torch.where(y > 0, 50.0, -50.0)  # p = 1 on pass, p = 1/max_weight on fail
    assert batch_speedup(perfect, y, 0.05).item() == pytest.approx(perfect_speedup(0.05, max_weight=100), rel=1e-6)
    assert batch_speedup(perfect, y, 0.05).item() == pytest.approx(T3 / (0.0595 * T1 + 0.9405 * T2), rel=1e-6)
    everything = torch.full_like(y, 50.0)  # p = 1 everywhere: only the network's cost
    assert batch_speedup(everything, y, 0.05).item() == pytest.approx(T3 / T1, rel=1e-6)
    assert speedup_loss(everything, y, 0.05).item() == pytest.approx(-math.log(T3 / T1), rel=1e-5)
    assert speedup_loss(everything, y, 0.05, form="inverse").item() == pytest.approx(T1 / T3, rel=1e-6)


def test_batch_speedup_equals_metric_on_floored_probabilities():
    x, y, weight, _ = toy_batch()
    logits = x[:, 2:4] * 3
    values = batch_speedup(logits, y, [0.05, 0.2], weight=weight, max_weight=20)
    p = (1 / 20 + (1 - 1 / 20) * torch.sigmoid(logits)).double().numpy()
    for s, eps in enumerate([0.05, 0.2]):
        assert values[s].item() == pytest.approx(speedup(p[:, s], y[:, s].numpy(), eps=eps, weight=weight.numpy()), rel=1e-5)


def test_speedup_loss_is_invariant_to_class_balance():
    x, y, _, _ = toy_batch(skims=1)
    logits = x[:, 2:3] + 2 * x[:, :1]
    fails = y[:, 0] == 0
    more_fails = torch.cat([logits, logits[fails]]), torch.cat([y, y[fails]])
    more_passes = torch.cat([logits, logits[~fails], logits[~fails]]), torch.cat([y, y[~fails], y[~fails]])
    base = speedup_loss(logits, y, 0.05).item()
    assert speedup_loss(*more_fails, 0.05).item() == pytest.approx(base, rel=1e-6)
    assert speedup_loss(*more_passes, 0.05).item() == pytest.approx(base, rel=1e-6)


def test_speedup_loss_with_one_class_missing_is_finite_and_pushes_the_right_way():
    logits = torch.tensor([[-1.0], [0.5], [2.0]], requires_grad=True)
    only_fail = torch.zeros(3, 1)
    loss = speedup_loss(logits, only_fail, 0.05)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert (logits.grad > 0).all()  # lower p on failing events is faster
    # passing events sharing one p: raising it raises a_eff more than it costs (optimum p = 1)
    equal = torch.full((3, 1), 0.5, requires_grad=True)
    loss = speedup_loss(equal, torch.ones(3, 1), 0.05)
    loss.backward()
    assert torch.isfinite(loss) and (equal.grad < 0).all()
    # perfect stand-ins: all-fail batch at the floor gives the perfect limit
    assert batch_speedup(torch.full((3, 1), -50.0), only_fail, 0.05).item() == pytest.approx(
        perfect_speedup(0.05, max_weight=100), rel=1e-6
    )


# ----------------------------------------------------------------------------- DisCo
def test_distance_correlation_sq_matches_metric():
    x, y, weight, var = toy_batch(n=120)
    out = torch.sigmoid(x[:, 0] + x[:, 1])
    expected = distance_correlation(out.double().numpy(), var.double().numpy(), weight=weight.double().numpy()) ** 2
    assert distance_correlation_sq(out, var, weight).item() == pytest.approx(expected, rel=1e-4)
    assert distance_correlation_sq(var, 2 * var + 1).item() == pytest.approx(1.0, rel=1e-5)
    assert distance_correlation_sq(torch.ones(10), var[:10]).item() == 0.0


def test_disco_uses_the_chosen_subset():
    x, y, weight, var = toy_batch(n=150, skims=1)
    logits = x[:, :1] * 2
    fail = (y[:, 0] == 0).numpy()
    p = torch.sigmoid(logits[:, 0]).double().numpy()
    expected = distance_correlation(p[fail], var.double().numpy()[fail], weight=weight.double().numpy()[fail]) ** 2
    assert disco(logits, y, var, weight=weight, subset="fail").item() == pytest.approx(expected, rel=1e-4)
    everything = distance_correlation(p, var.double().numpy()) ** 2
    assert disco(logits, y, var, subset="all").item() == pytest.approx(everything, rel=1e-4)


def test_loss_with_disco_term_adds_lambda_times_disco():
    x, y, weight, var = toy_batch()
    logits = x[:, 1:3]
    plain = build_loss("entropy")(logits, y, weight=weight)
    with_disco = build_loss("entropy", disco_lambda=2.5)(logits, y, weight=weight, disco_var=var)
    assert with_disco.item() == pytest.approx((plain + 2.5 * disco(logits, y, var, weight=weight)).item(), rel=1e-6)
    with pytest.raises(ConfigError, match="disco_var"):
        build_loss("entropy", disco_lambda=1.0)(logits, y)


# ----------------------------------------------------------------------------- build_loss
def test_entropeedup_combines_entropy_and_speedup():
    x, y, weight, _ = toy_batch()
    logits = x[:, 1:3]
    loss = build_loss("entropeedup", eps=[0.05, 0.1], tau=4.0)
    entropy = entropy_loss(logits, y, weight=weight)
    fast = speedup_loss(logits, y, [0.05, 0.1], weight=weight)
    for epoch in (0, 3, 20):
        expected = math.exp(-epoch / 4.0) * entropy + fast
        assert loss(logits, y, weight=weight, epoch=epoch).item() == pytest.approx(expected.item(), rel=1e-6)


def test_validation_loss_does_not_depend_on_the_epoch():
    x, y, weight, var = toy_batch()
    logits = x[:, 1:3]
    loss = build_loss("entropeedup", eps=[0.05, 0.1], tau=4.0, form="inverse", max_weight=50.0, disco_lambda=0.5)
    validation = loss.validation_loss()
    expected = (speedup_loss(logits, y, [0.05, 0.1], weight=weight, form="inverse", max_weight=50.0)
                + 0.5 * disco(logits, y, var, weight=weight))
    for epoch in (0, 3, 20):
        value = validation(logits, y, weight=weight, epoch=epoch, disco_var=var)
        assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    assert validation.config["name"] == "speedup" and validation.config["form"] == "inverse"
    for name in ("entropy", "speedup", "extreme"):
        plain = build_loss(name, eps=0.1)
        assert plain.validation_loss() is plain


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("disco_lambda", [0.0, 0.5])
def test_each_loss_decreases_on_a_fixed_batch(name, disco_lambda):
    x, y, weight, var = toy_batch(seed=1)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    options = {"eps": 0.1} if name in ("speedup", "entropeedup") else {}
    loss = build_loss(name, disco_lambda=disco_lambda, **options)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    values = []
    for _ in range(30):
        optimiser.zero_grad()
        value = loss(model(x), y, weight=weight, epoch=2, disco_var=var)
        value.backward()
        optimiser.step()
        values.append(value.item())
    assert all(math.isfinite(v) for v in values)
    assert values[-1] < values[0] - 0.05 * abs(values[0])


def test_speedup_training_raises_the_batch_speedup():
    x, y, weight, _ = toy_batch(seed=2, skims=1)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    loss = build_loss("speedup", eps=0.05)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    before = batch_speedup(model(x), y, 0.05).item()
    for _ in range(100):
        optimiser.zero_grad()
        loss(model(x), y).backward()
        optimiser.step()
    after = batch_speedup(model(x), y, 0.05).item()
    assert after > 1.5 * before
    assert after < perfect_speedup(0.05, max_weight=100)


def test_every_loss_accepts_the_sampling_context():
    context = {"eps": torch.tensor([0.05, 0.1]), "t_fast": 0.1, "t_nn": 1.0, "t_slow": 50.0, "max_weight": 20.0}
    assert build_loss("entropy", **context).config == build_loss("entropy").config
    loss = build_loss("entropeedup", **context)
    assert loss.config["eps"] == pytest.approx([0.05, 0.1]) and loss.config["t_slow"] == 50.0
    x, y, _, _ = toy_batch()
    expected = speedup_loss(x[:, :2], y, [0.05, 0.1], t_fast=0.1, t_nn=1.0, t_slow=50.0, max_weight=20.0)
    assert loss(x[:, :2], y, epoch=1000).item() == pytest.approx(expected.item(), rel=1e-6)


def test_config_round_trip_and_errors():
    loss = build_loss("speedup", eps=0.05, form="inverse", disco_lambda=0.1, disco_subset="all")
    assert build_loss(**loss.config).config == loss.config
    assert loss.config["t_slow"] == 97.04 and loss.config["max_weight"] == 100.0
    with pytest.raises(ConfigError, match="unknown loss"):
        build_loss("focal")
    with pytest.raises(ConfigError, match="unknown option"):
        build_loss("entropy", tau=3.0)
    with pytest.raises(ConfigError, match="needs eps"):
        build_loss("speedup")
    with pytest.raises(ConfigError, match="eps"):
        build_loss("entropeedup", eps=1.5)
    with pytest.raises(ConfigError, match="form"):
        build_loss("speedup", eps=0.05, form="sqrt")
    with pytest.raises(ConfigError, match="max_weight"):
        build_loss("speedup", eps=0.05, max_weight=None)
    with pytest.raises(ConfigError, match="disco_subset"):
        build_loss("extreme", disco_subset="signal")
    with pytest.raises(ConfigError, match="3 values per skim"):
        build_loss("speedup", eps=[0.1, 0.2, 0.3])(torch.zeros(4, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="must both be"):
        build_loss("entropy")(torch.zeros(4, 2), torch.zeros(4, 3))


def test_half_precision_logits_give_float32_loss():
    x, y, _, _ = toy_batch()
    value = build_loss("entropeedup", eps=0.05)(x[:, :2].half(), y)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert np.isfinite(value.item())
