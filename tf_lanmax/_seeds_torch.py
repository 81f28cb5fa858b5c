"""The torch halves of `tf_lanmax._seeds`: a seed pair hashed in tensor ops (`mix`), and
uniform draws from a seed pair without Keras' affine map (`uniform`)."""

import torch

_MASK32 = 0xFFFFFFFF
# SplitMix64's constants (Steele, Lea, Flood, "Fast splittable pseudorandom number generators",
# OOPSLA 2014), as signed int64 (torch multiplies int64 modulo 2**64).
_GOLDEN = 0x9E3779B97F4A7C15 - 2**64
_M1 = 0xBF58476D1CE4E5B9 - 2**64
_M2 = 0x94D049BB133111EB - 2**64


def _shift_right(z, k):
    # Logical shift: torch's >> on int64 copies the sign bit.
    return (z >> k) & ((1 << (64 - k)) - 1)


def mix(state):
    """``(s, n) -> (h, 0)``, h the SplitMix64 finaliser of the 64-bit word ``s << 32 | n``.

    Keras' torch generator is seeded with the sum of the pair; the sum of ``(h, 0)`` is h, a
    bijective hash of the pair, so no two pairs seed the same draws. In tensor ops (no host
    sync), so it traces under `torch.compile`.
    """
    words = state.to(torch.int64) & _MASK32
    z = (words[0] << 32) | words[1]
    z = z + _GOLDEN
    z = (z ^ _shift_right(z, 30)) * _M1
    z = (z ^ _shift_right(z, 27)) * _M2
    z = z ^ _shift_right(z, 31)
    h = (z ^ _shift_right(z, 32)) & _MASK32
    h = ((h ^ 0x80000000) - 0x80000000).to(state.dtype)  # reinterpret as int32 bits
    return torch.stack([h, torch.zeros_like(h)])


def uniform(shape, state, dtype):
    """`keras.random.uniform(shape, seed=...)` of a seed tensor `state` on torch, bit for bit.

    Keras seeds a fresh `torch.Generator` on the device of its tensors with the sum of the pair
    (mod 2**32) and draws `torch.rand`; then it maps the draws onto [minval, maxval) with
    ``(maxval - minval) * u + minval``, which for [0, 1) is the identity at the price of two
    passes over the draws. This draws the same numbers without them.

    Args:
        shape: the shape of the draws.
        state: a seed tensor of shape (2,) on the device Keras draws on (`seed_value` converts
            it there).
        dtype: the float type's name (Keras' floatx).

    Returns:
        A tensor of `shape` and `dtype` on the device of `state`.
    """
    dtype = getattr(torch, dtype)
    if state.device.type == "meta":  # a symbolic pass: shapes only, as Keras draws there
        return torch.rand(shape, dtype=dtype, device=state.device)
    generator = torch.Generator(device=state.device)
    generator.manual_seed(int(state[0] + state[1]) & _MASK32)
    return torch.rand(shape, generator=generator, dtype=dtype, device=state.device)
