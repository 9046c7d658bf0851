"""Tests of dl2.optim: updates against hand-worked numbers, regularisation, checkpoints, schedules, clipping."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dl2.module import Module, Parameter
from dl2.optim import (SGD, AdaGrad, Adam, ConstantLR, CosineLR, Momentum, Nesterov, OneCycleLR, RMSProp, StepLR,
                       clip_grad_norm)


def param(values, regularize=True, dtype=np.float64):
    return Parameter(np.array(values, dtype=dtype), regularize=regularize)


def run(opt, p, grads):
    """Set p.grad to each gradient in turn, step, and record p.data after each step."""
    out = []
    for g in grads:
        p.grad[...] = g
        opt.step()
        out.append(p.data.copy())
    return out


# --------------------------------------------------------------------- hand-computed updates
def test_sgd_hand_computed():
    p = param([1.0, -2.0])
    w1, w2 = run(SGD([p], lr=0.1), p, [[0.5, 1.0], [-1.0, 0.2]])
    np.testing.assert_allclose(w1, [1.0 - 0.05, -2.0 - 0.1])
    np.testing.assert_allclose(w2, [0.95 + 0.1, -2.1 - 0.02])


def test_momentum_hand_computed():
    p = param([1.0])
    # v1 = -0.1*1 = -0.1          -> w = 0.9
    # v2 = 0.9*-0.1 - 0.1*2 = -0.29  -> w = 0.61
    # v3 = 0.9*-0.29 + 0.1 = -0.161  -> w = 0.449
    ws = run(Momentum([p], lr=0.1, momentum=0.9), p, [1.0, 2.0, -1.0])
    np.testing.assert_allclose(np.concatenate(ws), [0.9, 0.61, 0.449])


def test_nesterov_hand_computed():
    p = param([1.0])
    # v1 = -0.1;           w = 1 + 0.9*(-0.1) - 0.1*1 = 0.81
    # v2 = -0.09 - 0.2 = -0.29;  w = 0.81 + 0.9*(-0.29) - 0.1*2 = 0.349
    ws = run(Nesterov([p], lr=0.1, momentum=0.9), p, [1.0, 2.0])
    np.testing.assert_allclose(np.concatenate(ws), [0.81, 0.349])


def test_nesterov_matches_lookahead_form_on_quadratic():
    """The textbook form takes the gradient at w + mu*v; ours tracks that look-ahead point w' = w + mu*v."""
    a, lr, mu = 3.0, 0.05, 0.9
    w, v = 2.0, 0.0  # textbook iterate
    p = param([w])
    opt = Nesterov([p], lr=lr, momentum=mu)
    for _ in range(20):
        v = mu * v - lr * a * (w + mu * v)
        w = w + v
        p.grad[...] = a * p.data  # gradient of 0.5*a*w^2 at the tracked point
        opt.step()
        assert p.data[0] == pytest.approx(w + mu * v, rel=1e-12, abs=1e-12)


def test_adagrad_hand_computed():
    p = param([1.0])
    # r = 4 -> w = 1 - 0.1*2/2 = 0.9;  r = 5 -> w = 0.9 - 0.1*1/sqrt(5)
    ws = run(AdaGrad([p], lr=0.1, eps=0.0), p, [2.0, 1.0])
    np.testing.assert_allclose(np.concatenate(ws), [0.9, 0.9 - 0.1 / math.sqrt(5)])


def test_rmsprop_hand_computed():
    p = param([1.0])
    # r1 = 0.1*4 = 0.4;            w1 = 1 - 0.01*2/sqrt(0.4)
    # r2 = 0.9*0.4 + 0.1*1 = 0.46;  w2 = w1 - 0.01*1/sqrt(0.46)
    ws = run(RMSProp([p], lr=0.01, decay=0.9, eps=0.0), p, [2.0, 1.0])
    w1 = 1 - 0.01 * 2 / math.sqrt(0.4)
    np.testing.assert_allclose(np.concatenate(ws), [w1, w1 - 0.01 / math.sqrt(0.46)])


def test_rmsprop_alpha_is_decay():
    assert RMSProp([param([1.0])], lr=0.01, alpha=0.5).decay == 0.5


