"""The sharpness-aware train step on the JAX backend (the only JAX-specific part of SAM).

Keras' JAX trainer is functional: `train_step(state, data)` receives the values of every
variable and returns new ones, so "restoring w" after the perturbed pass is free (pass 2 simply
never returns its state). The gradient call is `jax.value_and_grad` over the trainer's own
`compute_loss_and_updates`, which also handles forward-pass losses and loss scaling.
"""

import jax
import keras

from tf_lanmax.sam.batches import sub_batches
from tf_lanmax.sam.lookbehind import interpolate, is_plain
from tf_lanmax.sam.perturbation import perturbation


def update_metrics(model, metrics_variables, loss, x, y, y_pred, sample_weight):
    """The loss tracker and compiled metrics, updated statelessly (as Keras' JAX trainer does)."""
    mapping = list(zip(model.metrics_variables, metrics_variables, strict=True))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        tracker = next((m for m in model.metrics if m.name == "loss"), None)
        if tracker is not None:
            size = next(t for t in keras.tree.flatten(x) if t is not None).shape[0]
            tracker.update_state(loss, sample_weight=size)
        logs = model.compute_metrics(x, y, y_pred, sample_weight)
    updated = []
    for variable in model.metrics_variables:
        value = scope.get_current_value(variable)
        updated.append(variable.value if value is None else value)
    return logs, updated


def add(accumulated, grads):
    """The running sum of sub-batch gradients."""
    if accumulated is None:
        return list(grads)
    return [a + g for a, g in zip(accumulated, grads, strict=True)]


def sharpness_aware_train_step(model, state, data):
    """One SAM / ASAM / SAMSON step (with Lookbehind when k > 1) of `model` on `data`.

    Args:
        model: the `SharpnessAwareModel`.
        state: (trainable, non-trainable, optimizer, metrics) variable values.
        data: one batch, (x, y[, sample_weight]).

    Returns:
        (logs, new state), the contract of `keras.Model.train_step` on JAX.
    """
    trainable, non_trainable, optimizer_values, metrics_values = state
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    pieces = sub_batches(x, y, sample_weight, model.num_batch_splits)
    flags = model.weight_flags()
    steps, alpha = model.lookbehind_steps, model.lookbehind_alpha
    grad_fn = jax.value_and_grad(model.compute_loss_and_updates, has_aux=True)
    slow, fast = trainable, trainable
    chains, batch_losses, logs, first = [], [], {}, None
    for step in range(steps):
        accumulated = None
        for j, (xs, ys, ws) in enumerate(pieces):
            if step == 0:
                # Common random numbers: later passes start from the pre-pass-1 draw state.
                before = non_trainable
                (_, aux), grads = grad_fn(
                    slow,
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
                logs, metrics_values = update_metrics(
                    model, metrics_values, loss, xs, ys, y_pred, ws
                )
                chains.append((non_trainable if model.resample_faults else before, slow, grads))
            pass_state, point, grads = chains[j]
            # The rules are scale-free in g, so the (loss-scaled) gradient gives the same eps.
            eps = perturbation(model.rule, point, grads, model.rho, model.eta, model.p, flags)
            point = [w + e.astype(w.dtype) for w, e in zip(point, eps, strict=True)]
            _, adv_grads = grad_fn(
                point,
                pass_state,
                metrics_values,
                xs,
                ys,
                ws,
                training=True,
                optimizer_variables=optimizer_values,
            )
            chains[j] = (pass_state, point, adv_grads)
            accumulated = add(accumulated, adv_grads)
        if len(pieces) > 1:  # the mean keeps the step size of k = 1 (as the TensorFlow step)
            accumulated = [g / len(pieces) for g in accumulated]
        fast, optimizer_values = model.optimizer.stateless_apply(
            optimizer_values, accumulated, fast
        )
        if step == 0:
            first = fast
    trainable = fast if is_plain(steps, alpha) else interpolate(slow, fast, alpha, first)
    logs = dict(logs)
    logs["batch_loss"] = sum(batch_losses) / len(batch_losses)
    return logs, (trainable, non_trainable, optimizer_values, metrics_values)
