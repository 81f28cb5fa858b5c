"""Shared test helpers: public-API layer checks (keras.src.testing is private), autodiff on
TensorFlow, JAX or torch, bounded subprocesses, and the binomial checks of fault draws."""

import inspect
import os
import signal
import subprocess

import keras
import numpy as np
from keras import ops
from scipy import stats

import tf_lanmax as tl


def assert_config_covers_init(layer):
    """Every `__init__` argument of the layer's class (and its Keras base) is in `get_config`."""
    config = layer.get_config()
    missing = []
    for cls in type(layer).__mro__:
        if "__init__" not in vars(cls) or cls.__module__.startswith("builtins"):
            continue
        if not cls.__module__.startswith(("tf_lanmax", "keras")):
            continue
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            if name in ("quantization_config", "lora_rank", "lora_alpha", "input_dim", "rank"):
                continue  # Keras features faulty layers refuse or do not store.
            if cls.__name__ in ("Layer", "Operation", "KerasSaveable"):
                continue
            if name not in config:
                missing.append(f"{cls.__name__}.{name}")
    assert not missing, f"get_config misses __init__ arguments: {missing}"


def _torch_grads(value, inputs, output_gradients=None):
    """torch.autograd.grad of `value` in `inputs` as numpy, zeros where nothing depends on one."""
    import torch

    if not value.requires_grad:  # nothing depends on the inputs: JAX gives zeros
        return [np.zeros(tuple(t.shape), "float32") for t in inputs]
    grads = torch.autograd.grad(
        value, inputs, grad_outputs=output_gradients, allow_unused=True, retain_graph=True
    )
    return [
        np.zeros(tuple(t.shape), "float32") if g is None else ops.convert_to_numpy(g)
        for g, t in zip(grads, inputs, strict=True)
    ]


def gradient(fn, x):
    """d fn(x) / dx for an array `x`, on TensorFlow, JAX or torch (as numpy)."""
    if keras.backend.backend() == "jax":
        import jax

        return np.asarray(jax.grad(fn)(ops.convert_to_tensor(x)))
    if keras.backend.backend() == "torch":
        x = ops.convert_to_tensor(x).detach().requires_grad_(True)
        return _torch_grads(fn(x), [x])[0]
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = fn(x)
    grad = tape.gradient(value, x)  # None where nothing depends on x: JAX gives zeros
    return np.zeros(x.shape, x.dtype.as_numpy_dtype) if grad is None else np.asarray(grad)


def trainable_gradients(layer, fn, x):
    """Gradients of ``fn(layer(x))`` in `layer`'s trainable variables, on TF, JAX or torch.

    On JAX the call is stateless, so the layer's random state is not advanced by it.
    """
    if keras.backend.backend() == "jax":
        import jax

        fixed = [v.value for v in layer.non_trainable_variables]

        def loss(values):
            y, _ = layer.stateless_call(values, fixed, x)
            return fn(y)

        grads = jax.grad(loss)([v.value for v in layer.trainable_variables])
        return [np.asarray(g) for g in grads]
    if keras.backend.backend() == "torch":
        return _torch_grads(fn(layer(x)), [v.value for v in layer.trainable_variables])
    import tensorflow as tf

    with tf.GradientTape() as tape:
        value = fn(layer(x))
    return [np.asarray(g) for g in tape.gradient(value, layer.trainable_variables)]


def vjp(fn, x, cotangent):
    """The vector-Jacobian product ``cotangent^T d fn(x) / dx``, on TensorFlow, JAX or torch."""
    if keras.backend.backend() == "jax":
        import jax

        _, pullback = jax.vjp(fn, ops.convert_to_tensor(x))
        return np.asarray(pullback(ops.convert_to_tensor(cotangent))[0])
    if keras.backend.backend() == "torch":
        x = ops.convert_to_tensor(x).detach().requires_grad_(True)
        y = fn(x)
        return _torch_grads(y, [x], [ops.cast(ops.convert_to_tensor(cotangent), y.dtype)])[0]
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return np.asarray(tape.gradient(y, x, output_gradients=cotangent))


