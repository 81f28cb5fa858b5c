"""One training pass at a random perturbation w + eps, its gradient applied at w.

The path that random weight perturbation (`rule="rwp"`) runs on, exposed for any eps that is a
function of the weights and a seed (e.g. hardware-aware training: eps = a device-noise sample of
the weights minus w). It costs one forward/backward pass, as a plain step.
"""

import keras


def one_pass_train_step(model, *step_args, perturb, seed_generator=None, num_batch_splits=1):
    """One train step of `model`: one gradient pass at ``w + eps``, the gradient applied at w.

    Call it from a model's `train_step`, passing that method's own arguments through:
    ``return one_pass_train_step(self, *args, perturb=..., seed_generator=...)``
    (`SharpnessAwareModel` does so for `rule="rwp"` with `perturb=self.random_perturbation`).

    Contract:

    - ``perturb(weights, seed) -> list`` receives `weights`, the current values of
      `model.trainable_variables` (tensors, in that order), and `seed`, a seed tensor of shape
      (2,) (the value `seed_generator.next()` returned; None without a generator). It returns one
      entry per weight: a tensor of the weight's shape (cast to its dtype), or None for no
      perturbation. It must be a pure function of its arguments (it runs inside the compiled
      step): draw random numbers with `keras.random.*(..., seed=...)` from `seed` only (see
      `tf_lanmax.sam.rwp_perturbation`, which accepts a seed tensor), never from a generator of
      its own, and neither read nor assign model variables (inside the compiled JAX step a
      variable read gives its value at tracing time): what it needs must come from `weights`,
      `seed` or Python constants. eps is not differentiated through.
    - Seeds: `seed_generator` (a `keras.random.SeedGenerator` tracked by `model`, so its state is
      a non-trainable variable of the model, saved with it and threaded through the stateless
      JAX step) is advanced once per sub-batch, so every sub-batch of every step gets fresh eps;
      the same initial seed gives the same sequence of eps.
    - The pass: the forward/backward pass at ``w + eps`` is the step's only pass and is the
      training pass (`training=True`): BatchNorm moving statistics are updated from the
      perturbed network's activations, dropout and fault draws advance, and the reported `loss`,
      compiled metrics and `batch_loss` are those of the perturbed network. The weights w are
      never modified before the optimizer applies the gradient (the pass is stateless), so
      ``eps = 0`` gives exactly the plain Keras step.
    - `num_batch_splits = k`: each of k equal sub-batches draws its own eps (k seeds per step)
      and the k gradients are averaged. Loss scaling (mixed precision) works as in Keras: the
      scaled loss is differentiated and the optimizer unscales.

    Args:
        model: the `keras.Model` being trained (compiled).
        *step_args: the arguments of `model.train_step`: `(data,)` on TensorFlow and torch,
            `(state, data)` on JAX.
        perturb: the callable described above.
        seed_generator: a `keras.random.SeedGenerator` tracked by `model`, or None (then
            `perturb` receives None). Defaults to `None`.
        num_batch_splits: k sub-batches per batch (must divide the batch). Defaults to `1`.

    Returns:
        What `model.train_step` returns on the backend: logs on TensorFlow and torch,
        (logs, new state) on JAX. The logs include `batch_loss` (the batch's loss at w + eps).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from tf_lanmax.sam.one_pass_tensorflow import one_pass_train_step as step
    elif backend == "jax":
        from tf_lanmax.sam.one_pass_jax import one_pass_train_step as step
    elif backend == "torch":
        from tf_lanmax.sam.one_pass_torch import one_pass_train_step as step
    else:
        raise NotImplementedError(
            "The one-pass train step is implemented for the TensorFlow, JAX and torch "
            f"backends. Current backend: {backend!r}"
        )
    return step(
        model,
        *step_args,
        perturb=perturb,
        seed_generator=seed_generator,
        num_batch_splits=num_batch_splits,
    )
