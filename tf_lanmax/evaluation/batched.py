"""Batched Monte-Carlo passes: every draw of some weights evaluated per data batch, in one call.

`DrawPasses` evaluates a compiled model under K draws of some of its variables (the faulty
layers' seed states, or noisy kernels). Per data batch, one compiled function runs the K draws,
each as Keras' own test step run statelessly (`keras.StatelessScope`: the model's forward pass,
`model.compute_loss` and `model.compute_metrics` on per-draw copies of the drawn variables and of
the metric state), so each draw gives exactly what `model.evaluate` would give with those values,
without K `evaluate` calls. Backend-agnostic (`keras.ops`); only the function compiler is
backend code (`tf_lanmax._compile`).
"""

import inspect

import keras
import numpy as np
from keras import ops

from tf_lanmax._compile import compile_function
from tf_lanmax._draw_runner import COMPILED_STEPS, chunks
from tf_lanmax._validation import check_int, check_one_of

#: How the draws of one data batch are run: "batched" loops over them inside one compiled pass
#: (`keras.ops.fori_loop`: the fastest on CPU), "vectorized" maps them on a draw axis
#: (`keras.ops.vectorized_map`: `tf.vectorized_map` / `jax.vmap`), "sequential" is K
#: `model.evaluate` calls (the reference).
METHODS = ("batched", "vectorized", "sequential")


def check_method(method, batch_draws):
    """Validates `method` and `batch_draws`; returns them (`batch_draws` may stay None)."""
    method = check_one_of("method", method, METHODS)
    if batch_draws is not None:
        batch_draws = check_int("batch_draws", batch_draws, low=1)
    return method, batch_draws


def _to_tensor(value):
    if value is None:
        return None
    if keras.backend.backend() != "tensorflow":
        value = np.asarray(value)  # tf.data yields TensorFlow tensors.
    return ops.convert_to_tensor(value)


def _num_samples(x):
    return int(ops.shape(keras.tree.flatten(x)[0])[0])


def _unsupported(what):
    return ValueError(
        f"The batched Monte-Carlo evaluation does not support {what}. Pass "
        "`method='sequential'` (K `model.evaluate` calls) instead."
    )


def iterate_batches(data, batch_size=None):
    """Yields `(x, y, sample_weight)` backend tensors for each batch of `data`, in order.

    Args:
        data: an `(x, y)` tuple of arrays (sliced in order into batches of `batch_size`, as
            `model.evaluate` does) or a re-iterable of `(x, y)` / `(x, y, sample_weight)`
            batches such as a `tf.data.Dataset`.
        batch_size: batch size for arrays. Defaults to `None` (Keras' 32).

    Raises:
        ValueError: for a one-shot iterator (the data is read once per chunk of draws) or
            batches without labels.
    """
    if isinstance(data, tuple) and len(data) == 2:
        x, y = data
        for chunk in chunks(len(keras.tree.flatten(x)[0]), batch_size or 32):
            cut = chunk.slice
            yield (
                keras.tree.map_structure(lambda a, cut=cut: _to_tensor(a[cut]), x),
                keras.tree.map_structure(lambda a, cut=cut: _to_tensor(a[cut]), y),
                None,
            )
        return
    if isinstance(data, tuple):
        raise ValueError(
            "`data` must be an `(x, y)` tuple of arrays or a re-iterable of `(x, y)` batches. "
            f"Received a tuple of {len(data)} items."
        )
    if iter(data) is data:
        raise _unsupported(
            "a one-shot iterator or generator as `data` (it is read once per chunk of draws); "
            "pass a `tf.data.Dataset` or an `(x, y)` tuple"
        )
    for batch in data:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        if y is None:
            raise ValueError(
                "`data` must yield `(x, y)` or `(x, y, sample_weight)` batches. Received a "
                "batch without labels."
            )
        yield (
            keras.tree.map_structure(_to_tensor, x),
            keras.tree.map_structure(_to_tensor, y),
            None if sample_weight is None else keras.tree.map_structure(_to_tensor, sample_weight),
        )


