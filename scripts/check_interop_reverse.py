#!/usr/bin/python3
"""Checks that a state dict loom wrote loads into the PyTorch model it
claims to be and gives loom's output.

    OMP_WAIT_POLICY=passive /usr/bin/python3 scripts/check_interop_reverse.py \
        /tmp/loom_interop_cnn.safetensors [/tmp/loom_interop_cnn_io.safetensors]

tests/test_nn_parity.c (test_interop_to_torch) writes, for each interop
model, $TMPDIR/loom_interop_<model>.safetensors (the module's state dict,
with loom's own seeded weights) and loom_interop_<model>_io.safetensors (an
input and loom's output on it). The model (the classes of
scripts/gen_nn_reference.py) is told by the names in the state dict; the
second file defaults to the first with "_io" added, else to the committed
tests/data/interop_<model>_io.safetensors. Loading is strict: a missing,
unexpected or misshapen entry is an error. Prints MATCH or MISMATCH with the
worst relative error, and exits 0 on a match.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_nn_reference as ref  # noqa: E402 (sets up torch quietly)
import torch  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6


def model_of(state):
    for name, cls in ref.INTEROP_MODELS.items():
        if set(state) == set(cls().state_dict()):
            return name, cls()
    sys.exit(f"no interop model has exactly these names: {sorted(state)}")


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit(__doc__)
    path = argv[1]
    state, meta = ref.load_safetensors(path)
    name, model = model_of(state)
    model.load_state_dict(state, strict=True)
    model.eval()
    io_path = argv[2] if len(argv) == 3 else path.replace(
        ".safetensors", "_io.safetensors")
    if not os.path.exists(io_path):
        io_path = os.path.join(ref.DATA, f"interop_{name}_io.safetensors")
    io, _ = ref.load_safetensors(io_path)
    with torch.no_grad():
        y = model(io["input"])
    want = io["output"]
    if y.shape != want.shape:
        print(f"MISMATCH: {name}: output shape {list(y.shape)}, "
              f"{io_path} has {list(want.shape)}")
        return 1
    floor = ATOL * max(1.0, want.abs().max().item())
    err = ((y - want).abs() / want.abs().clamp(min=floor / RTOL)).max().item()
    ok = err <= RTOL
    print(f"{'MATCH' if ok else 'MISMATCH'}: {name} model from {path} "
          f"({meta.get('written_by', 'unknown writer')}), output vs "
          f"{io_path}: worst relative error {err:.3g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
