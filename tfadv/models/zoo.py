"""The model zoo: image classifiers taking images in [0, 1] and returning logits.

Every model is a Keras functional model `images [None, H, W, C] in [0, 1] -> logits
[None, K]`. Input normalisation lives inside the model, so attack budgets are always in
[0, 1] pixel units. Layers have fixed, readable names; `tap_layer_names` lists the four
stage ends (group-0..3, the AT stages conv2_x..conv5_x) and `gradcam_layer_name` the
layer Grad-CAM differentiates with respect to (see `tfadv.models.taps`).

Example:

  config = ModelConfig(name="resnet18")
  model = build_model(config, (32, 32, 3), num_classes=10)
  logits = model(images)  # images in [0, 1]
"""

import dataclasses
import functools
import numbers
import os
from typing import Mapping, Tuple

import keras
from keras import layers
from keras import ops

MODEL_NAMES = ("small_cnn", "resnet18", "resnet50", "resnet101", "resnet152")

# Stage ends of each architecture, in order (group-0..3). The keras.applications names
# are those of `keras.applications.ResNet50/101/152`; resnet18 follows the same scheme.
_TAPS = {
    "small_cnn": ("block1_conv", "block2_conv", "block3_conv", "block4_conv"),
    "resnet18": ("conv2_block2_out", "conv3_block2_out", "conv4_block2_out",
                 "conv5_block2_out"),
    "resnet50": ("conv2_block3_out", "conv3_block4_out", "conv4_block6_out",
                 "conv5_block3_out"),
    "resnet101": ("conv2_block3_out", "conv3_block4_out", "conv4_block23_out",
                  "conv5_block3_out"),
    "resnet152": ("conv2_block3_out", "conv3_block8_out", "conv4_block36_out",
                  "conv5_block3_out"),
}

# Smallest height/width each architecture accepts. small_cnn pools twice; resnet18
# halves the grid three times; keras.applications ResNets need 32 (their own minimum).
_MIN_SIZE = {"small_cnn": 4, "resnet18": 8, "resnet50": 32, "resnet101": 32,
             "resnet152": 32}

_APPLICATIONS = {
    "resnet50": keras.applications.ResNet50,
    "resnet101": keras.applications.ResNet101,
    "resnet152": keras.applications.ResNet152,
}

# ImageNet weights of keras.applications without the classifier (include_top=False):
# file name under `<keras home>/models/` and its md5, as keras.applications fetches them.
_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
_NOTOP_WEIGHTS = {
    "resnet50": ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                 "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": ("resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
                  "88cf7a10940856eca736dc7b7e228a21"),
    "resnet152": ("resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5",
                  "ee4c566cf9a93f14d82f913c2dc6dd0c"),
}

# ImageNet "caffe" preprocessing of keras.applications.resnet: BGR mean on a 0..255 scale.
_IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)

# Fixed per-channel standardisation of resnet18: CIFAR-10 statistics for RGB input; other
# channel counts (e.g. grayscale) are mapped from [0, 1] to [-1, 1].
_CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@dataclasses.dataclass(frozen=True)
class Built:
  """A built classifier and the names of the layers the defenses read.

  Attributes:
    model: a flat Keras functional model, float32 images [None, H, W, C] in [0, 1] ->
      logits [None, K].
    tap_names: the names of its stage-end layers (group-0..3 for zoo models; up to four,
      found or named, for users' models), in order.
    gradcam_name: the name of the layer Grad-CAM differentiates the logits against (None
      for a user model without 4-D feature maps).
    extras: output key -> name of a layer whose output the loss terms read besides the
      logits and taps (ADP: `{"members": ...}`, the member logits [B, M, K]); see
      `tfadv.models.taps.tapped_model`.
  """
  model: keras.Model
  tap_names: Tuple[str, ...]
  gradcam_name: str
  extras: Mapping[str, str] = dataclasses.field(default_factory=dict)
  notes: Tuple[str, ...] = ()  # What `tfadv.models.sources` adapted in a user's model.


def build(config, input_shape, num_classes):
  """Builds the plain zoo classifier `config.name` with its tap and Grad-CAM names.

  Args and Raises: as `build_model`.

  Returns:
    A `Built` record with no extras.
  """
  model = build_model(config, input_shape, num_classes)
  return Built(model, tap_layer_names(config.name), gradcam_layer_name(config.name), {})


def _check_name(model_name):
  if model_name not in MODEL_NAMES:
    raise ValueError(f"Invalid model: expected one of [{', '.join(MODEL_NAMES)}]; "
                     f"received model={model_name!r}")


