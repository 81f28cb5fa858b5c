"""LaNMax and SharpnessAwareModel under `tf.distribute.MultiWorkerMirroredStrategy` on 127.0.0.1.

The test starts this file as a script twice, as workers 0 and 1 of one cluster (`TF_CONFIG`
with two free loopback ports). Each worker feeds its *own* data (auto-sharding OFF, worker 1's
inputs shifted and its labels from another rule), so the two local batch losses of a step
differ and their mean — the global batch loss — is neither of them. Each worker trains two
runs, 3 epochs of 8 steps:

- `lanmax`: a faulty model with LaNMax(seed=None) (the workers must agree on the chief's seed);
  the batch loss comes from Keras' running-mean `loss`;
- `samson`: SharpnessAwareModel(rule="samson") around a faulty model with LaNMax(seed=3); the
  batch loss is the step's `batch_loss`.

Each worker records its local pass-1 batch losses (a `numpy_function` in the loss), the logs
Keras passes to callbacks, the p each layer holds during each batch, LaNMax's points, the
learned p and every variable, as JSON. The test checks: identical p per batch and learned p on
both workers; LaNMax's regression used the mean of both workers' local losses; identical
variables after training; only the chief's checkpoints, CSV logs and report in the shared
folder (the other worker wrote to a temporary folder it deleted). Every wait is bounded; both
process groups are killed in a `finally`.
"""

import csv
import json
import os
import socket
import sys
import time
import types

import numpy as np
import pytest
from helpers import start_logged, stop

DEADLINE_S = 240  # both runs: about 15 s on the idle 2-core machine, 45 s under Bazel at load 6
EPOCHS, STEPS, GLOBAL_BATCH = 3, 8, 32
RUNS = {"lanmax": None, "samson": 3}  # run name -> LaNMax seed
CHIEF_FILES = {
    f"{run}{suffix}" for run in RUNS for suffix in (".weights.h5", ".csv", "_backup")
} | {"report.json"}


# ---------------------------------------------------------------------------------------------
# The worker (this file run as a script)
# ---------------------------------------------------------------------------------------------


def worker_data(task_id):
    """This worker's own batches: worker 1's inputs are shifted and labelled by another rule."""
    import tensorflow as tf

    rng = np.random.default_rng(100 + task_id)
    n = GLOBAL_BATCH * STEPS
    x = (rng.normal(size=(n, 8)) + 1.5 * task_id).astype("float32")
    y = (x[:, 0] > 0 if task_id == 0 else x[:, 1] < 1.5).astype("int64")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH).repeat()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options)


def recording_loss(local_losses):
    """Sparse cross-entropy that also appends each call's local mean loss to `local_losses`."""
    import keras
    import tensorflow as tf

    def record(value):
        local_losses.append(float(value))
        return value

    def loss(y_true, y_pred):
        per_sample = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
        mean = tf.stop_gradient(tf.reduce_mean(per_sample))
        recorded = tf.numpy_function(record, [mean], tf.float32, stateful=True)
        with tf.control_dependencies([recorded]):
            return tf.identity(per_sample)

    return loss


def build(run, local_losses):
    import keras

    import tf_lanmax as tl

    keras.utils.set_random_seed(0)  # the chief's initial values are broadcast anyway
    # synchronized=True: batch statistics over the global batch, so the moving statistics stay
    # identical on every worker (unsynchronized ones drift apart, one per worker's data).
    inner = keras.Sequential(
        [
            keras.Input((8,)),
            tl.FaultyDense(16, fault_rate=1e-2, seed=0),
            keras.layers.BatchNormalization(synchronized=True),
            keras.layers.ReLU(),
            tl.FaultyDense(2, fault_rate=1e-2, seed=1),
            keras.layers.Activation("softmax"),
        ]
    )
    model = tl.SharpnessAwareModel(inner, rule="samson") if run == "samson" else inner
    model.compile("adam", recording_loss(local_losses), jit_compile=False)
    return model


