"""LaNMax without Keras: least squares, the estimator, domains and the resume log, on NumPy only."""

import json
import math

import numpy as np
import pytest

from tf_lanmax.energy import EnergyModel
from tf_lanmax.energy.accounting import mean_memory_energy
from tf_lanmax.lanmax import (
    EpochState,
    RateEstimator,
    check_domains,
    domain_log_rates,
    fit_rate_gradient,
    ols,
    resolve_domains,
    resume,
)

# ---------------------------------------------------------------------------------------------
# Least squares
# ---------------------------------------------------------------------------------------------


def test_ols_matches_numpy_lstsq_and_its_standard_errors():
    rng = np.random.default_rng(0)
    x = np.c_[np.ones(200), rng.normal(size=(200, 3))]
    y = x @ np.array([1.0, -2.0, 0.5, 3.0]) + rng.normal(scale=0.3, size=200)
    result = ols(x, y)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    np.testing.assert_allclose(result.coef, coef, rtol=1e-12)
    resid = y - x @ coef
    cov = resid @ resid / (200 - 4) * np.linalg.inv(x.T @ x)  # textbook formula as oracle
    np.testing.assert_allclose(result.stderr, np.sqrt(np.diag(cov)), rtol=1e-10)


def test_noisy_slopes_are_recovered_within_their_standard_errors():
    rng = np.random.default_rng(2)
    g = np.array([0.4, -0.2, 0.1, 0.0])
    r, sigma, n, reps = 0.5, 0.05, 120, 300
    z_scores, stderrs = [], []
    for _ in range(reps):
        dx = rng.uniform(-r, r, size=(n, 4))
        t = np.arange(n) / n
        objective = 1.0 + dx @ g - 0.3 * t + rng.normal(scale=sigma, size=n)
        slopes, stderr, _ = fit_rate_gradient(dx, objective, t)
        z_scores.append((slopes - g) / stderr)
        stderrs.append(stderr)
    z = np.array(z_scores)
    # Unbiased: the mean z of 300 repetitions is within 4/sqrt(300) of 0 for every layer.
    assert np.all(np.abs(z.mean(axis=0)) < 4 / math.sqrt(reps))
    # Calibrated: ~95% of |z| below 1.97 (binomial 99.9% band for 1200 trials is about +-2%).
    coverage = np.mean(np.abs(z) < 1.97)
    assert 0.93 < coverage < 0.97
    # Near-orthogonal design: SE ~ sigma sqrt(3/N) / r within 20 %.
    np.testing.assert_allclose(np.mean(stderrs), sigma * math.sqrt(3 / n) / r, rtol=0.2)


def test_ols_rejects_bad_designs():
    with pytest.raises(ValueError, match="at least as many points"):
        ols(np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match="rank deficient"):
        ols(np.ones((10, 2)), np.arange(10.0))
    with pytest.raises(ValueError, match="non-finite"):
        ols(np.c_[np.ones(5), [1, 2, np.nan, 4, 5]], np.ones(5))


# ---------------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------------


def _run_epoch(estimator, state, objective_of, batches, first=0, total=None):
    """Proposes, measures with `objective_of(x_tilde, t)` and records batches first.. ."""
    for batch in range(first, first + batches):
        x_tilde, state = estimator.propose(state)
        t = batch / (total or batches)
        value = objective_of(x_tilde, t)
        state = estimator.record(state, batch, x_tilde, t, value, value)
    return state


def test_noise_free_linear_objective_gives_the_exact_slope_per_domain():
    estimator = RateEstimator(p_min=1e-6, radius=0.5, warmup_epochs=0, learning_rate=1e-3)
    x0 = np.log([1e-2, 1e-3, 3e-2])
    g = np.array([0.3, -1.2, 0.05])
    state = estimator.start(0, x0, seed=7)
    state = _run_epoch(estimator, state, lambda xt, t: 2.0 + (xt - x0) @ g + 0.7 * t, 30)
    state = estimator.step(state)
    np.testing.assert_allclose(state.step.slopes, g, atol=1e-10)
    # Unclipped: the step is exactly -lr * slope.
    np.testing.assert_allclose(np.array(state.log_rates) - x0, -1e-3 * g, atol=1e-12)


