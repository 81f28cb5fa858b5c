"""Oracles for the pure MemSE rules: scipy integration, numpy closed forms, Monte-Carlo with
stated standard errors, and TensorFlow autodiff for the reverse rules."""

import numpy as np
import pytest
from helpers import gradient, vjp
from keras import ops
from scipy import integrate, stats

from tf_lanmax.memse import adjoints
from tf_lanmax.memse import moments as rules


def np_(x):
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


# -- ReLU and Clark ---------------------------------------------------------------------------


@pytest.mark.parametrize("mu,s", [(0.0, 1.0), (1.3, 0.4), (-0.7, 0.5), (2.0, 3.0), (-4.0, 1.0)])
def test_relu_moments_match_numerical_integration(mu, s):
    pdf = stats.norm(mu, s).pdf
    lo, hi = mu - 12 * s, mu + 12 * s
    m1 = integrate.quad(lambda x: max(x, 0.0) * pdf(x), lo, hi, points=[0.0], limit=200)[0]
    m2 = integrate.quad(lambda x: max(x, 0.0) ** 2 * pdf(x), lo, hi, points=[0.0], limit=200)[0]
    mean, var, slope = rules.relu_moments(
        ops.convert_to_tensor([mu], "float32"), ops.convert_to_tensor([s * s], "float32")
    )
    np.testing.assert_allclose(np_(mean)[0], m1, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np_(var)[0], m2 - m1**2, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np_(slope)[0], stats.norm.cdf(mu / s), rtol=1e-5)


def test_relu_moments_keep_float32_precision_across_t():
    # Float64 closed form (scipy) on a dense grid of t = mu / s. In the upper tail the rule uses
    # 1 - Phi(t) for Phi(-t): the variance must still be right to a few float32 ulps there.
    t = np.linspace(-4.0, 9.0, 1301)
    s = 1.7
    mu = t * s
    cdf, cdf_neg, pdf = stats.norm.cdf(t), stats.norm.cdf(-t), stats.norm.pdf(t)
    m1 = mu * cdf + s * pdf
    var = mu**2 * cdf * cdf_neg + s * s * cdf + mu * s * pdf * (cdf_neg - cdf) - (s * pdf) ** 2
    mean, v, _ = rules.relu_moments(
        ops.convert_to_tensor(mu, "float32"),
        ops.convert_to_tensor(np.full_like(mu, s * s), "float32"),
    )
    np.testing.assert_allclose(np_(mean), m1, rtol=2e-5)
    upper = t >= 0
    np.testing.assert_allclose(np_(v)[upper], var[upper], rtol=2e-6)
    np.testing.assert_allclose(np_(v)[~upper], var[~upper], rtol=2e-4)


def test_relu_with_vanishing_variance_is_relu_of_the_mean():
    mu = ops.convert_to_tensor([-2.0, -1e-3, 0.0, 1e-3, 5.0], "float32")
    for v in (0.0, 1e-30, 1e-14):
        mean, var, _ = rules.relu_moments(mu, ops.full_like(mu, v))
        np.testing.assert_allclose(np_(mean), np.maximum(np_(mu), 0.0), atol=1e-6)
        assert np.all(np_(var) <= max(v, 0.0) + 1e-12)
    mean, var, slope = rules.relu_moments(mu, ops.zeros_like(mu))
    np.testing.assert_array_equal(np_(var), 0.0)
    np.testing.assert_array_equal(np_(slope), [0, 0, 0, 1, 1])


def test_relu_variance_keeps_small_noise_under_a_large_mean():
    # float32 E[Y^2] - E[Y]^2 would cancel to garbage here; the expanded form must not.
    mean, var, _ = rules.relu_moments(
        ops.convert_to_tensor([100.0], "float32"), ops.convert_to_tensor([1e-6], "float32")
    )
    np.testing.assert_allclose(np_(var)[0], 1e-6, rtol=1e-3)


def test_relu_gradient_is_finite_at_zero_variance():
    def total(z):  # z = (mu, v) stacked
        mean, var, _ = rules.relu_moments(z[0], z[1])
        return ops.sum(mean + var)

    grad = gradient(total, np.array([[0.5, -0.5], [0.0, 0.2]], np.float32))
    assert np.all(np.isfinite(grad))


