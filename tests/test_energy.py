"""Tests of the energy law eta(p) = -ln(p)/a and of `memory_energy`."""

import math

import keras
import numpy as np
import pytest

import tf_lanmax as tl
from tf_lanmax.energy import DEFAULT_A, EnergyModel, TabulatedEnergyModel, memory_energy

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
    # From eta(p) = -ln(p)/a: p0 ~ 2.76e-6 for a = 12.8.
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


# eta(p) = -ln(p)/a, values for a = 12.8 (an independent oracle, to the printed digits).
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


# ---------------------------------------------------------------------------------------------
# EnergyModel.fit: least squares of ln p = -a eta through the origin
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("a", [1.0, 7.3, 12.8, 31.0])
def test_fit_recovers_a_from_points_made_with_the_law(a):
    rng = np.random.default_rng(0)
    etas = rng.uniform(math.log(2.0) / a, 1.0, size=9)
    pairs = [(math.exp(-a * e), e) for e in etas]
    assert abs(EnergyModel.fit(pairs).a - a) / a < 1e-9
    triples = [(0.7, p, e) for p, e in pairs]  # (voltage, ber, energy), the form of tl.memory
    assert abs(EnergyModel.fit(triples).a - a) / a < 1e-9
    assert EnergyModel.fit(pairs, zero_energy_at_half=True).zero_energy_at_half


def test_fit_matches_numpy_least_squares_on_noisy_points():
    rng = np.random.default_rng(1)
    etas = rng.uniform(0.2, 1.0, size=20)
    log_p = np.clip(-12.8 * etas + rng.normal(0.0, 0.5, size=20), -30.0, math.log(0.5))
    pairs = [(math.exp(lp), e) for lp, e in zip(log_p, etas, strict=True)]
    # Oracle: lstsq of -ln p on the single column eta (no intercept).
    expected = np.linalg.lstsq(etas[:, None], -log_p, rcond=None)[0][0]
    assert EnergyModel.fit(pairs).a == pytest.approx(expected, rel=1e-12)
    # Shuffled, repeated or non-monotone points are fine for a fit.
    assert EnergyModel.fit(pairs[::-1] + pairs[:3]).a == pytest.approx(
        np.linalg.lstsq(
            np.r_[etas[::-1], etas[:3]][:, None], -np.r_[log_p[::-1], log_p[:3]], rcond=None
        )[0][0],
        rel=1e-12,
    )


@pytest.mark.parametrize(
    "points",
    [[], [(0.7, 0.5)], [(0.0, 0.5)], [(1e-3, 0.0)], [(1e-3, -1.0)], [(1e-3,)], 3, [(0.5, 1.0)]],
)
def test_fit_bad_points_raise_naming_points(points):
    with pytest.raises(ValueError, match="`points`") as info:
        EnergyModel.fit(points)
    assert "Received" in str(info.value)


# ---------------------------------------------------------------------------------------------
# TabulatedEnergyModel
# ---------------------------------------------------------------------------------------------

TABLE_POINTS = [(2.76e-6, 1.0), (1e-4, 0.8), (1e-3, 0.62), (3e-3, 0.5), (2e-2, 0.33)]


def test_tabulated_is_exact_at_its_points_in_any_order():
    model = TabulatedEnergyModel(TABLE_POINTS[::-1])
    bers, energies = np.array(TABLE_POINTS).T
    np.testing.assert_allclose(model.eta(bers), energies, rtol=1e-12)
    for ber, energy in TABLE_POINTS:
        assert model.eta(ber) == pytest.approx(energy, rel=1e-12)
        assert model.rate(energy) == pytest.approx(ber, rel=1e-9)
    assert model.p0 == 2.76e-6 and model.p_max == 2e-2
    assert model.points == tuple(TABLE_POINTS)


