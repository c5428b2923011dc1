"""Measures the README's serving figures on a Fashion-MNIST export (a development tool).

  python -m tests.serving.measure_serving runs/export/fmnist_at_alp/1

Serves the version with the stand-in server and prints the answers to good input, to pixels
0..255, NaN, a wrong shape, corrupt and truncated bytes, a REST classify request, the C API
loader's answers, and `tfadv-client --metadata`.
"""
import base64, json, os, subprocess, sys, urllib.request, urllib.error
import numpy as np
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
sys.path.insert(0, ROOT)
os.chdir(ROOT)
version_dir = sys.argv[1]
base_path, version = os.path.split(version_dir)
name = os.path.basename(base_path)
import tensorflow as tf
from tests.serving import model_server, c_api_loader_test
from serving import client as client_lib, warmup as warmup_lib
from tfadv import config as config_lib
from tfadv.data import datasets
store = model_server.ModelStore({name: base_path})
_, port = model_server.start_rest_server(store)
grpc_server, gport = model_server.start_grpc_server(store)
url = f"http://127.0.0.1:{port}/v1/models/{name}"
data = datasets.load(config_lib.DataConfig(name="fashion_mnist"))
x, y = next(iter(data.test.batch(3)))
x, y = x.numpy(), y.numpy()
def post(verb, body):
    req = urllib.request.Request(url + verb, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
print("labels", y.tolist(), [data.class_names[i] for i in y])
code, ans = post(":predict", {"instances": x[:2].tolist()})
print("GOOD", code, json.dumps([{k: p[k] for k in ("class_ids", "classes")} for p in ans["predictions"]]))
print("255", *post(":predict", {"instances": (x[:1] * 255).tolist()}))
print("SHAPE", *post(":predict", {"instances": x[:1, :20, :20].tolist()}))
print("BYTES", *post(":predict", {"signature_name": "predict_images", "instances": [
    {"b64": base64.b64encode(warmup_lib.encode_png(x[0])).decode()}, {"b64": base64.b64encode(b"GIF89a").decode()}]}))
png = warmup_lib.encode_png(x[0])
print("TRUNC", *post(":predict", {"signature_name": "predict_images", "instances": [{"b64": base64.b64encode(png[:200]).decode()}]}))
code, ans = post(":classify", {"signature_name": "classify", "examples": [{"image/encoded": {"b64": base64.b64encode(png).decode()}}]})
top = sorted(ans["results"][0], key=lambda r: -r[1])[:3]
print("CLASSIFY", code, json.dumps({"results": [[[c, round(s, 4)] for c, s in top]]}))
g = client_lib.GrpcClient(f"127.0.0.1:{gport}", name, timeout=60)
nan = x[:1].copy(); nan[0, 3, 3, 0] = np.nan
try: g.predict("serving_default", {"images": nan})
except client_lib.ServingError as e: print("NAN", e)
import pathlib, tempfile
tmp = pathlib.Path(tempfile.mkdtemp())
res = c_api_loader_test.run_c_api(version_dir, [("serving_default", "images", x, "float32"), ("serving_default", "images", x * 255, "float32")], tmp)
keras_ids = None
print("CAPI good class_ids", res[0]["class_ids"].tolist(), "names", [data.class_names[i] for i in res[0]["class_ids"]])
py = tf.saved_model.load(version_dir).signatures["serving_default"](images=tf.constant(x))
print("CAPI vs python max |dlogits|", float(np.abs(res[0]["logits"] - py["logits"].numpy()).max()))
print("CAPI 255:", res[1])
p = subprocess.run([sys.executable, "-m", "trainers.client", f"--server=127.0.0.1:{port}", f"--model_name={name}", "--metadata"], capture_output=True, text=True)
print("METADATA rc", p.returncode); print(p.stdout); print(p.stderr[-500:])
