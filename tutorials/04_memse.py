"""
Title: Predicting the output error on noisy memristor crossbars with MemSE
Author: tf_lanmax developers
Description: Propagate means and variances through a network mapped onto noisy crossbars,
compare the predicted MSE with Monte-Carlo, and choose per-layer conductance ranges under a
power budget.
"""

"""
## Moments instead of samples

A crossbar stores each weight as the difference of two conductances, `G = G+ - G-`, scaled by
`c = Gmax / Wmax`, quantised to `N` levels and programmed with noise `sigma`. MemSE (Kern et al.,
arXiv:2205.01707) mirrors the model and propagates the mean and variance of every activation,
so the output MSE against the clean network comes from one pass instead of thousands of noisy
samples, and it is differentiable in `Gmax`.
"""

import os

import keras
import numpy as np

import tf_lanmax as tl

SMOKE = os.environ.get("TF_LANMAX_SMOKE") == "1"
TRAIN_SPLIT = "train[:512]" if SMOKE else "train"
EPOCHS = 1 if SMOKE else 3
SAMPLES = 16 if SMOKE else 128
DRAWS = 50 if SMOKE else 1000

x_train, y_train = tl.data.load_numpy("fashion_mnist_subset", TRAIN_SPLIT)
x_test, _ = tl.data.load_numpy("fashion_mnist_subset", "test")
x = x_test[:SAMPLES]

keras.utils.set_random_seed(0)
model = keras.Sequential(
    [
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 3, padding="same", use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ]
)
model.compile(
    "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
)
model.fit(x_train, y_train, epochs=EPOCHS, batch_size=128, verbose=2)

"""
## Predicted vs sampled MSE

`cov_mode="jacobian"` adds the exact first-order output covariance, which matters for
convolutions: one noisy kernel entry is shared by every position of its channel.
"""

crossbar = tl.memse.Crossbar(sigma=0.01, levels=128, gmax=1.0)
mirror = tl.memse.MemSE(model, crossbar, cov_mode="jacobian")
predicted = float(np.mean(np.asarray(mirror.mse(x))))
sampled = tl.memse.monte_carlo(model, crossbar, x, draws=DRAWS)
print(f"predicted MSE {predicted:.5f}; Monte-Carlo {sampled.mse:.5f}, CI {sampled.ci}")

"""
## Conductance ranges under a power budget

A larger `Gmax` lowers the relative noise but costs power. `optimize_gmax` minimises the
predicted MSE over per-layer `Gmax` at a fixed power.
"""

budget = float(np.asarray(mirror.power(x)[0]))  # the power at Gmax = 1 everywhere
result = tl.memse.optimize_gmax(model, crossbar, x, power_budget=budget, steps=3 if SMOKE else 20)
print("optimised Gmax per layer:", {name: round(g, 3) for name, g in result.gmax.items()})
optimised = tl.memse.monte_carlo(model, result.crossbar, x, draws=DRAWS)
single = tl.memse.monte_carlo(model, result.baseline["crossbar"], x, draws=DRAWS)
print(f"Monte-Carlo MSE at equal power: per-layer {optimised.mse:.5f}, single {single.mse:.5f}")
