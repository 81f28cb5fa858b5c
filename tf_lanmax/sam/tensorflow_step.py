"""The sharpness-aware train step on the TensorFlow backend (the only backend-specific part)."""

import keras
import tensorflow as tf

from tf_lanmax.sam.perturbation import perturbation


def _replicas():
    context = tf.distribute.get_replica_context()
    return context.num_replicas_in_sync if context is not None else 1


def _split(structure, k):
    """k sub-batches of `structure`, each as the flat list of its tensors (None stays None)."""
    if structure is None:
        return [None] * k
    flat = tf.nest.flatten(structure)
    if k == 1:
        return [flat]
    return list(zip(*[tf.split(t, k, axis=0) for t in flat], strict=True))


def _check_divisible(x, k):
    batch = tf.nest.flatten(x)[0].shape[0]
    if batch is not None and batch % k:
        raise ValueError(
            f"`num_batch_splits` must divide the batch size. Received: num_batch_splits={k} "
            f"for a batch of {batch}"
        )
    if batch is None and k > 1:
        tf.debugging.assert_equal(
            tf.shape(tf.nest.flatten(x)[0])[0] % k,
            0,
            message=f"`num_batch_splits`={k} must divide the batch size",
        )


def _snapshot(variables):
    # `Variable.value` is the live tf.Variable on this backend: read it now, in program order.
    return [tf.identity(v.value) for v in variables]


def _unflatten(like, parts):
    return None if like is None else tf.nest.pack_sequence_as(like, list(parts))


def dense(grads, like):
    """`grads` with None as zeros and `tf.IndexedSlices` (Embedding gradients) densified.

    Densifying sums the slices of repeated indices, so norms and sums are those of the true
    gradient; the norm of the raw slices' values counts each repeated row separately.
    """
    return [
        tf.zeros_like(w) if g is None else tf.convert_to_tensor(g)
        for g, w in zip(grads, like, strict=True)
    ]


def sharpness_aware_train_step(model, data):
    """One SAM / ASAM / SAMSON step of `model` (a `SharpnessAwareModel`) on `data`."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    k = model.num_batch_splits
    _check_divisible(x, k)
    trainable = model.trainable_variables
    flags = model.weight_flags()
    loss_tracker = next((m for m in model.metrics if m.name == "loss"), None)
    pieces = zip(_split(x, k), _split(y, k), _split(sample_weight, k), strict=True)
    accumulated, batch_losses, logs = None, [], {}
    for xs, ys, ws in pieces:
        xs, ys = _unflatten(x, xs), _unflatten(y, ys)
        ws = _unflatten(sample_weight, ws)
        # Common random numbers: pass 2 starts from the pre-pass-1 draw state.
        before = _snapshot(model.non_trainable_variables)
        with tf.GradientTape() as tape:
            y_pred = model(xs, training=True)
            loss = model.compute_loss(x=xs, y=ys, y_pred=y_pred, sample_weight=ws, training=True)
            scaled = model.optimizer.scale_loss(loss)
        grads = dense(tape.gradient(scaled, trainable), trainable)
        unscaled = loss * _replicas()  # compute_loss divides by the replicas for aggregation
        batch_losses.append(unscaled)
        if loss_tracker is not None:
            size = tf.shape(tf.nest.flatten(xs)[0])[0]
            loss_tracker.update_state(unscaled, sample_weight=size)
        logs = model.compute_metrics(xs, ys, y_pred, sample_weight=ws)

        weights = _snapshot(trainable)
        eps = perturbation(model.rule, weights, grads, model.rho, model.eta, model.p, flags)
        perturbed = [w + tf.cast(e, w.dtype) for w, e in zip(weights, eps, strict=True)]
        state = (
            [v.value for v in model.non_trainable_variables] if model.resample_faults else before
        )
        metrics_values = _snapshot(model.metrics_variables)
        with tf.GradientTape() as tape:
            tape.watch(perturbed)
            y_adv, state_after = model.stateless_call(perturbed, state, xs, training=True)
            adv_loss, _ = model.stateless_compute_loss(
                perturbed,
                state_after,
                metrics_values,
                x=xs,
                y=ys,
                y_pred=y_adv,
                sample_weight=ws,
                training=True,
            )
            adv_scaled = model.optimizer.scale_loss(adv_loss)
        adv_grads = tape.gradient(adv_scaled, perturbed)
        adv_grads = [
            tf.zeros_like(w) if g is None else g for g, w in zip(adv_grads, weights, strict=True)
        ]
        if accumulated is None:
            accumulated = adv_grads
        else:
            accumulated = [  # densified: IndexedSlices do not add
                tf.convert_to_tensor(a) + tf.convert_to_tensor(g)
                for a, g in zip(accumulated, adv_grads, strict=True)
            ]
    if k > 1:  # tf-keras summed the sub-batch gradients; the mean keeps the step size of k = 1
        accumulated = [g / k for g in accumulated]
    model.optimizer.apply_gradients(zip(accumulated, trainable, strict=True))
    logs = dict(logs)
    logs["batch_loss"] = tf.add_n(batch_losses) / len(batch_losses)
    return logs
