"""Tests of `tl.memory`: SRAM technology presets, their provenance and their conversions."""

import json
import math

import numpy as np
import pytest

import tf_lanmax as tl
from tf_lanmax.energy import EnergyModel, TabulatedEnergyModel
from tf_lanmax.memory import OperatingPoint, Technology

NAMES = ("exponential_law", "profiled_sram", "yang_murmann_28nm", "salami_fpga_bram")


def test_names_and_default():
    assert tl.memory.names() == list(NAMES)
    assert tl.memory.DEFAULT == "exponential_law"
    assert tl.memory.get().name == "exponential_law"
    tech = tl.memory.get("salami_fpga_bram")
    assert tl.memory.get(tech) is tech


@pytest.mark.parametrize("name", ["sram", "", "Yang_Murmann_28nm", 3, None.__class__])
def test_unknown_name_raises_listing_every_name(name):
    with pytest.raises(ValueError, match="`technology`") as info:
        tl.memory.get(name)
    for known in NAMES:
        assert known in str(info.value)
    assert repr(name) in str(info.value)


# ---------------------------------------------------------------------------------------------
# Every preset: valid, monotone, cited, honest about what is measured
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_preset_points_are_monotone_and_in_range(name):
    tech = tl.memory.get(name)
    assert len(tech.points) >= 2
    assert all(isinstance(point, OperatingPoint) for point in tech.points)
    bers = np.array([p.ber for p in tech.points])
    energies = np.array([p.energy for p in tech.points])
    assert np.all((bers > 0) & (bers <= 0.5)) and np.all(energies > 0)
    assert np.all(np.diff(bers) > 0) and np.all(np.diff(energies) < 0)
    assert energies[0] == pytest.approx(1.0)  # the reliable point costs 1, as in the law
    if tech.has_voltages:
        volts = np.array([p.voltage for p in tech.points])
        assert np.all(np.diff(volts) < 0) and np.all((volts > 0.3) & (volts <= 1.2))
    else:
        assert all(p.voltage is None for p in tech.points)
    assert isinstance(tech.persistent, bool)
    assert tech.stuck_at_0_fraction is None or 0.0 <= tech.stuck_at_0_fraction <= 1.0


@pytest.mark.parametrize(
    ("name", "cited", "said"),
    [
        ("exponential_law", ["Henwood", "arXiv:1912.10764"], ["No measured points"]),
        (
            "profiled_sram",
            ["Chandramoorthy", "HPCA 2019", "arXiv:1912.10764"],
            ["Measured", "voltages (None)", "Derived"],
        ),
        ("yang_murmann_28nm", ["Yang & Murmann", "ISQED 2017"], ["Measured", "Assumed", "Derived"]),
        ("salami_fpga_bram", ["Salami", "MICRO 2018"], ["Measured", "Derived", "Assumed"]),
    ],
)
def test_preset_cites_its_source_and_says_what_is_measured(name, cited, said):
    tech = tl.memory.get(name)
    for text in cited:
        assert text in tech.source
    for text in said:
        assert text in tech.provenance
    # The package cites papers, never the project's own background notes.
    for note in ("HARDWARE.md", "ALGORITHMS.md", "DESIGN.md"):
        assert note not in tech.source + tech.provenance


def test_exponential_law_preset_is_the_law():
    tech = tl.memory.get("exponential_law")
    model = tech.energy_model()
    assert isinstance(model, EnergyModel) and model.get_config() == EnergyModel().get_config()
    for point in tech.points:
        assert point.energy == pytest.approx(-math.log(point.ber) / 12.8, rel=1e-12)
    assert tech.voltage(1e-3) is None and not tech.has_voltages
    assert tech.stuck_at_0_fraction is None and not tech.persistent
    assert isinstance(tech.fault_model(), tl.faults.BitFlip)


def test_profiled_sram_preset_has_the_profiled_bers_and_law_energies():
    tech = tl.memory.get("profiled_sram")
    measured = [1.31e-5, 4.07e-5, 1.26e-4, 1.55e-4, 1.21e-3, 3.98e-3, 1.21e-2]
    assert [p.ber for p in tech.points[1:]] == measured
    assert tech.points[0].ber == pytest.approx(math.exp(-12.8)) and tech.points[0].energy == 1.0
    for point in tech.points:
        assert point.energy == pytest.approx(-math.log(point.ber) / 12.8, rel=1e-12)
    # Energies derived from the law: fitting the law gives back a = 12.8.
    assert abs(EnergyModel.fit(tech.points).a - 12.8) / 12.8 < 1e-9
    assert tech.voltage(1e-3) is None
    assert tech.stuck_at_0_fraction == 0.5 and tech.persistent


