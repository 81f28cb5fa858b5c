"""
Title: Learning a fault rate per layer with LaNMax
Author: tf_lanmax developers
Description: Let each layer find how unreliable its memory can be, trading memory energy against
the loss inside `model.fit`.
"""

"""
## The idea

Layers differ: large layers hold most of the bits, and some layers tolerate more faults than
others. LaNMax (Henwood et al., arXiv:1912.10764) learns one fault rate per layer during
training. Each batch runs at rates sampled around the current ones; at the end of each epoch an
ordinary least-squares fit of `alpha * energy + batch loss` on the log-rate offsets gives a
numerical gradient that moves every layer's `p`. No extra forward pass is needed.
"""

import os

import keras

import tf_lanmax as tl

SMOKE = os.environ.get("TF_LANMAX_SMOKE") == "1"
TRAIN_SPLIT = "train[:512]" if SMOKE else "train"
TEST_SPLIT = "test[:500]" if SMOKE else "test"
EPOCHS = 2 if SMOKE else 8
DRAWS = 2 if SMOKE else 10
BATCH = 32 if SMOKE else 128

train = tl.data.load("fashion_mnist_subset", TRAIN_SPLIT, batch_size=BATCH)
test = tl.data.load("fashion_mnist_subset", TEST_SPLIT, batch_size=500)

"""
## Train with the callback

`alpha` weighs energy against the loss: a larger alpha pushes `p` up. Put LaNMax before
CSVLogger or TensorBoard so they see its per-layer `*_p`, `*_eta` and `*_energy` logs.
"""

keras.utils.set_random_seed(0)
model = tl.models.binary_cnn(fault_rate=1e-2, seed=0)
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
lanmax = tl.LaNMax(alpha=1.0, seed=0)
history = model.fit(train, epochs=EPOCHS, callbacks=[lanmax], verbose=2)

"""
## What it learned

The largest layers end up least reliable: their bits dominate the energy, so a nat of `ln p`
there buys the most.
"""

for name, p in lanmax.rates.items():
    print(f"{name}: p = {p:.4g}")
tl.summary(model)
print(tl.evaluate_under_faults(model, test, draws=DRAWS, verbose=0))
tl.reports.plot_rate_trajectories(lanmax.trajectory, "lanmax_trajectories.png")

"""
## The paper's sensitivity analysis

Train at a uniform rate, then test with one layer at a time at p = 50 %.
"""

table = tl.sensitivity(model, test, test_rate=0.5, draws=DRAWS)
for name, row in table["layers"].items():
    print(f"{name}: accuracy {row['accuracy']:.3f} with this layer at p = 0.5")
