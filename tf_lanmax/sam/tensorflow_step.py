"""The sharpness-aware train step on the TensorFlow backend (the only backend-specific part)."""

import keras
import tensorflow as tf

from tf_lanmax.sam.lookbehind import ADAPTIVE, interpolate, is_plain
from tf_lanmax.sam.perturbation import perturbation
from tf_lanmax.sam.stateless_loss import stateless_loss


def _replicas():
    context = tf.distribute.get_replica_context()
    return context.num_replicas_in_sync if context is not None else 1


def split(structure, k):
    """k sub-batches of `structure`, each as the flat list of its tensors (None stays None)."""
    if structure is None:
        return [None] * k
    flat = tf.nest.flatten(structure)
    if k == 1:
        return [flat]
    return list(zip(*[tf.split(t, k, axis=0) for t in flat], strict=True))


def sub_batches(x, y, sample_weight, k):
    """The k (x, y, sample_weight) sub-batches of a batch, in their original structures."""
    check_divisible(x, k)
    pieces = zip(split(x, k), split(y, k), split(sample_weight, k), strict=True)
    return [
        (_unflatten(x, xs), _unflatten(y, ys), _unflatten(sample_weight, ws))
        for xs, ys, ws in pieces
    ]


def check_divisible(x, k):
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


def snapshot(variables):
    """The values of `variables`, read now, in program order."""
    # `Variable.value` is the live tf.Variable on this backend: tf.identity pins the read.
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


def _zeros_for_none(grads, like):
    return [tf.zeros_like(w) if g is None else g for g, w in zip(grads, like, strict=True)]


def add(accumulated, grads):
    """The running sum of sub-batch gradients (densified: IndexedSlices do not add)."""
    if accumulated is None:
        return grads
    return [
        tf.convert_to_tensor(a) + tf.convert_to_tensor(g)
        for a, g in zip(accumulated, grads, strict=True)
    ]


def record_loss_and_metrics(model, loss, xs, ys, y_pred, ws):
    """Updates the loss tracker and compiled metrics; returns (unscaled loss, metric logs)."""
    unscaled = loss * _replicas()  # compute_loss divides by the replicas for aggregation
    tracker = next((m for m in model.metrics if m.name == "loss"), None)
    if tracker is not None:
        tracker.update_state(unscaled, sample_weight=tf.shape(tf.nest.flatten(xs)[0])[0])
    return unscaled, model.compute_metrics(xs, ys, y_pred, sample_weight=ws)


def stateless_gradients(model, values, state, xs, ys, ws):
    """Loss-scaled gradients of the training loss at trainable `values`, without side effects.

    Forward-pass losses (`add_loss`, activity regularisers) are included, as Keras' JAX trainer
    does, through the model's `_losses_override`.

    Returns:
        (gradients with None as zeros, loss, y_pred, the non-trainable values after the pass).
    """
    metrics_values = snapshot(model.metrics_variables)
    with tf.GradientTape() as tape:
        tape.watch(values)
        loss, y_pred, state_after = stateless_loss(model, values, state, metrics_values, xs, ys, ws)
        scaled = model.optimizer.scale_loss(loss)
    grads = tape.gradient(scaled, values)
    return _zeros_for_none(grads, values), loss, y_pred, state_after


def _training_pass(model, xs, ys, ws, trainable):
    # Stateful pass at w: updates BatchNorm statistics and advances the random draws.
    with tf.GradientTape() as tape:
        y_pred = model(xs, training=True)
        loss = model.compute_loss(x=xs, y=ys, y_pred=y_pred, sample_weight=ws, training=True)
        scaled = model.optimizer.scale_loss(loss)
    return dense(tape.gradient(scaled, trainable), trainable), loss, y_pred


def sharpness_aware_train_step(model, data):
    """One SAM / ASAM / SAMSON step (with Lookbehind when k > 1) of `model` on `data`."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    pieces = sub_batches(x, y, sample_weight, model.num_batch_splits)
    trainable = model.trainable_variables
    flags = model.weight_flags()
    steps, alpha = model.lookbehind_steps, model.lookbehind_alpha
    slow = snapshot(trainable)  # w: the start of every ascent chain and the slow weights
    chains, batch_losses, logs, first = [], [], {}, None
    for step in range(steps):
        accumulated = None
        for j, (xs, ys, ws) in enumerate(pieces):
            if step == 0:
                # Common random numbers: later passes start from the pre-pass-1 draw state.
                before = snapshot(model.non_trainable_variables)
                grads, loss, y_pred = _training_pass(model, xs, ys, ws, trainable)
                unscaled, logs = record_loss_and_metrics(model, loss, xs, ys, y_pred, ws)
                batch_losses.append(unscaled)
                state = snapshot(model.non_trainable_variables) if model.resample_faults else before
                chains.append((state, slow, grads))
            state, point, grads = chains[j]
            eps = perturbation(model.rule, point, grads, model.rho, model.eta, model.p, flags)
            point = [w + tf.cast(e, w.dtype) for w, e in zip(point, eps, strict=True)]
            adv_grads, _, _, _ = stateless_gradients(model, point, state, xs, ys, ws)
            if step + 1 < steps:  # the next ascent starts from this gradient
                chains[j] = (state, point, dense(adv_grads, point))
            accumulated = add(accumulated, adv_grads)
        if len(pieces) > 1:  # tf-keras summed the sub-batch gradients; the mean keeps the step
            accumulated = [g / len(pieces) for g in accumulated]
        model.optimizer.apply_gradients(zip(accumulated, trainable, strict=True))
        if step == 0 and alpha == ADAPTIVE and steps > 1:
            first = snapshot(trainable)
    if not is_plain(steps, alpha):
        fast = snapshot(trainable)
        for v, value in zip(trainable, interpolate(slow, fast, alpha, first), strict=True):
            v.assign(value)
    logs = dict(logs)
    logs["batch_loss"] = tf.add_n(batch_losses) / len(batch_losses)
    return logs
