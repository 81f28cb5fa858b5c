"""Per-layer and whole-model memory energy of a model's faulty layers, as data."""

import numpy as np
from keras import ops

from tf_lanmax._validation import check_one_of
from tf_lanmax._walk import has_fault_memory, iter_layers
from tf_lanmax.energy.accounting import layer_bit_counts, mean_memory_energy
from tf_lanmax.energy.float_parameters import FLOAT_PARAMETERS, float_parameter_bits
from tf_lanmax.energy.resolve import get


def _rate(layer, energy_model):
    # A layer on reliable memory (fault model "none") is read at the reliable rate p0.
    if layer.fault_model.name == "none":
        return energy_model.p0
    return float(ops.convert_to_numpy(layer.fault_rate.value))


def _parameters(layer):
    # A `tl.inject_faults` layer stores several parameters, each in its own format.
    if not hasattr(layer, "stored_parameters"):
        return {}
    return {"parameters": layer.stored_parameters()}


def memory_energy(model, energy_model=None, float_parameters="excluded"):
    """Memory energy of every fault-prone layer of `model` at its current fault rate.

    A layer stores ``B_l`` bits (its kernel in its format, plus ECC check bits); ``R_l`` of them
    are read at its fault rate p_l and the rest sit in robust cells (protected MSBs), each
    costing the layer's `protected_bit_energy`, a fixed ``F_l`` in all. Its energy is
    ``E_l = R_l eta(p_l) + F_l``; ``mean_energy`` (E-bar) divides the total by the stored bits,
    so it is 1 for an all-reliable memory and `ratio_vs_reliable` = 1 / E-bar is the saving
    (`tf_lanmax.energy.accounting`, shared with LaNMax).

    Float parameters (biases, BatchNorm's gamma, beta and statistics, plain Keras layers) are
    assumed to sit in reliable memory. They are always counted (`float_parameter_bits`): with
    ``float_parameters="excluded"`` they stay out of the totals, which then cover the
    fault-prone memory alone; with ``"reliable"`` they join the totals at eta = 1 (one more row,
    ``name="float parameters"``).

    Args:
        model: a built Keras model or layer.
        energy_model: anything `tl.energy.get` resolves: None (`EnergyModel()`, a = 12.8), a
            technology name (`tl.memory.names()`), a config dict or an energy model. Defaults
            to `None`.
        float_parameters: `"excluded"` or `"reliable"` (see above). Defaults to `"excluded"`.

    Returns:
        A dict: ``layers`` (a list of dicts with name, format, fault_model, stored_bits,
        rated_bits, protected_bits, check_bits, protected_energy, fault_rate, eta, energy,
        share, expected_faulty_bits; for a `tl.inject_faults` layer also ``parameters``, one
        dict per stored parameter: name, format, values, stored_bits, protected_bits),
        ``total_bits``, ``total_energy``, ``reliable_energy``,
        ``mean_energy``, ``ratio_vs_reliable``, ``expected_faulty_bits``, ``energy_model``
        (its config), ``float_parameters`` (the mode) and ``float_parameter_bits``.

    Raises:
        ValueError: if the model has no fault-prone layer or is not built, or for a bad
            `energy_model` or `float_parameters`.

    Example:
    >>> memory_energy(model)["ratio_vs_reliable"]
    >>> memory_energy(model, "yang_murmann_28nm", float_parameters="reliable")

    Reference: Henwood, Leduc-Primeau, Savaria, arXiv:1912.10764.
    """
    energy_model = get(energy_model)
    check_one_of("float_parameters", float_parameters, FLOAT_PARAMETERS)
    layers = [layer for layer in iter_layers(model) if has_fault_memory(layer)]
    if not layers:
        raise ValueError(
            f"Model '{getattr(model, 'name', model)}' has no fault-prone layer (FaultyDense, "
            "FaultyConv2D, ...): there is no memory energy to report."
        )
    counts = np.array([layer_bit_counts(layer) for layer in layers], dtype=np.float64)
    stored, rated, fixed = counts[:, 0], counts[:, 1], counts[:, 2]
    rates = np.array([_rate(layer, energy_model) for layer in layers], dtype=np.float64)
    etas = np.atleast_1d(energy_model.eta(rates))
    energies = rated * etas + fixed
    rows = [
        {
            "name": layer.name,
            "format": str(layer.weight_format),
            "fault_model": repr(layer.fault_model),
            "stored_bits": int(b),
            "rated_bits": int(r),
            "protected_bits": int(b - r),
            "check_bits": int(getattr(layer, "check_bits", 0)),
            "protected_energy": float(f),
            "fault_rate": float(p),
            "eta": float(e),
            "energy": float(en),
            "expected_faulty_bits": float(r * p),
            **_parameters(layer),
        }
        for layer, b, r, f, p, e, en in zip(
            layers, stored, rated, fixed, rates, etas, energies, strict=True
        )
    ]
    float_bits = float_parameter_bits(model)
    if float_parameters == "reliable" and float_bits:
        # Reliable bits: in the totals at eta = 1, a fixed energy like a protected bit's.
        rows.append(
            {
                "name": "float parameters",
                "format": "float",
                "fault_model": "reliable",
                "stored_bits": float_bits,
                "rated_bits": 0,
                "protected_bits": 0,
                "check_bits": 0,
                "protected_energy": float(float_bits),
                "fault_rate": 0.0,
                "eta": 1.0,
                "energy": float(float_bits),
                "expected_faulty_bits": 0.0,
            }
        )
        stored = np.append(stored, float_bits)
        rated = np.append(rated, 0.0)
        fixed = np.append(fixed, float(float_bits))
        rates = np.append(rates, energy_model.p0)
    total = float(sum(row["energy"] for row in rows))
    for row in rows:
        row["share"] = float(row["energy"] / total) if total > 0 else 0.0
    mean = mean_memory_energy(energy_model, stored, rated, fixed, rates)
    return {
        "layers": rows,
        "total_bits": int(stored.sum()),
        "total_energy": total,
        "reliable_energy": float(stored.sum()),
        "mean_energy": mean,
        "ratio_vs_reliable": float(1.0 / mean) if mean > 0 else float("inf"),
        "expected_faulty_bits": float(sum(row["expected_faulty_bits"] for row in rows)),
        "energy_model": energy_model.get_config(),
        "float_parameters": float_parameters,
        "float_parameter_bits": int(float_bits),
    }
