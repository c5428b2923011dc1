"""Runs a SavedModel signature through TensorFlow's C API, the loader TF Serving uses.

  python3 c_api_runner.py REQUEST.json

REQUEST.json: {"library": ".../libtensorflow_cc.so.2", "export_dir": ..., "runs": [{"feed":
"op:0", "fetches": {"logits": "op:0", ...}, "inputs": "x.npy", "dtype": "float32", "output":
"out.npz"}, ...]}. Loads the export once, writes each run's numeric outputs to its `output`
and prints one line `RESULT {json}` with, per run, `{"output": path}` or `{"error": "<code>
<message>"}`. This process never imports TensorFlow's Python package
(the test checks `sys.modules`): `TF_LoadSessionFromSavedModel` and `TF_SessionRun` of
`libtensorflow_cc.so.2` through ctypes, numpy for the buffers.
"""

import ctypes
import json
import sys

import numpy as np

# TF_DataType values (tensorflow/c/tf_datatype.h).
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 9: np.int64}
CODES = {np.dtype(v): k for k, v in DTYPES.items()}


class Output(ctypes.Structure):
  _fields_ = [("oper", ctypes.c_void_p), ("index", ctypes.c_int)]


def _bind(lib):
  vp, cp = ctypes.c_void_p, ctypes.c_char_p
  sigs = {
      "TF_NewStatus": ([], vp), "TF_GetCode": ([vp], ctypes.c_int), "TF_Message": ([vp], cp),
      "TF_NewGraph": ([], vp), "TF_NewSessionOptions": ([], vp),
      "TF_LoadSessionFromSavedModel": ([vp, vp, cp, ctypes.POINTER(cp), ctypes.c_int, vp, vp,
                                        vp], vp),
      "TF_GraphOperationByName": ([vp, cp], vp),
      "TF_AllocateTensor": ([ctypes.c_int, ctypes.POINTER(ctypes.c_int64), ctypes.c_int,
                             ctypes.c_size_t], vp),
      "TF_TensorData": ([vp], vp), "TF_TensorByteSize": ([vp], ctypes.c_size_t),
      "TF_NumDims": ([vp], ctypes.c_int), "TF_Dim": ([vp, ctypes.c_int], ctypes.c_int64),
      "TF_TensorType": ([vp], ctypes.c_int), "TF_DeleteTensor": ([vp], None),
      "TF_SessionRun": ([vp, vp, ctypes.POINTER(Output), ctypes.POINTER(vp), ctypes.c_int,
                         ctypes.POINTER(Output), ctypes.POINTER(vp), ctypes.c_int, vp,
                         ctypes.c_int, vp, vp], None),
  }
  for name, (args, result) in sigs.items():
    fn = getattr(lib, name)
    fn.argtypes, fn.restype = args, result
  return lib


def _error(lib, status):
  """'' or `<code> <message>` of a failed call."""
  code = lib.TF_GetCode(status)
  if not code:
    return ""
  return f"{code} {' '.join(lib.TF_Message(status).decode(errors='replace').split())}"


def _output(lib, graph, name):
  op_name, _, index = name.partition(":")
  op = lib.TF_GraphOperationByName(graph, op_name.encode())
  if not op:
    print(f"NO_OPERATION {op_name}")
    sys.exit(4)
  return Output(op, int(index or 0))


def _run(lib, session, graph, status, run):
  value = np.ascontiguousarray(np.load(run["inputs"]).astype(run["dtype"]))
  dims = (ctypes.c_int64 * value.ndim)(*value.shape)
  tensor = lib.TF_AllocateTensor(CODES[value.dtype], dims, value.ndim, value.nbytes)
  ctypes.memmove(lib.TF_TensorData(tensor), value.ctypes.data, value.nbytes)
  names = sorted(run["fetches"])
  feeds = (Output * 1)(_output(lib, graph, run["feed"]))
  fetches = (Output * len(names))(*[_output(lib, graph, run["fetches"][n]) for n in names])
  values = (ctypes.c_void_p * len(names))()
  lib.TF_SessionRun(session, None, feeds, (ctypes.c_void_p * 1)(tensor), 1, fetches, values,
                    len(names), None, 0, None, status)
  error = _error(lib, status)
  if error:
    return {"error": error}
  out = {}
  for name, result in zip(names, values):
    dtype = DTYPES.get(lib.TF_TensorType(result))
    if dtype is None:  # Strings (class names): the Python loaders check those.
      continue
    shape = [lib.TF_Dim(result, i) for i in range(lib.TF_NumDims(result))]
    size = lib.TF_TensorByteSize(result)
    buffer = (ctypes.c_char * size).from_address(lib.TF_TensorData(result))
    out[name] = np.frombuffer(bytes(buffer), dtype=dtype).reshape(shape)
  np.savez(run["output"], **out)
  return {"output": run["output"]}


def main(request_path):
  """Loads the export once, runs every entry of `runs`; prints one JSON line of results."""
  with open(request_path) as f:
    request = json.load(f)
  lib = _bind(ctypes.CDLL(request["library"], mode=ctypes.RTLD_GLOBAL))
  status, graph = lib.TF_NewStatus(), lib.TF_NewGraph()
  tags = (ctypes.c_char_p * 1)(b"serve")
  session = lib.TF_LoadSessionFromSavedModel(lib.TF_NewSessionOptions(), None,
                                             request["export_dir"].encode(), tags, 1, graph,
                                             None, status)
  load_error = _error(lib, status)
  results = [] if load_error else [_run(lib, session, graph, status, run)
                                   for run in request["runs"]]
  imported_tf = any(m == "tensorflow" or m.startswith("tensorflow.") for m in sys.modules)
  print("RESULT " + json.dumps({"load_error": load_error, "results": results,
                                "imported_tensorflow": imported_tf}))


if __name__ == "__main__":
  main(sys.argv[1])