def train(run, strategy, write_dir, task_id):
    import keras

    import tf_lanmax as tl

    local_losses = []
    with strategy.scope():
        model = build(run, local_losses)
    lanmax = tl.LaNMax(seed=RUNS[run], warmup_epochs=0)
    record = {"batch_logs": [], "batch_rates": [], "points": []}

    class Recorder(keras.callbacks.Callback):  # runs after LaNMax: sees what it assigned
        def on_train_batch_begin(self, batch, logs=None):
            record["batch_rates"].append([float(v.fault_rate.numpy()) for v in lanmax.layers])

        def on_train_batch_end(self, batch, logs=None):
            record["batch_logs"].append({k: float(v) for k, v in logs.items()})

        def on_epoch_end(self, epoch, logs=None):
            record["points"].append(
                [
                    {"dx": list(p.offsets), "t": p.time, "objective": p.objective, "loss": p.loss}
                    for p in lanmax.last_points
                ]
            )

    callbacks = [
        lanmax,
        Recorder(),
        keras.callbacks.ModelCheckpoint(
            os.path.join(write_dir, f"{run}.weights.h5"), save_weights_only=True
        ),
        keras.callbacks.CSVLogger(os.path.join(write_dir, f"{run}.csv")),
        keras.callbacks.BackupAndRestore(
            os.path.join(write_dir, f"{run}_backup"), delete_checkpoint=False
        ),
    ]
    model.fit(
        worker_data(task_id),
        epochs=EPOCHS,
        steps_per_epoch=STEPS,
        verbose=0,
        callbacks=callbacks,
    )
    variables = list(model.variables) + list(model.optimizer.variables)
    record.update(
        local_losses=local_losses,
        seed=lanmax._seed,
        rates=lanmax.rates,
        trajectory=lanmax.trajectory,
        fits=len(lanmax.fits),
        variables={v.path: np.asarray(v.numpy()).tolist() for v in variables},
    )
    return record


def main(out_dir, result_path):
    """One worker: both runs; files in `out_dir` on the chief, in a deleted temp dir elsewhere."""
    import shutil
    import tempfile

    import tf_lanmax as tl
    from tf_lanmax import distribute
    from tf_lanmax._io import write_json_atomic

    strategy = distribute.multi_worker_strategy()
    task_id = strategy.cluster_resolver.task_id
    chief = distribute.is_chief(strategy)
    write_dir = out_dir if chief else tempfile.mkdtemp(prefix=f"worker{task_id}-")
    results = {
        "task_id": task_id,
        "chief": chief,
        "chief_from_tf_config": distribute.is_chief(),
        "num_workers": distribute.num_workers(strategy),
        "replicas": strategy.num_replicas_in_sync,
        "write_dir": write_dir,
    }
    for run in RUNS:
        results[run] = train(run, strategy, write_dir, task_id)
    report = {run: {"rates": results[run]["rates"]} for run in RUNS}
    write_json_atomic(os.path.join(write_dir, "report.json"), report)
    assert tl.LaNMax  # the package imported in every worker
    if not chief:
        shutil.rmtree(write_dir)
    write_json_atomic(result_path, results)


# ---------------------------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------------------------


def _tf_config(cluster, task_type, index):
    return {"cluster": cluster, "task": {"type": task_type, "index": index}}