class DrawPasses:
    """Evaluates a compiled model under many draws of some of its variables, batch by batch.

    Draw k replaces each variable in `variables` by its own value `values[i][k]` and runs the
    model's test step on every batch of `data` in order. A drawn non-trainable variable (a seed
    state) is carried: its value after a batch starts the next batch of the same draw, as
    `model.evaluate` carries the layer's state from batch to batch. A drawn trainable variable
    (a noisy kernel) is read-only input, never copied back. Every other variable keeps its
    current value. Draws are independent, so a draw's result does not depend on which other
    draws share its pass.

    Args:
        model: a built, compiled Keras model.
        data: an `(x, y)` tuple of arrays or a re-iterable of batches (`tf.data.Dataset`).
        variables: the model variables that differ between draws.
        batch_draws: draws per compiled pass (the chunk size; memory grows with it under
            `"vectorized"`).
        batch_size: batch size for arrays. Defaults to `None` (Keras' 32).
        method: `"batched"` or `"vectorized"`. Defaults to `"batched"`.
        cache: the `StepCache` keeping the compiled step for the next evaluation of this model
            with these variables. Defaults to `COMPILED_STEPS` (shared with MemSE's Monte-Carlo).

    Example:
    >>> states = [layer.seed_generator.state for layer in tl.layers.faulty_layers(model)]
    >>> passes = DrawPasses(model, (x, y), states, 8)
    >>> start = [keras.ops.convert_to_numpy(state.value) for state in states]
    >>> per_draw = [np.stack([s + k for k in range(8)]) for s in start]  # draw k's seed states
    >>> results = passes.evaluate(per_draw)  # one dict of metrics per draw
    >>> len(results), sorted(results[0])
    (8, ['accuracy', 'loss'])
    """

    def __init__(
        self,
        model,
        data,
        variables,
        batch_draws,
        batch_size=None,
        method="batched",
        cache=COMPILED_STEPS,
    ):
        method = check_one_of("method", method, METHODS[:2])
        self.batch_draws = check_int("batch_draws", batch_draws, low=1)
        if not getattr(model, "compiled", False):
            raise ValueError(
                f"Model '{model.name}' must be compiled (with a loss and metrics) first."
            )
        self.model, self.data, self.batch_size = model, data, batch_size
        self.variables = list(variables)
        self._all = list(model.trainable_variables) + list(model.non_trainable_variables)
        ids = [id(v) for v in self._all]
        missing = [v.path for v in self.variables if id(v) not in ids]
        if missing:
            raise ValueError(f"Variables {missing} are not variables of model '{model.name}'.")
        self._positions = [ids.index(id(v)) for v in self.variables]
        # A forward pass may assign non-trainable variables (seed states), never trainable ones:
        # only the former go round the loop (copying a stack of noisy kernels per draw is slow).
        self._fixed = [i for i, v in enumerate(self.variables) if v.trainable]
        self._carried = [i for i, v in enumerate(self.variables) if not v.trainable]
        self._build_metrics()
        self._metric_vars = list(model.metrics_variables)
        key = (
            "evaluation.DrawPasses",
            id(model),
            method,
            self.batch_draws,
            tuple(id(v) for v in self._all),
            tuple(self._positions),
            tuple(self._fixed),
            tuple(id(v) for v in self._metric_vars),
        )
        self._step = cache.get(
            key, lambda: compile_function(self._make_step(loop=method == "batched")), owner=model
        )

    def _build_metrics(self):
        # The compiled metrics create their variables on first use, which a stateless scope
        # forbids: run one eager update on the first batch, then reset the model's metrics.
        model = self.model
        try:
            x, y, sample_weight = next(iterate_batches(self.data, self.batch_size))
        except StopIteration:
            raise ValueError("`data` holds no batch.") from None
        y_pred, _ = model.stateless_call(
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            x,
            training=False,
        )
        model.compute_metrics(x, y, y_pred, sample_weight)
        model.reset_metrics()

    def _make_step(self, loop):
        # Locals only: the cached step must not keep this object (and its data) alive.
        model, all_vars, metric_vars = self.model, self._all, self._metric_vars
        batch_draws, fixed_at, carried_at = self.batch_draws, self._fixed, self._carried
        fixed_positions = [self._positions[i] for i in fixed_at]
        carried_positions = [self._positions[i] for i in carried_at]
        carried_vars = [self.variables[i] for i in carried_at]
        loss_kwargs = {}
        if "training" in inspect.signature(model.compute_loss).parameters:
            loss_kwargs["training"] = False

        def one_draw(base, fixed, carried, metric_values, x, y, sample_weight):
            current = list(base)
            for position, value in zip(
                fixed_positions + carried_positions, fixed + carried, strict=True
            ):
                current[position] = value
            mapping = list(zip(all_vars, current, strict=True))
            mapping += list(zip(metric_vars, metric_values, strict=True))
            # Keras' test step, statelessly: activity losses are collected in the scope so
            # `compute_loss` sees them, as in `model.evaluate`.
            with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
                y_pred = model(x, training=False)
                loss = model.compute_loss(x, y, y_pred, sample_weight, **loss_kwargs)
                model.compute_metrics(x, y, y_pred, sample_weight)
            return (
                ops.cast(loss, "float32"),
                [scope.get_current_value(v) for v in carried_vars],
                [scope.get_current_value(v) for v in metric_vars],
            )

        def put(stack, k, value):
            start = [k] + [0] * (len(stack.shape) - 1)
            return ops.slice_update(stack, start, ops.expand_dims(ops.cast(value, stack.dtype), 0))

        def step(base, fixed, carried, metric_values, active, x, y, sample_weight):
            if not loop:
                return ops.vectorized_map(
                    lambda e: one_draw(base, e[0], e[1], e[2], x, y, sample_weight),
                    (fixed, carried, metric_values),
                )

            def body(k, state):
                carried, metric_values, losses = state
                loss, new_carried, new_metrics = one_draw(
                    base,
                    [f[k] for f in fixed],
                    [c[k] for c in carried],
                    [m[k] for m in metric_values],
                    x,
                    y,
                    sample_weight,
                )
                return (
                    [put(c, k, v) for c, v in zip(carried, new_carried, strict=True)],
                    [put(m, k, v) for m, v in zip(metric_values, new_metrics, strict=True)],
                    put(losses, k, loss),
                )

            losses = ops.zeros((batch_draws,), "float32")
            carried, metric_values, losses = ops.fori_loop(
                0, active, body, (list(carried), list(metric_values), losses)
            )
            return losses, carried, metric_values

        return step

    def evaluate(self, values):
        """Runs the draws given by `values` over the whole data set.

        Args:
            values: one array per drawn variable, shaped ``(K,) + variable.shape``: draw k's
                starting value of each variable.

        Returns:
            A list of K dicts ``{metric name: float}`` (what `model.evaluate(return_dict=True)`
            returns for that draw; `"loss"` is the sample-weighted mean batch loss).
        """
        values = [np.asarray(v) for v in values]
        if len(values) != len(self.variables):
            raise ValueError(f"Expected {len(self.variables)} value arrays, got {len(values)}.")
        total = len(values[0]) if values else 0
        results = []
        for chunk in chunks(total, self.batch_draws, pad=True):
            results += self._evaluate_chunk(chunk, [v[chunk.slice] for v in values])
        return results

    def _evaluate_chunk(self, chunk, values):
        n, size = chunk.count, chunk.width
        # Padded to `batch_draws` rows so every chunk has one shape (one trace); the loop runs
        # only the `n` real draws, the vectorised map computes the copies, dropped below.
        drawn = [ops.convert_to_tensor(chunk.pad(v)) for v in values]
        drawn = [ops.cast(d, v.dtype) for d, v in zip(drawn, self.variables, strict=True)]
        fixed = [drawn[i] for i in self._fixed]
        carried = [drawn[i] for i in self._carried]
        metric_values = [
            ops.broadcast_to(ops.expand_dims(ops.convert_to_tensor(v.value), 0), (size, *v.shape))
            for v in self._metric_vars
        ]
        base = [ops.convert_to_tensor(v.value) for v in self._all]
        active = ops.convert_to_tensor(n, "int32")
        loss_sums, count = np.zeros(size), 0
        for x, y, sample_weight in iterate_batches(self.data, self.batch_size):
            losses, carried, metric_values = self._step(
                base, fixed, carried, metric_values, active, x, y, sample_weight
            )
            batch = _num_samples(x)
            loss_sums += np.asarray(ops.convert_to_numpy(losses), np.float64) * batch
            count += batch
        metric_values = [chunk.drop(ops.convert_to_numpy(m)) for m in metric_values]
        loss_sums = chunk.drop(loss_sums)
        results = []
        for k in range(n):
            mapping = [(v, m[k]) for v, m in zip(self._metric_vars, metric_values, strict=True)]
            with keras.StatelessScope(state_mapping=mapping):
                logs = self.model.get_metrics_result()
            row = {}
            for name, value in logs.items():
                value = np.asarray(ops.convert_to_numpy(value))
                if value.size == 1:
                    row[name] = float(value.reshape(()))
            row["loss"] = float(loss_sums[k] / max(count, 1))
            results.append(row)
        return results
