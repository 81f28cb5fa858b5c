"""Tests of the energy law eta(p) = -ln(p)/a and of `memory_energy` (ALGORITHMS.md §1, §11)."""

import math

import keras
import numpy as np
import pytest

import tf_lanmax as tl
from tf_lanmax.energy import DEFAULT_A, EnergyModel, memory_energy

A = 12.8


# ---------------------------------------------------------------------------------------------
# The law eta(p)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("a", [1.0, 5.0, 12.8, 20.0])
def test_eta_at_reliable_rate_is_one(a):
    model = EnergyModel(a=a)
    assert model.p0 == pytest.approx(math.exp(-a), rel=1e-15)
    assert model.eta(math.exp(-a)) == pytest.approx(1.0, abs=1e-12)


def test_default_a_and_p0():
    assert DEFAULT_A == 12.8
    assert EnergyModel().a == 12.8
    # ALGORITHMS.md §1.1: p0 ~ 2.76e-6 for a = 12.8.
    assert EnergyModel().p0 == pytest.approx(2.76e-6, rel=2e-3)


@pytest.mark.parametrize("a", [2.0, 12.8])
def test_eta_of_rate_is_identity_on_grid(a):
    model = EnergyModel(a=a)
    # Inside the box [p0, 0.5] in eta terms: eta in [ln 2 / a, 1].
    etas = np.linspace(math.log(2.0) / a, 1.0, 41)
    rates = model.rate(etas)
    np.testing.assert_allclose(rates, np.exp(-a * etas), rtol=1e-12)
    np.testing.assert_allclose(model.eta(rates), etas, rtol=1e-12, atol=1e-14)
    for eta in etas[::10]:  # scalar path too
        assert model.eta(model.rate(float(eta))) == pytest.approx(float(eta), rel=1e-12)


def test_eta_matches_closed_form_on_array():
    model = EnergyModel(a=A)
    p = np.array([3e-6, 1e-5, 1e-4, 1e-3, 0.05, 0.25, 0.5])
    out = model.eta(p)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == p.shape
    np.testing.assert_allclose(out, -np.log(p) / A, rtol=1e-13)
    assert isinstance(model.eta(1e-2), float)


@pytest.mark.parametrize("ln_p", np.linspace(-12.0, -1.0, 6))
def test_log_slope_is_minus_one_over_a(ln_p):
    model = EnergyModel(a=A)
    step = 1e-4
    slope = (model.eta(math.exp(ln_p + step)) - model.eta(math.exp(ln_p - step))) / (2 * step)
    assert slope == pytest.approx(-1.0 / A, rel=1e-7)


def test_clipping_below_p0_and_at_half():
    model = EnergyModel(a=A)
    # Below p0 (including exactly 0) the energy saturates at the reliable value 1.
    for p in [0.0, 1e-300, 1e-9, model.p0 / 2]:
        assert model.eta(p) == pytest.approx(1.0, abs=1e-12)
    # At 0.5, the top of the box, the formula still holds (default convention).
    assert model.eta(0.5) == pytest.approx(math.log(2.0) / A, rel=1e-13)
    # rate() clips too: eta above 1 gives p0, eta below ln2/a gives 0.5.
    assert model.rate(2.0) == pytest.approx(model.p0, rel=1e-12)
    assert model.rate(0.0) == 0.5
    assert model.rate(-1.0) == 0.5


def test_zero_energy_at_half():
    model = EnergyModel(a=A, zero_energy_at_half=True)
    assert model.eta(0.5) == 0.0
    # Only p = 0.5 is affected: just below, the formula holds (discontinuity at 0.5).
    assert model.eta(0.4999) == pytest.approx(-math.log(0.4999) / A, rel=1e-12)
    assert model.eta(model.p0) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(
        model.eta(np.array([1e-2, 0.5])), [-math.log(1e-2) / A, 0.0], rtol=1e-12
    )
    assert EnergyModel(a=A).eta(0.5) > 0.0
    assert model.get_config() == {"a": A, "zero_energy_at_half": True}


# ALGORITHMS.md §1.1, values for a = 12.8 (an independent oracle, to the printed digits).
TABLE = [
    (1e-3, 0.540, 1.85),
    (1e-2, 0.360, 2.78),
    (0.1, 0.180, 5.56),
    (0.3, 0.094, 10.6),
    (0.5, 0.054, 18.5),
]


@pytest.mark.parametrize("p, eta, saving", TABLE)
def test_table_of_values(p, eta, saving):
    model = EnergyModel(a=12.8)
    assert round(model.eta(p), 3) == pytest.approx(eta, abs=1e-12)
    printed = f"{1.0 / model.eta(p):.3g}"
    assert float(printed) == pytest.approx(saving, abs=1e-12)


def test_mean_energy_is_one_when_all_reliable():
    model = EnergyModel(a=A)
    bits = [10, 2_000, 7, 123_456]
    assert model.mean_energy(bits, [model.p0] * 4) == pytest.approx(1.0, abs=1e-12)


def test_mean_energy_matches_numpy_and_is_permutation_invariant():
    model = EnergyModel(a=A)
    rng = np.random.default_rng(0)
    bits = rng.integers(1, 10_000, size=7).astype(float)
    rates = np.exp(rng.uniform(math.log(model.p0), math.log(0.5), size=7))
    expected = np.sum(bits * (-np.log(rates) / A)) / np.sum(bits)
    assert model.mean_energy(bits, rates) == pytest.approx(expected, rel=1e-12)
    for _ in range(5):
        perm = rng.permutation(7)
        assert model.mean_energy(bits[perm], rates[perm]) == pytest.approx(expected, rel=1e-12)
    # Permuting only one of the two (breaking the pairs) changes it: the test can fail.
    assert model.mean_energy(bits, rates[::-1]) != pytest.approx(expected, rel=1e-6)


