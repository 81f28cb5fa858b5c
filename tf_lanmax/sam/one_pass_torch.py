"""The one-pass (gradient at w + eps, applied at w) train step on the torch backend."""

import keras
import torch

from tf_lanmax.sam.batches import sub_batches
from tf_lanmax.sam.torch_step import (
    add,
    apply,
    record_loss_and_metrics,
    snapshot,
    stateless_gradients,
)


def one_pass_train_step(model, data, perturb, seed_generator=None, num_batch_splits=1):
    """See `tf_lanmax.sam.one_pass_step.one_pass_train_step` (the contract)."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    pieces = sub_batches(x, y, sample_weight, num_batch_splits)
    trainable = model.trainable_variables
    non_trainable = model.non_trainable_variables
    accumulated, batch_losses, logs = None, [], {}
    for xs, ys, ws in pieces:
        seed = None if seed_generator is None else seed_generator.next()
        weights = snapshot(trainable)
        with torch.no_grad():
            eps = perturb(weights, seed)
            perturbed = [
                w if e is None else w + e.to(w.dtype) for w, e in zip(weights, eps, strict=True)
            ]
        state = snapshot(non_trainable)
        grads, loss, y_pred, state_after = stateless_gradients(model, perturbed, state, xs, ys, ws)
        # The perturbed pass is the training pass: keep its BatchNorm statistics and draws.
        for variable, value in zip(non_trainable, state_after, strict=True):
            variable.assign(value)
        logs = record_loss_and_metrics(model, loss, xs, ys, y_pred, ws)
        batch_losses.append(loss)
        accumulated = add(accumulated, grads)
    if len(pieces) > 1:  # the mean keeps the step size of one sub-batch
        accumulated = [g / len(pieces) for g in accumulated]
    apply(model, accumulated, trainable)
    logs = dict(logs)
    logs["batch_loss"] = sum(batch_losses) / len(batch_losses)
    return logs
