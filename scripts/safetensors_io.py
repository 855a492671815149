"""Minimal safetensors writer/reader for loom's reference generators (no
safetensors package needed): 8-byte little-endian header length, JSON
header, raw little-endian data."""
import json
import struct

import torch

_NAMES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64",
          torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}
_DTYPES = {v: k for k, v in _NAMES.items()}


def save(path, tensors, meta=None):
    header, blobs, offset = {}, [], 0
    if meta:
        header["__metadata__"] = {str(k): str(v) for k, v in meta.items()}
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        raw = (t.to(torch.uint8) if t.dtype == torch.bool else t).numpy().tobytes()
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load(path):
    import numpy as np
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base, out = 8 + n, {}
    np_types = {"F32": np.float32, "F64": np.float64, "I64": np.int64,
                "I32": np.int32, "U8": np.uint8, "BOOL": np.uint8}
    for name, e in header.items():
        b, end = e["data_offsets"]
        arr = np.frombuffer(data[base + b:base + end], dtype=np_types[e["dtype"]])
        t = torch.from_numpy(arr.copy()).reshape(e["shape"])
        out[name] = t.bool() if e["dtype"] == "BOOL" else t
    return out, meta
