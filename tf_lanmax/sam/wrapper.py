"""`SeededWrapper`: a model that trains `inner` with its own train step and a seeded stream.

`SharpnessAwareModel` and `tl.analog.HardwareAwareModel` share it: both forward `call` to the
wrapped model, draw their perturbations from `seed_generator`, and keep that stream's position
in the saved weights (Keras saves no seed generator state by itself).
"""

import keras

from tf_lanmax._validation import check_int

#: The key of the perturbation seed state in the saved weights.
SEED_STATE_KEY = "seed_generator_state"


class SeededWrapper(keras.Model):
    """Wraps `model` (its layers and variables are shared); subclasses define `train_step`.

    Args:
        model: the Keras model to train.
        seed: int >= 0 or None, the seed of `seed_generator`. Defaults to `None`.
        **kwargs: `keras.Model` arguments.
    """

    def __init__(self, model, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.inner = model
        self.seed = None if seed is None else check_int("seed", seed, low=0)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        return self.inner(inputs, training=training)

    def build(self, input_shape):
        if not self.inner.built:
            self.inner.build(input_shape)

    def save_own_variables(self, store):
        super().save_own_variables(store)
        # Keras does not save seed generator states: keep the perturbation stream's position.
        store[SEED_STATE_KEY] = self.seed_generator.state

    def load_own_variables(self, store):
        keys = list(store.keys())
        if SEED_STATE_KEY in keys:  # absent from files saved before the seed existed
            self.seed_generator.state.assign(store[SEED_STATE_KEY])
        super().load_own_variables({k: store[k] for k in keys if k != SEED_STATE_KEY})

    def get_config(self):
        config = super().get_config()
        config.update({"model": keras.saving.serialize_keras_object(self.inner), "seed": self.seed})
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(
            config["model"], custom_objects=custom_objects
        )
        return cls(**config)