def test_adam_hand_computed_with_bias_correction():
    p = param([1.0])
    ws = run(Adam([p], lr=0.1, betas=(0.9, 0.999), eps=0.0), p, [2.0, -1.0])
    # step 1: m = 0.2, v = 0.004; m_hat = 0.2/0.1 = 2, v_hat = 0.004/0.001 = 4; w = 1 - 0.1*2/2 = 0.9
    # step 2: m = 0.18 - 0.1 = 0.08, v = 0.003996 + 0.001 = 0.004996
    m_hat = 0.08 / (1 - 0.9 ** 2)
    v_hat = 0.004996 / (1 - 0.999 ** 2)
    np.testing.assert_allclose(np.concatenate(ws), [0.9, 0.9 - 0.1 * m_hat / math.sqrt(v_hat)], rtol=1e-12)


def test_adam_default_hyperparameters():
    opt = Adam([param([1.0])])
    assert opt.lr == 1e-3 and opt.betas == (0.9, 0.999) and opt.eps == 1e-8


# --------------------------------------------------------------------- regularisation
def test_weight_decay_and_l1_only_on_regularized_params():
    w = param([1.0, -2.0])
    b = param([1.0, -2.0], regularize=False)
    opt = SGD([w, b], lr=0.1, weight_decay=0.5, l1=0.1)
    opt.step()  # zero loss gradient: only the penalty acts
    # g = 0.5*[1, -2] + 0.1*[1, -1] = [0.6, -1.1]
    np.testing.assert_allclose(w.data, [0.94, -1.89])
    np.testing.assert_array_equal(b.data, [1.0, -2.0])
    opt.step()
    # g = 0.5*[0.94, -1.89] + 0.1*[1, -1] = [0.57, -1.045]
    np.testing.assert_allclose(w.data, [0.94 - 0.057, -1.89 + 0.1045])
    np.testing.assert_array_equal(b.data, [1.0, -2.0])


def test_regularize_all_decays_biases_too():
    b = param([2.0], regularize=False)
    SGD([b], lr=0.1, weight_decay=0.5, regularize_all=True).step()
    np.testing.assert_allclose(b.data, [2.0 - 0.1 * 0.5 * 2.0])


def test_adam_uses_the_regularised_gradient():
    w = param([1.0, -2.0])
    w.grad[...] = [0.5, 0.3]
    Adam([w], lr=0.1, eps=0.0, weight_decay=0.1, l1=0.2).step()
    # g = [0.5 + 0.1 + 0.2, 0.3 - 0.2 - 0.2] = [0.8, -0.1]; Adam's first step is lr*sign(g)
    np.testing.assert_allclose(w.data, [0.9, -1.9])


def test_penalty_value_and_its_gradient_is_the_added_term():
    w = param([1.0, -2.0])
    b = param([5.0], regularize=False)
    opt = SGD([w, b], lr=1.0, weight_decay=0.5, l1=0.1)
    assert opt.penalty() == pytest.approx(0.5 * 0.5 * (1 + 4) + 0.1 * (1 + 2))
    # numerical gradient of penalty() w.r.t. w equals the step taken with zero loss gradient (lr = 1)
    h, numeric = 1e-6, []
    for i in range(2):
        w.data[i] += h
        up = opt.penalty()
        w.data[i] -= 2 * h
        down = opt.penalty()
        w.data[i] += h
        numeric.append((up - down) / (2 * h))
    before = w.data.copy()
    opt.step()
    np.testing.assert_allclose(before - w.data, numeric, rtol=1e-6)


def test_penalty_zero_without_regularisation():
    assert SGD([param([3.0])], lr=0.1).penalty() == 0.0


OPTIMIZERS = [
    lambda ps: SGD(ps, lr=0.1, weight_decay=0.1, l1=0.01),
    lambda ps: Momentum(ps, lr=0.1, weight_decay=0.1, l1=0.01),
    lambda ps: Nesterov(ps, lr=0.1, weight_decay=0.1, l1=0.01),
    lambda ps: AdaGrad(ps, lr=0.1, weight_decay=0.1, l1=0.01),
    lambda ps: RMSProp(ps, lr=0.01, weight_decay=0.1, l1=0.01),
    lambda ps: Adam(ps, lr=0.01, weight_decay=0.1, l1=0.01),
]
IDS = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam"]


