"""MemSE runs in bounded memory: the default mode on 512 28 x 28 images peaks under 2 GB of
resident memory (a fresh process, measured with `resource`), because `mse` evaluates the
inputs in chunks of `batch_size` examples."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = """
import resource
import keras
import numpy as np
import tf_lanmax as tl
from keras import layers

keras.utils.set_random_seed(0)
inp = keras.Input((28, 28, 1))
h = layers.Conv2D(16, 3, padding="same", use_bias=False)(inp)
h = layers.MaxPooling2D()(layers.ReLU()(layers.BatchNormalization()(h)))
r = layers.Conv2D(16, 3, padding="same", activation="relu")(h)
h = layers.MaxPooling2D()(layers.ReLU()(layers.Add()([h, layers.Conv2D(16, 3, padding="same")(r)])))
h = layers.MaxPooling2D()(layers.Conv2D(32, 3, padding="same", activation="relu")(h))
model = keras.Model(inp, layers.Dense(10)(layers.Flatten()(h)))
x = np.random.default_rng(0).random((512, 28, 28, 1), dtype=np.float32)
mirror = tl.memse.MemSE(model, tl.memse.Crossbar(sigma=0.02, gmax=1.0))
mse = np.asarray(keras.ops.convert_to_numpy(mirror.mse(x)))
assert mse.shape == (512, 10) and np.all(np.isfinite(mse)) and mse.mean() > 0
print("peak_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_memse_mse_on_512_images_peaks_under_2_gb():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    peak_kb = int(done.stdout.split("peak_kb")[-1])  # Linux: kilobytes
    assert peak_kb < 2 * 1024**2, f"peak resident memory {peak_kb / 1024**2:.2f} GB"
