"""Tests of `tl.summary` and `render_table`: the memory-energy table of a model."""

import math

import keras
import pytest

import tf_lanmax as tl
from tf_lanmax.reports import render_table, summary


def _model():
    fp = tl.formats.FixedPoint(bits=8, fraction_bits=6)
    return keras.Sequential(
        [
            keras.Input((6,)),
            tl.FaultyDense(5, fault_rate=1e-2, seed=0, name="dense_bin"),
            tl.FaultyDense(4, weight_format=fp, fault_rate=0.25, seed=1, name="dense_fix"),
            keras.layers.Dense(3, name="reliable_head"),
        ],
        name="tiny_net",
    )


def test_summary_prints_rows_and_totals():
    model = _model()
    captured = []
    info = summary(model, print_fn=captured.append)
    assert len(captured) == 1
    text = captured[0]
    assert 'Model: "tiny_net"' in text
    lines = text.splitlines()

    bin_row = next(line for line in lines if "dense_bin" in line)
    fix_row = next(line for line in lines if "dense_fix" in line)
    assert "reliable_head" not in text  # not fault-prone: not in the table
    # p formatted with 3 significant digits, eta with 3 decimals, stored bits with separators.
    assert "0.01" in bin_row and "0.25" in fix_row
    assert f"{-math.log(1e-2) / 12.8:.3f}" in bin_row
    assert f"{-math.log(0.25) / 12.8:.3f}" in fix_row
    assert " 30 " in bin_row and " 160 " in fix_row
    for row, line in zip(info["layers"], (bin_row, fix_row), strict=True):
        assert f"{row['share']:.1%}" in line

    total_row = next(line for line in lines if line.startswith("| Total"))
    assert "190" in total_row and "100.0%" in total_row
    e_bar = (30 * -math.log(1e-2) + 160 * -math.log(0.25)) / 12.8 / 190
    assert f"{e_bar:.3f}" in total_row
    assert f"{30 * 1e-2 + 160 * 0.25:,.1f}" in total_row
    assert f"{1 / e_bar:.2f}x" in text
    assert "a = 12.8" in text

    # The rows appear in model order, between the header and the totals.
    assert lines.index(bin_row) < lines.index(fix_row) < lines.index(total_row)
    assert info == tl.memory_energy(model)


def test_summary_returns_memory_energy_dict_and_print_fn_none_prints_nothing(capsys):
    model = _model()
    info = summary(model, print_fn=None)
    assert capsys.readouterr().out == ""
    assert info == tl.memory_energy(model)
    assert tl.summary is summary


def test_summary_default_print_fn_prints(capsys):
    model = _model()
    summary(model)
    out = capsys.readouterr().out
    assert "dense_bin" in out and "Total" in out


def test_summary_uses_given_energy_model():
    model = _model()
    captured = []
    info = summary(model, energy_model=tl.EnergyModel(a=5.0), print_fn=captured.append)
    assert info["energy_model"]["a"] == 5.0
    assert "a = 5" in captured[0]
    assert f"{-math.log(0.25) / 5.0:.3f}" in captured[0]


def test_render_table_is_rectangular():
    table = render_table(tl.memory_energy(_model()))
    grid = [line for line in table.splitlines() if line.startswith(("|", "+"))]
    assert len(grid) == 8  # rule, header, rule, 2 rows, rule, total, rule
    assert len({len(line) for line in grid}) == 1


def test_summary_without_faulty_layers_raises():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="no_faults")
    with pytest.raises(ValueError, match="no_faults"):
        summary(model, print_fn=None)


# ---------------------------------------------------------------------------------------------
# Technologies, protected / check bits, float parameters
# ---------------------------------------------------------------------------------------------


def _grid(text):
    return [line for line in text.splitlines() if line.startswith(("|", "+"))]


def _header(text):
    return [cell.strip() for cell in _grid(text)[1].strip("|").split("|")]


def test_summary_with_a_technology_shows_each_layers_voltage():
    model = _model()
    tl.set_fault_rates(model, {"dense_bin": 5e-3, "dense_fix": 1e-4})
    tech = tl.memory.get("yang_murmann_28nm")
    captured = []
    info = summary(model, technology="yang_murmann_28nm", print_fn=captured.append)
    text = captured[0]
    assert "Voltage" in _header(text)
    for row, p in zip(info["layers"], (5e-3, 1e-4), strict=True):
        volts = tech.voltage(row["fault_rate"])
        assert row["voltage"] == pytest.approx(volts)
        assert row["voltage_text"] == f"~{volts:.2f} V"
        line = next(line for line in text.splitlines() if row["name"] in line)
        assert f"~{volts:.2f} V" in line
        assert row["eta"] == pytest.approx(tech.eta(p), rel=1e-6)
    assert "technology yang_murmann_28nm" in text
    assert "Yang & Murmann" in text  # the source is printed under the table
    assert info["technology"]["name"] == "yang_murmann_28nm"
    assert len({len(line) for line in _grid(text)}) == 1


