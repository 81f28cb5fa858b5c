"""Sub-batches of a batch (m-sharpness): the backend-neutral split the JAX and torch steps use."""

import keras


def split(structure, k):
    """k equal sub-batches of `structure` (None stays None)."""
    if structure is None or k == 1:
        return [structure] * k

    def piece(i):
        def take(t):
            size = t.shape[0] // k
            return t[i * size : (i + 1) * size]

        return keras.tree.map_structure(take, structure)

    return [piece(i) for i in range(k)]


def sub_batches(x, y, sample_weight, k):
    """The k (x, y, sample_weight) sub-batches of a batch.

    Raises:
        ValueError: when k does not divide the batch size.
    """
    batch = keras.tree.flatten(x)[0].shape[0]
    if batch % k:
        raise ValueError(
            f"`num_batch_splits` must divide the batch size. Received: num_batch_splits={k} "
            f"for a batch of {batch}"
        )
    return list(zip(split(x, k), split(y, k), split(sample_weight, k), strict=True))
