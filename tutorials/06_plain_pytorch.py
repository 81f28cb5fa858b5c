"""
Title: Faulty layers in a plain PyTorch model
Author: tf_lanmax developers
Description: Put `tl.FaultyConv2D` and `tl.FaultyDense` inside a `torch.nn.Module`, train it with
a hand-written torch loop under bit faults, learn the fault rates LaNMax-style and print the
memory-energy summary.
"""

"""
## Keras layers are torch modules

On the PyTorch backend (`KERAS_BACKEND=torch`, set before Keras is imported) every Keras layer
is a `torch.nn.Module`: its weights are torch parameters, its call is differentiable by
autograd. So the faulty layers drop into a model written in plain PyTorch: each forward pass
reads the kernel from an unreliable memory (a fresh fault pattern at rate p on every stored
bit), and the gradient reaches the latent weights straight through.
"""

import os

os.environ["KERAS_BACKEND"] = "torch"

import keras
import numpy as np
import torch
import torch.nn.functional as F

import tf_lanmax as tl

SMOKE = os.environ.get("TF_LANMAX_SMOKE") == "1"
TRAIN = 1024 if SMOKE else 10000
EPOCHS = 2 if SMOKE else 6
BATCH = 32 if SMOKE else 64

bundled = os.path.join(os.path.dirname(tl.data.__file__), "_bundled")
images, labels = tl.data.idx.read_split(bundled, "train")
x_all = torch.tensor(images[:, :, :, None] / 255.0, dtype=torch.float32)  # channels last
y_all = torch.tensor(labels.astype("int64"))
x_train, y_train = x_all[:TRAIN], y_all[:TRAIN]
x_test, y_test = x_all[-1000:], y_all[-1000:]

"""
## The model

A torch module holding two faulty Keras layers (binary weights, bit flips at p = 1 %) with
torch operations between them. Keras convolutions take channels-last images.
"""


class FaultyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = tl.FaultyConv2D(16, 3, strides=2, fault_rate=1e-2, seed=0, name="conv")
        self.dense = tl.FaultyDense(10, fault_rate=1e-2, seed=1, name="dense")

    def forward(self, x):
        h = F.relu(self.conv(x))
        return self.dense(torch.flatten(h, 1))


keras.utils.set_random_seed(0)
net = FaultyNet()
net(x_train[:1])  # builds the Keras layers, so their weights exist
faulty = [net.conv, net.dense]
weights = [v.value for layer in faulty for v in layer.trainable_variables]
optimizer = torch.optim.Adam(weights, lr=1e-3)

"""
## A hand-written loop with a LaNMax-style fault-rate update

LaNMax (Henwood et al., arXiv:1912.10764) learns each layer's p during training. The Keras-free
estimator `tl.lanmax.RateEstimator` does the statistics: every batch runs at log-rates drawn
around the current ones, we record the objective ``J = alpha * E(p~) + loss`` (E: the memory
energy relative to a reliable memory, with `tl.EnergyModel`'s eta(p) per bit), and at the end
of the epoch an OLS fit of J on the log-rate offsets moves every p. Binary latent weights stay
in [-1, 1]: Keras' optimizers apply the layers' kernel constraint, a torch optimizer does not,
so the loop applies it.
"""

ALPHA = 0.5
energy_model = tl.EnergyModel()
bits = np.array([layer.rated_bits for layer in faulty], dtype=np.float64)
estimator = tl.lanmax.RateEstimator(p_min=energy_model.p0, warmup_epochs=0)
log_rates = np.log([float(keras.ops.convert_to_numpy(layer.fault_rate)) for layer in faulty])


def relative_energy(log_p):
    eta = np.array([float(energy_model.eta(np.exp(x))) for x in log_p])
    return float(np.sum(bits * eta) / np.sum(bits))


def set_rates(log_p):
    for layer, x in zip(faulty, log_p, strict=True):
        layer.fault_rate.assign(float(np.exp(x)))


steps = TRAIN // BATCH
for epoch in range(EPOCHS):
    state = estimator.start(epoch, log_rates, seed=0)
    order = torch.randperm(TRAIN, generator=torch.Generator().manual_seed(epoch))
    for step in range(steps):
        x_tilde, state = estimator.propose(state)
        set_rates(x_tilde)
        batch = order[step * BATCH : (step + 1) * BATCH]
        loss = F.cross_entropy(net(x_train[batch]), y_train[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for layer in faulty:
                layer.kernel.assign(layer.kernel_constraint(layer.kernel.value))
        batch_loss = float(loss.detach())
        objective = ALPHA * relative_energy(x_tilde) + batch_loss
        state = estimator.record(state, step, x_tilde, step / steps, objective, batch_loss)
    state = estimator.step(state)
    log_rates = np.asarray(state.log_rates)
    set_rates(log_rates)
    print(f"epoch {epoch}: loss {batch_loss:.3f}, p = {np.exp(log_rates).round(4).tolist()}")

"""
## Accuracy under faults and the energy summary

Accuracy with faults drawn at the learned rates, against the clean stored weights
(`tl.faults_disabled`), and the memory-energy table of the torch module's faulty layers: the
library's model walks (`tl.summary`, `tl.faults_disabled`, `tl.memory_energy`) find Keras layers
inside a torch module.
"""


def accuracy():
    with torch.no_grad():
        return float((net(x_test).argmax(-1) == y_test).float().mean())


print(f"accuracy under faults: {accuracy():.3f}")
with tl.faults_disabled(net):
    print(f"accuracy with reliable memory: {accuracy():.3f}")
tl.summary(net)
