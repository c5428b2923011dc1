"""A3 vs its base attacks (AAD paper Table 7 setting: sigma = 10, 3 iterations) on the
product-trained `none` and `aad` small CNNs (trainer.train, 300 steps, tests/testing.py).

Not a test (pytest collects *_test.py only): a measurement quoted in docs/a3.md. Run from
the repository root: `python -m benchmarks.a3_table7` (about 5 minutes on 2 cores). Each
accuracy is over the first 500 test images, with its standard error sqrt(p (1 - p) / n).
"""
import time

import tensorflow as tf
from tests import testing
from tfadv.attacks import a3, pgd, stepll

_, _, xt, yt = testing.fashion_mnist_arrays()
x, y = tf.constant(xt[:500]), tf.constant(yt[:500])
seed = tf.constant([3, 4])


def fmt(acc):
  return f"{100 * acc:.1f}% ± {100 * (acc * (1 - acc) / len(yt[:500])) ** 0.5:.1f}"


for defense in ("none", "aad"):
  t = time.time()
  model = testing.product_trained(defense).model
  f = a3.with_gradcam(model)
  print(f"{defense}: trained in {time.time() - t:.0f} s, clean {fmt(testing.accuracy(model, x, y))}",
        flush=True)
  for eps in (4 / 255, 0.1):
    runs = {
        "PGD-3": lambda x, y: pgd.pgd(f, x, y, eps, steps=3, seed=seed),
        "PGD-3+A3": lambda x, y: a3.a3(f, x, y, eps, base="pgd", sigma=10.0, steps=3, seed=seed),
        "Iter-StepLL-3": lambda x, y: stepll.iter_stepll(f, x, y, eps, steps=3),
        "Iter-StepLL-3+A3": lambda x, y: a3.a3(f, x, y, eps, base="iter_stepll", sigma=10.0,
                                               steps=3),
    }
    out = []
    for name, run in runs.items():
      adv = tf.function(run)(x, y)
      out.append(f"{name} {fmt(testing.accuracy(model, adv, y))}")
    print(f"  eps={eps:.4f}: " + ", ".join(out), flush=True)
