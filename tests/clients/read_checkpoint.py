"""Reads a lightning-mcp checkpoint the way a Python user would, with `safetensors` and numpy,
and prints what it found as JSON: {"tensors": {name: {"dtype", "shape", "values"}},
"metadata": {...}} (values flattened, row-major).

Usage: read_checkpoint.py PATH
"""

import json
import sys

from safetensors import safe_open
from safetensors.numpy import load_file

path = sys.argv[1]
tensors = load_file(path)
with safe_open(path, framework="np") as f:
    metadata = f.metadata()
print(
    json.dumps(
        {
            "tensors": {
                name: {
                    "dtype": str(array.dtype),
                    "shape": list(array.shape),
                    "values": array.reshape(-1).astype("float64").tolist(),
                }
                for name, array in tensors.items()
            },
            "metadata": {key: json.loads(value) for key, value in metadata.items()},
        }
    )
)
