"""The one-pass (gradient at w + eps, applied at w) train step on the TensorFlow backend."""

import keras
import tensorflow as tf

from tf_lanmax.sam.tensorflow_step import (
    add,
    record_loss_and_metrics,
    snapshot,
    stateless_gradients,
    sub_batches,
)


def one_pass_train_step(model, data, perturb, seed_generator=None, num_batch_splits=1):
    """See `tf_lanmax.sam.one_pass_step.one_pass_train_step` (the contract)."""
    # The TensorFlow trainer builds the model, compiled loss and metrics when the step is traced
    # (by the first call in it); this step's first call is stateless, so build them first, as
    # the other backends' trainers do before the step. A no-op once everything is built.
    model._symbolic_build(data_batch=data)
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    pieces = sub_batches(x, y, sample_weight, num_batch_splits)
    trainable = model.trainable_variables
    non_trainable = model.non_trainable_variables
    accumulated, batch_losses, logs = None, [], {}
    for xs, ys, ws in pieces:
        seed = None if seed_generator is None else seed_generator.next()
        weights = snapshot(trainable)
        eps = perturb(weights, seed)
        perturbed = [
            w if e is None else w + tf.cast(e, w.dtype) for w, e in zip(weights, eps, strict=True)
        ]
        state = snapshot(non_trainable)
        grads, loss, y_pred, state_after = stateless_gradients(model, perturbed, state, xs, ys, ws)
        # The perturbed pass is the training pass: keep its BatchNorm statistics and draws.
        for variable, value in zip(non_trainable, state_after, strict=True):
            variable.assign(value)
        unscaled, logs = record_loss_and_metrics(model, loss, xs, ys, y_pred, ws)
        batch_losses.append(unscaled)
        accumulated = add(accumulated, grads)
    if len(pieces) > 1:  # the mean keeps the step size of one sub-batch
        accumulated = [g / len(pieces) for g in accumulated]
    model.optimizer.apply_gradients(zip(accumulated, trainable, strict=True))
    logs = dict(logs)
    logs["batch_loss"] = tf.add_n(batch_losses) / len(batch_losses)
    return logs
