"""`AdversarialModel`: any Keras classifier hardened by a tfadv defense through `fit()`.

Keras' own habits apply: `compile(optimizer=...)`, `fit` on arrays or a `tf.data.Dataset`,
every callback (ModelCheckpoint, BackupAndRestore, EarlyStopping, TensorBoard, CSVLogger,
experiment trackers), `steps_per_execution`, mixed precision and `strategy.scope()`.
`train_step` runs the defense's step through `tfadv.training.step.replica_step`, the same
code `tfadv-train` runs (one implementation of a step); `test_step` reports the clean and
the adversarial accuracy (`val_adv_accuracy` for EarlyStopping / ModelCheckpoint).

Example:

  base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False,
                                        weights=None)
  inputs = keras.Input((32, 32, 3))
  outputs = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(base(inputs)))
  adv = tfadv.keras.AdversarialModel(keras.Model(inputs, outputs), defense="at_alp",
                                     eps=8 / 255)
  adv.compile(optimizer="adam")
  adv.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=10,
          callbacks=[keras.callbacks.EarlyStopping("val_adv_accuracy", mode="max")])
  adv.model.save("robust.keras")  # the plain classifier: images in [0, 1] -> logits

What differs from the model you pass: `adv.model` is the classifier tfadv trains. A flat
functional or Sequential model that needs no adaptation is trained in place (`adv.model`
is your model); a model with a nested backbone, a final softmax or another input range is
first rebuilt as one flat graph with copies of your weights (`tfadv.models.sources`), and
`adv.model` is that copy (`adv.layers_used` says what was adapted). Images are in [0, 1]
and `eps` in [0, 1] pixel units whatever range your model expects.
"""

import keras
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.attacks import registry
from tfadv.defenses import models as defense_models
from tfadv.defenses import recipes
from tfadv.models import sources
from tfadv.models import taps as taps_lib
from tfadv.training import step as step_lib

_METRICS = ("loss", "accuracy", "adv_accuracy")