@pytest.mark.parametrize("make", OPTIMIZERS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_in_place_keeps_dtype_and_grad(make, dtype):
    rng = np.random.default_rng(0)
    p = Parameter(rng.standard_normal((3, 4)).astype(dtype))
    q = Parameter(rng.standard_normal(4).astype(dtype), regularize=False)
    data_p, data_q = p.data, q.data
    opt = make([p, q])
    for _ in range(3):
        p.grad[...] = rng.standard_normal(p.shape)
        q.grad[...] = rng.standard_normal(q.shape)
        grads = (p.grad.copy(), q.grad.copy())
        before = p.data.copy()
        opt.step()
        np.testing.assert_array_equal(p.grad, grads[0])  # never modified
        np.testing.assert_array_equal(q.grad, grads[1])
        assert not np.array_equal(p.data, before)
    assert p.data is data_p and q.data is data_q  # updated in place, never rebound
    assert p.data.dtype == dtype and q.data.dtype == dtype
    assert all(a.dtype == dtype for s in opt.state for a in s.values())


def test_zero_grad():
    p = param([1.0, 2.0])
    p.grad[...] = 3.0
    grad = p.grad
    SGD([p], lr=0.1).zero_grad()
    assert p.grad is grad and not p.grad.any()


def test_shared_parameter_is_updated_once():
    p = param([1.0])
    p.grad[...] = 1.0
    SGD([p, p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [0.9])


# --------------------------------------------------------------------- convergence
@pytest.mark.parametrize("make,steps", [
    (lambda ps: SGD(ps, lr=0.09), 300),
    (lambda ps: Momentum(ps, lr=0.02, momentum=0.9), 300),
    (lambda ps: Nesterov(ps, lr=0.02, momentum=0.9), 300),
    (lambda ps: AdaGrad(ps, lr=0.5), 500),
    (lambda ps: RMSProp(ps, lr=0.01), 1000),
    (lambda ps: Adam(ps, lr=0.05), 1000),
], ids=IDS)
def test_minimises_ill_conditioned_quadratic(make, steps):
    scales = np.array([1.0, 10.0])  # f(w) = 0.5 * sum(scales * w**2)
    p = param([3.0, -2.0])
    opt = make([p])
    for _ in range(steps):
        opt.zero_grad()
        p.grad += scales * p.data
        opt.step()
    assert 0.5 * np.sum(scales * p.data ** 2) < 1e-4


@pytest.mark.parametrize("make", [lambda ps: Adam(ps, lr=0.02), lambda ps: Momentum(ps, lr=1e-3, momentum=0.9)],
                         ids=["Adam", "Momentum"])
def test_minimises_rosenbrock(make):
    p = param([-1.5, 2.0])
    opt = make([p])
    for _ in range(20000):
        x, y = p.data
        p.grad[...] = [-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)]
        opt.step()
    np.testing.assert_allclose(p.data, [1.0, 1.0], atol=1e-2)


# --------------------------------------------------------------------- decoupled weight decay
def _decoupled(make, **kw):
    w, b = param([1.0, -2.0]), param([3.0], regularize=False)
    w.grad[...] = [0.5, 0.3]
    b.grad[...] = [0.2]
    opt = make([w, b], lr=0.1, weight_decay=0.5, decoupled_weight_decay=True, **kw)
    return w, b, opt


def test_decoupled_decay_sgd_momentum_nesterov_hand_computed():
    # shrink = 1 - 0.1 * 0.5 = 0.95, applied to w only; g is the bare gradient
    for make, k in ((SGD, 1.0), (Momentum, 1.0), (Nesterov, 1.9)):   # first step: w*0.95 - k * lr * g
        w, b, opt = _decoupled(make)
        opt.step()
        np.testing.assert_allclose(w.data, [0.95 - k * 0.05, -1.9 - k * 0.03], err_msg=make.__name__)
        np.testing.assert_allclose(b.data, [3.0 - k * 0.02], err_msg=make.__name__)   # bias: no decay


def test_decoupled_decay_adam_is_adamw():
    w, b, opt = _decoupled(Adam, eps=0.0)
    opt.step()
    # first Adam step is lr * sign(g) of the bare gradient; the decay multiplies w before it
    np.testing.assert_allclose(w.data, [0.95 - 0.1, -1.9 - 0.1])
    np.testing.assert_allclose(b.data, [3.0 - 0.1])
    w.grad[...] = [-0.5, 0.3]
    opt.step()
    m = 0.9 * 0.1 * np.array([0.5, 0.3]) + 0.1 * np.array([-0.5, 0.3])
    v = 0.999 * 0.001 * np.array([0.25, 0.09]) + 0.001 * np.array([0.25, 0.09])
    step = 0.1 * (m / (1 - 0.9 ** 2)) / np.sqrt(v / (1 - 0.999 ** 2))
    np.testing.assert_allclose(w.data, np.array([0.85, -2.0]) * 0.95 - step)


def test_decoupled_decay_differs_from_coupled_for_adam_and_leaves_bn_untouched():
    w, _, opt = _decoupled(Adam, eps=0.0)
    w2 = param([1.0, -2.0])
    w2.grad[...] = [0.5, 0.3]
    Adam([w2], lr=0.1, eps=0.0, weight_decay=0.5).step()
    opt.step()
    assert not np.allclose(w.data, w2.data)
    from dl2.layers import BatchNorm2D
    bn = BatchNorm2D()
    bn.build((2, 3, 3))
    before = [p.data.copy() for p in bn.parameters()]
    SGD(bn.parameters(), lr=0.1, weight_decay=0.5, decoupled_weight_decay=True).step()   # zero gradients
    for p, old in zip(bn.parameters(), before):
        np.testing.assert_array_equal(p.data, old)
    b = param([2.0], regularize=False)
    SGD([b], lr=0.1, weight_decay=0.5, regularize_all=True, decoupled_weight_decay=True).step()
    np.testing.assert_allclose(b.data, [2.0 * 0.95])


def test_decoupled_decay_penalty_repr_state_and_validation():
    w = param([1.0, -2.0])
    opt = Momentum([w], lr=0.1, weight_decay=0.5, l1=0.1, decoupled_weight_decay=True)
    assert opt.penalty() == pytest.approx(0.1 * 3.0)          # the L1 part only
    assert "decoupled_weight_decay=True" in repr(opt)
    assert "decoupled" not in repr(Momentum([w], lr=0.1, weight_decay=0.5))
    assert sorted(opt.state_dict()) == sorted(Momentum([w], lr=0.1).state_dict())
    opt.step()   # zero gradient: g = l1 * sign(w) of the weights before the decay
    np.testing.assert_allclose(w.data, [0.95 - 0.01, -1.9 + 0.01])
    for bad in (1, "yes", None, np.bool_(True)):
        with pytest.raises(TypeError, match="decoupled_weight_decay must be True or False"):
            SGD([w], decoupled_weight_decay=bad)


# --------------------------------------------------------------------- checkpointing
@pytest.mark.parametrize("make", OPTIMIZERS, ids=IDS)
def test_state_dict_round_trip_through_npz_continues_identically(make, tmp_path):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal((2, 3)) for _ in range(6)]
    p = Parameter(rng.standard_normal((2, 3)))
    opt = make([p])
    for g in grads[:3]:
        p.grad[...] = g
        opt.step()
    np.savez(tmp_path / "opt.npz", **opt.state_dict())
    q = Parameter(p.data.copy())
    restored = make([q])
    with np.load(tmp_path / "opt.npz") as f:
        restored.load_state_dict(f)
    assert restored.t == 3 and restored.lr == opt.lr
    for g in grads[3:]:
        p.grad[...] = g
        q.grad[...] = g
        opt.step()
        restored.step()
    np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_is_a_copy():
    p = param([1.0])
    p.grad[...] = 1.0
    opt = Momentum([p], lr=0.1)
    opt.step()
    sd = opt.state_dict()
    sd["state.0.v"][...] = 123.0
    assert opt.state[0]["v"][0] == pytest.approx(-0.1)