def test_summary_marks_rates_beyond_the_measured_range():
    model = _model()  # p = 1e-2 and 0.25: both above the VC707's highest measured BER
    tl.set_fault_rates(model, {"dense_bin": 1e-8, "dense_fix": 0.25})
    captured = []
    info = summary(model, technology="salami_fpga_bram", print_fn=captured.append)
    bin_row, fix_row = info["layers"]
    assert bin_row["voltage_text"] == "> 0.60 V"
    assert fix_row["voltage_text"] == "< 0.54 V"
    assert fix_row["eta"] == pytest.approx(0.639)  # held at the last measured point
    assert "< 0.54 V" in captured[0] and "> 0.60 V" in captured[0]


def test_summary_without_voltages_has_no_voltage_column():
    captured = []
    info = summary(_model(), technology="profiled_sram", print_fn=captured.append)
    assert "Voltage" not in _header(captured[0])
    assert all("voltage" not in row for row in info["layers"])
    assert "technology profiled_sram" in captured[0]


def test_summary_takes_any_energy_model():
    captured = []
    table = tl.energy.TabulatedEnergyModel([(1e-3, 0.6), (1e-2, 0.4), (0.5, 0.1)])
    info = summary(_model(), energy_model=table, print_fn=captured.append)
    assert "tabulated, 3 points" in captured[0]
    assert info["layers"][0]["eta"] == pytest.approx(0.4, rel=1e-6)
    assert "Voltage" not in _header(captured[0])
    by_name = summary(_model(), energy_model="salami_fpga_bram", print_fn=None)
    assert by_name["energy_model"] == tl.memory.get("salami_fpga_bram").energy_model().get_config()


def test_summary_refuses_both_energy_model_and_technology():
    with pytest.raises(ValueError, match="energy_model.*technology"):
        summary(_model(), energy_model=tl.EnergyModel(), technology="profiled_sram")
    with pytest.raises(ValueError, match="`technology`"):
        summary(_model(), technology="dram", print_fn=None)


def test_protected_and_check_bit_columns_appear_only_when_used():
    captured = []
    summary(_model(), print_fn=captured.append)
    assert "Protected bits" not in _header(captured[0])
    assert "Check bits" not in _header(captured[0])
    fp = tl.formats.FixedPoint(bits=8, fraction_bits=6)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            tl.FaultyDense(5, fault_rate=1e-2, name="plain"),
            tl.FaultyDense(4, weight_format=fp, ecc="secded", protected_msbs=1, name="guarded"),
        ]
    )
    captured = []
    info = summary(model, print_fn=captured.append)
    header = _header(captured[0])
    assert "Protected bits" in header and "Check bits" in header
    guarded = model.get_layer("guarded")
    line = next(line for line in captured[0].splitlines() if "guarded" in line)
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[header.index("Protected bits")] == f"{guarded.protected_bits:,}"
    assert cells[header.index("Check bits")] == f"{guarded.check_bits:,}"
    assert cells[header.index("Stored bits")] == f"{guarded.stored_bits:,}"
    assert info["layers"][1]["check_bits"] == guarded.check_bits > 0
    assert len({len(line) for line in _grid(captured[0])}) == 1


def _bn_model():
    return keras.Sequential(
        [
            keras.Input((6,)),
            tl.FaultyDense(5, fault_rate=1e-2, seed=0, name="dense_bin"),
            keras.layers.BatchNormalization(),
            tl.FaultyDense(3, fault_rate=1e-3, seed=1, name="dense_out"),
        ],
        name="bn_net",
    )


# Hand count: two biases (5 + 3) and BatchNorm's gamma, beta, mean, variance (4 x 5), float32.
BN_FLOAT_BITS = 32 * (5 + 3 + 4 * 5)


def test_summary_reports_the_reliable_float_parameter_bits_left_out():
    captured = []
    info = summary(_bn_model(), print_fn=captured.append)
    assert info["float_parameter_bits"] == BN_FLOAT_BITS
    line = f"reliable float parameters: {BN_FLOAT_BITS:,} bits (not in the energy total)"
    assert line in captured[0]
    assert info["total_bits"] == 6 * 5 + 5 * 3


def test_summary_can_count_float_parameters_at_eta_one():
    captured = []
    info = summary(_bn_model(), float_parameters="reliable", print_fn=captured.append)
    text = captured[0]
    assert f"reliable float parameters: {BN_FLOAT_BITS:,} bits (in the total at eta = 1)" in text
    float_line = next(line for line in text.splitlines() if "| float parameters" in line)
    assert f"{BN_FLOAT_BITS:,}" in float_line and "reliable" in float_line and "1.000" in float_line
    total_line = next(line for line in text.splitlines() if line.startswith("| Total"))
    assert f"{6 * 5 + 5 * 3 + BN_FLOAT_BITS:,}" in total_line
    fault_prone = (30 * -math.log(1e-2) + 15 * -math.log(1e-3)) / 12.8
    expected = (fault_prone + BN_FLOAT_BITS) / (45 + BN_FLOAT_BITS)
    assert info["mean_energy"] == pytest.approx(expected, rel=1e-6)
    assert len({len(line) for line in _grid(text)}) == 1
