"""tfadv: adversarially robust image classifiers with TensorFlow/Keras.

Attention and adversarial logit pairing (AT+ALP), Grad-CAM attention defenses (AAD), the
baselines and attacks they are compared with, and export to TensorFlow Serving.
"""

__version__ = "0.1.0"