def test_load_state_dict_checks_shapes_keys_and_class():
    opt = Adam([param([1.0, 2.0])])
    sd = Adam([param([1.0, 2.0, 3.0])]).state_dict()
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(sd)
    with pytest.raises(KeyError, match="missing"):
        opt.load_state_dict({"optimizer": "Adam", "step": 1, "lr": 0.1})
    with pytest.raises(ValueError, match="Momentum"):
        opt.load_state_dict(Momentum([param([1.0, 2.0])], lr=0.1).state_dict())


# --------------------------------------------------------------------- schedules
def test_step_lr_sequence():
    opt = SGD([param([1.0])], lr=1.0)
    sched = StepLR(opt, step_size=2, gamma=0.5)
    lrs = [opt.lr] + [sched.step() for _ in range(5)]
    np.testing.assert_allclose(lrs, [1.0, 1.0, 0.5, 0.5, 0.25, 0.25])
    assert opt.lr == 0.25


def test_cosine_lr_sequence():
    opt = SGD([param([1.0])], lr=1.0)
    sched = CosineLR(opt, t_max=4, lr_min=0.0)
    lrs = [opt.lr]
    for _ in range(5):
        sched.step()
        lrs.append(opt.lr)
    c = math.cos(math.pi / 4)
    np.testing.assert_allclose(lrs, [1.0, (1 + c) / 2, 0.5, (1 - c) / 2, 0.0, 0.0], atol=1e-15)