def test_step_is_clipped_to_max_step_and_to_the_bounds():
    estimator = RateEstimator(p_min=1e-6, p_max=0.2, warmup_epochs=0, max_step=0.25)
    x0 = np.log([1e-3, 1e-3, 0.19])
    g = np.array([-50.0, 50.0, -50.0])  # -lr * slope = +-500 nats, far beyond max_step
    state = estimator.start(0, x0, seed=1)
    state = estimator.step(_run_epoch(estimator, state, lambda xt, t: (xt - x0) @ g, 20))
    expected = [x0[0] + 0.25, x0[1] - 0.25, math.log(0.2)]  # +step, -step, the bound
    np.testing.assert_allclose(state.log_rates, expected, rtol=1e-12)


def test_perturbations_follow_the_per_epoch_stream_and_the_bounds():
    estimator = RateEstimator(p_min=1e-4, p_max=0.5, radius=0.5)
    x0 = np.log([0.45, 1e-2])
    state = estimator.start(3, x0, seed=11)
    draws = np.random.default_rng([11, 3]).uniform(-1, 1, size=(5, 2))  # the stream, as oracle
    for u in draws:
        x_tilde, state = estimator.propose(state)
        np.testing.assert_array_equal(x_tilde, np.clip(x0 + 0.5 * u, math.log(1e-4), math.log(0.5)))
    additive = RateEstimator(p_min=1e-4, radius=0.3, perturbation="additive_uniform")
    x_tilde, _ = additive.propose(additive.start(3, x0, seed=11))
    p_tilde = np.clip(np.exp(x0) * (1 + 0.3 * draws[0]), 1e-4, 0.5)
    np.testing.assert_allclose(x_tilde, np.log(p_tilde), rtol=1e-15)


def test_warm_up_and_too_few_points_keep_the_rates():
    estimator = RateEstimator(p_min=1e-6, warmup_epochs=1)
    x0 = np.log([1e-2, 1e-2])
    warm = estimator.step(_run_epoch(estimator, estimator.start(0, x0, 0), lambda x, t: 1.0, 10))
    assert (warm.step.updated, warm.step.reason) == (False, "warm-up")
    assert estimator.min_points(2) == 5  # intercept + 2 slopes + time + 1 residual dof
    short = _run_epoch(estimator, estimator.start(1, x0, 0), lambda x, t: 1.0, 4)
    short = estimator.step(short)
    assert not short.step.updated and "4 points < 5" in short.step.reason
    np.testing.assert_array_equal(short.log_rates, warm.log_rates)


def test_state_survives_json_and_continues_the_same_stream():
    estimator = RateEstimator(p_min=1e-6, warmup_epochs=0)
    x0 = np.log([1e-2, 5e-3])

    def objective(xt, t):
        return float(np.sum(np.sin(3 * xt)) + t)

    whole = _run_epoch(estimator, estimator.start(2, x0, 5), objective, 12)
    half = _run_epoch(estimator, estimator.start(2, x0, 5), objective, 6, total=12)
    restored = EpochState.from_dict(json.loads(json.dumps(half.to_dict())))
    assert restored == half
    resumed = _run_epoch(estimator, restored, objective, 6, first=6, total=12)
    assert resumed.points == whole.points
    assert estimator.step(resumed) == estimator.step(whole)


