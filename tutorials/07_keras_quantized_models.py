"""
Title: Faults in a Keras model quantized to int8, against float16 and binary storage
Author: tf_lanmax developers
Description: Quantize an ordinary Keras model to int8 with Keras, read its stored codes from an
unreliable SRAM with `tl.inject_faults`, compare int8, float16 and binary storage on the
energy/accuracy plane and let LaNMax learn one fault rate per layer.
"""

"""
## Any Keras model, its own storage format

The faulty layers of tutorial 01 are tf_lanmax's own. `tl.inject_faults` takes any Sequential or
Functional Keras model instead, float or quantized by Keras itself (`model.quantize("int8")`),
and returns a copy whose selected layers read their stored parameters through a fault model:
each stored bit (the int8 codes of a quantized kernel, the sign, exponent and mantissa bits of
an IEEE float) is faulty with probability `p` at every read. The copy has the same
`fault_rate` variables as the faulty layers, so `tl.summary`, `tl.evaluate_under_faults`,
`tl.faults_disabled` and `tl.LaNMax` work on it unchanged.

The question this tutorial asks: for one network, which storage format gives the most accuracy
per unit of memory energy? Fewer bits per weight cost less to read, but each bit may matter more.
"""

import os
import warnings

import keras
import numpy as np

import tf_lanmax as tl

# `TF_LANMAX_SMOKE=1` makes every tutorial run in seconds (the tests use it).
SMOKE = os.environ.get("TF_LANMAX_SMOKE") == "1"
TRAIN_SPLIT = "train[:1024]" if SMOKE else "train"
TEST_SPLIT = "test[:500]" if SMOKE else "test"
EPOCHS = 1 if SMOKE else 5
DRAWS = 2 if SMOKE else 10
RATES = (1e-3, 1e-2) if SMOKE else (1e-4, 1e-3, 1e-2, 3e-2)

train = tl.data.load("fashion_mnist_subset", TRAIN_SPLIT, batch_size=128)
test = tl.data.load("fashion_mnist_subset", TEST_SPLIT, batch_size=500)

"""
## A plain Keras model

A small MLP. The Dense layers have no bias: their kernels are the stored weights we put in
unreliable memory; BatchNorm's few parameters stay in reliable memory (and count in the energy
at a reliable read each).
"""

keras.utils.set_random_seed(0)


def mlp():
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(128, use_bias=False, name="hidden"),
            keras.layers.BatchNormalization(name="hidden_bn"),
            keras.layers.ReLU(),
            keras.layers.Dense(10, use_bias=False, name="logits"),
            keras.layers.BatchNormalization(name="logits_bn"),
            keras.layers.Activation("softmax"),
        ]
    )


def compiled(model):
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


model = compiled(mlp())
model.fit(train, epochs=EPOCHS, verbose=2)
print("float32, reliable:", model.evaluate(test, verbose=0, return_dict=True))

"""
## Three stored formats of the same network

- **int8**: Keras' own post-training quantization. `model.quantize("int8")` replaces each Dense
  kernel by int8 codes and a float scale per output; the faults hit the codes (the scales stay
  reliable unless `fault_scales=True`).
- **float16**: the same weights stored as IEEE half floats (a copy of the model with a
  `float16` dtype on its Dense layers). An exponent fault can turn a weight into 65504 or inf.
- **binary**: one bit per weight (BinaryConnect signs), with `tl.layers.faulty_copy`; a sign
  network must be fine-tuned, which it is here for a few epochs under faults.

`include` limits the faults to the two Dense layers in the int8 and float16 copies, as in the
binary one.
"""

DENSE = ["hidden", "logits"]


def quantized_int8(source):
    copy = keras.models.clone_model(source)
    copy.set_weights(source.get_weights())
    with warnings.catch_warnings():  # Keras names every layer it leaves as it is (Flatten, ...)
        warnings.filterwarnings("ignore", message="Layer .* does not have a `quantize` method")
        copy.quantize("int8")
    return copy


def stored_float16(source):
    def clone(layer):
        config = layer.get_config()
        if layer.name in DENSE:
            config["dtype"] = "float16"
        return type(layer).from_config(config)

    copy = keras.models.clone_model(source, clone_function=clone)
    copy.set_weights(source.get_weights())  # cast to float16 on assignment
    return copy


