"""Per-layer and whole-model memory energy of a model's faulty layers, as data."""

import numpy as np
from keras import ops

from tf_lanmax._walk import has_fault_memory, iter_layers
from tf_lanmax.energy.model import EnergyModel


def memory_energy(model, energy_model=None):
    """Memory energy of every fault-prone layer of `model` at its current fault rate.

    ``E_l = B_l eta(p_l)``; the total is ``sum_l E_l``; ``mean_energy`` (E-bar) divides by the
    total bits, so it is 1 for an all-reliable memory and `ratio_vs_reliable` = 1 / E-bar is the
    saving. Biases and normalisation parameters are assumed reliable and are not counted.

    Args:
        model: a built Keras model or layer.
        energy_model: an `EnergyModel`. Defaults to `EnergyModel()` (a = 12.8).

    Returns:
        A dict: ``layers`` (a list of dicts with name, format, fault_model, stored_bits,
        fault_rate, eta, energy, share, expected_faulty_bits), ``total_bits``, ``total_energy``,
        ``reliable_energy``, ``mean_energy``, ``ratio_vs_reliable``, ``expected_faulty_bits``
        and ``energy_model`` (its config).

    Raises:
        ValueError: if the model has no fault-prone layer or is not built.

    Example:
    >>> memory_energy(model)["ratio_vs_reliable"]
    """
    energy_model = energy_model or EnergyModel()
    layers = [layer for layer in iter_layers(model) if has_fault_memory(layer)]
    if not layers:
        raise ValueError(
            f"Model '{getattr(model, 'name', model)}' has no fault-prone layer (FaultyDense, "
            "FaultyConv2D, ...): there is no memory energy to report."
        )
    bits = np.array([layer.stored_bits for layer in layers], dtype=np.float64)
    # A layer on reliable memory (fault model "none") is read at p0, where eta = 1.
    rates = np.array(
        [
            energy_model.p0
            if layer.fault_model.name == "none"
            else float(ops.convert_to_numpy(layer.fault_rate.value))
            for layer in layers
        ],
        dtype=np.float64,
    )
    etas = np.atleast_1d(energy_model.eta(rates))
    energies = bits * etas
    total = float(energies.sum())
    rows = [
        {
            "name": layer.name,
            "format": repr(layer.weight_format),
            "fault_model": repr(layer.fault_model),
            "stored_bits": int(b),
            "fault_rate": float(p),
            "eta": float(e),
            "energy": float(en),
            "share": float(en / total) if total > 0 else 0.0,
            "expected_faulty_bits": float(b * p),
        }
        for layer, b, p, e, en in zip(layers, bits, rates, etas, energies, strict=True)
    ]
    mean = total / float(bits.sum())
    return {
        "layers": rows,
        "total_bits": int(bits.sum()),
        "total_energy": total,
        "reliable_energy": float(bits.sum()),
        "mean_energy": mean,
        "ratio_vs_reliable": float(1.0 / mean) if mean > 0 else float("inf"),
        "expected_faulty_bits": float((bits * rates).sum()),
        "energy_model": energy_model.get_config(),
    }
