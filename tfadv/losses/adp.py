"""Adaptive diversity promoting regularisation, ADP (Pang et al., ICML 2019).

For an ensemble of M members with softmax predictions `F_m(x)` over K classes:

  L_ADP = sum_m CE(F_m(x), y) - alpha * H(mean_m F_m(x)) - beta * log(ED)
  ED    = det(M~^T M~ + delta I),

where `M~` holds, per member, the prediction with the true class removed (the
"non-maximal" predictions), each row L2-normalised: ED is the squared volume spanned by
the members' non-maximal predictions, largest when they are orthogonal. The reference
code (github:P2333/Adaptive-Diversity-Promoting, `utils.py`) uses alpha = 2, beta = 0.5
for ADP_{2,0.5}, delta = 1e-6 and a 1e-20 offset inside the entropy's log; with
adversarial training it adds the same loss on the adversarial batch.

The terms read `forward.<which>["members"]`: member logits [B, M, K] (the ensemble
model's `members` extra, `tfadv.models.ensemble.build`). Each term is a loss to
minimise, so the table weights them with positive numbers (alpha, beta).
"""

import tensorflow as tf

# Reference constants (utils.py): offset inside the entropy's log, and the regulariser
# added to the Gram matrix before the log-determinant.
LOG_OFFSET = 1e-20
LOG_DET_OFFSET = 1e-6
ALPHA = 2.0
BETA = 0.5

MEMBERS = "members"


def members_cross_entropy(member_logits, labels):
  """Sum over members of the softmax cross-entropy, [B]."""
  member_logits = tf.convert_to_tensor(member_logits)
  labels = tf.cast(labels, tf.int32)
  tiled = tf.tile(labels[:, None], [1, tf.shape(member_logits)[1]])
  ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tiled, logits=member_logits)
  return tf.reduce_sum(ce, axis=1)


def ensemble_entropy(member_logits):
  """Shannon entropy of the mean member prediction, `H(mean_m softmax(z_m))`, [B]."""
  mean = tf.reduce_mean(tf.nn.softmax(member_logits, axis=-1), axis=1)
  return -tf.reduce_sum(mean * tf.math.log(mean + LOG_OFFSET), axis=-1)


def non_maximal_predictions(member_logits, labels):
  """Each member's softmax prediction without the true class, L2-normalised: [B, M, K-1]."""
  probs = tf.nn.softmax(member_logits, axis=-1)
  num_classes = tf.shape(probs)[-1]
  labels = tf.cast(labels, tf.int32)[:, None]
  j = tf.range(num_classes - 1)[None, :]
  keep = j + tf.cast(j >= labels, tf.int32)  # the K-1 indices other than the label
  rest = tf.gather(probs, keep, axis=2, batch_dims=1)
  return tf.math.l2_normalize(rest, axis=-1)


def log_det_diversity(member_logits, labels, log_det_offset=LOG_DET_OFFSET):
  """`log det(M~ M~^T + delta I)` of the normalised non-maximal predictions, [B].

  At most `M log(1 + delta)` (orthogonal members); `log(M + delta) + (M-1) log(delta)`
  for identical members.
  """
  rest = non_maximal_predictions(member_logits, labels)
  gram = tf.matmul(rest, rest, transpose_b=True)
  eye = tf.eye(tf.shape(gram)[-1], dtype=gram.dtype)
  return tf.linalg.logdet(gram + log_det_offset * eye)


def adp_loss(member_logits, labels, alpha=ALPHA, beta=BETA,
             log_det_offset=LOG_DET_OFFSET):
  """The ADP loss `sum_m CE_m - alpha H - beta log ED`, [B]."""
  return (members_cross_entropy(member_logits, labels)
          - alpha * ensemble_entropy(member_logits)
          - beta * log_det_diversity(member_logits, labels, log_det_offset))


def _members(forward, which, term):
  if which not in ("clean", "adv"):
    raise ValueError(f"Invalid which: expected 'clean' or 'adv'; received which={which!r}")
  out = forward.require(which, term)
  if MEMBERS not in out:
    raise ValueError(f"Loss term {term!r} needs {which}[{MEMBERS!r}], the member logits "
                     "[B, M, K] of an ensemble model (tfadv.models.ensemble.build); "
                     f"received {which} keys {sorted(out)}")
  return out[MEMBERS]


def members_ce_term(forward, which="clean"):
  """Sum of the members' CE on the `which` pass, [B]."""
  return members_cross_entropy(_members(forward, which, "adp_ce"), forward.labels)


def ensemble_entropy_term(forward, which="clean"):
  """`-H(mean prediction)` on the `which` pass (minimising it promotes entropy), [B]."""
  return -ensemble_entropy(_members(forward, which, "adp_entropy"))


def log_det_term(forward, which="clean", log_det_offset=LOG_DET_OFFSET):
  """`-log ED` on the `which` pass (minimising it promotes diversity), [B]."""
  return -log_det_diversity(_members(forward, which, "adp_log_det"), forward.labels,
                            log_det_offset)


def adp_term(forward, which="clean", alpha=ALPHA, beta=BETA,
             log_det_offset=LOG_DET_OFFSET):
  """The whole ADP loss on the `which` pass, [B] (weight 1; add it for both passes
  with adversarial training, as the reference does)."""
  return adp_loss(_members(forward, which, "adp"), forward.labels, alpha, beta,
                  log_det_offset)
