"""What every Monte-Carlo loop of the package shares: chunks, their padding, compiled steps.

`tl.evaluation` (`evaluate_under_faults`, `evaluate_under_noise`, chips) and
`tl.memse.monte_carlo` run many draws through one compiled step, a chunk of draws (and of
examples) at a time:

- `chunks` splits a count into consecutive `Chunk`s of a given size;
- a `Chunk` pads its rows to the chunk size (so that every chunk has one shape and the
  compiled step traces once) and drops the padding from what the step returns. A padded row
  repeats a real row, so it computes nothing a real row does not;
- a `StepCache` keeps the compiled steps between calls (a JAX compile of a looped step costs
  seconds), least recently used first out beyond its size bound. `COMPILED_STEPS` is the one
  both use; `COMPILED_STEPS.clear()` frees the models it holds.

It sits below both import levels so that neither reimplements it.
"""

import collections
import dataclasses

import numpy as np
from keras import ops

from tf_lanmax._validation import check_int


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Rows ``start:stop`` of a run, padded to `width` rows for the compiled step.

    Attributes:
        start: the first row (draw or example) of the chunk.
        stop: one past its last row.
        width: the rows the step sees: `count` plus the padding.

    Example:
    >>> chunk = Chunk(start=8, stop=10, width=4)
    >>> chunk.count, chunk.padding, chunk.slice
    (2, 2, slice(8, 10, None))
    >>> chunk.pad(np.array([7, 9]))  # rows repeated cyclically up to the width
    array([7, 9, 7, 9])
    >>> chunk.drop(np.array([70, 90, 70, 90]))
    array([70, 90])
    """

    start: int
    stop: int
    width: int

    @property
    def count(self):
        """The real rows of the chunk."""
        return self.stop - self.start

    @property
    def padding(self):
        """The rows added to reach `width`."""
        return self.width - self.count

    @property
    def slice(self):
        """``slice(start, stop)``: the chunk's rows of the whole run."""
        return slice(self.start, self.stop)

    def pad(self, value):
        """`value` (`count` rows on axis 0) with its rows repeated cyclically to `width` rows.

        Args:
            value: a NumPy array or a backend tensor whose first axis has `count` rows.

        Returns:
            `value` itself without padding, else a value of the same kind with `width` rows.
        """
        if self.padding == 0:
            return value
        rows = np.arange(self.width) % self.count
        if isinstance(value, np.ndarray):
            return np.take(value, rows, axis=0)
        return ops.take(value, rows, axis=0)

    def drop(self, value):
        """The first `count` rows of `value` (`width` rows on axis 0): the padding dropped."""
        if self.padding == 0:
            return value
        return value[: self.count]


def chunks(total, size, pad=False):
    """Splits `total` rows into consecutive chunks of `size` rows (the last one may be shorter).

    Args:
        total: the number of rows (draws or examples), >= 0.
        size: the rows per chunk, >= 1.
        pad: give every chunk the width `size` (the last one padded by `Chunk.pad`), for a
            compiled step that should see one shape. Defaults to `False` (width = count).

    Yields:
        `Chunk`s covering ``0:total`` in order.

    Raises:
        ValueError: for a negative `total` or a `size` below 1.

    Example:
    >>> [(c.start, c.stop, c.width) for c in chunks(7, 3, pad=True)]
    [(0, 3, 3), (3, 6, 3), (6, 7, 3)]
    >>> [c.slice for c in chunks(5, 4)]
    [slice(0, 4, None), slice(4, 5, None)]
    """
    total = check_int("total", total, low=0)
    size = check_int("size", size, low=1)
    for start in range(0, total, size):
        stop = min(start + size, total)
        yield Chunk(start, stop, size if pad else stop - start)


class StepCache:
    """Compiled steps kept between calls, at most `max_size` of them (least recently used out).

    A step is stored under a key of everything that changes what it traces (the model's
    identity, its variables', the chunk size, the method...) with an `owner` that the entry
    keeps alive: while the entry lives, no other object can take the identities (`id`) in its
    key. Dropping an entry frees its owner (a model, a MemSE mirror) for garbage collection.

    Args:
        max_size: the most steps kept, >= 1.

    Attributes:
        max_size: the size bound.
        hits: how many `get` calls found their step.
        misses: how many built one.

    Example:
    >>> cache = StepCache(max_size=2)
    >>> cache.get(("double",), lambda: (lambda v: 2 * v))(3)
    6
    >>> cache.get(("double",), lambda: None)(4)  # found: not built again
    8
    >>> _ = cache.get(("triple",), lambda: (lambda v: 3 * v))
    >>> _ = cache.get(("half",), lambda: (lambda v: v / 2))
    >>> len(cache), ("double",) in cache, (cache.hits, cache.misses)  # "double" was oldest
    (2, False, (1, 3))
    """

    def __init__(self, max_size):
        self.max_size = check_int("max_size", max_size, low=1)
        self.hits = 0
        self.misses = 0
        self._entries = collections.OrderedDict()

    def get(self, key, build, owner=None):
        """The step stored under `key`; on a miss, ``build()``'s, stored first.

        Args:
            key: a hashable tuple of everything the traced step depends on.
            build: a function of no argument returning the step (called on a miss only).
            owner: the object the entry keeps alive (the one whose identities the key holds).
                Defaults to `None`.

        Returns:
            The step.
        """
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
            return self._entries[key][1]
        self.misses += 1
        step = build()
        self._entries[key] = (owner, step)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)
        return step

    def clear(self):
        """Drops every step (and frees their owners)."""
        self._entries.clear()

    def __contains__(self, key):
        return key in self._entries

    def __len__(self):
        return len(self._entries)


#: The compiled steps of `tl.evaluation`'s batched passes and of `tl.memse.monte_carlo`'s
#: sampled pass: repeated evaluations of one model (sensitivity, tuning, more draws, Gmax
#: studies) trace once. At most 8 steps (and the models they hold) are kept.
COMPILED_STEPS = StepCache(max_size=8)
