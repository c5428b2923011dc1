"""The Keras-native API: `AdversarialModel`, a `keras.Model` whose `fit()` runs a defense."""

from tfadv.keras.adversarial_model import AdversarialModel

__all__ = ["AdversarialModel"]
