"""An ensemble of zoo models as ONE flat Keras model (ADP, Pang et al. 2019).

The M members see the same images; the model's logits are those of the ensemble's mean
prediction, `log(mean_m softmax(z_m))`, so every attack, evaluation and export treats the
ensemble as one classifier. The member logits [B, M, K] are the `members` layer, exposed
as `Built.extras["members"]` for the ADP loss terms (`tfadv.losses.adp`). Member m's
layers are the zoo layers prefixed `member{m}_`; taps and Grad-CAM are member 0's.
"""

import numbers

import keras
from keras import layers
import tensorflow as tf

from tfadv.models import graph
from tfadv.models import sources
from tfadv.models import zoo

MEMBERS_LAYER = "members"


@keras.saving.register_keras_serializable(package="tfadv")
class MeanSoftmaxLogits(layers.Layer):
  """Member logits [B, M, K] -> `log(mean_m softmax(z_m))` [B, K].

  Computed as `logsumexp_m log_softmax(z_m) - log M`, which is stable for confident
  members; `softmax` of the result is exactly the mean member prediction.
  """

  def call(self, member_logits):
    log_probs = tf.nn.log_softmax(member_logits, axis=-1)
    num_members = tf.cast(tf.shape(member_logits)[1], log_probs.dtype)
    return tf.reduce_logsumexp(log_probs, axis=1) - tf.math.log(num_members)

  def compute_output_shape(self, input_shape):
    return (input_shape[0], input_shape[2])


def member_prefix(m):
  """The prefix of member m's layer names."""
  return f"member{m}_"


def build(model_config, input_shape, num_classes, members=3):
  """Builds an ensemble of `members` independently initialised zoo models.

  Args:
    model_config: a `tfadv.config.ModelConfig` (the architecture of every member).
    input_shape: (height, width, channels) of the images.
    num_classes: number of logits K.
    members: the number of members M >= 2 (ADP's default: 3).

  Returns:
    A `tfadv.models.zoo.Built`: images in [0, 1] -> ensemble logits [B, K], taps and
    Grad-CAM layer of member 0, extras `{"members": "members"}` (member logits [B, M, K]).

  Raises:
    ValueError: `members` is not an integer >= 2, or as `zoo.build_model`.
  """
  if isinstance(members, bool) or not (isinstance(members, numbers.Integral)
                                       and members >= 2):
    raise ValueError(f"Invalid members: expected an integer >= 2 (an ensemble); "
                     f"received members={members!r}")
  inputs = keras.Input(tuple(input_shape), dtype="float32", name="images")
  member_logits = []
  for m in range(int(members)):
    # Each zoo model draws its own initial weights; the rebuild copies them.
    built = sources.build(model_config, input_shape, num_classes)
    logits = graph.rebuild(built.model, inputs, prefix=member_prefix(m))
    member_logits.append(layers.Reshape((1, num_classes), name=f"member{m}_expand",
                                                dtype="float32")(logits))
  stacked = layers.Concatenate(axis=1, name=MEMBERS_LAYER, dtype="float32")(member_logits)
  logits = MeanSoftmaxLogits(name="logits", dtype="float32")(stacked)
  model = keras.Model(inputs, logits, name=f"{model_config.name}_ensemble{members}")
  prefix = member_prefix(0)
  return zoo.Built(model=model,
                   tap_names=tuple(prefix + n for n in built.tap_names),
                   gradcam_name=prefix + built.gradcam_name if built.gradcam_name else None,
                   extras={"members": MEMBERS_LAYER}, notes=built.notes)
