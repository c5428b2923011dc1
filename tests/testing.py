"""Helpers shared by tests: small real data and quickly trained models."""

import functools

import keras
import numpy as np
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.data import datasets


@functools.lru_cache(maxsize=None)
def fashion_mnist_arrays(num_train=10_000, num_test=1_000):
  """The first examples of Fashion-MNIST (Debian's idx files) as numpy arrays."""
  info = datasets.load(config_lib.DataConfig(name="fashion_mnist"))
  x, y = next(iter(info.train.batch(num_train)))
  xt, yt = next(iter(info.test.batch(num_test)))
  return x.numpy(), y.numpy(), xt.numpy(), yt.numpy()


def fashion_mnist_info(num_train=1024):
  """A `DatasetInfo` over the first `num_train` Fashion-MNIST training images (fast training)."""
  x, y, xt, yt = fashion_mnist_arrays()
  return datasets.DatasetInfo(
      name="fashion_mnist_subset",
      train=tf.data.Dataset.from_tensor_slices((x[:num_train], y[:num_train].astype(np.int32))),
      test=tf.data.Dataset.from_tensor_slices((xt, yt.astype(np.int32))),
      num_classes=10, image_shape=(28, 28, 1), class_names=tuple(str(i) for i in range(10)),
      num_train=num_train, num_test=len(yt))


def small_classifier(seed=0):
  """Conv-pool-conv-pool-dense: a plain undefended Keras model for attack tests."""
  keras.utils.set_random_seed(seed)
  return keras.Sequential([
      keras.Input((28, 28, 1)),
      keras.layers.Conv2D(16, 3, activation="relu"),
      keras.layers.MaxPooling2D(),
      keras.layers.Conv2D(32, 3, activation="relu"),
      keras.layers.MaxPooling2D(),
      keras.layers.Flatten(),
      keras.layers.Dense(64, activation="relu"),
      keras.layers.Dense(10),
  ])


@functools.lru_cache(maxsize=None)
def trained_undefended_model(epochs=2):
  """A small CNN trained on 10k Fashion-MNIST images (~85% test accuracy, not robust)."""
  x, y, _, _ = fashion_mnist_arrays()
  model = small_classifier()
  model.compile(optimizer=keras.optimizers.Adam(2e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  model.fit(x, y, batch_size=128, epochs=epochs, verbose=0)
  return model


def accuracy(model, x, y):
  logits = model(tf.convert_to_tensor(x), training=False)
  return float(np.mean(np.argmax(logits.numpy(), axis=-1) == np.asarray(y)))


@functools.lru_cache(maxsize=None)
def trained_defended_model(eps=0.1, steps=3, epochs=2):
  """The small CNN adversarially trained (Madry PGD-`steps` at `eps`) on 10k images.

  An honest defense for evaluation tests: its robustness comes from training, not from
  masked gradients.
  """
  from tfadv.attacks import pgd  # pylint: disable=g-import-not-at-top
  x, y, _, _ = fashion_mnist_arrays()
  model = small_classifier(seed=1)
  optimizer = keras.optimizers.Adam(2e-3)
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  model_fn = lambda z: model(z, training=False)

  @tf.function
  def step(xb, yb):
    x_adv = tf.stop_gradient(pgd.pgd(model_fn, xb, yb, eps, steps=steps))
    with tf.GradientTape() as tape:
      loss = loss_fn(yb, model(x_adv, training=True))
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                  model.trainable_variables))

  data = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
  for _ in range(epochs):
    for xb, yb in data.shuffle(10_000, seed=0).batch(128):
      step(xb, yb)
  return model
