"""Multi-worker training helpers: the chief, a seed every worker shares, a working strategy.

Under `tf.distribute.MultiWorkerMirroredStrategy` every worker runs the same script, so every
worker runs its own callbacks. Two things follow: whatever a callback draws at random must be
drawn identically on every worker (LaNMax's perturbed p: replicas must run the same fault
rates), and files must be written once, by the chief — the other workers write to a temporary
folder they delete (TensorFlow's multi-worker guide). This module answers both without
importing TensorFlow: it reads the strategy's cluster resolver, or `TF_CONFIG` (the variable
the resolver itself reads) when no strategy is given. `multi_worker_strategy` (TensorFlow
only) is the strategy to train with: Keras 3.15's `fit` fails under the stock one.
"""

import json
import os

import keras
import numpy as np

_WORKER_JOBS = ("chief", "worker")


def _cluster(strategy):
    """({job: [addresses]}, task type, task index) of this process; ({}, None, None) alone."""
    if strategy is not None:
        resolver = getattr(strategy, "cluster_resolver", None)
        if resolver is None:  # MirroredStrategy, the default strategy: one process
            return {}, None, None
        return resolver.cluster_spec().as_dict(), resolver.task_type, resolver.task_id
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task", {})
    return config.get("cluster", {}), task.get("type"), task.get("index")


def num_workers(strategy=None):
    """Number of training processes (chief + workers) in the cluster; 1 outside a cluster.

    Args:
        strategy: a `tf.distribute.Strategy`; its `cluster_resolver` describes the cluster.
            Defaults to `None` (read `TF_CONFIG`).

    Returns:
        An int >= 1.
    """
    cluster, _, _ = _cluster(strategy)
    return max(1, sum(len(cluster.get(job, [])) for job in _WORKER_JOBS))


def is_chief(strategy=None):
    """Whether this process is the chief: the one that writes checkpoints, logs and reports.

    The chief is the `"chief"` task when the cluster has one, else worker 0; a process outside
    a cluster is its own chief.

    Args:
        strategy: a `tf.distribute.Strategy`. Defaults to `None` (read `TF_CONFIG`).

    Returns:
        A bool.

    Example:
    >>> out = run_dir if tl.distribute.is_chief(strategy) else tempfile.mkdtemp()
    >>> model.fit(data, callbacks=[keras.callbacks.CSVLogger(os.path.join(out, "log.csv"))])
    >>> if out != run_dir: shutil.rmtree(out)
    """
    cluster, task_type, task_id = _cluster(strategy)
    if task_type is None or task_type == "chief":
        return True
    return task_type == "worker" and int(task_id or 0) == 0 and not cluster.get("chief")


def shared_seed(model):
    """A fresh random seed, the same on every worker that trains `model` (the chief's draw).

    Each worker draws its own seed; with more than one worker, a variable created in the
    strategy's scope starts from the chief's initial value on every worker (the multi-worker
    strategy broadcasts initial values, as it does for the weights), and its value is returned.
    All workers must call this at the same point (e.g. in `on_train_begin`).

    Args:
        model: the model being trained (its `distribute_strategy`, when it has one).

    Returns:
        An int in [0, 2**31).
    """
    seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None or num_workers(strategy) == 1:
        return seed
    with strategy.scope():
        agreed = keras.Variable(seed, dtype="int64", trainable=False, name="shared_seed")
    return int(keras.ops.convert_to_numpy(agreed))


def multi_worker_strategy(*args, **kwargs):
    """`tf.distribute.MultiWorkerMirroredStrategy`, with `reduce` accepting what Keras' `fit` sends.

    With 2+ workers, Keras 3.15's `fit` calls `strategy.reduce` on the first (x, y) batch (a
    nest, where `reduce` takes one value) and `reduce("MEAN", scalar, axis=0)` on every scalar
    log (a scalar has no axis 0): both fail inside TensorFlow, even for a plain Dense model.
    This subclass reduces each leaf of a nest, and scalars over the replicas only, which is what
    `fit` means by those calls. Everything else is the stock strategy.

    Args:
        *args, **kwargs: passed to `tf.distribute.MultiWorkerMirroredStrategy`.

    Returns:
        The strategy (it reads `TF_CONFIG` like the stock one).

    Example:
    >>> strategy = tl.distribute.multi_worker_strategy()
    >>> with strategy.scope():
    ...     model = build_model()
    ...     model.compile("adam", "sparse_categorical_crossentropy")
    >>> model.fit(dataset, epochs=3, steps_per_epoch=100, callbacks=[tl.LaNMax(alpha=1.0)])
    """
    from tf_lanmax.distribute_tensorflow import fit_compatible_strategy

    return fit_compatible_strategy(*args, **kwargs)
