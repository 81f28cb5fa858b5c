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
