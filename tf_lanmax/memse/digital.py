"""Digital-fault MemSE: copies of a model whose kernels live in faulty digital memory.

MemSE treats the faulty layers of `tf_lanmax.layers` with the closed-form moments of their
faulty stored weights: ``M = E[w' | w]`` replaces the weight and
``S^2 = Var[w' | w]`` the crossbar noise, and the same propagation rules predict the MSE of bit
flips, masking or stuck-at faults. `faulty_copy` (declared in `tf_lanmax.layers`, next to the
other direction, `deployment_model`) turns a trained float model into that setting.
"""

from tf_lanmax.layers.faulty_copy import faulty_copy, fixed_point_for

__all__ = ["faulty_copy", "fixed_point_for"]
