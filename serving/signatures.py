"""Names shared by the export, its warmup requests, the client and the test servers.

A leaf module (standard library only, no TensorFlow): `serving.export`, `serving.warmup`,
`serving.client` and the stand-in server all import it, and it imports none of them, so the
import graph stays acyclic.

Signatures of an export (inputs -> outputs), batch dimension None everywhere; the image
inputs are declared [-1, H, W, C] in the SignatureDefs (`saved_model_cli show`, TF Serving's
metadata API) and checked in the graph:

| name              | method   | inputs                              | outputs              |
| ----------------- | -------- | ----------------------------------- | -------------------- |
| `serving_default` | predict  | `images` float32 [N, H, W, C] [0,1] | PREDICT_OUTPUTS      |
| `predict_images`  | predict  | `image_bytes` string [N]            | PREDICT_OUTPUTS      |
| `predict_uint8`   | predict  | `images` uint8 [N, H, W, C] 0..255  | PREDICT_OUTPUTS      |
|                   |          | (only with `accept_uint8=True`)     |                      |
| `explain`         | predict  | `images` as `serving_default`       | + `gradcam`, `attention_0..3` |
| `classify`        | classify | `inputs` serialized tf.Example [N]  | `classes` [N, K] string, `scores` [N, K] |
|                   |          | with the bytes feature `image/encoded` |                   |
| `model_card`      | predict  | `format` string [N]: json or md     | `model_card` string [N] |
"""

DEFAULT_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "predict_images"
UINT8_SIGNATURE = "predict_uint8"
EXPLAIN_SIGNATURE = "explain"
CLASSIFY_SIGNATURE = "classify"
MODEL_CARD_SIGNATURE = "model_card"

# Signatures every export has, in order; `predict_uint8` is added on request.
SIGNATURES = (DEFAULT_SIGNATURE, BYTES_SIGNATURE, EXPLAIN_SIGNATURE, CLASSIFY_SIGNATURE,
              MODEL_CARD_SIGNATURE)
# Signatures that warmup requests exercise (image inputs).
WARMUP_SIGNATURES = (DEFAULT_SIGNATURE, BYTES_SIGNATURE, EXPLAIN_SIGNATURE)

IMAGES_KEY = "images"
IMAGE_BYTES_KEY = "image_bytes"
CLASSIFY_INPUTS_KEY = "inputs"  # TF Serving's classify API feeds tf.Examples here.
EXAMPLE_IMAGE_FEATURE = "image/encoded"  # The tf.Example feature holding the image bytes.
MODEL_CARD_FORMAT_KEY = "format"
MODEL_CARD_KEY = "model_card"

PREDICT_OUTPUTS = ("logits", "probabilities", "class_ids", "classes")
CLASSIFY_OUTPUTS = ("classes", "scores")

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"

ASSETS_EXTRA = "assets.extra"
METADATA_FILE = "tfadv_metadata.json"
WARMUP_FILE = "tf_serving_warmup_requests"
MODEL_CARD_JSON = "model_card.json"
MODEL_CARD_MD = "model_card.md"

# Pixels may exceed [0, 1] by this much (rounding in clients' conversions) and are clipped.
RANGE_TOLERANCE = 1e-3