def test_cosine_lr_min():
    opt = SGD([param([1.0])], lr=0.5)
    sched = CosineLR(opt, t_max=2, lr_min=0.1)
    assert [sched.step(), sched.step()] == pytest.approx([0.3, 0.1])


def test_warmup_then_schedule():
    opt = SGD([param([1.0])], lr=0.6)
    sched = CosineLR(opt, t_max=2, warmup=2)
    lrs = [opt.lr] + [sched.step() for _ in range(4)]
    np.testing.assert_allclose(lrs, [0.2, 0.4, 0.6, 0.3, 0.0], atol=1e-15)   # 0.6 * 1/3, 2/3, then cosine
    opt = SGD([param([1.0])], lr=1.0)
    sched = ConstantLR(opt, warmup=1)
    assert [opt.lr, sched.step(), sched.step()] == [0.5, 1.0, 1.0]
    assert StepLR(SGD([param([1.0])], lr=1.0), 1, warmup=0).optimizer.lr == 1.0   # no warm-up: lr untouched


def test_optimizer_default_learning_rates():
    p = [param([1.0])]
    assert [cls(p).lr for cls in (SGD, Momentum, Nesterov, AdaGrad, RMSProp, Adam)] == [
        0.01, 0.01, 0.01, 0.01, 0.001, 0.001]


def test_schedule_state_dict_round_trip():
    opt = SGD([param([1.0])], lr=1.0)
    sched = StepLR(opt, step_size=1, gamma=0.5)
    sched.step()
    sched.step()
    opt2 = SGD([param([1.0])], lr=1.0)
    sched2 = StepLR(opt2, step_size=1, gamma=0.5)
    sched2.load_state_dict(sched.state_dict())
    assert opt2.lr == 0.25
    assert sched2.step() == sched.step() == 0.125


def lrs_of(sched, n):
    """The lr of steps 0 .. n-1 (the lr the optimizer holds before each step)."""
    out = [sched.optimizer.lr]
    for _ in range(n - 1):
        out.append(sched.step())
    return out


def test_per_batch_warmup_then_cosine_counts_steps():
    opt = SGD([param([1.0])], lr=1.0)
    sched = CosineLR(opt, t_max=8, warmup=4, interval="batch")
    assert sched.interval == "batch"
    lrs = lrs_of(sched, 14)
    np.testing.assert_allclose(lrs[:5], [0.2, 0.4, 0.6, 0.8, 1.0])      # linear from ~0 to base_lr over 4 steps
    np.testing.assert_allclose(lrs[4 + 4], 0.5, atol=1e-15)              # half-way through the cosine
    np.testing.assert_allclose(lrs[4 + 8:], [0.0, 0.0], atol=1e-15)      # its end, and after
    opt = SGD([param([1.0])], lr=1.0)
    assert lrs_of(StepLR(opt, step_size=3, gamma=0.5, interval="batch"), 7) == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    with pytest.raises(ValueError, match="interval must be 'epoch' or 'batch'"):
        ConstantLR(opt, interval="step")
    with pytest.raises(ValueError, match=r"warmup \(steps\) must be >= 0"):
        ConstantLR(opt, warmup=-1, interval="batch")


