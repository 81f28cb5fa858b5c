"""
Title: Searching the energy weight and exporting for TF Serving
Author: tf_lanmax developers
Description: Sweep LaNMax's alpha to trace the energy/accuracy Pareto front, then export a
trained model as a versioned SavedModel with a deterministic and a faulty signature.
"""

"""
## The whole trade-off, not one winner

`alpha` sets how hard LaNMax pushes energy down. Keras Tuner ranks trials by one scalar;
`tl.tuning.pareto_front` returns the non-dominated (energy, accuracy) points instead. A fixed
grid (`alpha_sweep`) gives a reproducible front; any Keras Tuner tuner works the same way.
"""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

import tf_lanmax as tl

SMOKE = os.environ.get("TF_LANMAX_SMOKE") == "1"
TRAIN_SPLIT = "train[:512]" if SMOKE else "train[:6000]"
TEST_SPLIT = "test[:256]" if SMOKE else "test"
ALPHAS = [0.03, 3.0] if SMOKE else [0.01, 0.1, 0.3, 1.0, 3.0, 10.0]

train = tl.data.load("fashion_mnist_subset", TRAIN_SPLIT, batch_size=32)
test = tl.data.load("fashion_mnist_subset", TEST_SPLIT, batch_size=256)


def build_model(hp):
    model = tl.models.binary_cnn(width_multiplier=0.5, fault_rate=1e-2, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


hypermodel = tl.tuning.LaNMaxHyperModel(
    build_model, alpha_range=(0.01, 30.0), epochs=2 if SMOKE else 5, draws=2 if SMOKE else 5
)
points = tl.tuning.alpha_sweep(hypermodel, ALPHAS, train, validation_data=test)
front = tl.tuning.pareto_front(points)
for point in front:
    alpha, energy, accuracy = point["alpha"], point["energy"], point["accuracy"]
    print(f"alpha {alpha:.3g}: energy {energy:,.0f}, accuracy {accuracy:.4f}")
tl.tuning.plot_front(points, "front.png")

"""
## Export for TF Serving

`tl.export.for_serving` writes `<base_path>/<version>/`: `serving_default` reads the stored
weights with faults off (plain Keras layers, deterministic), `predict_with_faults` takes
per-layer fault rates and a seed for hardware emulation. `assets.extra/` holds the energy
metadata and TF Serving warm-up requests.
"""

keras.utils.set_random_seed(0)
model = build_model(None)
model.fit(train, epochs=1, callbacks=[tl.LaNMax(alpha=1.0, warmup_epochs=0, seed=0)], verbose=2)
base = tempfile.mkdtemp()
path = tl.export.for_serving(model, os.path.join(base, "fmnist"))
print("exported to", path)

loaded = tf.saved_model.load(path)
images = next(iter(test))[0][:4]
clean = loaded.signatures["serving_default"](images=images)
faulty = loaded.signatures["predict_with_faults"](
    images=images,
    fault_rates=tf.constant([0.05] * len(tl.faulty_layers(model)), tf.float32),
    seed=tf.constant(7, tf.int64),
)
print("classes, faults off:", clean["class"].numpy(), "at p = 0.05:", faulty["class"].numpy())
print("max |difference|:", float(np.abs(clean["probabilities"] - faulty["probabilities"]).max()))