def test_tabulated_is_strictly_decreasing_between_points_and_inside_each_interval():
    model = TabulatedEnergyModel(TABLE_POINTS)
    grid = np.geomspace(model.p0, model.p_max, 20_001)
    etas = model.eta(grid)
    assert np.all(np.diff(etas) < 0)
    bers, energies = np.array(TABLE_POINTS).T
    for (p_lo, e_hi), (p_hi, e_lo) in zip(TABLE_POINTS, TABLE_POINTS[1:]):
        inside = (grid >= p_lo) & (grid <= p_hi)
        assert np.all(etas[inside] <= e_hi + 1e-12) and np.all(etas[inside] >= e_lo - 1e-12)


def test_tabulated_from_the_law_is_the_law_between_points():
    # PCHIP reproduces data that is linear in ln p exactly: an independent oracle.
    law = EnergyModel(a=12.8)
    bers = [law.p0, 1e-5, 1e-3, 1e-2, 0.5]
    model = TabulatedEnergyModel([(p, law.eta(p)) for p in bers])
    grid = np.geomspace(law.p0, 0.5, 2_001)
    np.testing.assert_allclose(model.eta(grid), law.eta(grid), rtol=1e-12)
    etas = np.linspace(law.eta(0.5), 1.0, 101)
    np.testing.assert_allclose(model.rate(etas), law.rate(etas), rtol=1e-10)


def test_tabulated_rate_inverts_eta_and_both_clamp_to_the_table():
    model = TabulatedEnergyModel(TABLE_POINTS)
    grid = np.geomspace(model.p0, model.p_max, 301)
    np.testing.assert_allclose(model.rate(model.eta(grid)), grid, rtol=1e-10)
    assert isinstance(model.eta(1e-3), float) and isinstance(model.rate(0.5), float)
    # Documented clamping: below p0 (0 included) costs eta(p0); above p_max costs eta(p_max).
    for p in (0.0, 1e-9, model.p0):
        assert model.eta(p) == pytest.approx(1.0, rel=1e-12)
    for p in (model.p_max, 0.1, 0.5):
        assert model.eta(p) == pytest.approx(0.33, rel=1e-12)
    assert model.rate(2.0) == pytest.approx(model.p0, rel=1e-10)
    assert model.rate(0.0) == pytest.approx(model.p_max, rel=1e-10)


def test_tabulated_energy_and_mean_energy_match_numpy():
    model = TabulatedEnergyModel(TABLE_POINTS)
    bits = np.array([10.0, 300.0, 7.0])
    rates = np.array([1e-4, 3e-3, 2e-2])
    expected = np.sum(bits * np.array([0.8, 0.5, 0.33])) / bits.sum()
    assert model.mean_energy(bits, rates) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(model.energy(bits, rates), bits * [0.8, 0.5, 0.33], rtol=1e-12)


BAD_TABLES = [
    ([(1e-4, 0.8), (1e-3, 0.9)], "falls"),  # energy rises with BER
    ([(1e-4, 0.8), (1e-3, 0.8)], "falls"),  # flat
    ([(1e-4, 0.8), (1e-4, 0.7)], "distinct"),  # duplicate BERs
    ([(0.0, 0.8), (1e-3, 0.5)], "(0, 0.5]"),
    ([(1e-4, 0.8), (0.6, 0.5)], "(0, 0.5]"),
    ([(1e-4, 0.0), (1e-3, -0.1)], "> 0"),
    ([(1e-4, float("inf")), (1e-3, 0.5)], "> 0"),
    ([(1e-4, 0.8)], "at least 2"),
    ([], "at least 2"),
    ([(1e-4, 0.8, 1.0, 2.0), (1e-3, 0.5)], "pairs"),
    (None, "sequence"),
    ([(1e-4, 0.8), "ab"], "pairs"),
]


@pytest.mark.parametrize(("points", "allowed"), BAD_TABLES)
def test_tabulated_bad_points_raise_naming_points_and_what_is_allowed(points, allowed):
    with pytest.raises(ValueError, match="`points`") as info:
        TabulatedEnergyModel(points)
    assert allowed in str(info.value) and "Received" in str(info.value)


