"""One adversarial training step per replica: the code both drivers run.

tfadv's own loop (`tfadv.training.trainer`) and the Keras driver
(`tfadv.keras.AdversarialModel.train_step`, i.e. `model.fit`) call `replica_step`, so a
defense's step exists once: craft the adversarial examples with the recipe's attack (the
model in inference mode, the true labels, a stateless random start keyed by (seed, step,
replica)), run the forward passes the recipe's terms read, reduce the weighted
per-example terms over the *global* batch (`tf.nn.compute_average_loss`) and apply the
gradients (Keras all-reduces them across replicas).
"""

import functools

import keras
import tensorflow as tf

from tfadv.attacks import eps_draws
from tfadv.attacks import registry
from tfadv.training import ema as ema_lib


def make_attack_fn(model, recipe, static_models=(), jit=False):
  """`attack_fn(x, y, attack_seed, step) -> x_adv` of a recipe's training attack.

  Args:
    model: the trained Keras model (logits), attacked with `training=False` (True when
      `recipe.attack_training_mode`: the fast-AT references attack in `model.train()`).
    recipe: a `tfadv.defenses.recipes.Recipe` (its `attack` config).
    static_models: pre-trained models the attack runs on in turn with the trained model
      (step s uses source s mod (1 + len)): ensemble adversarial training.
    jit: compile the attack with XLA (inside the replica function, which also works under
      MirroredStrategy).

  Returns:
    The attack function, or None when the recipe reads no adversarial images.
  """
  if not recipe.needs_adv:
    return None

  def model_fn(x):
    # Inference mode, except for defenses whose references attack in training mode (fast
    # AT: BatchNorm on the batch's statistics), a flag of the defense record.
    return model(x, training=recipe.attack_training_mode)

  sources = [model_fn] + [functools.partial(m, training=False) for m in static_models]

  def attack_fn(x, y, attack_seed, step):
    # A drawn eps (stepll_at: per example, adp_at: per batch) keyed by the attack's seed.
    eps = eps_draws.draw(recipe.eps_draw, recipe.attack.eps, x, attack_seed)
    attack = registry.from_config(recipe.attack, seed=attack_seed, eps=eps)
    if len(sources) == 1:
      return attack(model_fn, x, y)
    index = tf.cast(step % len(sources), tf.int32)
    return tf.switch_case(index, [functools.partial(attack, s, x, y) for s in sources])

  if jit:
    attack_fn = tf.function(attack_fn, jit_compile=True)
  return attack_fn


def attack_seed(seed, step):
  """The stateless seed of one replica's attack at `step`: (seed, step * 4096 + replica).

  Keyed by the step, so a resumed run replays the random starts of an uninterrupted one.
  """
  context = tf.distribute.get_replica_context()
  replica = tf.cast(context.replica_id_in_sync_group, tf.int64)
  return tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64) * 4096 + replica])


def correct(outputs, labels):
  """Number of correct predictions of an output dict (`logits`)."""
  pred = tf.argmax(outputs["logits"], axis=-1, output_type=tf.int32)
  return tf.reduce_sum(tf.cast(tf.equal(pred, tf.cast(labels, tf.int32)), tf.float32))


def replica_step(model, tapped, recipe, optimizer, attack_fn, x, y, step, *, seed,
                 global_batch, ema=None, l2=0.0):
  """One training step on one replica's batch; returns per-replica sums of the metrics.

  Args:
    model: the Keras model (logits) whose trainable variables are updated.
    tapped: the same weights returning logits, taps and the Grad-CAM layer.
    recipe: a `tfadv.defenses.recipes.Recipe`.
    optimizer: a Keras optimizer (a `LossScaleOptimizer` scales the loss: mixed_float16).
    attack_fn: `make_attack_fn(...)`, or None.
    x, y: the replica's images in [0, 1] and int labels.
    step: the optimizer step (a scalar tensor) the attack's random start is keyed by.
    seed: base of the stateless random starts.
    global_batch: the global batch size the loss is averaged over.
    ema: a `tfadv.training.ema.WeightEMA` of `model`'s weights, updated after the step.
    l2: coupled weight decay: `l2 * w` added to each gradient (PyTorch SGD), 0 for none.

  Returns:
    {"loss", each term's name, "accuracy", "adv_accuracy"}: sums over the replica's batch.
  """
  x_adv = None
  if attack_fn is not None:
    # The step's value, not the variable: XLA cannot take a resource variable argument.
    x_adv = tf.stop_gradient(attack_fn(x, y, attack_seed(seed, step), tf.identity(step)))
  with tf.GradientTape() as tape:
    # The passes the recipe's terms read (clean/adv, Grad-CAM, masked, input gradients).
    record = recipe.forward(tapped, x, x_adv, y)
    # float32 whatever the compute dtype (mixed precision: a user's bfloat16 taps / maps).
    terms = {t.name: tf.cast(t.fn(record), tf.float32) for t in recipe.terms}
    per_example = tf.add_n([t.weight * terms[t.name] for t in recipe.terms])
    loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
    if model.losses:
      loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
      loss = optimizer.scale_loss(loss)  # mixed_float16; apply_gradients unscales.
  grads = tape.gradient(loss, model.trainable_variables)
  if l2:
    grads = [g if g is None else g + tf.cast(l2, g.dtype) * tf.cast(v, g.dtype)
             for g, v in zip(grads, model.trainable_variables)]
  optimizer.apply_gradients(zip(grads, model.trainable_variables))
  if ema is not None:
    ema.update(ema_lib.averaged_weights(model))
  sums = {name: tf.reduce_sum(value) for name, value in terms.items()}
  sums["loss"] = tf.reduce_sum(per_example)
  if record.clean is not None:
    sums["accuracy"] = correct(record.clean, y)
  if record.adv is not None:
    sums["adv_accuracy"] = correct(record.adv, y)
  return sums
