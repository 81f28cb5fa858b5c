"""What LaNMax reads from and puts back into a model around a mid-epoch resume (Keras 3 API).

On JAX, `fit` keeps the variables' values in its own state during an epoch: callers read
`callback.model` first, which syncs that state into the variables, and the trainer takes the
next step's state from the variables again after such a sync.
"""

import numpy as np
from keras import ops

from tf_lanmax.distribute import is_chief


def capture(model):
    """Host copies of the model's variables (weights, seed states, p) and the optimizer's.

    Returns:
        A list of `(variable, numpy value)` pairs, each variable once.
    """
    variables = [*model.trainable_variables, *model.non_trainable_variables]
    variables += list(model.optimizer.variables)
    unique = {id(variable): variable for variable in variables}
    return [(v, ops.convert_to_numpy(v.value)) for v in unique.values()]


def restore(snapshot):
    """Assigns the values of a `capture` back."""
    for variable, value in snapshot:
        variable.assign(value)


def metric_values(model):
    """The compiled metrics' variables (the loss tracker's sum and count among them), as lists."""
    return [ops.convert_to_numpy(v.value).tolist() for v in model.metrics_variables]


def restore_metric_values(model, values):
    """Assigns values from `metric_values` back, in the same order.

    Returns:
        Whether they were assigned: `False` (nothing assigned) when the model's metrics
        variables are not the ones the values came from.
    """
    variables = model.metrics_variables
    if values is None or len(values) != len(variables):
        return False
    arrays = [np.asarray(value, dtype=v.dtype) for v, value in zip(variables, values)]
    if any(a.shape != tuple(v.shape) for v, a in zip(variables, arrays)):
        return False
    for variable, array in zip(variables, arrays):
        variable.assign(array)
    return True


def optimizer_step(model):
    """The optimizer's step count: saved with the weights, so it names a restored position."""
    return int(ops.convert_to_numpy(model.optimizer.iterations.value))


def worker_name(model):
    """`None` on the chief (or alone); `"<task type>-<index>"` on another multi-worker task."""
    strategy = getattr(model, "distribute_strategy", None)
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or is_chief(strategy):
        return None
    return f"{resolver.task_type}-{resolver.task_id}"
