"""The TRADES regulariser (Zhang et al., 2019): `KL(f(x) || f(x_adv))`.

The TRADES loss is `CE(f(x), y) + beta * KL(f(x) || f(x_adv))`, with `x_adv` found by
maximising the same KL (`tfadv.attacks.trades`). The recipe `trades` assembles it from
`cross_entropy.clean_cross_entropy` and `kl_term`; as in the reference implementation the
gradient flows through both the clean and the adversarial prediction.
"""

import tensorflow as tf


def kl_divergence(logits, other_logits):
  """`KL(softmax(logits) || softmax(other_logits))` per example: [B], >= 0.

  Computed from log-softmax, so it is finite for saturated outputs.
  """
  log_p = tf.nn.log_softmax(logits)
  log_q = tf.nn.log_softmax(other_logits)
  return tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)


def kl_term(forward):
  """`KL(f(x) || f(x_adv))` of a `Forward` record: [B]."""
  return kl_divergence(forward.require("clean", "trades_kl")["logits"],
                       forward.require("adv", "trades_kl")["logits"])
