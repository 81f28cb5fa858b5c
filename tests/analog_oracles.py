"""Independent references for the `tl.analog` tests, from the published device formulas.

Written in numpy/scipy, apart from the package: closed forms where they exist, else
`scipy.integrate.quad` over the chain. Also the sample statistics and standard errors the
oracles compare with: of a mean ``sd / sqrt(n)``; of a standard deviation
``sd sqrt((kurtosis - 1) / (4 n))`` (the delta method on the sample variance, whose variance is
``(m4 - sd^4) / n``), with the sample kurtosis ``m4 / m2^2``.
"""

import math

import numpy as np
from scipy import integrate, stats

import tf_lanmax as tl


def phi(x, mean=0.0, sd=1.0):
    z = (x - mean) / sd
    return math.exp(-0.5 * z * z) / (sd * math.sqrt(2 * math.pi))


def cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2))


def poly(coefficients, x):
    return sum(c * x**i for i, c in enumerate(coefficients))


def rectified(mean, sd):
    """Mean and variance of max(X, 0), X ~ N(mean, sd^2)."""
    a = mean / sd
    first = mean * stats.norm.cdf(a) + sd * stats.norm.pdf(a)
    second = (mean**2 + sd**2) * stats.norm.cdf(a) + mean * sd * stats.norm.pdf(a)
    return first, second - first**2


def rectified_raw(mean, sd):
    a = mean / sd
    first = mean * cdf(a) + sd * phi(a)
    return first, (mean**2 + sd**2) * cdf(a) + mean * sd * phi(a)


def pcm_chain(g, t, *, sigma_p, mu_nu, sigma_nu, q_s, t0, t_read, breaks):
    """Mean and variance of the Nandakumar chain, by quadrature (scipy)."""
    sp = sigma_p(g)
    g_floor = max(g, 1e-7)
    mu, sd = mu_nu(g_floor), sigma_nu(g_floor)
    log_t = math.log((t + t0) / t0)
    factor = math.sqrt(math.log((t + t0 + t_read) / (2 * t_read)))

    def folded(nu):
        return phi(nu, mu, sd) + phi(-nu, mu, sd)

    hi = mu + 12 * sd
    d1 = integrate.quad(lambda nu: math.exp(-nu * log_t) * folded(nu), 0, hi, epsabs=1e-13)[0]
    d2 = integrate.quad(lambda nu: math.exp(-2 * nu * log_t) * folded(nu), 0, hi, epsabs=1e-13)[0]

    def read(x, k):
        r = rectified_raw(1.0, max(q_s(x) * factor, 1e-300))[k - 1]
        return x**k * r * phi(x, g, sp)

    top = g + 10 * sp
    points = [b for b in breaks if 0 < b < top]
    i1, i2 = (
        integrate.quad(read, 0, top, args=(k,), points=points or None, epsabs=1e-14, limit=200)[0]
        for k in (1, 2)
    )
    mean = d1 * i1
    return mean, d2 * i2 - mean**2


def pcm_q(x):
    return min(0.0088 / max(x**0.65, 1e-3), 0.2)


def hermes2_q(x):
    if x < 0.16:
        return np.clip(-0.0117 * math.log(max(x, 1e-300)) - 0.0069, 0.015, 0.04)
    return 0.0069 * x**3 - 0.0280 * x**2 + 0.0211 * x + 0.0123


def pcm_reference(g, t):
    return pcm_chain(
        g,
        t,
        sigma_p=lambda x: (0.26348 + 1.9650 * x - 1.1731 * x**2) / 25.0,
        mu_nu=lambda x: np.clip(-0.0155 * math.log(x) + 0.0244, 0.049, 0.1),
        sigma_nu=lambda x: np.clip(-0.0125 * math.log(x) - 0.0059, 0.008, 0.045),
        q_s=pcm_q,
        t0=20.0,
        t_read=250e-9,
        breaks=[(0.0088 / 0.2) ** (1 / 0.65)],
    )


def hermes_mu(x):
    if x < 0.0945:
        return np.clip(-0.0387 * math.log(x) - 0.0182, 0.072, 0.13)
    return -0.0436 * x**2 - 0.0126 * x + 0.0736


def hermes_reference(devices):
    if devices == 2:
        coefficients, g_max, t0 = (0.16603, 4.71806, -8.48101, 4.68961), 20.7, 300.0

        def sigma_nu(x):
            if x < 0.3055:
                return np.clip(-0.0117 * math.log(x) - 0.0057, 0.0091, 0.04)
            return -0.0118 * x**2 + 0.0093 * x + 0.0073

        q_s = hermes2_q
        breaks = [math.exp(-(0.04 + 0.0069) / 0.0117), math.exp(-(0.015 + 0.0069) / 0.0117), 0.16]
    else:
        coefficients, g_max, t0 = (0.15782, 2.32444, -2.16311, 0.68842), 10.35, 200.0

        def sigma_nu(x):
            if x < 0.3039:
                return np.clip(-0.0120 * math.log(x) - 0.0023, 0.0124, 0.04)
            return -0.0165 * x**2 + 0.0116 * x + 0.0104

        def q_s(x):
            if x < 0.1591:
                return np.clip(-0.0078 * math.log(max(x, 1e-300)) + 0.0038, 0.0179, 0.04)
            return 0.0664 * x**3 - 0.1352 * x**2 + 0.0768 * x + 0.0088

        breaks = [math.exp((0.04 - 0.0038) / -0.0078), 0.1591]

    def reference(g, t):
        return pcm_chain(
            g,
            t,
            sigma_p=lambda x: poly(coefficients, x) / g_max,
            mu_nu=hermes_mu,
            sigma_nu=sigma_nu,
            q_s=q_s,
            t0=t0,
            t_read=512e-9,
            breaks=breaks,
        )

    return reference


