"""Memory energy: the law eta(p) = -ln(p)/a and per-layer / model energy of faulty layers."""

from tf_lanmax.energy.model import DEFAULT_A, EnergyModel
from tf_lanmax.energy.profile import memory_energy

__all__ = ["DEFAULT_A", "EnergyModel", "memory_energy"]