def test_record_rejects_non_finite_and_wrong_sizes():
    estimator = RateEstimator(p_min=1e-6)
    state = estimator.start(0, np.log([1e-2, 1e-2]), 0)
    with pytest.raises(ValueError, match="objective"):
        estimator.record(state, 0, np.log([1e-2, 1e-2]), 0.0, float("nan"), 1.0)
    with pytest.raises(ValueError, match="x_tilde"):
        estimator.record(state, 0, np.log([1e-2]), 0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="log_rates"):
        estimator.start(0, [], 0)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"p_min": 0.0}, "p_min"),
        ({"p_min": 0.3, "p_max": 0.2}, "p_min"),
        ({"p_min": 1e-3, "p_max": 0.7}, "p_max"),
        ({"p_min": 1e-3, "radius": -1.0}, "radius"),
        ({"p_min": 1e-3, "perturbation": "gaussian"}, "perturbation"),
        ({"p_min": 1e-3, "learning_rate": 0}, "learning_rate"),
        ({"p_min": 1e-3, "max_step": float("inf")}, "max_step"),
        ({"p_min": 1e-3, "warmup_epochs": 1.5}, "warmup_epochs"),
    ],
)
def test_estimator_bad_arguments_raise_value_error(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        RateEstimator(**kwargs)


def test_energy_term_is_exactly_linear_per_domain_with_protected_bits():
    """OLS(alpha E + loss) = OLS(loss) - alpha sum_{l in d} R_l / (a B) inside the clip box."""
    rng = np.random.default_rng(3)
    energy = EnergyModel(a=12.8)
    stored = np.array([1000.0, 30000.0, 500.0])
    rated = np.array([800.0, 30000.0, 500.0])  # layer 0 keeps 200 bits in robust cells
    fixed = np.array([200 * 1.5, 0.0, 0.0])
    layer_domain = np.array([0, 1, 0])
    x = np.log([1e-3, 1e-2])
    dx = rng.uniform(-0.5, 0.5, size=(60, 2))
    t = np.arange(60) / 60
    loss = 0.5 + dx @ np.array([0.1, 0.02]) + rng.normal(scale=0.05, size=60)
    alpha = 2.0
    objective = loss + alpha * np.array(
        [mean_memory_energy(energy, stored, rated, fixed, np.exp(x + d)[layer_domain]) for d in dx]
    )
    with_energy, _, _ = fit_rate_gradient(dx, objective, t)
    loss_only, _, _ = fit_rate_gradient(dx, loss, t)
    per_domain = np.array([rated[[0, 2]].sum(), rated[1]]) / (energy.a * stored.sum())
    np.testing.assert_allclose(with_energy, loss_only - alpha * per_domain, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Domains
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "domains",
    ["conv1", [], [[]], [["a"], []], [["a", 3]], [("a",), "b"], {"a": ["b"]}, [[""]]],
)
def test_domains_structure_is_checked(domains):
    with pytest.raises(ValueError, match="`domains` must be"):
        check_domains(domains)


def test_domains_resolve_to_one_index_per_layer_and_start_at_the_smallest_p():
    assert resolve_domains(None, ["a", "b", "c"]) == [0, 1, 2]
    assert resolve_domains(check_domains([["c", "a"], ["b"]]), ["a", "b", "c"]) == [0, 1, 0]
    log_rates, uneven = domain_log_rates(np.log([0.02, 0.05, 0.01]), [0, 1, 0])
    np.testing.assert_allclose(log_rates, np.log([0.01, 0.05]))
    assert uneven == [0]


@pytest.mark.parametrize(
    ("domains", "message"),
    [
        ([["a", "b"], ["zz", "c"]], "names layer 'zz'"),
        ([["a", "b"], ["b", "c"]], "puts layer 'b' in two domains"),
        ([["a", "c"]], "leaves layer 'b' in no domain"),
    ],
)
def test_domain_errors_name_the_layer_and_the_argument(domains, message):
    with pytest.raises(ValueError, match=message) as info:
        resolve_domains(check_domains(domains), ["a", "b", "c"])
    assert "`domains`" in str(info.value)


# ---------------------------------------------------------------------------------------------
# The resume log
# ---------------------------------------------------------------------------------------------


def _logged_run(estimator, epochs, batches, seed=4):
    """Records of a fake run as the callback writes them, up to the start of epoch `epochs`.

    Each epoch start rewrites the log to the header, the previous epoch and the new start.
    """
    records = [resume.header_record(seed, ["a", "b"], [0, 0])]
    x, iteration, states = np.log([1e-2]), 0, []
    for epoch in range(epochs + 1):
        state = estimator.start(epoch, x, seed)
        records = [records[0], *resume.last_epoch(records), resume.epoch_record(state, iteration)]
        if epoch == epochs:
            return records, states
        for batch in range(batches):
            x_tilde, state = estimator.propose(state)
            state = estimator.record(state, batch, x_tilde, batch / batches, x_tilde[0], 0.0)
            if batch == batches - 1:
                state = estimator.step(state)
            iteration += 1
            point = state.points[-1]
            records.append(resume.batch_record(state, batch, iteration, point, False, 0.5, [1.0]))
            states.append(state)
        records.append(resume.end_record(state, iteration))
        x = state.log_rates


def test_find_resume_at_an_epoch_boundary_and_mid_epoch():
    estimator = RateEstimator(p_min=1e-6, warmup_epochs=0)
    records, states = _logged_run(estimator, epochs=2, batches=8)  # up to epoch 2's start
    assert [r["kind"] for r in records] == ["header", "epoch", *["batch"] * 8, "end", "epoch"]
    names, domains = ["a", "b"], [0, 0]
    boundary = resume.find_resume(records, 16, 2, names, domains)
    assert boundary.kind == "epoch" and boundary.state.log_rates == states[-1].log_rates
    assert boundary.records == tuple(records[:-1])  # without epoch 2's start: it is redone
    # A backup at the last batch of epoch 1, before its end: Keras replays epoch 1.
    last = resume.find_resume(records, 16, 1, names, domains)
    assert (last.kind, last.batch) == ("batch", 7) and last.state == states[-1]
    middle = resume.find_resume(records, 13, 1, names, domains)
    assert (middle.kind, middle.batch, middle.seed) == ("batch", 4, 4)
    assert middle.state == states[12] and middle.state.step is None
    assert middle.records == tuple(records[: 2 + 5])  # header, epoch 1, 5 batches: truncated
    assert middle.start.points == () and middle.start.epoch == 1
    assert resume.last_epoch(middle.records) == list(records[1:7])
    # Continuing from the restored state draws what the run drew next.
    _, continued = estimator.propose(middle.state)
    assert continued.rng_state == records[2 + 5]["rng_state"]
    assert resume.find_resume(records, 5, 0, names, domains) == "mismatch"  # epoch 0 is gone
    assert resume.find_resume(records, 99, 1, names, domains) == "mismatch"
    assert resume.find_resume([], 3, 1, names, domains) is None
    assert resume.find_resume(records, 0, 0, names, domains) is None  # a fresh model
    with pytest.raises(ValueError, match="backup_dir"):
        resume.find_resume(records, 13, 1, ["a", "c"], domains)


def test_state_log_is_rewritten_atomically_and_drops_a_torn_line(tmp_path):
    log = resume.StateLog(tmp_path / "lanmax")
    assert log.read() == []
    log.rewrite([{"kind": "header", "n": 1}])
    log.append({"kind": "batch", "n": 2})
    with open(log.path, "a") as f:
        f.write('{"kind": "batch", "n"')  # a crash in the middle of a line
    assert log.read() == [{"kind": "header", "n": 1}, {"kind": "batch", "n": 2}]
    log.rewrite([{"kind": "header", "n": 3}])
    assert log.read() == [{"kind": "header", "n": 3}]
    assert sorted(p.name for p in (tmp_path / "lanmax").iterdir()) == [resume.FILENAME]
    log.delete()
    assert log.read() == []
    worker = resume.StateLog(tmp_path / "lanmax", worker="worker-1")
    assert worker.path.endswith("lanmax_state.worker-1.jsonl")