@pytest.mark.parametrize("p", [-0.1, 0.7, float("nan"), [1e-3, 0.9]])
def test_tabulated_bad_p_raises(p):
    with pytest.raises(ValueError, match="`p`"):
        TabulatedEnergyModel(TABLE_POINTS).eta(p)


def test_tabulated_bad_eta_raises():
    with pytest.raises(ValueError, match="`eta`"):
        TabulatedEnergyModel(TABLE_POINTS).rate(float("nan"))


def test_energy_models_round_trip_through_config_and_keras_serialization():
    tabulated = TabulatedEnergyModel(TABLE_POINTS)
    law = EnergyModel(a=9.0, zero_energy_at_half=True)
    for model in (tabulated, law):
        config = model.get_config()
        again = type(model).from_config(config)
        assert again.get_config() == config
        assert tl.energy.get(config).get_config() == config
        assert tl.energy.get(tl.energy.serialize(model)).get_config() == config
        restored = keras.saving.deserialize_keras_object(tl.energy.serialize(model))
        assert type(restored) is type(model)
    grid = np.geomspace(tabulated.p0, tabulated.p_max, 50)
    np.testing.assert_allclose(
        TabulatedEnergyModel.from_config(tabulated.get_config()).eta(grid), tabulated.eta(grid)
    )


def test_energy_get_resolves_none_names_dicts_and_instances():
    assert tl.energy.get(None).get_config() == EnergyModel().get_config()
    model = TabulatedEnergyModel(TABLE_POINTS)
    assert tl.energy.get(model) is model
    for name in tl.memory.names():
        assert name in tl.energy.names()
        resolved = tl.energy.get(name)
        assert resolved.get_config() == tl.memory.get(name).energy_model().get_config()
    assert isinstance(tl.energy.get("yang_murmann_28nm"), TabulatedEnergyModel)
    tech = tl.memory.get("salami_fpga_bram")
    assert tl.energy.get(tech).get_config() == tech.energy_model().get_config()


@pytest.mark.parametrize("identifier", ["no_such_sram", 12.8, {"points": [(1e-3, 1.0)]}, object])
def test_energy_get_bad_identifier_lists_the_names(identifier):
    with pytest.raises(ValueError, match="`energy_model`") as info:
        tl.energy.get(identifier)
    if isinstance(identifier, str):
        for name in tl.memory.names():
            assert name in str(info.value)


def test_lanmax_and_hypermodel_accept_any_energy_model():
    model = TabulatedEnergyModel(TABLE_POINTS)
    callback = tl.LaNMax(alpha=1.0, energy_model=model)
    assert callback.p_min == pytest.approx(model.p0)
    hyper = tl.tuning.LaNMaxHyperModel(lambda hp: None, energy_model="salami_fpga_bram")
    assert isinstance(hyper.energy_model, TabulatedEnergyModel)
    assert tl.tuning.LaNMaxHyperModel(lambda hp: None).energy_model.a == 12.8


# ---------------------------------------------------------------------------------------------
# memory_energy with protected / check bits, tabulated models and float parameters
# ---------------------------------------------------------------------------------------------


def test_memory_energy_with_a_tabulated_model_matches_the_table():
    model = _mixed_model()
    tl.set_fault_rates(model, {"bin": 1e-3, "fix": 2e-2})
    profile = memory_energy(model, TabulatedEnergyModel(TABLE_POINTS))
    etas = [row["eta"] for row in profile["layers"]]
    np.testing.assert_allclose(etas, [0.62, 0.33], rtol=1e-6)  # float32 rates
    assert profile["mean_energy"] == pytest.approx((30 * 0.62 + 160 * 0.33) / 190, rel=1e-6)
    assert profile["energy_model"] == {"points": [list(p) for p in TABLE_POINTS]}
    by_name = memory_energy(model, "yang_murmann_28nm")
    tech = tl.memory.get("yang_murmann_28nm")
    assert by_name["layers"][0]["eta"] == pytest.approx(tech.eta(1e-3), rel=1e-6)


