"""Loads safetensors files and a PEFT adapter directory that fedmm wrote, with the reference
implementation, and prints what it found as JSON (read by src/python-interop.test.ts).

    python3 check_fedmm_files.py <dir>    # every *.safetensors in <dir>, and <dir>/peft if present
"""
import json
import sys
from pathlib import Path

import numpy as np
import safetensors
from safetensors import deserialize, safe_open
from safetensors.numpy import load_file

NUMPY = {"F32": np.float32, "F16": np.float16, "I8": np.int8, "U8": np.uint8, "F64": np.float64,
         "I32": np.int32, "I64": np.int64, "U16": np.uint16, "I16": np.int16}


def dtype_code(name):
    """Older releases of the bindings report torch-style names, newer ones the header codes."""
    return {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "int8": "I8", "uint8": "U8",
            "float64": "F64", "int32": "I32", "int64": "I64"}.get(name, name)


def values_of(dtype, raw):
    if dtype == "BF16":
        bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32)
    return np.frombuffer(raw, dtype=NUMPY[dtype])


def as_list(a):
    return [x if np.isfinite(x) else str(x) for x in np.asarray(a, dtype=np.float64).reshape(-1).tolist()]


def check_file(path):
    data = path.read_bytes()
    # The Rust parser validates header, offsets and sizes; it raises on anything off-spec.
    parsed = deserialize(data)
    out = {"tensors": {}}
    with safe_open(str(path), framework="numpy") as f:
        out["metadata"] = f.metadata()
    # numpy has no bfloat16: files with BF16 are checked through the raw bytes only.
    numpy_ok = all(dtype_code(info["dtype"]) != "BF16" for _, info in parsed)
    loaded = load_file(str(path)) if numpy_ok else {}
    for name, info in parsed:
        dtype = dtype_code(info["dtype"])
        vals = values_of(dtype, bytes(info["data"]))
        if name in loaded:
            assert np.array_equal(loaded[name].reshape(-1), vals, equal_nan=True), name
        out["tensors"][name] = {"dtype": dtype, "shape": list(info["shape"]), "values": as_list(vals)}
    return out


def check_peft(d):
    config = json.loads((d / "adapter_config.json").read_text())
    tensors = load_file(str(d / "adapter_model.safetensors"))
    with safe_open(str(d / "adapter_model.safetensors"), framework="numpy") as f:
        metadata = f.metadata()
    deltas = {}
    scaling = config["lora_alpha"] / config["r"]
    for module in config["target_modules"]:
        a = tensors[f"base_model.model.{module}.lora_A.weight"]
        b = tensors[f"base_model.model.{module}.lora_B.weight"]
        assert a.shape[0] == config["r"] and b.shape[1] == config["r"], (a.shape, b.shape)
        # torch Linear weight is [out, in]; the merged update PEFT adds is (B @ A) * alpha / r.
        delta = (b.astype(np.float64) @ a.astype(np.float64)) * scaling
        deltas[module] = {"shape": list(delta.shape), "values": as_list(delta)}
    return {"config": config, "metadata": metadata, "names": sorted(tensors), "deltas": deltas}


def main(d):
    d = Path(d)
    report = {"safetensors": safetensors.__version__, "files": {}}
    for path in sorted(d.glob("*.safetensors")):
        report["files"][path.name] = check_file(path)
    if (d / "peft").is_dir():
        report["peft"] = check_peft(d / "peft")
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