TWO_WORKERS = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
CHIEF_AND_WORKER = {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"]}


@pytest.mark.parametrize(
    ("config", "chief", "workers"),
    [
        (None, True, 1),
        (_tf_config(TWO_WORKERS, "worker", 0), True, 2),
        (_tf_config(TWO_WORKERS, "worker", 1), False, 2),
        (_tf_config(CHIEF_AND_WORKER, "chief", 0), True, 2),
        (_tf_config(CHIEF_AND_WORKER, "worker", 0), False, 2),
        (_tf_config({**TWO_WORKERS, "evaluator": ["127.0.0.1:3"]}, "evaluator", 0), False, 2),
    ],
)
def test_roles_from_tf_config(monkeypatch, config, chief, workers):
    from tf_lanmax import distribute

    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert distribute.is_chief() is chief
    assert distribute.num_workers() == workers


def test_a_strategy_without_a_cluster_is_one_process(monkeypatch):
    from tf_lanmax import distribute

    monkeypatch.setenv("TF_CONFIG", json.dumps(_tf_config(TWO_WORKERS, "worker", 1)))
    mirrored = types.SimpleNamespace(cluster_resolver=None)  # as MirroredStrategy answers
    assert distribute.is_chief(mirrored) and distribute.num_workers(mirrored) == 1
    model = types.SimpleNamespace(distribute_strategy=mirrored)
    seeds = {distribute.shared_seed(model) for _ in range(4)}
    assert len(seeds) == 4 and all(0 <= s < 2**31 for s in seeds)  # fresh draws, no broadcast


def free_ports(count):
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    except OSError as error:
        pytest.skip(f"cannot bind ports on 127.0.0.1 for the workers: {error}")
    finally:
        for s in sockets:
            s.close()


def start(task_id, ports, out_dir, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    env = dict(os.environ)
    env.update(
        TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": task_id}}),
        KERAS_BACKEND="tensorflow",
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",  # two processes on one GPU would compete for its memory
    )
    argv = [sys.executable, os.path.abspath(__file__), str(out_dir)]
    argv.append(str(tmp_path / f"worker{task_id}.json"))
    return start_logged(argv, env, tmp_path / f"worker{task_id}.log")


def tail(tmp_path, task_id, chars=3000):
    text = (tmp_path / f"worker{task_id}.log").read_bytes().decode(errors="replace")
    return f"--- worker {task_id} ---\n" + text[-chars:]


def run_cluster(out_dir, tmp_path):
    """Workers 0 and 1; returns their results, or fails at the deadline or at a worker's error."""
    ports = free_ports(2)
    processes = []
    try:
        processes = [start(i, ports, out_dir, tmp_path) for i in range(2)]
        deadline = time.monotonic() + DEADLINE_S
        while any(p.poll() is None for p in processes):
            # A failed worker leaves the other waiting in a collective: fail at once.
            if any(p.poll() not in (None, 0) for p in processes):
                pytest.fail("a worker failed:\n" + "\n".join(tail(tmp_path, i) for i in (0, 1)))
            if time.monotonic() > deadline:
                logs = "\n".join(tail(tmp_path, i) for i in (0, 1))
                pytest.fail(f"multi-worker training not done after {DEADLINE_S} s:\n{logs}")
            time.sleep(0.5)
        for i, process in enumerate(processes):
            assert process.returncode == 0, tail(tmp_path, i)
    finally:
        for process in processes:
            stop(process)
    assert all(p.poll() is not None for p in processes)
    return [json.loads((tmp_path / f"worker{i}.json").read_text()) for i in range(2)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("multiworker")
    out_dir = tmp_path / "shared"
    out_dir.mkdir()
    return out_dir, run_cluster(out_dir, tmp_path)


@pytest.mark.tensorflow_only  # tf.distribute; the workers run TensorFlow
def test_cluster_roles(cluster):
    _, (w0, w1) = cluster
    assert (w0["task_id"], w1["task_id"]) == (0, 1)
    assert (w0["chief"], w1["chief"]) == (True, False)
    assert (w0["chief_from_tf_config"], w1["chief_from_tf_config"]) == (True, False)
    assert w0["num_workers"] == w1["num_workers"] == 2
    assert w0["replicas"] == w1["replicas"] == 2


@pytest.mark.tensorflow_only  # tf.distribute; the workers run TensorFlow
@pytest.mark.parametrize("run", list(RUNS))
def test_workers_run_the_same_rates_and_learn_the_same_p(cluster, run):
    _, (w0, w1) = cluster
    r0, r1 = w0[run], w1[run]
    if RUNS[run] is None:  # no seed given: the workers agreed on the chief's
        assert r0["seed"] == r1["seed"]
    assert len(r0["batch_rates"]) == EPOCHS * STEPS
    # What each layer held during each batch, on each worker: the same perturbed p.
    assert r0["batch_rates"] == r1["batch_rates"]
    assert len({tuple(rates) for rates in r0["batch_rates"]}) == EPOCHS * STEPS  # perturbed
    assert r0["points"] == r1["points"]
    assert r0["fits"] == r1["fits"] == EPOCHS  # warmup_epochs=0: p updated every epoch
    assert r0["trajectory"] == r1["trajectory"]
    assert r0["rates"] == r1["rates"]
    assert all(p != pytest.approx(1e-2, rel=1e-3) for p in r0["rates"].values()), r0["rates"]


@pytest.mark.tensorflow_only  # tf.distribute; the workers run TensorFlow
@pytest.mark.parametrize("run", list(RUNS))
def test_regression_uses_the_global_batch_loss(cluster, run):
    _, (w0, w1) = cluster
    r0, r1 = w0[run], w1[run]
    # The loss runs once per step, twice with SAM (pass 1, then the adversarial pass 2).
    calls = 2 if run == "samson" else 1
    local = []
    for r in (r0, r1):
        assert len(r["local_losses"]) == calls * EPOCHS * STEPS
        local.append(np.array(r["local_losses"][::calls]).reshape(EPOCHS, STEPS))
    global_loss = (local[0] + local[1]) / 2  # equal local batches (16 + 16)
    # The two workers' batches really differ: the mean is far from either local loss.
    assert np.mean(np.abs(local[0] - local[1])) > 0.05

    # The logs Keras hands the callbacks are the same on both workers.
    assert r0["batch_logs"] == r1["batch_logs"]
    if run == "samson":
        batch_loss = np.array([logs["batch_loss"] for logs in r0["batch_logs"]])
        np.testing.assert_allclose(batch_loss, global_loss.ravel(), rtol=1e-5)

    # LaNMax's points: every usable batch, its loss the global one (running-mean inversion:
    # a float32 rounding of a few 1e-7 times the step index).
    usable = STEPS if run == "samson" else STEPS - 1  # the plain run leaves the last batch out
    for epoch, points in enumerate(r0["points"]):
        assert len(points) == usable
        for point in points:
            step = round(point["t"] * STEPS)
            want = global_loss[epoch, step]
            assert point["loss"] == pytest.approx(want, rel=1e-4, abs=1e-5), (epoch, step)
            for mine in (local[0][epoch, step], local[1][epoch, step]):
                if abs(mine - want) > 1e-3:
                    assert point["loss"] != pytest.approx(mine, rel=1e-4, abs=1e-5)


@pytest.mark.tensorflow_only  # tf.distribute; the workers run TensorFlow
@pytest.mark.parametrize("run", list(RUNS))
def test_workers_end_with_identical_variables(cluster, run):
    _, (w0, w1) = cluster
    v0, v1 = w0[run]["variables"], w1[run]["variables"]
    assert v0.keys() == v1.keys()
    assert any("moving_mean" in path for path in v0)
    assert any("fault_rate" in path for path in v0)
    for path in v0:
        np.testing.assert_array_equal(np.array(v0[path]), np.array(v1[path]), err_msg=path)


@pytest.mark.tensorflow_only  # tf.distribute; the workers run TensorFlow
def test_only_the_chief_writes(cluster):
    out_dir, (w0, w1) = cluster
    assert w0["write_dir"] == str(out_dir)
    assert w1["write_dir"] != str(out_dir)
    assert not os.path.exists(w1["write_dir"])  # the worker's temporary folder is gone
    assert {p.name for p in out_dir.iterdir()} == CHIEF_FILES
    assert json.loads((out_dir / "report.json").read_text()) == {
        run: {"rates": w0[run]["rates"]} for run in RUNS
    }
    for run in RUNS:
        with open(out_dir / f"{run}.csv") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == EPOCHS
        for layer, p in w0[run]["rates"].items():
            assert float(rows[-1][f"{layer}_p"]) == pytest.approx(p, rel=1e-6)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
