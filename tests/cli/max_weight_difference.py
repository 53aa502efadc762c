#!/usr/bin/env python3
# The largest absolute difference between the f32 weights of two model.safetensors files, tensor by tensor
# in name order (no numpy needed). Usage: max_weight_difference.py A.safetensors B.safetensors; prints the
# number; exits 1 when the files hold different tensors or sizes.
import array, json, struct, sys


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name in sorted(k for k in header if k != "__metadata__"):
        a, b = header[name]["data_offsets"]
        x = array.array("f")
        x.frombytes(data[a:b])
        out[name] = x
    return out


a, b = load(sys.argv[1]), load(sys.argv[2])
if sorted(a) != sorted(b) or any(len(a[k]) != len(b[k]) for k in a):
    print("the files hold different tensors", file=sys.stderr)
    sys.exit(1)
print(max(abs(x - y) for k in a for x, y in zip(a[k], b[k])))
