"""Writes the safetensors fixtures that @fedmm/tensor's tests read, with the reference
implementation (the `safetensors` package from PyPI, Rust underneath).

    python3 -m venv /tmp/st && /tmp/st/bin/pip install safetensors numpy
    /tmp/st/bin/python libs/tensor/fixtures-src/make_safetensors_fixtures.py test/fixtures/safetensors

Each fixture gets an entry in expected.json: its sha256, metadata, and per tensor the dtype,
shape and values (floats for F16/F32/F64, "inf"/"-inf"/"nan" as strings, raw bit patterns for BF16, integers otherwise).
"""
import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np
import safetensors
from safetensors.numpy import save


def bf16_bits(values):
    """float32 -> bfloat16 bits, round to nearest even (the same rule torch uses)."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def serialize_raw(specs, metadata):
    """Calls the Rust serializer directly, for dtypes numpy has no type for (BF16)."""
    keep = []
    flat = {}
    for name, (dtype, shape, array) in specs.items():
        array = np.ascontiguousarray(array)
        keep.append(array)
        if hasattr(safetensors, "TensorSpec"):
            flat[name] = safetensors.TensorSpec(dtype=dtype, shape=list(shape), data_ptr=array.ctypes.data, data_len=array.nbytes)
        else:
            flat[name] = {"dtype": dtype, "shape": list(shape), "data": array.tobytes()}
    return bytes(safetensors.serialize(flat, metadata=metadata))


def describe(array, dtype):
    if dtype == "BF16":
        values = [int(x) for x in array.reshape(-1)]
    elif array.dtype.kind == "f":
        # JSON has no inf/nan: those go as the strings "inf", "-inf", "nan".
        values = [float(x) if np.isfinite(x) else str(float(x)) for x in array.astype(np.float64).reshape(-1)]
    elif array.dtype.kind == "b":
        values = [int(x) for x in array.reshape(-1)]
    else:
        values = [int(x) for x in array.reshape(-1)]
    return {"dtype": dtype, "shape": list(array.shape), "values": values}


def main(out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240611)
    expected = {"generator": f"safetensors {safetensors.__version__}, numpy {np.__version__}", "files": {}}

    def record(name, data, metadata, tensors):
        (out / name).write_bytes(data)
        expected["files"][name] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "metadata": metadata,
            "tensors": tensors,
        }

    # Every dtype numpy can express, through the public numpy API.
    mixed = {
        "dense.kernel": rng.standard_normal((3, 4)).astype(np.float32),
        "dense.bias": np.array([0.0, -0.0, 1.5, -2.25], dtype=np.float32),
        "half": np.array([1.0, -2.0, 0.333251953125, 65504.0, 6.103515625e-05, 5.960464477539063e-08, np.inf, -np.inf], dtype=np.float16),
        "double": np.array([np.pi, -np.e], dtype=np.float64),
        "q": np.array([-127, -1, 0, 1, 127], dtype=np.int8),
        "bytes": np.arange(7, dtype=np.uint8),
        "ids": np.array([[1, -2], [3, 2**40]], dtype=np.int64),
        "i32": np.array([-(2**31), 2**31 - 1], dtype=np.int32),
        "u16": np.array([0, 65535, 3], dtype=np.uint16),
        "mask": np.array([True, False, True]),
        "scalar": np.array(7.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    data = save(mixed, metadata={"format": "np"})
    record("numpy_mixed.safetensors", data, {"format": "np"},
           {k: describe(v, safetensors_dtype(v)) for k, v in mixed.items()})

    # BF16 through the Rust serializer.
    bf = bf16_bits(rng.standard_normal(6).astype(np.float32)).reshape(2, 3)
    f32 = rng.standard_normal(5).astype(np.float32)
    data = serialize_raw({"emb": ("bfloat16", bf.shape, bf), "w": ("float32", f32.shape, f32)}, {"format": "pt"})
    record("bf16.safetensors", data, {"format": "pt"},
           {"emb": describe(bf, "BF16"), "w": describe(f32, "F32")})

    # An int8 tensor with its scale in fedmm's metadata convention.
    q = np.array([[-127, 64], [0, 127]], dtype=np.int8)
    meta = {"fedmm.scale.adapter.q": "0.0078125"}
    data = save({"adapter.q": q}, metadata=meta)
    record("int8_scaled.safetensors", data, meta, {"adapter.q": describe(q, "I8")})

    # A PEFT adapter file as transformers/PEFT save it (F32, format pt).
    a = rng.standard_normal((2, 6)).astype(np.float32)
    b = rng.standard_normal((5, 2)).astype(np.float32)
    peft = {"base_model.model.text.attn.q.lora_A.weight": a, "base_model.model.text.attn.q.lora_B.weight": b}
    data = save(peft, metadata={"format": "pt"})
    record("peft_adapter_model.safetensors", data, {"format": "pt"}, {k: describe(v, "F32") for k, v in peft.items()})

    # A spec-valid file whose header is not padded, so the data starts unaligned (N = 65);
    # the reference reader accepts it, and so must we (by copying).
    header = b'{"v":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    header += b" " * (65 - len(header))
    values = np.array([1.25, -3.5], dtype=np.float32)
    data = struct.pack("<Q", len(header)) + header + values.tobytes()
    check = safetensors.deserialize(data)  # the reference parser must accept it
    assert check[0][0] == "v", check
    record("unpadded.safetensors", data, None, {"v": describe(values, "F32")})

    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


def safetensors_dtype(a):
    return {
        "float32": "F32", "float16": "F16", "float64": "F64", "int8": "I8", "uint8": "U8",
        "int64": "I64", "int32": "I32", "uint16": "U16", "bool": "BOOL",
    }[a.dtype.name]


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/safetensors")
