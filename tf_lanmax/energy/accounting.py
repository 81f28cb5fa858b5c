"""Memory energy of a set of layers: bits read at their fault rate plus bits in robust cells.

One function every caller (LaNMax's objective, the memory-energy profile) uses, so a layer's
protected bits and ECC check bits are counted the same way everywhere.
"""

import numpy as np


def layer_bit_counts(layer):
    """`(stored_bits, rated_bits, fixed_energy)` of a fault-prone layer.

    `stored_bits` is every bit the memory holds for the layer (ECC check bits included),
    `rated_bits` the bits read at the layer's fault rate p, and `fixed_energy` the energy of the
    bits kept in robust cells (protected MSBs), in units of one reliable bit. Layers that predate
    protected bits count all their stored bits at p.
    """
    stored = int(layer.stored_bits)
    rated = int(getattr(layer, "rated_bits", stored))
    protected = stored - rated
    cost = float(getattr(layer, "protected_bit_energy", 1.0))
    return stored, rated, protected * cost


def mean_memory_energy(energy_model, stored_bits, rated_bits, fixed_energy, rates):
    """Bit-weighted mean read energy, 1 = every bit on reliable memory.

    ``E = (sum_l R_l eta(p_l) + sum_l F_l) / sum_l B_l`` with R_l the bits read at p_l, F_l the
    fixed energy of the layer's robust bits and B_l all its stored bits.

    Args:
        energy_model: any energy model with `eta(p)` (`tl.EnergyModel`, a tabulated model, ...).
        stored_bits: (L,) stored bits per layer.
        rated_bits: (L,) bits read at the layer's rate.
        fixed_energy: (L,) energy of the robust bits.
        rates: (L,) fault rates.

    Returns:
        A float.

    Example:
    >>> mean_memory_energy(EnergyModel(), [100], [100], [0.0], [2.76e-6])  # ~1.0
    """
    stored = np.asarray(stored_bits, dtype=np.float64)
    rated = np.asarray(rated_bits, dtype=np.float64)
    fixed = np.asarray(fixed_energy, dtype=np.float64)
    etas = np.atleast_1d(energy_model.eta(np.asarray(rates, dtype=np.float64)))
    return float((np.sum(rated * etas) + np.sum(fixed)) / np.sum(stored))
