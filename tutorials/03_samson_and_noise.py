"""
Title: Robustness to memristor noise with SAMSON
Author: tf_lanmax developers
Description: Train with sharpness-aware minimisation (SAM, ASAM, SAMSON) and measure accuracy
under multiplicative conductance noise with confidence intervals.
"""

"""
## Flat minima survive noisy weights

Analog in-memory hardware reads each weight through a noisy conductance, `w' = w * delta` with
`delta ~ N(1, sigma^2)`. A minimum whose loss stays low in a neighbourhood of the weights
survives that noise. Sharpness-aware training looks for such minima without simulating any
noise: each step takes the gradient at the worst nearby point `w + eps` and applies it at `w`.
SAMSON (Mordido et al., arXiv:2211.11561) scales that neighbourhood per layer by `max|W|`, which
is how a crossbar maps weights to conductances.
"""

import os

import keras

import tf_lanmax as tl

SMOKE = os.environ.get("TF_LANMAX_SMOKE") == "1"
TRAIN_SPLIT = "train[:512]" if SMOKE else "train"
TEST_SPLIT = "test[:500]" if SMOKE else "test"
EPOCHS = 1 if SMOKE else 6
DRAWS = 2 if SMOKE else 10

train = tl.data.load("fashion_mnist_subset", TRAIN_SPLIT, batch_size=128)
test = tl.data.load("fashion_mnist_subset", TEST_SPLIT, batch_size=500)


def network():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


"""
## Plain training and SAMSON training

`tl.SharpnessAwareModel` wraps any Keras model; compile and fit it as usual and deploy its
`inner` model.
"""

plain = network()
plain.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
plain.fit(train, epochs=EPOCHS, verbose=2)

robust = network()
samson = tl.SharpnessAwareModel(robust, rule="samson", rho=0.2)
samson.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
samson.fit(train, epochs=EPOCHS, verbose=2)
robust.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])

"""
## Accuracy against the noise level

`tl.evaluate_under_noise` applies fresh noise to every kernel per draw and restores the clean
weights exactly afterwards.
"""

sigmas = [0.0, 0.2, 0.4] if SMOKE else [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
results = {
    "plain": tl.evaluate_under_noise(plain, test, sigmas, draws=DRAWS, verbose=0),
    "SAMSON": tl.evaluate_under_noise(robust, test, sigmas, draws=DRAWS, verbose=0),
}
for name, result in results.items():
    print(name, [f"{a.mean:.3f}" for a in result.accuracy])
tl.reports.plot_noise_robustness(results, "samson_noise.png")
