"""The sharpness-aware train step on the JAX backend (the only JAX-specific part of SAM).

Keras' JAX trainer is functional: `train_step(state, data)` receives the values of every
variable and returns new ones, so "restoring w" after the perturbed pass is free (pass 2 simply
never returns its state). The gradient call is `jax.value_and_grad` over the trainer's own
`compute_loss_and_updates`, which also handles forward-pass losses and loss scaling.
"""

import jax
import keras

from tf_lanmax.sam.perturbation import perturbation


def _split(structure, k):
    """k equal sub-batches of `structure` (None stays None)."""
    if structure is None or k == 1:
        return [structure] * k

    def piece(i):
        def take(t):
            size = t.shape[0] // k
            return t[i * size : (i + 1) * size]

        return keras.tree.map_structure(take, structure)

    return [piece(i) for i in range(k)]


def _check_divisible(x, k):
    batch = keras.tree.flatten(x)[0].shape[0]
    if batch % k:
        raise ValueError(
            f"`num_batch_splits` must divide the batch size. Received: num_batch_splits={k} "
            f"for a batch of {batch}"
        )


def _update_metrics(model, metrics_variables, loss, x, y, y_pred, sample_weight):
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


def sharpness_aware_train_step(model, state, data):
    """One SAM / ASAM / SAMSON step of `model` (a `SharpnessAwareModel`) on `data`.

    Args:
        model: the `SharpnessAwareModel`.
        state: (trainable, non-trainable, optimizer, metrics) variable values.
        data: one batch, (x, y[, sample_weight]).

    Returns:
        (logs, new state), the contract of `keras.Model.train_step` on JAX.
    """
    trainable, non_trainable, optimizer_values, metrics_values = state
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    k = model.num_batch_splits
    _check_divisible(x, k)
    flags = model.weight_flags()
    grad_fn = jax.value_and_grad(model.compute_loss_and_updates, has_aux=True)
    accumulated, batch_losses, logs = None, [], {}
    pieces = zip(_split(x, k), _split(y, k), _split(sample_weight, k), strict=True)
    for xs, ys, ws in pieces:
        # Common random numbers: pass 2 starts from the pre-pass-1 draw state.
        before = non_trainable
        (_, aux), grads = grad_fn(
            trainable,
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
        logs, metrics_values = _update_metrics(model, metrics_values, loss, xs, ys, y_pred, ws)

        # The rules are scale-free in g, so the (loss-scaled) gradient gives the same eps.
        eps = perturbation(model.rule, trainable, grads, model.rho, model.eta, model.p, flags)
        perturbed = [w + e.astype(w.dtype) for w, e in zip(trainable, eps, strict=True)]
        state_2 = non_trainable if model.resample_faults else before
        _, adv_grads = grad_fn(
            perturbed,
            state_2,
            metrics_values,
            xs,
            ys,
            ws,
            training=True,
            optimizer_variables=optimizer_values,
        )
        if accumulated is None:
            accumulated = list(adv_grads)
        else:
            accumulated = [a + g for a, g in zip(accumulated, adv_grads, strict=True)]
    if k > 1:  # the mean keeps the step size of k = 1 (as the TensorFlow step does)
        accumulated = [g / k for g in accumulated]
    trainable, optimizer_values = model.optimizer.stateless_apply(
        optimizer_values, accumulated, trainable
    )
    logs = dict(logs)
    logs["batch_loss"] = sum(batch_losses) / len(batch_losses)
    return logs, (trainable, non_trainable, optimizer_values, metrics_values)