def variable_gradients(fn, variables):
    """Gradients of the scalar ``fn()`` in Keras `variables`, on TensorFlow, JAX or torch.

    On JAX the variables are swapped for traced values with `keras.StatelessScope`.
    """
    if keras.backend.backend() == "jax":
        import jax

        def pure(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                return fn()

        return [np.asarray(g) for g in jax.grad(pure)([v.value for v in variables])]
    if keras.backend.backend() == "torch":
        return _torch_grads(fn(), [v.value for v in variables])
    import tensorflow as tf

    with tf.GradientTape() as tape:
        value = fn()
    grads = tape.gradient(value, variables)  # Embedding gradients are densified IndexedSlices
    return [
        np.zeros(v.shape) if g is None else np.asarray(tf.convert_to_tensor(g))
        for g, v in zip(grads, variables)
    ]


def variable_jacobian(fn, variable):
    """The Jacobian of the vector ``fn()`` in one Keras `variable`: shape fn().shape + var.shape."""
    if keras.backend.backend() == "jax":
        import jax

        def pure(value):
            with keras.StatelessScope(state_mapping=[(variable, value)]):
                return fn()

        return np.asarray(jax.jacrev(pure)(variable.value))
    if keras.backend.backend() == "torch":
        import torch

        def pure_torch(value):
            with keras.StatelessScope(state_mapping=[(variable, value)]):
                return fn()

        value = variable.value.detach()
        return ops.convert_to_numpy(torch.autograd.functional.jacobian(pure_torch, value))
    import tensorflow as tf

    with tf.GradientTape() as tape:
        value = fn()
    return np.asarray(tape.jacobian(value, variable))


def start_logged(argv, env, log_path):
    """Starts `argv` in its own process group, stdout and stderr into `log_path`.

    The process gets a `.log` file object, closed by `stop`; its group is killed as a whole.
    """
    log = open(log_path, "wb")  # closed in stop()
    process = subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    process.log = log
    return process


def stop(process, grace_s=5):
    """Kills the process group of `process` (TERM, then KILL) and waits, bounded."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=grace_s)
        except ProcessLookupError:
            pass
    process.log.close()


def finish(process, timeout):
    """Waits for a `subprocess.Popen` with piped text output; kills it after `timeout` seconds.

    Returns:
        A `subprocess.CompletedProcess` with its return code, stdout and stderr.
    """
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def tiny_faulty_classifier(hp=None):
    """Two binary faulty Dense layers on 28x28x1 images, compiled: fast to trace and train.

    A `build_model(hp)` for the tuning tests (`hp` is unused).
    """
    del hp
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            tl.FaultyDense(16, use_bias=False, fault_rate=1e-2, seed=0),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            tl.FaultyDense(10, use_bias=False, fault_rate=1e-2, seed=1),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("softmax"),
        ]
    )
    model.compile(
        "adam", "sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=False
    )
    return model


def randomise_batchnorm(model, seed=0, mean_sd=0.1, variance=(0.5, 1.5)):
    """Gives every BatchNormalization of `model` random statistics and affine parameters, so a
    folded or mirrored BatchNorm is checked on more than the identity."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.moving_mean.assign(rng.normal(0, mean_sd, n))
            layer.moving_variance.assign(rng.uniform(*variance, n))
            layer.gamma.assign(rng.uniform(0.5, 1.5, n))
            layer.beta.assign(rng.normal(0, mean_sd, n))


def bit_matrix(codes, bits):
    """(values, bits) 0/1 matrix of integer codes (any backend tensor or array), bit k in
    column k."""
    codes = np.asarray(ops.convert_to_numpy(codes)).astype(np.int64).ravel() & ((1 << bits) - 1)
    return (codes[:, None] >> np.arange(bits)) & 1


def binomial_interval_holds(k, n, p, confidence=0.999):
    """Whether a count `k` of `n` trials lies in the `confidence` interval of Binomial(n, p)."""
    low, high = stats.binom.interval(confidence, n, p)
    return low <= k <= high


def assert_bits_fault_at(errors, bits, rate):
    """Each bit position of the error words `errors` faulty at `rate` (and not at twice it),
    and all their bits together likewise; returns the `bit_matrix`. The `bits` positions are
    checked at 99.9 % together (each at ``1 - 0.001 / bits``): a fixed seed whose stream
    changes would otherwise fail one position of a wide word by chance alone."""
    matrix = bit_matrix(errors, bits)
    n = matrix.shape[0]
    confidence = 1.0 - 0.001 / bits
    for k in range(bits):
        count = int(matrix[:, k].sum())
        assert binomial_interval_holds(count, n, rate, confidence), (bits, k, count, n * rate)
        assert not binomial_interval_holds(count, n, 2 * rate, confidence), (bits, k, count)
    assert binomial_interval_holds(int(matrix.sum()), n * bits, rate)
    return matrix