def test_memory_energy_counts_protected_and_check_bits_as_the_layers_report_them():
    fp = tl.formats.FixedPoint(bits=8, fraction_bits=6)
    dense = tl.FaultyDense(
        4,
        weight_format=fp,
        fault_rate=1e-2,
        ecc="secded",
        protected_msbs=2,
        protected_bit_energy=1.5,
        name="fix",
    )
    model = keras.Sequential([keras.Input((5,)), dense])
    (row,) = memory_energy(model)["layers"]
    weights = 5 * 4
    check = dense.check_bits
    assert check > 0
    assert row["stored_bits"] == weights * 8 + check == dense.stored_bits
    assert row["check_bits"] == check
    assert row["protected_bits"] == weights * 2
    assert row["rated_bits"] == weights * 6 + check
    eta = -math.log(1e-2) / A
    expected = (weights * 6 + check) * eta + weights * 2 * 1.5
    assert row["energy"] == pytest.approx(expected, rel=1e-6)
    assert row["expected_faulty_bits"] == pytest.approx((weights * 6 + check) * 1e-2, rel=1e-6)
    profile = memory_energy(model)
    assert profile["mean_energy"] == pytest.approx(expected / (weights * 8 + check), rel=1e-6)


def _float_model():
    return keras.Sequential(
        [
            keras.Input((6,)),
            tl.FaultyDense(5, fault_rate=1e-2, seed=0, name="bin"),  # + bias 5
            keras.layers.BatchNormalization(name="bn"),  # gamma, beta, mean, variance: 4 x 5
            tl.FaultyDense(4, fault_rate=0.1, use_bias=False, seed=1, name="nobias"),
            keras.layers.Dense(3, name="head"),  # kernel 4 x 3 + bias 3
            keras.layers.Dense(2, dtype="float16", name="half"),  # (3 x 2 + 2) at 16 bits
        ],
        name="floats",
    )


FLOAT_BITS = 32 * (5 + 4 * 5 + 4 * 3 + 3) + 16 * (3 * 2 + 2)


def test_float_parameter_bits_is_the_hand_count():
    model = _float_model()
    assert tl.energy.float_parameter_bits(model) == FLOAT_BITS
    profile = memory_energy(model)
    assert profile["float_parameter_bits"] == FLOAT_BITS
    assert profile["float_parameters"] == "excluded"
    assert profile["total_bits"] == 6 * 5 + 5 * 4  # the fault-prone kernels alone


def test_float_parameters_reliable_joins_the_totals_at_eta_one():
    model = _float_model()
    excluded = memory_energy(model)
    reliable = memory_energy(model, float_parameters="reliable")
    assert [row["name"] for row in reliable["layers"]] == ["bin", "nobias", "float parameters"]
    row = reliable["layers"][-1]
    assert row["stored_bits"] == FLOAT_BITS and row["eta"] == 1.0 and row["energy"] == FLOAT_BITS
    assert reliable["total_bits"] == excluded["total_bits"] + FLOAT_BITS
    assert reliable["total_energy"] == pytest.approx(excluded["total_energy"] + FLOAT_BITS)
    expected_mean = (excluded["total_energy"] + FLOAT_BITS) / (excluded["total_bits"] + FLOAT_BITS)
    assert reliable["mean_energy"] == pytest.approx(expected_mean, rel=1e-12)
    assert sum(r["share"] for r in reliable["layers"]) == pytest.approx(1.0, abs=1e-12)


def test_bad_float_parameters_raises():
    with pytest.raises(ValueError, match="float_parameters"):
        memory_energy(_float_model(), float_parameters="counted")