@keras.saving.register_keras_serializable(package="tfadv")
class AdversarialModel(keras.Model):
  """A Keras model whose `fit()` trains `model` with a tfadv defense.

  Args:
    model: a Keras classifier (functional, Sequential or subclassed) returning logits or
      probabilities for one image input.
    defense: a defense of `tfadv.defenses.table` (`pat`, `trades`, `alp`, `at_alp`, `aad`,
      ...); defenses that wrap the model (rat, randomization, fd, adp) need a model file
      through `tfadv-train --model=PATH`.
    eps: the training attack's radius, in [0, 1] pixel units.
    attack_steps: its steps; `step_size` None means 2.5 * eps / steps.
    norm: `linf` or `l2`.
    terms: optional {term: weight} overrides of the defense's loss terms (0 drops one).
    defense_config: a full `tfadv.config.DefenseConfig` instead of the arguments above.
    input_shape: the data's (H, W, C) when it differs from the model's input (grayscale
      data for a 3-channel model); default: the model's own input shape.
    taps, gradcam_layer, input_range, bn_momentum: as `tfadv.config.ModelConfig` (taps
      found automatically by default).
    eval_steps: PGD steps of the adversarial accuracy reported by `evaluate` / validation
      (at the training eps and norm).
    seed: base of the attacks' stateless random starts.
  """

  def __init__(self, model, defense="pat", eps=8 / 255, attack_steps=10, step_size=None,
               norm="linf", terms=None, defense_config=None, input_shape=None, taps=(),
               gradcam_layer=None, input_range="auto", bn_momentum=None, eval_steps=10, seed=0,
               **kwargs):
    super().__init__(**kwargs)
    if not isinstance(model, keras.Model):
      raise ValueError(f"Invalid model: expected a keras.Model; received "
                       f"{type(model).__name__}")
    if defense_config is None:
      defense_config = config_lib.DefenseConfig(
          name=defense,
          attack=config_lib.AttackConfig(eps=float(eps), steps=int(attack_steps),
                                         step_size=step_size, norm=norm),
          terms=tuple(config_lib.TermConfig(k, v) for k, v in dict(terms or {}).items()))
    self.defense_config = defense_config
    self.recipe = recipes.build(defense_config)
    self.seed, self.eval_steps = int(seed), int(eval_steps)
    self._init_args = dict(defense=defense, eps=float(eps), attack_steps=int(attack_steps),
                           step_size=step_size, norm=str(norm), terms=dict(terms or {}),
                           input_shape=input_shape, taps=tuple(taps),
                           gradcam_layer=gradcam_layer, input_range=input_range,
                           bn_momentum=bn_momentum, eval_steps=int(eval_steps), seed=int(seed))
    if input_shape is None:
      try:
        input_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
      except (AttributeError, TypeError, ValueError, IndexError):
        raise ValueError("Invalid input_shape: the model's input shape is not known (a "
                         "subclassed model or None dimensions); pass input_shape=(H, W, C) "
                         "of the data") from None
    num_classes = _num_classes(model, input_shape)
    model_config = config_lib.ModelConfig(name=model.name, taps=tuple(taps),
                                          gradcam_layer=gradcam_layer,
                                          input_range=input_range, bn_momentum=bn_momentum)
    built = defense_models.build_record(model_config, self.recipe, input_shape, num_classes,
                                        model=model)
    self.model = built.model
    self.layers_used = sources.describe(built)
    # The tapped twin shares `self.model`'s layers; kept out of Keras' tracking so the
    # weights are listed (and saved) once.
    object.__setattr__(self, "_tapped", taps_lib.tapped_model(
        built.model, built.tap_names, built.gradcam_name, built.extras))
    object.__setattr__(self, "_attack_fn",
                       step_lib.make_attack_fn(self.model, self.recipe))
    eval_attack = config_lib.AttackConfig(name="pgd", eps=defense_config.attack.eps,
                                          norm=defense_config.attack.norm,
                                          steps=int(eval_steps))
    object.__setattr__(self, "_eval_attack", registry.validate(eval_attack))
    self._trackers = {name: keras.metrics.Mean(name=name) for name in _METRICS}
    self.built = True  # The classifier is built: weights can be saved before fit().

  def call(self, inputs, training=False):
    return self.model(inputs, training=training)

  @property
  def metrics(self):
    return list(self._trackers.values())

  def _update(self, sums, count):
    results = {}
    for name, tracker in self._trackers.items():
      if name in sums:
        tracker.update_state(sums[name] / count, sample_weight=count)
      results[name] = tracker.result()
    return results

  def train_step(self, data):
    x, y = _unpack(data)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    count = tf.cast(tf.shape(x)[0], tf.float32)
    global_batch = tf.shape(x)[0] * replicas
    sums = step_lib.replica_step(self.model, self._tapped, self.recipe, self.optimizer,
                                 self._attack_fn, x, y, self.optimizer.iterations,
                                 seed=self.seed, global_batch=global_batch)
    return self._update(sums, count)

  def test_step(self, data):
    x, y = _unpack(data)
    count = tf.cast(tf.shape(x)[0], tf.float32)
    logits = self.model(x, training=False)
    attack = registry.from_config(self._eval_attack,
                                  seed=tf.constant([self.seed, -2], tf.int64))
    x_adv = attack(lambda v: self.model(v, training=False), x, y)
    adv_logits = self.model(x_adv, training=False)
    y = tf.cast(y, tf.int32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(y, tf.cast(logits, tf.float32))
    sums = {"loss": tf.reduce_sum(ce),
            "accuracy": step_lib.correct({"logits": logits}, y),
            "adv_accuracy": step_lib.correct({"logits": adv_logits}, y)}
    return self._update(sums, count)

  def get_config(self):
    return {**super().get_config(), "model": keras.saving.serialize_keras_object(self.model),
            **self._init_args}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config["model"] = keras.saving.deserialize_keras_object(config["model"])
    if config.get("input_shape") is not None:
      config["input_shape"] = tuple(config["input_shape"])
    return cls(**config)


def _num_classes(model, input_shape):
  try:
    return int(model.outputs[0].shape[-1])
  except (AttributeError, TypeError, IndexError):
    out = model(tf.zeros((1,) + tuple(input_shape)))  # Subclassed: one call to see.
    return int(out.shape[-1])


def _unpack(data):
  x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
  if y is None:
    raise ValueError("Invalid data: expected (images, labels) batches for adversarial "
                     "training; received images only")
  return x, y

