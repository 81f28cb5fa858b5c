"""The sharpness-aware train step on the torch backend (the only torch-specific part of SAM).

Keras' torch trainer is stateful and eager, as TensorFlow's: pass 1 is the model's own training
call (it updates BatchNorm statistics and advances the fault draws), and the perturbed passes are
`stateless_call`s on detached copies of the weights, differentiated with `torch.autograd.grad`,
so the variables are never modified until the optimizer applies the gradient.

Common random numbers cover torch's global generators too: Keras' unseeded `Dropout` on torch
draws from them (`torch.nn.functional.dropout`), not from a layer's seed state, so the perturbed
passes replay the global generator state pass 1 started from, and leave it where pass 1 left it.
"""

import contextlib

import keras
import torch

from tf_lanmax.sam.batches import sub_batches
from tf_lanmax.sam.lookbehind import ADAPTIVE, interpolate, is_plain
from tf_lanmax.sam.perturbation import perturbation
from tf_lanmax.sam.stateless_loss import stateless_loss


def snapshot(variables):
    """Detached copies of the values of `variables` (assignments write in place on torch)."""
    return [v.value.detach().clone() for v in variables]


def global_rng_state():
    """The states of torch's global generators: the CPU one, and each CUDA device's when CUDA
    is initialised (None otherwise). Unseeded torch draws, as Keras' unseeded Dropout, read them.
    """
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return torch.get_rng_state(), cuda


@contextlib.contextmanager
def replaying(rng_state):
    """Runs the block from the global generator state `rng_state` (of `global_rng_state`), then
    puts back the state the block found, so the block's draws leave no trace.

    >>> state = global_rng_state()
    >>> first = torch.rand(2)
    >>> with replaying(state):
    ...     again = torch.rand(2)
    >>> bool(torch.equal(first, again)), bool(torch.equal(torch.rand(2), first))
    (True, False)
    """
    cpu, cuda = rng_state
    devices = range(len(cuda)) if cuda is not None else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        yield


def _grads(scaled, inputs):
    grads = torch.autograd.grad(scaled, inputs, allow_unused=True)
    return [torch.zeros_like(w) if g is None else g for g, w in zip(grads, inputs, strict=True)]


def add(accumulated, grads):
    """The running sum of sub-batch gradients."""
    if accumulated is None:
        return list(grads)
    return [a + g for a, g in zip(accumulated, grads, strict=True)]


def record_loss_and_metrics(model, loss, xs, ys, y_pred, ws):
    """Updates the loss tracker and compiled metrics; returns the metric logs."""
    tracker = next((m for m in model.metrics if m.name == "loss"), None)
    if tracker is not None:
        size = next(t for t in keras.tree.flatten(xs) if t is not None).shape[0]
        tracker.update_state(loss.detach(), sample_weight=size)
    return model.compute_metrics(xs, ys, y_pred.detach(), sample_weight=ws)


def stateless_gradients(model, values, state, xs, ys, ws):
    """Loss-scaled gradients of the training loss at trainable `values`, without side effects.

    Forward-pass losses (`add_loss`, activity regularisers) are included through the model's
    `_losses_override`, as the TensorFlow step does.

    Returns:
        (gradients with None as zeros, loss, y_pred, the non-trainable values after the pass).
    """
    values = [v.detach().requires_grad_(True) for v in values]
    metrics_values = [v.value.detach() for v in model.metrics_variables]
    loss, y_pred, state_after = stateless_loss(model, values, state, metrics_values, xs, ys, ws)
    grads = _grads(model.optimizer.scale_loss(loss), values)
    return grads, loss.detach(), y_pred.detach(), [s.detach() for s in state_after]


def _training_pass(model, xs, ys, ws, trainable):
    # Stateful pass at w: updates BatchNorm statistics and advances the random draws.
    y_pred = model(xs, training=True)
    loss = model.compute_loss(x=xs, y=ys, y_pred=y_pred, sample_weight=ws, training=True)
    grads = _grads(model.optimizer.scale_loss(loss), [v.value for v in trainable])
    return grads, loss.detach(), y_pred


def apply(model, grads, variables):
    """The optimizer's step with `grads` on `variables` (outside autograd, as Keras does)."""
    with torch.no_grad():
        model.optimizer.apply(grads, variables)


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
                # Common random numbers: later passes start from the pre-pass-1 draw state
                # (the layers' seed states and torch's global generators).
                start = snapshot(model.non_trainable_variables), global_rng_state()
                grads, loss, y_pred = _training_pass(model, xs, ys, ws, trainable)
                logs = record_loss_and_metrics(model, loss, xs, ys, y_pred, ws)
                batch_losses.append(loss)
                if model.resample_faults:
                    start = snapshot(model.non_trainable_variables), global_rng_state()
                chains.append((start, slow, grads))
            (state, rng_state), point, grads = chains[j]
            with torch.no_grad():
                eps = perturbation(model.rule, point, grads, model.rho, model.eta, model.p, flags)
                point = [w + e.to(w.dtype) for w, e in zip(point, eps, strict=True)]
            with replaying(rng_state):
                adv_grads, _, _, _ = stateless_gradients(model, point, state, xs, ys, ws)
            chains[j] = ((state, rng_state), point, adv_grads)
            accumulated = add(accumulated, adv_grads)
        if len(pieces) > 1:  # the mean keeps the step size of k = 1 (as the TensorFlow step)
            accumulated = [g / len(pieces) for g in accumulated]
        apply(model, accumulated, trainable)
        if step == 0 and alpha == ADAPTIVE and steps > 1:
            first = snapshot(trainable)
    if not is_plain(steps, alpha):
        fast = snapshot(trainable)
        with torch.no_grad():
            for v, value in zip(trainable, interpolate(slow, fast, alpha, first), strict=True):
                v.assign(value)
    logs = dict(logs)
    logs["batch_loss"] = sum(batch_losses) / len(batch_losses)
    return logs
