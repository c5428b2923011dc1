"""Attention-map pairing, AT (Goodman et al., equation 4).

`L_AT = sum_j || Q_adv^j / ||Q_adv^j||_2 - Q_clean^j / ||Q_clean^j||_2 ||_p` over the chosen
stages j, with `Q = vec(sum_c |A_c|^p)`.
"""

import functools

import tensorflow as tf

from tfadv.attention import maps


def _safe_norm(x, p):
  """||x||_p along the last axis with a finite gradient at x = 0 (tf.norm's is NaN there)."""
  if p == 2:
    squared = tf.reduce_sum(tf.square(x), axis=-1)
    positive = squared > 0
    return tf.where(positive, tf.sqrt(tf.where(positive, squared, 1.0)), 0.0)
  powered = tf.reduce_sum(tf.pow(tf.abs(x), p), axis=-1)
  positive = powered > 0
  return tf.where(positive, tf.pow(tf.where(positive, powered, 1.0), 1.0 / p), 0.0)


def _map_distance(clean_map, adv_map, p):
  return _safe_norm(adv_map - clean_map, p)


def attention_pairing(clean_taps, adv_taps, p=2.0):
  """Sum over stages of the p-norm distance of normalised attention maps: [B].

  Args:
    clean_taps: sequence of [B, h_j, w_j, c_j] feature maps on clean images.
    adv_taps: the same stages on the adversarial images.
    p: exponent of the attention map and order of the distance (the paper: 2).
  """
  if len(clean_taps) != len(adv_taps) or not clean_taps:
    raise ValueError("attention_pairing expects the same non-zero number of clean and "
                     f"adversarial taps; received {len(clean_taps)} and {len(adv_taps)}")
  total = 0.0
  for clean, adv in zip(clean_taps, adv_taps):
    total += _map_distance(maps.attention_map(clean, p), maps.attention_map(adv, p), p)
  return total


def joint_attention_pairing(joint_taps, p=2.0):
  """`attention_pairing` of taps over `concat(clean, adv)` [2B, ...]: [B].

  The maps are computed on each joint tap and the [2B, h*w] maps are split, so the
  feature maps' gradient is one tensor per tap, not the concat of two halves' gradients
  (the concats were ~45 ms of CPU in a 0.6 s AT+ALP step; `benchmarks/step_time.py`).
  """
  if not joint_taps:
    raise ValueError("joint_attention_pairing expects a non-zero number of taps")
  total = 0.0
  for joint in joint_taps:
    clean_map, adv_map = tf.split(maps.attention_map(joint, p), 2, axis=0)
    total += _map_distance(clean_map, adv_map, p)
  return total


def attention_pairing_term(forward, taps=None, p=2.0):
  """AT of a `Forward` record over the tap indices `taps` (None: every tap): [B].

  On the joint batch when the clean and adversarial images went through the model
  together (the same value; a cheaper gradient), else on the two passes.
  """
  clean = forward.require("clean", "at")["taps"]
  adv = forward.require("adv", "at")["taps"]
  if taps is None:
    taps = range(len(clean))
  if forward.joint is not None:
    joint = forward.joint["taps"]
    return joint_attention_pairing([joint[i] for i in taps], p)
  return attention_pairing([clean[i] for i in taps], [adv[i] for i in taps], p)


def make_term(taps, p):
  """Binds `taps` and `p`: a function of a `Forward` record."""
  return functools.partial(attention_pairing_term, taps=None if taps is None else tuple(taps),
                           p=p)