@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle_values(anneal):
    opt = SGD([param([1.0])], lr=0.5)
    sched = OneCycleLR(opt, total_steps=9, max_lr=2.0, pct_start=0.25, div_factor=4, final_div_factor=10,
                       anneal=anneal)
    assert sched.interval == "batch" and sched.base_lr == 2.0
    lrs = lrs_of(sched, 11)
    # peak at step 0.25 * 8 = 2; start 2 / 4 = 0.5; end 0.5 / 10 = 0.05 at the last step 8
    assert lrs[0] == pytest.approx(0.5) and lrs[2] == pytest.approx(2.0)
    assert lrs[8] == pytest.approx(0.05) and lrs[9] == lrs[10] == pytest.approx(0.05)
    up = 0.5 + 1.5 * (0.5 if anneal == "cos" else 0.5)                 # step 1: half-way up in both shapes
    assert lrs[1] == pytest.approx(up)
    x = 3 / 6                                                           # step 5: half-way down
    assert lrs[5] == pytest.approx(2.0 + (0.05 - 2.0) * x)
    x = 1 / 6                                                           # step 3: the first after the peak
    shape = 0.5 * (1 - math.cos(math.pi * x)) if anneal == "cos" else x
    assert lrs[3] == pytest.approx(2.0 + (0.05 - 2.0) * shape)
    assert np.all(np.diff(lrs[:3]) > 0) and np.all(np.diff(lrs[2:9]) < 0)


def test_one_cycle_defaults_and_errors():
    opt = SGD([param([1.0])], lr=0.1)
    sched = OneCycleLR(opt, total_steps=100)
    assert sched.base_lr == 0.1 and opt.lr == pytest.approx(0.1 / 25)
    lrs = lrs_of(sched, 100)
    assert max(lrs) == pytest.approx(0.1, rel=1e-4) and np.argmax(lrs) in (24, 25)   # the peak is step 24.75
    assert lrs[-1] == pytest.approx(0.1 / 25 / 1e4)
    for kwargs, message in (({"total_steps": 1}, "total_steps must be >= 2"),
                            ({"total_steps": 10, "pct_start": 1.0}, "pct_start"),
                            ({"total_steps": 10, "max_lr": 0}, "max_lr"),
                            ({"total_steps": 10, "div_factor": 0.5}, "div_factor"),
                            ({"total_steps": 10, "anneal": "exp"}, "anneal must be 'cos' or 'linear'")):
        with pytest.raises((ValueError, TypeError), match=message):
            OneCycleLR(opt, **kwargs)


def test_per_batch_schedule_state_dict_resumes_at_the_same_step():
    opt = SGD([param([1.0])], lr=1.0)
    sched = OneCycleLR(opt, total_steps=20)
    full = lrs_of(sched, 20)
    opt = SGD([param([1.0])], lr=1.0)
    sched = OneCycleLR(opt, total_steps=20)
    lrs_of(sched, 8)
    sched.step()                                    # 8 steps done
    opt2 = SGD([param([1.0])], lr=1.0)
    sched2 = OneCycleLR(opt2, total_steps=20)
    sched2.load_state_dict(sched.state_dict())
    assert lrs_of(sched2, 12) == full[8:]
    old = {"epoch": 2, "base_lr": 1.0}               # a checkpoint written before "t"
    sched3 = StepLR(SGD([param([1.0])], lr=1.0), 1, 0.5)
    sched3.load_state_dict(old)
    assert sched3.optimizer.lr == 0.25


def test_schedule_errors():
    opt = SGD([param([1.0])], lr=1.0)
    with pytest.raises(ValueError):
        StepLR(opt, step_size=0, gamma=0.5)
    with pytest.raises(ValueError):
        CosineLR(opt, t_max=0)
    with pytest.raises(ValueError):
        CosineLR(opt, t_max=5, lr_min=2.0)
    with pytest.raises(ValueError, match=r"warmup \(epochs\) must be >= 0"):
        ConstantLR(opt, warmup=-1)
    for bad in (1.5, True):
        with pytest.raises(TypeError, match=r"warmup \(epochs\) must be an integer"):
            ConstantLR(opt, warmup=bad)


# --------------------------------------------------------------------- clipping
def test_clip_grad_norm_scales_down():
    a, b = param([0.0, 0.0]), param([0.0])
    a.grad[...] = [3.0, 0.0]
    b.grad[...] = [4.0]
    total = clip_grad_norm([a, b], max_norm=1.0)
    assert total == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad, [0.6, 0.0])
    np.testing.assert_allclose(b.grad, [0.8])


def test_clip_grad_norm_leaves_small_gradients():
    a = param([0.0, 0.0])
    a.grad[...] = [0.3, 0.4]
    assert clip_grad_norm([a], max_norm=1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(a.grad, [0.3, 0.4])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=8), st.floats(0.01, 100.0))