def test_clark_max_matches_monte_carlo_within_3_se():
    rng = np.random.default_rng(0)
    n = 1_000_000
    for mu_a, s_a, mu_b, s_b in [(0.3, 1.0, 0.0, 0.5), (-1.0, 0.2, 1.5, 2.0), (2.0, 0.1, 2.0, 0.1)]:
        sample = np.maximum(rng.normal(mu_a, s_a, n), rng.normal(mu_b, s_b, n))
        mean, var = rules.clark_max(
            *(ops.convert_to_tensor([v], "float32") for v in (mu_a, s_a**2, mu_b, s_b**2))
        )
        se_mean = sample.std() / np.sqrt(n)
        se_var = sample.var() * np.sqrt(2.0 / (n - 1))
        assert abs(np_(mean)[0] - sample.mean()) < 3 * se_mean + 1e-6
        assert abs(np_(var)[0] - sample.var()) < 3 * se_var + 1e-6


# -- linear layers ------------------------------------------------------------------------------


def test_dense_full_covariance_matches_monte_carlo_within_4_se():
    rng = np.random.default_rng(1)
    n_in, n_out, draws = 5, 3, 200_000
    mu = rng.normal(size=n_in)
    a = rng.normal(size=(n_in, n_in)) * 0.3
    gamma = a @ a.T + 0.05 * np.eye(n_in)
    w = rng.normal(size=(n_in, n_out))
    s2 = 0.04
    x = rng.multivariate_normal(mu, gamma, size=draws)
    noise = rng.normal(scale=np.sqrt(s2), size=(draws, n_in, n_out))
    z = np.einsum("di,dio->do", x, w + noise)
    mean, cov = rules.dense_covariance(
        ops.convert_to_tensor(mu[None], "float32"),
        ops.convert_to_tensor(gamma[None], "float32"),
        ops.convert_to_tensor(w, "float32"),
        ops.convert_to_tensor(s2, "float32"),
    )
    mean, cov = np_(mean)[0], np_(cov)[0]
    emp_cov = np.cov(z.T)
    se_mean = np.sqrt(np.diag(emp_cov) / draws)
    assert np.all(np.abs(mean - z.mean(0)) < 4 * se_mean)
    # SE of a sample covariance: sqrt((C_ij^2 + C_ii C_jj) / n).
    se_cov = np.sqrt((emp_cov**2 + np.outer(np.diag(emp_cov), np.diag(emp_cov))) / draws)
    assert np.all(np.abs(cov - emp_cov) < 4 * se_cov)
    # The closed form itself, in numpy.
    expected = w.T @ gamma @ w + np.diag(s2 * np.sum(np.diag(gamma) + mu**2) * np.ones(n_out))
    np.testing.assert_allclose(cov, expected, rtol=1e-4, atol=1e-5)


def test_dense_diagonal_is_the_diagonal_of_full_for_independent_inputs():
    rng = np.random.default_rng(2)
    mu, v = rng.normal(size=(4, 6)), rng.random((4, 6))
    w, s2 = rng.normal(size=(6, 3)), rng.random((6, 3)) * 0.1
    args = [ops.convert_to_tensor(t, "float32") for t in (mu, v, w, s2)]
    m_d, v_d = rules.dense_moments(*args)
    m_f, c_f = rules.dense_covariance(args[0], rules.diagonal_covariance(args[1]), *args[2:])
    np.testing.assert_allclose(np_(m_d), np_(m_f), rtol=1e-6)
    np.testing.assert_allclose(np_(v_d), np.diagonal(np_(c_f), axis1=1, axis2=2), rtol=1e-5)


def test_zero_covariance_and_zero_noise_give_w_mu_exactly():
    rng = np.random.default_rng(3)
    mu = ops.convert_to_tensor(rng.normal(size=(2, 7, 7, 3)), "float32")
    kernel = ops.convert_to_tensor(rng.normal(size=(3, 3, 3, 4)), "float32")
    mean, var = rules.conv_moments(mu, ops.zeros_like(mu), kernel, 0.0, padding="same")
    np.testing.assert_array_equal(np_(mean), np_(ops.conv(mu, kernel, padding="same")))
    np.testing.assert_array_equal(np_(var), 0.0)
    x = mu[:, 0, 0, :]
    dense_w = kernel[0, 0]
    mean, var = rules.dense_moments(x, ops.zeros_like(x), dense_w, ops.zeros(()))
    np.testing.assert_array_equal(np_(mean), np_(ops.matmul(x, dense_w)))
    np.testing.assert_array_equal(np_(var), 0.0)