int8 = tl.inject_faults(quantized_int8(model), fault_rate=RATES[0], include=DENSE, seed=0)
float16 = tl.inject_faults(stored_float16(model), fault_rate=RATES[0], include=DENSE, seed=0)
binary = tl.layers.faulty_copy(model, weight_format="binary", fault_rate=RATES[0], seed=0)
compiled(binary).fit(train, epochs=EPOCHS, verbose=0)
faulty = {"int8 (Keras)": compiled(int8), "float16": compiled(float16), "binary": binary}

"""
With the faults off (`tl.faults_disabled`), the int8 copy computes exactly what Keras' own
quantized model computes: the faults are the only difference.
"""

x_check, _ = tl.data.load_numpy("fashion_mnist_subset", "test", take=64)
reference = quantized_int8(model)
with tl.faults_disabled(int8):
    same = np.array_equal(int8.predict(x_check, verbose=0), reference.predict(x_check, verbose=0))
print("int8 copy with faults off == Keras' int8 model:", same)

"""
## What each format stores

`tl.summary` lists every stored parameter, its format and its bits. int8 stores 8 bits per
weight, float16 16, binary 1: at the same `p`, the memory energy scales with those bits.
"""

for label, network in faulty.items():
    print(f"--- {label}")
    tl.summary(network, float_parameters="reliable")

"""
## The energy/accuracy plane

For each format and each `p`: the memory energy of one inference (`tl.memory_energy`, in units of
one reliable bit read, BatchNorm's reliable parameters included) and the accuracy under faults
with its 95 % confidence interval over independent fault draws (`tl.evaluate_under_faults`).
Draws whose outputs are not finite (an exponent fault in float16) are counted, not hidden.
"""


def measure(network, p):
    tl.set_fault_rates(network, p)
    result = tl.evaluate_under_faults(network, test, draws=DRAWS, verbose=0)
    energy = tl.memory_energy(network, float_parameters="reliable")["total_energy"]
    print(f"  p = {p:g}: energy {energy:,.0f} bit-units, {result}")
    return {"energy": energy, "accuracy": result.mean, "ci": list(result.ci), "p": p}


families = {}
for label, network in faulty.items():
    print(label)
    families[label] = [measure(network, p) for p in RATES]

"""
## LaNMax: one learned p per layer

Rather than one `p` for the whole memory, let LaNMax (Henwood et al., arXiv:1912.10764) learn a
rate per layer while the int8 model trains on under faults (Keras keeps its int8 codes fixed;
BatchNorm adapts to the faults, so part of the gain below is that extra training). A nat of
`ln p` buys the most energy in the layer that holds the most bits, so that layer is pushed
hardest; `alpha` sets the price of energy against the loss. The result is one more point on the
plane.
"""

tl.set_fault_rates(int8, RATES[0])
lanmax = tl.LaNMax(alpha=1.0, warmup_epochs=0, seed=0)
int8.fit(train, epochs=EPOCHS + 1, callbacks=[lanmax], verbose=0)
for name, p in lanmax.rates.items():
    print(f"{name}: learned p = {p:.3g}")
learned = tl.evaluate_under_faults(int8, test, draws=DRAWS, verbose=0)
energy = tl.memory_energy(int8, float_parameters="reliable")["total_energy"]
print(f"int8 + LaNMax: energy {energy:,.0f} bit-units, {learned}")
point = {"energy": energy, "accuracy": learned.mean, "ci": list(learned.ci)}
families["int8 + LaNMax"] = [{**point, "label": "learned p per layer"}]

path = tl.reports.plot_energy_accuracy(
    families, "int8_float16_binary.png", title="Stored format: accuracy vs memory energy"
)
print("figure:", path)

"""
## Reading the figure

Each curve is one stored format, each point one `p` (labelled), with the confidence interval of
its accuracy. Moving right costs energy; moving up gains accuracy. float16 pays twice the int8
bits and loses most to exponent faults; binary is cheapest per weight and degrades gracefully,
since a flipped sign is the worst a fault can do to it. Protecting the float exponent in robust
cells (`field_rates={"exponent": 1e-9}` in `tl.inject_faults`) is the usual remedy for float
storage, at the energy of the robust bits.
"""