def test_clip_grad_norm_property(values, max_norm):
    p = param(np.zeros(len(values)))
    p.grad[...] = values
    original = p.grad.copy()
    total = clip_grad_norm([p], max_norm)
    assert total == pytest.approx(np.linalg.norm(original))
    assert np.linalg.norm(p.grad) <= max_norm * (1 + 1e-9)
    if total > max_norm:
        np.testing.assert_allclose(p.grad * total, original * max_norm, rtol=1e-9, atol=1e-12)
    else:
        np.testing.assert_array_equal(p.grad, original)


# --------------------------------------------------------------------- errors
@pytest.mark.parametrize("lr", [0.0, -0.1, float("nan")])
def test_bad_lr(lr):
    with pytest.raises(ValueError, match="lr"):
        SGD([param([1.0])], lr=lr)


def test_bad_regularisation():
    with pytest.raises(ValueError, match="weight_decay"):
        SGD([param([1.0])], lr=0.1, weight_decay=-1e-4)
    with pytest.raises(ValueError, match="l1"):
        Adam([param([1.0])], l1=-1.0)


@pytest.mark.parametrize("momentum", [1.0, -0.1, 1.5])
def test_bad_momentum(momentum):
    with pytest.raises(ValueError, match="momentum"):
        Momentum([param([1.0])], lr=0.1, momentum=momentum)
    with pytest.raises(ValueError, match="momentum"):
        Nesterov([param([1.0])], lr=0.1, momentum=momentum)


def test_bad_params():
    with pytest.raises(ValueError, match="empty"):
        Adam([])
    with pytest.raises(TypeError):
        SGD([np.zeros(3)], lr=0.1)

    class Empty(Module):
        pass

    with pytest.raises(TypeError, match="parameters()"):
        SGD(Empty(), lr=0.1)
    with pytest.raises(ValueError, match="betas"):
        Adam([param([1.0])], betas=(0.9, 1.0))


# --------------------------------------------------------------------- schedules in Trainer.fit
def _digits_run(schedule, epochs, checkpoint=None, resume=None, seed_model=0):
    import dl2
    from dl2.callbacks import LambdaCallback
    (x, t), _ = dl2.data.load_digits()
    model = dl2.Sequential(dl2.Flatten(), dl2.Linear(16), dl2.ReLU(), dl2.Linear(10), input_shape=(1, 8, 8),
                           seed=seed_model)
    opt = Momentum(model.parameters(), lr=0.05)
    seen = []
    trainer = dl2.Trainer(model, dl2.SoftmaxCrossEntropy(), opt, seed=1, progress=False, scheduler=schedule(opt),
                          callbacks=[LambdaCallback(on_batch_end=lambda tr, b, logs: seen.append(tr.optimizer.lr))])
    history = trainer.fit(x[:100], t[:100], epochs=epochs, batch_size=32, checkpoint=checkpoint, resume=resume)
    return model, history, seen


def test_trainer_steps_a_per_batch_schedule_after_every_step():
    # 100 samples, batch 32: 4 steps per epoch; on_batch_end sees the lr after the step's schedule update
    _, history, seen = _digits_run(lambda opt: OneCycleLR(opt, total_steps=8), epochs=2)
    opt = SGD([param([1.0])], lr=0.05)
    expected = lrs_of(OneCycleLR(opt, total_steps=8), 9)
    np.testing.assert_allclose(seen, expected[1:])
    np.testing.assert_allclose(history["lr"], [expected[3], expected[7]])      # each epoch's last step
    _, history, seen = _digits_run(lambda opt: StepLR(opt, 1, 0.5), epochs=2)  # per epoch: constant in an epoch
    np.testing.assert_allclose(seen, [0.05] * 4 + [0.025] * 4)
    np.testing.assert_allclose(history["lr"], [0.05, 0.025])


def test_trainer_resume_continues_a_per_batch_schedule(tmp_path):
    make = lambda opt: CosineLR(opt, t_max=14, warmup=2, interval="batch")   # noqa: E731
    model_a, history_a, seen_a = _digits_run(make, epochs=4)
    ckpt = tmp_path / "c.npz"
    _, _, seen_b = _digits_run(make, epochs=2, checkpoint=ckpt)
    model_c, history_c, seen_c = _digits_run(make, epochs=4, resume=ckpt, seed_model=5)
    assert seen_b + seen_c == seen_a
    assert history_c["lr"] == history_a["lr"]
    for (ka, va), (kc, vc) in zip(model_a.state_dict().items(), model_c.state_dict().items()):
        np.testing.assert_array_equal(va, vc, err_msg=ka)