def tap_layer_names(model_name):
  """The four stage-end layer names of `model_name`, in order (group-0..3).

  Args:
    model_name: one of `MODEL_NAMES`.

  Returns:
    A tuple of 4 layer names whose outputs have non-increasing spatial size.

  Raises:
    ValueError: `model_name` is not in `MODEL_NAMES`.
  """
  _check_name(model_name)
  return _TAPS[model_name]


def gradcam_layer_name(model_name):
  """The layer Grad-CAM uses: the output of the last convolutional stage (tap 3)."""
  return tap_layer_names(model_name)[-1]


def build_model(config, input_shape, num_classes):
  """Builds the classifier `config.name`.

  Args:
    config: a `tfadv.config.ModelConfig`.
    input_shape: (height, width, channels) of the images.
    num_classes: number of logits K.

  Returns:
    A Keras functional model: float32 images [None, H, W, C] in [0, 1] -> logits [None, K].

  Raises:
    ValueError: unknown model name, invalid config, input shape or number of classes, or
      `weights="imagenet"` while the weights file is neither cached nor downloadable (the
      message says where to put it).
  """
  _check_name(config.name)
  config.validate()
  input_shape = _check_input_shape(config.name, input_shape)
  if not (isinstance(num_classes, numbers.Integral) and num_classes >= 1):
    raise ValueError(f"Invalid num_classes: expected a positive integer; "
                     f"received num_classes={num_classes!r}")
  num_classes = int(num_classes)  # numpy integers from dataset metadata
  if config.weights is not None and config.name not in _APPLICATIONS:
    raise ValueError(f"Invalid weights: expected None for {config.name} (pretrained weights "
                     f"exist for [{', '.join(_APPLICATIONS)}] only); "
                     f"received weights={config.weights!r}")
  inputs = keras.Input(input_shape, dtype="float32", name="images")
  if config.name == "small_cnn":
    logits = _small_cnn(inputs, config.width, num_classes)
  elif config.name == "resnet18":
    logits = _resnet18(inputs, config.width, num_classes, config.activation)
  else:
    logits = _applications_resnet(inputs, config.name, config.weights, num_classes)
  return keras.Model(inputs, logits, name=config.name)


def _check_input_shape(model_name, input_shape):
  """Returns `input_shape` as a tuple of ints, or raises a ValueError naming the limit."""
  min_size = _MIN_SIZE[model_name]
  expected = f"(height, width, channels) with height, width >= {min_size} for {model_name}"
  try:
    shape = tuple(int(s) for s in input_shape)
  except (TypeError, ValueError):
    shape = None
  if shape is None or len(shape) != 3 or shape[2] < 1:
    raise ValueError(f"Invalid input_shape: expected {expected}; "
                     f"received input_shape={input_shape!r}")
  if min(shape[:2]) < min_size:
    raise ValueError(f"Invalid input_shape: expected {expected} (input too small); "
                     f"received input_shape={input_shape!r}")
  if model_name in _APPLICATIONS and shape[2] not in (1, 3):
    raise ValueError(f"Invalid input_shape: expected 1 (grayscale) or 3 (RGB) channels for "
                     f"{model_name}; received input_shape={input_shape!r}")
  return shape


def _small_cnn(x, width, num_classes):
  """Four conv blocks (the taps), two max-pools, dense(256), dense(K). No BatchNorm.

  At 28x28 the last two convolutions run on a 7x7 grid, which keeps the cost near a
  Conv-Pool-Conv-Pool-Dense network while giving Grad-CAM a 7x7 map.
  """
  conv = functools.partial(layers.Conv2D, kernel_size=3, padding="same", activation="relu")
  x = conv(width, name="block1_conv")(x)
  x = layers.MaxPooling2D(2, name="block1_pool")(x)
  x = conv(2 * width, name="block2_conv")(x)
  x = layers.MaxPooling2D(2, name="block2_pool")(x)
  x = conv(2 * width, name="block3_conv")(x)
  x = conv(2 * width, name="block4_conv")(x)
  x = layers.Flatten(name="flatten")(x)
  x = layers.Dense(256, activation="relu", name="fc1")(x)
  return layers.Dense(num_classes, name="logits", dtype="float32")(x)  # fp32 under mixed