WAN = {
    1.0: (0.348, 16.030, -43.853, 45.393, -16.815),
    86400.0: (0.701, 22.086, -50.773, 47.095, -16.458),
    172800.0: (0.782, 20.274, -43.507, 37.062, -11.934),
}


def wan_reference(g, t):
    times = sorted(WAN)
    t = min(max(t, times[0]), times[-1])
    lo = max(i for i in range(2) if times[i] <= t)
    w = math.log(t / times[lo]) / math.log(times[lo + 1] / times[lo])
    sigma = (1 - w) * poly(WAN[times[lo]], g) + w * poly(WAN[times[lo + 1]], g)
    return rectified(g, abs(sigma) / 40.0)


def cmo_reference(acceptance):
    c0, c1 = {0.002: (0.00081107, 0.00106879), 0.02: (0.0112185391, 0.01129027418)}[acceptance]
    g_min, g_max = 9.0, 88.2

    def reference(g, t):
        siemens = g_min + g * (g_max - g_min)
        mean = siemens - 0.08900206 * math.log(t)
        sd = math.hypot(c0 + c1 * siemens, 0.04201137 * math.log(t) + 0.41183342)
        factor = math.sqrt(math.log((t + 1e-6) / 2e-6))

        def clipped(x, k):
            # E[(clip(Y, g_min, g_max) - mean)^k], Y ~ N(x, r^2), by its three parts.
            r = max(0.0277316483 * abs(math.log10(max(x, 1e-3))) * factor, 1e-300)
            a, b = (g_min - x) / r, (g_max - x) / r
            lo, hi = cdf(a), cdf(-b)
            inside = 1 - lo - hi
            da, db = phi(a), phi(b)
            m = x - mean
            e1 = r * (da - db) / max(inside, 1e-300) if inside > 0 else 0.0
            e2 = r * r * (1 + (a * da - b * db) / max(inside, 1e-300)) if inside > 0 else 0.0
            mid = inside * ((m + e1) if k == 1 else (m * m + 2 * m * e1 + e2))
            return lo * (g_min - mean) ** k + hi * (g_max - mean) ** k + mid

        def integrand(x, k):
            return clipped(x, k) * phi(x, mean, sd)

        lo, hi = mean - 10 * sd, mean + 10 * sd
        points = [p for p in (g_min, g_max, 1.0) if lo < p < hi]
        e1, e2 = (
            integrate.quad(integrand, lo, hi, args=(k,), points=points or None, epsabs=1e-13)[0]
            for k in (1, 2)
        )
        window = g_max - g_min
        return (mean + e1 - g_min) / window, (e2 - e1 * e1) / window**2

    return reference


def multiplicative_reference(g, t):
    return g, (0.1 * g) ** 2


def additive_reference(g, t):
    q = np.round(g * 127) / 127  # 128 levels: the grid k / 127
    return q, (0.01 / 1.0) ** 2


def sample_statistics(samples):
    """Mean, sd, SE of the mean and SE of the sd of `samples` along axis 0."""
    samples = np.asarray(samples, np.float64)
    n = samples.shape[0]
    mean = samples.mean(0)
    centred = samples - mean
    m2 = (centred**2).mean(0)
    kurtosis = (centred**4).mean(0) / m2**2
    sd = np.sqrt(m2 * n / (n - 1))
    return mean, sd, sd / math.sqrt(n), sd * np.sqrt((kurtosis - 1) / (4 * n))


def within(label, value, expected, se, threshold=3.0):
    """Asserts ``|value - expected| < threshold * se`` elementwise, with the z-scores on failure."""
    value, expected, se = (np.asarray(x, np.float64) for x in (value, expected, se))
    z = np.abs(value - expected) / se
    assert np.all(z < threshold), f"{label}: {value} vs {expected}, {z.round(2)} standard errors"


def bonferroni_z(checks, alpha=0.01):
    """The two-sided threshold in standard errors for `checks` tests at family-wise `alpha`."""
    return float(stats.norm.isf(alpha / (2 * checks)))


# Monte-Carlo of the weight mapping: D copies of a kernel stacked on a leading axis are D
# independent chips of it (the stack has the kernel's own W_max per layer and per column).
DRAWS = 20_000


def kernel(shape, seed=0):
    """A random float32 kernel with a small first column and one zero weight."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=shape).astype("float32")
    w[..., 0] *= 0.2  # a small column: per-column W_max differs from the layer's
    w.reshape(-1)[3] = 0.0  # a zero weight: its two devices both hold 0
    return w


def check_weight_moments(device, w, t, label, checks):
    """`perturb_weights` over `DRAWS` chips agrees with `weight_moments` per weight.

    Means and standard deviations within the Bonferroni threshold of `checks` checks.
    """
    stacked = np.broadcast_to(w, (DRAWS, *w.shape))
    samples = np.asarray(tl.analog.perturb_weights(device, stacked, t, seed=4), np.float64)
    mean, sd, se_mean, se_sd = sample_statistics(samples)
    m, v = (np.asarray(x, np.float64) for x in tl.analog.weight_moments(device, w, t))
    z = bonferroni_z(checks)
    within(f"{label} mean", mean, m, se_mean, z)
    within(f"{label} sd", sd, np.sqrt(v), se_sd, z)