def test_yang_murmann_preset_has_the_measured_voltage_and_power_ratios():
    tech = tl.memory.get("yang_murmann_28nm")
    volts = [p.voltage for p in tech.points]
    assert volts == [1.0, 0.72, 0.69]  # nominal 1.0 V (assumed) - 0, 280, 310 mV (measured)
    energies = [p.energy for p in tech.points]
    assert energies == pytest.approx([1.0, 1 / 2.6, 1 / 2.9], rel=1e-12)
    for point in tech.points:  # BER derived from the law at the measured energy
        assert point.ber == pytest.approx(math.exp(-12.8 * point.energy), rel=1e-12)


def test_salami_preset_follows_the_fault_counts_and_the_paper_rates():
    tech = tl.memory.get("salami_fpga_bram")
    counts = [4, 24, 146, 772, 2732, 7520, 23706]
    assert [p.voltage for p in tech.points] == [0.60, 0.59, 0.58, 0.57, 0.56, 0.55, 0.54]
    bers = np.array([p.ber for p in tech.points])
    np.testing.assert_allclose(bers / bers[-1], np.array(counts) / counts[-1], rtol=1e-12)
    assert bers[-1] == pytest.approx(6e-4)  # 0.06 % at Vcrash
    assert tech.points[0].energy == 1.0
    assert tech.points[-1].energy == pytest.approx(1 - 0.361)  # -36.1 % from Vmin to Vcrash
    assert tech.stuck_at_0_fraction == 1.0 and tech.persistent


@pytest.mark.parametrize("name", NAMES)
def test_energy_model_is_exact_at_the_points_and_has_the_protocol(name):
    tech = tl.memory.get(name)
    model = tech.energy_model()
    for attribute in ("p0", "eta", "rate", "energy", "mean_energy", "get_config"):
        assert hasattr(model, attribute)
    assert model.p0 == pytest.approx(tech.points[0].ber, rel=1e-12)
    for point in tech.points:
        assert model.eta(point.ber) == pytest.approx(point.energy, rel=1e-12)
        assert tech.eta(point.ber) == pytest.approx(point.energy, rel=1e-12)
    assert tl.energy.get(name).get_config() == model.get_config()
    if name != "exponential_law":
        assert isinstance(model, TabulatedEnergyModel)
    json.dumps(tech.to_dict())  # report.json-ready


@pytest.mark.parametrize("name", ["profiled_sram", "yang_murmann_28nm", "salami_fpga_bram"])
def test_fault_model_is_the_stuck_at_mix_of_the_preset(name):
    tech = tl.memory.get(name)
    fault_model = tech.fault_model()
    assert isinstance(fault_model, tl.faults.StuckAtMix)
    assert fault_model.stuck_at_0_fraction == tech.stuck_at_0_fraction


# ---------------------------------------------------------------------------------------------
# Conversions: voltage <-> BER <-> energy
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["yang_murmann_28nm", "salami_fpga_bram"])
def test_voltage_and_rate_round_trip_inside_the_measured_range(name):
    tech = tl.memory.get(name)
    low, high = tech.ber_range
    grid = np.geomspace(low, high, 401)
    volts = tech.voltage(grid)
    assert np.all(np.diff(volts) < 0)  # monotone in ln BER
    np.testing.assert_allclose(tech.rate(volts), grid, rtol=1e-9)
    v_low, v_high = tech.voltage_range
    v_grid = np.linspace(v_low, v_high, 101)
    np.testing.assert_allclose(tech.voltage(tech.rate(v_grid)), v_grid, rtol=1e-12)
    for point in tech.points:
        assert tech.voltage(point.ber) == pytest.approx(point.voltage, rel=1e-12)
        assert tech.rate(point.voltage) == pytest.approx(point.ber, rel=1e-9)
    assert isinstance(tech.voltage(1e-4), float) and isinstance(tech.rate(0.6), float)