def _resnet18(x, width, num_classes, activation="relu"):
  """CIFAR-style ResNet-18 (He et al., 2016): 3x3 stem, no max-pool, BasicBlocks [2,2,2,2].

  Stage filters are 2, 4, 8, 16 times `width` (64..512 at the default width 32). Layer
  names follow keras.applications: `conv{stage}_block{b}_{1,2}_{conv,bn,relu}`,
  the projection shortcut `_0_{conv,bn}`, and the block output `_out` (the names keep
  `relu` whatever `activation` is, so taps and checkpoints do not depend on it). The
  logits are float32 under a mixed-precision policy (stable softmax and losses).
  """
  channels = x.shape[-1]
  mean, std = (_CIFAR10_MEAN, _CIFAR10_STD) if channels == 3 else (
      (0.5,) * channels, (0.5,) * channels)
  x = layers.Normalization(mean=mean, variance=[s * s for s in std], name="standardize")(x)
  x = _conv_bn(x, 2 * width, 1, "conv1")
  x = layers.Activation(activation, name="conv1_relu")(x)
  for stage, (multiplier, stride) in enumerate(((2, 1), (4, 2), (8, 2), (16, 2)), start=2):
    for block in (1, 2):
      x = _basic_block(x, multiplier * width, stride if block == 1 else 1,
                       f"conv{stage}_block{block}", activation)
  x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
  return layers.Dense(num_classes, name="logits", dtype="float32")(x)


def _conv_bn(x, filters, stride, name, kernel_size=3):
  x = layers.Conv2D(filters, kernel_size, strides=stride, padding="same", use_bias=False,
                    kernel_initializer="he_normal", name=f"{name}_conv")(x)
  # momentum 0.9 is PyTorch's 0.1, the usual setting for CIFAR ResNets.
  return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)


def _basic_block(x, filters, stride, name, activation="relu"):
  """conv3x3-BN-act-conv3x3-BN plus the (projected if the shape changes) shortcut, act."""
  shortcut = x
  if stride != 1 or x.shape[-1] != filters:
    shortcut = _conv_bn(x, filters, stride, f"{name}_0", kernel_size=1)
  x = _conv_bn(x, filters, stride, f"{name}_1")
  x = layers.Activation(activation, name=f"{name}_1_relu")(x)
  x = _conv_bn(x, filters, 1, f"{name}_2")
  x = layers.Add(name=f"{name}_add")([shortcut, x])
  return layers.Activation(activation, name=f"{name}_out")(x)


@keras.saving.register_keras_serializable(package="tfadv")
class CaffePreprocessing(layers.Layer):
  """keras.applications' ImageNet "caffe" preprocessing for images in [0, 1].

  Scales to [0, 255], converts RGB to BGR and subtracts the ImageNet BGR mean: the same as
  `keras.applications.resnet.preprocess_input(255 * x)`, but as a layer inside the model so
  that gradients (attacks) see it and exported models take [0, 1] images.
  """

  def call(self, inputs):
    bgr = ops.flip(inputs * 255.0, axis=-1)
    return bgr - ops.convert_to_tensor(_IMAGENET_BGR_MEAN, dtype=inputs.dtype)

  def compute_output_shape(self, input_shape):
    return input_shape


def _applications_resnet(x, model_name, weights, num_classes):
  """keras.applications ResNet-50/101/152 backbone with a global-average-pool + dense head."""
  if x.shape[-1] == 1:
    x = layers.Concatenate(axis=-1, name="grayscale_to_rgb")([x, x, x])
  x = CaffePreprocessing(name="caffe_preprocessing")(x)
  if weights == "imagenet":
    # Fetch the file ourselves so that an offline machine gets an actionable error; the
    # backbone then loads it from the local path.
    weights = _imagenet_weights_path(model_name)
  # The backbone's layers join the outer graph directly (input_tensor is a Keras tensor),
  # so `model.get_layer("conv5_block3_out")` works on the returned model.
  backbone = _APPLICATIONS[model_name](include_top=False, weights=weights, input_tensor=x)
  x = layers.GlobalAveragePooling2D(name="avg_pool")(backbone.output)
  return layers.Dense(num_classes, name="logits", dtype="float32")(x)  # fp32 under mixed


def _imagenet_weights_path(model_name):
  """The local path of the ImageNet no-top weights, downloading them if possible."""
  file_name, file_hash = _NOTOP_WEIGHTS[model_name]
  try:
    return keras.utils.get_file(file_name, _WEIGHTS_URL + file_name, cache_subdir="models",
                                file_hash=file_hash)
  except Exception as e:  # get_file raises a bare Exception on network failures.
    keras_home = os.environ.get("KERAS_HOME", os.path.join("~", ".keras"))
    target = os.path.join(keras_home, "models", file_name)
    raise ValueError(
        f"Invalid weights: expected the ImageNet weights of {model_name} in {target} or "
        f"downloadable from {_WEIGHTS_URL + file_name}; received weights='imagenet', but "
        f"the file is not there and the download failed ({e}). On a machine without "
        f"internet, copy {file_name} to {target} (or build with weights=None).") from e
