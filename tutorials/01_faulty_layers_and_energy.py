"""
Title: Faulty layers and the memory-energy model
Author: tf_lanmax developers
Description: Train a binary CNN whose weights live in an unreliable, low-voltage memory, read its
energy summary and measure its accuracy under faults with a confidence interval.
"""

"""
## Why unreliable memory?

Reading weights from memory dominates the energy of inference. Lowering an SRAM's supply voltage
saves read energy but makes stored bits flip. tf_lanmax models that trade-off with the
energy-reliability law `eta(p) = -ln(p) / a`: a bit read at fault rate `p` costs `eta(p)` of a
reliable read (`eta = 1` at `p0 = exp(-a)`).

A faulty layer stores its kernel in a number format (BinaryConnect bits here), draws fresh faults
on every stored bit at rate `p` at every forward pass, in training and in evaluation, and lets
the gradient reach the latent float weights straight through.
"""

import os

import keras

import tf_lanmax as tl

# `TF_LANMAX_SMOKE=1` makes every tutorial run in seconds (the tests use it).
SMOKE = os.environ.get("TF_LANMAX_SMOKE") == "1"
TRAIN_SPLIT = "train[:512]" if SMOKE else "train"
TEST_SPLIT = "test[:500]" if SMOKE else "test"
EPOCHS = 1 if SMOKE else 5
DRAWS = 2 if SMOKE else 20

"""
## Data: real Fashion-MNIST, offline

`tl.data.load` returns a batched, prefetched `tf.data.Dataset` through tensorflow-datasets. The
`fashion_mnist_subset` ships with the package (11,500 train / 2,000 test real images).
"""

train = tl.data.load("fashion_mnist_subset", TRAIN_SPLIT, batch_size=128)
test = tl.data.load("fashion_mnist_subset", TEST_SPLIT, batch_size=500)

"""
## A model with faulty layers

`FaultyConv2D` and `FaultyDense` take every argument of their Keras twins plus `weight_format`,
`fault_model`, `fault_rate` (the initial `p`) and `seed`. The rate lives in a non-trainable
variable, `layer.fault_rate`.
"""

keras.utils.set_random_seed(0)
model = keras.Sequential(
    [
        keras.Input((28, 28, 1)),
        tl.FaultyConv2D(32, 3, padding="same", use_bias=False, fault_rate=1e-3, seed=0),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        tl.FaultyDense(10, weight_format="binary", fault_model="bit_flip", fault_rate=1e-3, seed=1),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("softmax"),
    ]
)
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(train, epochs=EPOCHS, verbose=2)

"""
## The memory-energy summary

`tl.summary` prints, per faulty layer, the stored format and bits, `p`, `eta(p)`, the share of
the memory energy and the expected number of faulty bits per inference, and returns the same
data as a dict.
"""

profile = tl.summary(model)
print(f"Saving against a reliable memory: {profile['ratio_vs_reliable']:.2f}x")

"""
## Accuracy under faults, with a confidence interval

Each fault draw is a different faulty chip: `tl.evaluate_under_faults` evaluates K independent
draws and reports the mean accuracy with a Student-t interval across draws.
"""

result = tl.evaluate_under_faults(model, test, draws=DRAWS, verbose=0)
print(result)

"""
## Other formats and fault models

Fixed point stores `bits` two's-complement bits per weight; Hacene's bit masking zeroes a word
whose sign bit fails and replaces any other faulty bit by the sign bit, so a value never grows.
Raising `p` saves energy and costs accuracy.
"""

for p in (1e-3, 1e-2, 5e-2):
    tl.set_fault_rates(model, p)
    accuracy = tl.evaluate_under_faults(model, test, draws=DRAWS, verbose=0)
    energy = tl.memory_energy(model)["ratio_vs_reliable"]
    print(f"p = {p:g}: accuracy {accuracy.mean:.4f}, energy saving {energy:.2f}x")

fixed = tl.FaultyDense(10, weight_format=tl.formats.FixedPoint(8, 6), fault_model="bit_mask")
print(fixed(keras.ops.ones((1, 4))).shape, fixed.stored_bits, "stored bits")

"""
## Deployment: the clean stored weights

Inside `tl.faults_disabled(model)` every layer reads exactly its stored weights (p = 0), which is
what a reliable copy of the hardware would compute.
"""

with tl.faults_disabled(model):
    print("faults off:", model.evaluate(test, verbose=0, return_dict=True))