def test_conversions_hold_at_the_ends_of_the_range():
    tech = tl.memory.get("salami_fpga_bram")
    assert tech.voltage(0.0) == pytest.approx(0.60) and tech.voltage(1e-9) == pytest.approx(0.60)
    assert tech.voltage(0.01) == pytest.approx(0.54)
    assert tech.rate(1.0) == pytest.approx(tech.ber_range[0], rel=1e-9)
    assert tech.rate(0.3) == pytest.approx(tech.ber_range[1], rel=1e-9)
    assert tech.eta(0.01) == pytest.approx(0.639)  # no saving claimed past Vcrash


def test_yang_murmann_voltage_at_the_measured_points():
    tech = tl.memory.get("yang_murmann_28nm")
    p_280mv = math.exp(-12.8 / 2.6)
    assert f"{tech.voltage(p_280mv):.2f}" == "0.72"
    assert tech.eta(tech.rate(0.69)) == pytest.approx(1 / 2.9, rel=1e-9)


@pytest.mark.parametrize("name", ["exponential_law", "profiled_sram"])
def test_rate_without_voltages_raises(name):
    with pytest.raises(ValueError, match="`voltage`") as info:
        tl.memory.get(name).rate(0.7)
    assert "no voltages" in str(info.value)


def test_bad_conversion_inputs_raise():
    tech = tl.memory.get("yang_murmann_28nm")
    with pytest.raises(ValueError, match="`p`"):
        tech.voltage(0.7)
    with pytest.raises(ValueError, match="`voltage`"):
        tech.rate(float("nan"))


# ---------------------------------------------------------------------------------------------
# Building a Technology
# ---------------------------------------------------------------------------------------------

GOOD = [(0.9, 1e-5, 1.0), (0.8, 1e-3, 0.6), (0.7, 1e-2, 0.4)]


def _technology(**overrides):
    kwargs = {
        "name": "test_sram",
        "points": GOOD,
        "source": "A. Author, Some Conference 2020",
        "provenance": "Measured: everything.",
    }
    kwargs.update(overrides)
    return Technology(**kwargs)


def test_custom_technology_works_and_fits_the_law():
    tech = _technology()
    assert tech.voltage_range == (0.7, 0.9) and tech.ber_range == (1e-5, 1e-2)
    assert tech.voltage(1e-3) == pytest.approx(0.8)
    assert EnergyModel.fit(tech.points).a > 0
    assert "test_sram" in repr(tech)


@pytest.mark.parametrize(
    ("overrides", "argument"),
    [
        ({"name": ""}, "name"),
        ({"source": None}, "source"),
        ({"provenance": "  "}, "provenance"),
        ({"points": [(1e-5, 1.0), (1e-3, 0.6)]}, "points"),  # pairs, not triples
        ({"points": [(0.9, 1e-5, 1.0), (None, 1e-3, 0.6)]}, "points"),  # mixed voltages
        ({"points": [(0.7, 1e-5, 1.0), (0.8, 1e-3, 0.6)]}, "points"),  # voltage rises with BER
        ({"points": [(0.9, 1e-5, 0.5), (0.8, 1e-3, 0.6)]}, "points"),  # energy rises with BER
        ({"points": [(0.9, 1e-5, 1.0), (0.8, 1e-5, 0.6)]}, "points"),  # duplicate BER
        ({"points": [(0.9, 1e-5, 1.0), (0.8, 0.7, 0.6)]}, "points"),  # BER > 0.5
        ({"points": [(0.9, 1e-5, 1.0), (0.8, 1e-3, 0.0)]}, "points"),  # energy 0
        ({"points": [(0.9, 1e-5, 1.0)]}, "points"),  # one point
        ({"points": [(-0.9, 1e-5, 1.0), (0.8, 1e-3, 0.6)]}, "points"),  # negative voltage
        ({"stuck_at_0_fraction": 1.5}, "stuck_at_0_fraction"),
        ({"energy_law": "law"}, "energy_law"),
    ],
)
def test_bad_technology_arguments_raise_naming_them(overrides, argument):
    with pytest.raises(ValueError, match=f"`{argument}`") as info:
        _technology(**overrides)
    assert "Received" in str(info.value)