def _conv_reference(mu, v, w, s2, stride, pad):
    """Per-unit closed form by explicit loops (zero padding)."""
    b, h, wd, c = mu.shape
    kh, kw, _, o = w.shape
    mu_p = np.pad(mu, ((0, 0), pad[0], pad[1], (0, 0)))
    v_p = np.pad(v, ((0, 0), pad[0], pad[1], (0, 0)))
    oh = (mu_p.shape[1] - kh) // stride + 1
    ow = (mu_p.shape[2] - kw) // stride + 1
    mean, var = np.zeros((b, oh, ow, o)), np.zeros((b, oh, ow, o))
    for i in range(oh):
        for j in range(ow):
            pm = mu_p[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            pv = v_p[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            mean[:, i, j] = np.einsum("bxyc,xyco->bo", pm, w)
            var[:, i, j] = np.einsum("bxyc,xyco->bo", pv, w**2) + np.einsum(
                "bxyc,xyco->bo", pv + pm**2, s2 * np.ones_like(w)
            )
    return mean, var


@pytest.mark.parametrize("stride,padding", [(1, "same"), (2, "valid"), (2, "same")])
@pytest.mark.parametrize("noise", ["layer", "channel", "weight", "exact input"])
def test_conv_moments_match_the_per_unit_closed_form(stride, padding, noise):
    rng = np.random.default_rng(4)
    mu, v = rng.normal(size=(2, 7, 6, 3)), rng.random((2, 7, 6, 3))
    w = rng.normal(size=(3, 3, 3, 4))
    s2 = {"channel": rng.random(4) * 0.1, "weight": rng.random(w.shape) * 0.1}.get(noise, 0.03)
    if noise == "exact input":  # var=None: a deterministic input, the weight noise only
        v = np.zeros_like(v)
    pad = ((0, 0), (0, 0))
    if padding == "same":
        pads = []
        for n in (7, 6):
            out = -(-n // stride)
            total = max((out - 1) * stride + 3 - n, 0)
            pads.append((total // 2, total - total // 2))
        pad = tuple(pads)
    ref_mean, ref_var = _conv_reference(mu, v, w, s2, stride, pad)
    mean, var = rules.conv_moments(
        ops.convert_to_tensor(mu, "float32"),
        None if noise == "exact input" else ops.convert_to_tensor(v, "float32"),
        ops.convert_to_tensor(w, "float32"),
        ops.convert_to_tensor(s2, "float32"),
        strides=stride,
        padding=padding,
    )
    np.testing.assert_allclose(np_(mean), ref_mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np_(var), ref_var, rtol=1e-4, atol=1e-4)


# -- pooling ------------------------------------------------------------------------------------


def test_average_pooling_variance_assumes_independent_entries():
    rng = np.random.default_rng(5)
    mu, v = rng.normal(size=(1, 5, 5, 2)), rng.random((1, 5, 5, 2))
    mean, var = rules.average_pool_moments(
        ops.convert_to_tensor(mu, "float32"), ops.convert_to_tensor(v, "float32"), (2, 2), (2, 2)
    )
    np.testing.assert_allclose(np_(mean)[0, 0, 0], mu[0, :2, :2].mean(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(np_(var)[0, 1, 1], v[0, 2:4, 2:4].sum(axis=(0, 1)) / 16, rtol=1e-5)
    # 'same' padding: border windows average over their real entries only.
    mean, var = rules.average_pool_moments(
        ops.convert_to_tensor(mu, "float32"),
        ops.convert_to_tensor(v, "float32"),
        (2, 2),
        (2, 2),
        "same",
    )
    np.testing.assert_allclose(np_(var)[0, 2, 2], v[0, 4, 4], rtol=1e-5)


@pytest.mark.parametrize(
    "pool,stride,padding", [((2, 2), (2, 2), "valid"), ((3, 3), (2, 2), "same")]
)
def test_max_pool_max_mean_rule_passes_the_winner_moments(pool, stride, padding):
    rng = np.random.default_rng(6)
    mu, v = rng.normal(size=(2, 7, 7, 3)), rng.random((2, 7, 7, 3))
    mean, var = rules.max_pool_moments(
        ops.convert_to_tensor(mu, "float32"),
        ops.convert_to_tensor(v, "float32"),
        pool,
        stride,
        padding,
    )
    expected = np_(ops.max_pool(ops.convert_to_tensor(mu, "float32"), pool, stride, padding))
    np.testing.assert_allclose(np_(mean), expected, rtol=1e-6)
    # The variance is that of the entry holding the max.
    mu_flat, v_flat = mu.reshape(-1), v.reshape(-1)
    for value, variance in zip(np_(mean).reshape(-1)[:20], np_(var).reshape(-1)[:20], strict=True):
        index = np.argmin(np.abs(mu_flat - value))
        assert variance == pytest.approx(v_flat[index], rel=1e-5)


def test_clark_max_pool_is_exact_for_two_entries():
    mu = ops.convert_to_tensor([[[[0.2], [0.0]]]], "float32")  # (1, 1, 2, 1)
    v = ops.convert_to_tensor([[[[1.0], [0.25]]]], "float32")
    mean, var = rules.max_pool_moments(mu, v, (1, 2), (1, 2), rule="clark")
    ref_mean, ref_var = rules.clark_max(
        *(ops.convert_to_tensor([t]) for t in (0.2, 1.0, 0.0, 0.25))
    )
    np.testing.assert_allclose(np_(mean).reshape(-1), np_(ref_mean), rtol=1e-6)
    np.testing.assert_allclose(np_(var).reshape(-1), np_(ref_var), rtol=1e-6)


# -- reverse rules against the backend's autodiff -----------------------------------------------


def _vjp(fn, x, g):
    return vjp(fn, x, g)


@pytest.mark.parametrize(
    "shape,stride,padding,dilation",
    [
        ((9, 9), 1, "same", 1),
        ((9, 8), 2, "same", 1),
        ((9, 9), 2, "valid", 1),
        ((8, 9), 1, "same", 2),
    ],
)
def test_conv_input_adjoint_matches_autodiff(shape, stride, padding, dilation):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2,) + shape + (3,)).astype("float32")
    k = rng.normal(size=(3, 3, 3, 4)).astype("float32")
    y = ops.conv(x, k, strides=stride, padding=padding, dilation_rate=dilation)
    g = rng.normal(size=y.shape).astype("float32")
    expected = _vjp(
        lambda t: ops.conv(t, k, strides=stride, padding=padding, dilation_rate=dilation), x, g
    )
    got = adjoints.conv_input_adjoint(g, k, x.shape, (stride,) * 2, padding, (dilation,) * 2)
    np.testing.assert_allclose(np_(got), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "pool,stride,padding", [((2, 2), (2, 2), "valid"), ((3, 3), (2, 2), "same")]
)
def test_pool_adjoints_match_autodiff(pool, stride, padding):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 7, 7, 3)).astype("float32")
    y = ops.average_pool(x, pool, stride, padding)
    g = rng.normal(size=y.shape).astype("float32")
    expected = _vjp(lambda t: ops.average_pool(t, pool, stride, padding), x, g)
    got = adjoints.average_pool_adjoint(g, x.shape, pool, stride, padding)
    np.testing.assert_allclose(np_(got), expected, rtol=1e-5, atol=1e-6)
    expected = _vjp(lambda t: ops.max_pool(t, pool, stride, padding), x, g)
    got = adjoints.max_pool_adjoint(g, x, pool, stride, padding, 1)
    np.testing.assert_allclose(np_(got), expected, rtol=1e-5, atol=1e-6)


def test_weight_noise_covariance_is_the_per_sample_gradient_norm():
    rng = np.random.default_rng(9)
    patches = rng.normal(size=(2, 5, 4)).astype("float32")
    g = rng.normal(size=(3 * 2, 5, 2)).astype("float32")  # O = 3 outputs
    cov = np_(adjoints.weight_noise_covariance(patches, np.zeros_like(patches), g, 0.5, 3))
    grads = np.einsum("bpk,obpc->bokc", patches, g.reshape(3, 2, 5, 2))
    expected = 0.5 * np.einsum("bokc,bqkc->boq", grads, grads)
    np.testing.assert_allclose(cov, expected, rtol=1e-4)
