"""A3 vs its base attacks (AAD paper Table 7 setting: sigma = 10, 3 iterations) on the
product-trained `none` and `aad` small CNNs (trainer.train, 300 steps, tests/testing.py).

Not a test (pytest collects *_test.py only): a measurement quoted in README.md. Run from the
repository root: `python -m benchmarks.a3_table7` (about 5 minutes on 2 cores).
"""
import time

import tensorflow as tf
from tests import testing
from tfadv.attacks import a3, pgd, stepll
_, _, xt, yt = testing.fashion_mnist_arrays()
x, y = tf.constant(xt[:500]), tf.constant(yt[:500])
seed = tf.constant([3, 4])
for defense in ("none", "aad"):
  t = time.time()
  model = testing.product_trained(defense).model
  f = a3.with_gradcam(model)
  print(f"{defense}: trained in {time.time() - t:.0f} s, clean {testing.accuracy(model, x, y):.3f}", flush=True)
  for eps in (4 / 255, 0.1):
    runs = {
        "PGD-3": lambda x, y: pgd.pgd(f, x, y, eps, steps=3, seed=seed),
        "PGD-3+A3": lambda x, y: a3.a3(f, x, y, eps, base="pgd", sigma=10.0, steps=3, seed=seed),
        "Iter-StepLL-3": lambda x, y: stepll.iter_stepll(f, x, y, eps, steps=3),
        "Iter-StepLL-3+A3": lambda x, y: a3.a3(f, x, y, eps, base="iter_stepll", sigma=10.0, steps=3),
    }
    out = []
    for name, run in runs.items():
      adv = tf.function(run)(x, y)
      out.append(f"{name} {testing.accuracy(model, adv, y):.3f}")
    print(f"  eps={eps:.4f}: " + ", ".join(out), flush=True)
