"""In-graph input validation, class names, the classify signature and the model card.

TF Serving does no input validation of its own, so each signature must refuse what the model
was not trained on (pixels 0..255, NaN, wrong shapes, broken image bytes) with
INVALID_ARGUMENT and a message saying what was expected; good input gets class names.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from serving import export as export_lib
from serving import model_card as model_card_lib
from serving import warmup as warmup_lib


@pytest.fixture(scope="module")
def loaded(served):
  return tf.saved_model.load(served.version_dir)


def _error(fn, **inputs):
  with pytest.raises(tf.errors.InvalidArgumentError) as error:
    fn(**inputs)
  return str(error.value)


@pytest.mark.parametrize("transform, message", [
    (lambda x: x * 255.0, "images must be float32 in [0, 1]; received max 255.0 \u2014 divide "
                          "by 255"),
    (lambda x: x * 1.2 + 0.01, "images must be float32 in [0, 1]; received max 1.2"),
    (lambda x: x * 2.0 - 1.0, "images must be float32 in [0, 1]; received min -1.0000 \u2014 "
                              "map [-1, 1] to [0, 1] with (x + 1) / 2"),
    (lambda x: np.where(np.arange(x.size).reshape(x.shape) % 50 == 0, np.inf, x),
     "images must be float32 in [0, 1]; received 8 NaN or infinite values"),
    (lambda x: x[:, :4], "images must have shape [N, 8, 8, 1] (height, width, channels); "
                         "received [6, 4, 8, 1]"),
    (lambda x: np.repeat(x, 3, -1), "received [6, 8, 8, 3]"),
    (lambda x: x[0], "images must be a batch of images of shape [N, 8, 8, 1]; received shape "
                     "[8, 8, 1] (rank 3)"),
])
@pytest.mark.parametrize("signature", ["serving_default", "explain"])
def test_float_signatures_refuse_bad_images(served, loaded, transform, message, signature):
  bad = transform(served.x[:6]).astype(np.float32)
  assert message in _error(loaded.signatures[signature], images=tf.constant(bad))


def test_pixels_within_the_tolerance_are_clipped_not_refused(served, loaded):
  x = served.x[:4]
  nudged = np.clip(x + 5e-4, 0, None).astype(np.float32)  # max 1.0005 <= 1 + 1e-3
  out = loaded.signatures["serving_default"](images=tf.constant(nudged))
  np.testing.assert_allclose(out["logits"].numpy(),
                             served.model(np.clip(nudged, 0, 1)).numpy(), rtol=1e-4, atol=1e-5)


def test_good_images_get_class_names_and_ids(served, loaded):
  x = served.x[:6]
  out = loaded.signatures["serving_default"](images=tf.constant(x))
  ids = served.model(x).numpy().argmax(-1)
  np.testing.assert_array_equal(out["class_ids"].numpy(), ids)
  assert [c.decode() for c in out["classes"].numpy()] == [served.class_names[i] for i in ids]


def _png(image):
  return warmup_lib.encode_png(image)


def _jpeg(image):
  pixels = tf.image.convert_image_dtype(tf.constant(image), tf.uint8, saturate=True)
  return tf.io.encode_jpeg(pixels, quality=95).numpy()


@pytest.mark.parametrize("make_bad, message", [
    (lambda png, jpeg: b"", "image_bytes[1] (0 bytes): empty"),
    (lambda png, jpeg: b"hello, world", "image_bytes[1] (12 bytes): not a PNG, JPEG, GIF or "
                                        "BMP file"),
    (lambda png, jpeg: png[:len(png) - 20], "truncated PNG (no IEND chunk at the end)"),
    (lambda png, jpeg: jpeg[:len(jpeg) // 2], "truncated JPEG (no end-of-image marker)"),
])
def test_bytes_signature_names_the_bad_item(served, loaded, make_bad, message):
  png, jpeg = _png(served.x[0]), _jpeg(served.x[1])
  batch = [png, make_bad(png, jpeg), jpeg]
  error = _error(loaded.signatures["predict_images"], image_bytes=tf.constant(batch))
  assert message in error, error
  # The same three good ones pass.
  out = loaded.signatures["predict_images"](image_bytes=tf.constant([png, png, jpeg]))
  assert out["classes"].shape == (3,)


def test_uint8_signature_equals_float_on_the_same_pixels(served, loaded):
  pixels = np.round(served.x[:5] * 255).astype(np.uint8)
  out = loaded.signatures["predict_uint8"](images=tf.constant(pixels))
  want = served.model(pixels.astype(np.float32) / 255.0).numpy()
  np.testing.assert_allclose(out["logits"].numpy(), want, rtol=1e-4, atol=1e-5)
  assert "received shape [8, 8, 1]" in _error(loaded.signatures["predict_uint8"],
                                              images=tf.constant(pixels[0]))


def _example(data):
  feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))}
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_classify_signature_answers_class_names_and_scores(served, loaded):
  x = served.x[:3]
  pngs = [_png(image) for image in x]
  out = loaded.signatures["classify"](inputs=tf.constant([_example(p) for p in pngs]))
  assert out["classes"].shape == (3, 10) and out["scores"].shape == (3, 10)
  assert [c.decode() for c in out["classes"].numpy()[0]] == list(served.class_names)
  want = loaded.signatures["predict_images"](image_bytes=tf.constant(pngs))["probabilities"]
  np.testing.assert_allclose(out["scores"].numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
  assert "inputs (feature image/encoded)[0]" in _error(
      loaded.signatures["classify"], inputs=tf.constant([_example(b"junk")]))


def test_model_card_files_and_signature(served, loaded):
  card = export_lib.read_model_card(served.version_dir)
  for section in ("model_details", "model_parameters", "quantitative_analysis",
                  "considerations", "robustness"):
    assert section in card
  robustness = card["robustness"]
  assert robustness["defense"] == "at_alp" and robustness["eps"] == 0.1
  assert robustness["norm"] == "linf" and robustness["threat_model"] == "white"
  assert robustness["defense_weights"] == {"alp_weight": 0.5, "at_weight": 1.0}
  assert robustness["clean_accuracy"] == served.report["clean_accuracy"]
  assert [r["accuracy"] for r in robustness["pgd"]] == [0.25]
  assert [r["accuracy"] for r in robustness["autoattack"]] == [0.125]
  assert robustness["sanity_warnings"] == served.report["warnings"]
  assert card["model_parameters"]["data"][0]["classes"] == list(served.class_names)
  assert card["model_parameters"]["input_shape"] == [8, 8, 1]
  slices = {m["slice"]: m["value"] for m in card["quantitative_analysis"]["performance_metrics"]}
  assert slices["autoattack (linf, eps=0.1)"] == "0.1250"
  assert card["considerations"]["limitations"]
  md_path = os.path.join(served.version_dir, "assets.extra", "model_card.md")
  markdown = open(md_path).read()
  assert "| autoattack (linf, eps=0.1) | 12.50% |" in markdown
  assert "WARNING: PGD-100 is not below PGD-20" in markdown
  out = loaded.signatures["model_card"](format=tf.constant(["json", "md"]))["model_card"]
  assert json.loads(out[0].numpy().decode()) == card
  assert out[1].numpy().decode() == markdown
  assert "format must be json or md; received [xml]" in _error(
      loaded.signatures["model_card"], format=tf.constant(["xml"]))


def test_model_card_without_report_says_so():
  card = model_card_lib.build({"model_name": "m", "version": 1, "input_shape": [8, 8, 1],
                               "defense": {"name": "none", "attack": {"eps": 0.1}}})
  text = " ".join(l["description"] for l in card["considerations"]["limitations"])
  assert "No robustness report" in text and "Not evaluated with AutoAttack" in text
  assert card["quantitative_analysis"]["performance_metrics"] == []