def test_energy_is_bits_times_eta():
    model = EnergyModel(a=A)
    np.testing.assert_allclose(
        model.energy([100, 8], [1e-2, 0.5]), [100 * -math.log(1e-2) / A, 8 * math.log(2) / A]
    )


@pytest.mark.parametrize("a", [0, 0.0, -1, -1.0, float("nan"), float("inf"), "12.8", True])
def test_bad_a_raises(a):
    with pytest.raises(ValueError, match="`a`"):
        EnergyModel(a=a)


@pytest.mark.parametrize("p", [float("nan"), -0.1, 0.7, 1.0, [1e-3, 0.7], [float("nan")]])
def test_bad_p_raises(p):
    with pytest.raises(ValueError, match="`p`") as info:
        EnergyModel().eta(p)
    assert "Received" in str(info.value)


# ---------------------------------------------------------------------------------------------
# memory_energy on models
# ---------------------------------------------------------------------------------------------

FP = tl.formats.FixedPoint(bits=8, fraction_bits=6)


def _mixed_model():
    return keras.Sequential(
        [
            keras.Input((6,)),
            tl.FaultyDense(5, weight_format="binary", fault_rate=1e-2, seed=0, name="bin"),
            keras.layers.ReLU(),
            tl.FaultyDense(4, weight_format=FP, fault_rate=0.1, seed=1, name="fix"),
            keras.layers.Dense(3, name="plain"),
        ],
        name="mixed",
    )


def test_memory_energy_rows_and_totals():
    model = _mixed_model()
    profile = memory_energy(model)

    names = [row["name"] for row in profile["layers"]]
    assert names == ["bin", "fix"]  # the plain Dense is not fault-prone
    bits = np.array([6 * 5 * 1, 5 * 4 * 8], dtype=np.float64)  # binary: in*out; FP(8,6): 8*in*out
    rates = np.array([1e-2, 0.1])
    etas = -np.log(rates) / A
    energies = bits * etas
    for row, b, p, e, en in zip(profile["layers"], bits, rates, etas, energies, strict=True):
        assert row["stored_bits"] == int(b)
        assert row["fault_rate"] == pytest.approx(p, rel=1e-6)  # float32 variable
        assert row["eta"] == pytest.approx(e, rel=1e-6)
        assert row["energy"] == pytest.approx(en, rel=1e-6)
        assert row["share"] == pytest.approx(en / energies.sum(), rel=1e-6)
        assert row["expected_faulty_bits"] == pytest.approx(b * p, rel=1e-6)
    assert "Binary" in profile["layers"][0]["format"]
    assert "FixedPoint" in profile["layers"][1]["format"]
    assert "BitFlip" in profile["layers"][0]["fault_model"]

    assert sum(row["share"] for row in profile["layers"]) == pytest.approx(1.0, abs=1e-12)
    assert profile["total_bits"] == 30 + 160
    assert profile["reliable_energy"] == pytest.approx(190.0)
    assert profile["total_energy"] == pytest.approx(energies.sum(), rel=1e-6)
    e_bar = energies.sum() / bits.sum()
    assert profile["mean_energy"] == pytest.approx(e_bar, rel=1e-6)
    assert profile["ratio_vs_reliable"] == pytest.approx(1.0 / e_bar, rel=1e-6)
    assert profile["expected_faulty_bits"] == pytest.approx(30 * 1e-2 + 160 * 0.1, rel=1e-6)
    assert profile["energy_model"] == {"a": A, "zero_energy_at_half": False}


def test_memory_energy_follows_fault_rate_changes_and_energy_model():
    model = _mixed_model()
    tl.set_fault_rates(model, {"bin": 0.5, "fix": 0.5})
    profile = memory_energy(model, EnergyModel(a=4.0))
    assert profile["mean_energy"] == pytest.approx(math.log(2.0) / 4.0, rel=1e-6)
    assert profile["energy_model"]["a"] == 4.0
    zero = memory_energy(model, EnergyModel(zero_energy_at_half=True))
    assert zero["total_energy"] == 0.0
    assert zero["ratio_vs_reliable"] == float("inf")
    assert all(row["share"] == 0.0 for row in zero["layers"])


def test_memory_energy_reliable_model_has_unit_mean():
    model = _mixed_model()
    tl.set_fault_rates(model, math.exp(-A) * 1.0000001)
    assert memory_energy(model)["mean_energy"] == pytest.approx(1.0, abs=1e-6)


def test_memory_energy_conv_bits():
    model = keras.Sequential(
        [keras.Input((5, 5, 3)), tl.FaultyConv2D(4, 3, fault_rate=1e-3, name="conv")]
    )
    (row,) = memory_energy(model)["layers"]
    assert row["stored_bits"] == 3 * 3 * 3 * 4


def test_memory_energy_without_faulty_layers_raises():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="plain_net")
    with pytest.raises(ValueError, match="plain_net"):
        memory_energy(model)


def test_memory_energy_finds_layers_in_nested_models():
    inner = keras.Sequential(
        [
            keras.Input((6,)),
            tl.FaultyDense(5, fault_rate=1e-2, name="inner_bin"),
            tl.FaultyDense(4, weight_format=FP, fault_rate=0.1, name="inner_fix"),
        ],
        name="inner",
    )
    inputs = keras.Input((6,))
    x = inner(inputs)
    outputs = tl.FaultyDense(2, fault_rate=0.3, name="outer")(x)
    model = keras.Model(inputs, outputs, name="outer_model")
    profile = memory_energy(model)
    assert sorted(row["name"] for row in profile["layers"]) == ["inner_bin", "inner_fix", "outer"]
    assert profile["total_bits"] == 30 + 160 + 8
