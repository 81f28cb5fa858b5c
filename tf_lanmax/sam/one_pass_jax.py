"""The one-pass (gradient at w + eps, applied at w) train step on the JAX backend."""

import jax
import keras

from tf_lanmax.sam.batches import sub_batches
from tf_lanmax.sam.jax_step import add, update_metrics


def _next_seed(model, seed_generator, non_trainable):
    """`seed_generator.next()` on the step's state: (seed, non-trainable values advanced)."""
    if seed_generator is None:
        return None, non_trainable
    index = next(
        (i for i, v in enumerate(model.non_trainable_variables) if v is seed_generator.state),
        None,
    )
    if index is None:
        raise ValueError(
            "`seed_generator` must be tracked by the model (an attribute of it or of one of its "
            "layers), so that its state is part of the train step's state on JAX."
        )
    mapping = [(seed_generator.state, non_trainable[index])]
    with keras.StatelessScope(state_mapping=mapping) as scope:
        seed = seed_generator.next()
    advanced = list(non_trainable)
    advanced[index] = scope.get_current_value(seed_generator.state)
    return seed, advanced


def one_pass_train_step(model, state, data, perturb, seed_generator=None, num_batch_splits=1):
    """See `tf_lanmax.sam.one_pass_step.one_pass_train_step` (the contract)."""
    trainable, non_trainable, optimizer_values, metrics_values = state
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    pieces = sub_batches(x, y, sample_weight, num_batch_splits)
    grad_fn = jax.value_and_grad(model.compute_loss_and_updates, has_aux=True)
    accumulated, batch_losses, logs = None, [], {}
    for xs, ys, ws in pieces:
        seed, non_trainable = _next_seed(model, seed_generator, non_trainable)
        eps = perturb(list(trainable), seed)
        perturbed = [
            w if e is None else w + e.astype(w.dtype) for w, e in zip(trainable, eps, strict=True)
        ]
        # The perturbed pass is the training pass: its BatchNorm statistics and draws are kept.
        (_, aux), grads = grad_fn(
            perturbed,
            non_trainable,
            metrics_values,
            xs,
            ys,
            ws,
            training=True,
            optimizer_variables=optimizer_values,
        )
        loss, y_pred, non_trainable, metrics_values = aux
        batch_losses.append(loss)
        logs, metrics_values = update_metrics(model, metrics_values, loss, xs, ys, y_pred, ws)
        accumulated = add(accumulated, grads)
    if len(pieces) > 1:  # the mean keeps the step size of one sub-batch
        accumulated = [g / len(pieces) for g in accumulated]
    trainable, optimizer_values = model.optimizer.stateless_apply(
        optimizer_values, accumulated, trainable
    )
    logs = dict(logs)
    logs["batch_loss"] = sum(batch_losses) / len(batch_losses)
    return logs, (trainable, non_trainable, optimizer_values, metrics_values)
