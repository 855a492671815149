#!/usr/bin/python3
"""Writes PyTorch's nll_loss / cross_entropy values and gradients where the
class weights of the batch's targets sum to 0, -0, a tiny or a negative
number, and kl_div's at zero targets. tests/test_loss_parity.c (test case
"edges") compares them with loom: nll_loss and kl_div bit for bit (NaN
against NaN, infinities and zeros with their signs), cross_entropy's NaN,
infinities and zeros exactly and its other values to a few ulps.

Run with Debian's python3-torch (1.13) from the repository root:

    OMP_WAIT_POLICY=passive /usr/bin/python3 scripts/gen_loss_edge_reference.py

The output is deterministic (no randomness, one thread) and committed, so CI
never needs torch. tests/data/loss_edges.safetensors (written by
scripts/safetensors_io.py) holds, for each CASE (a name without dots):

    CASE.in.input    logits (cross_entropy) or log-probabilities (nll_loss),
                     (3, 3), or (1, 3, 3) for the K-dim cases (a "k" after
                     the function's name, torch's nll_loss2d), float32 or
                     float64: the case's dtype
    CASE.in.target   int64 class indices, (3,) or (1, 3)
    CASE.in.weight   class weights, (3,), the input's dtype
    CASE.opts        int64 [function (0 nll_loss, 1 cross_entropy),
                     reduction (0 mean, 1 sum, 2 none), ignore_index]
    CASE.smoothing   float64 scalar, cross_entropy's label_smoothing
    CASE.out         the loss, computed by torch in the input's dtype
    CASE.grad.input  the gradient of out.sum() w.r.t. the input
  Metadata: CASE -> the torch call.

nll_many_* cases: 300 targets, (300, 3) input, random weights; and kl_div
cases ("kl_..."): CASE.in.input log-probabilities and
CASE.in.target probabilities (0, -0, tiny, negative among them), (2, 4);
CASE.opts [2, reduction (0 mean, 1 sum, 2 none, 3 batchmean), 0];
CASE.out; CASE.grad.input and CASE.grad.target, of out.sum().
"""

import os
import sys
import warnings

os.environ.setdefault("OMP_WAIT_POLICY", "passive")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

torch.set_num_threads(1)
warnings.filterwarnings("ignore", "reduction: 'mean'")  # kl_div's advice
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = os.path.join(ROOT, "tests", "data", "loss_edges.safetensors")

X = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [-2.0, 1.0, 0.0]]

# name -> (class weights, targets); class 2 is ignore_index in every case
# but "noignore", so the kept targets' weights are those of classes 0, 1.
WEIGHTS = {
    "cancel": ([1.0, -1.0, 2.0], [0, 1, 2]),        # 1 + -1 = +0, loss != 0
    "cancel3": ([1.0, -2.0, 0.5], [0, 0, 1]),       # 0 over 0
    "negzero": ([-0.0, -0.0, 2.0], [0, 1, 2]),      # -0 + -0
    "zero": ([0.0, 0.0, 2.0], [0, 1, 1]),
    "tiny": ([1e-300, -1e-300, 1.0], [0, 1, 2]),    # 0 in float32
    "denormal": ([5e-324, 0.0, 1.0], [0, 1, 2]),    # 0 in float32
    "tiny32": ([1e-45, 0.0, 1.0], [0, 1, 2]),       # float32's least
    "big_cancel": ([1e8, 1.0, -1e8], [0, 1, 2]),    # kept weights 1e8, 1
    "negative": ([1.0, -3.0, 2.0], [0, 1, 1]),      # sum -5
    "allignored": ([1.0, -1.0, 2.0], [2, 2, 2]),
    "noignore": ([1.0, 1.0, -2.0], [0, 1, 2]),      # ignore_index -100
}
# ces: label_smoothing 0.1; nllk, cek: K-dim, for some of the weights
FUNCS = {"nll": 0, "ce": 1, "ces": 1, "nllk": 0, "cek": 1}
KDIM = ("cancel", "zero", "denormal", "allignored")
REDUCTIONS = {"mean": 0, "sum": 1, "none": 2}
DTYPES = {"f32": torch.float32, "f64": torch.float64}


def record(out, meta, case, fname, w, t, ii, rname, dtype):
    fcode = FUNCS[fname]
    eps = 0.1 if fname == "ces" else 0.0
    x = torch.tensor(X, dtype=dtype)
    tt = torch.tensor(t)
    if fname.endswith("k"):  # (1, C, 3): the rows of X along dim 2
        x, tt = x.t().unsqueeze(0).contiguous(), tt.unsqueeze(0)
    x.requires_grad_(True)
    wt = torch.tensor(w, dtype=dtype)
    if fcode == 0:
        call = (f"F.nll_loss(input, target, weight, ignore_index={ii}, "
                f"reduction='{rname}')")
        y = F.nll_loss(x, tt, wt, ignore_index=ii, reduction=rname)
    else:
        call = (f"F.cross_entropy(input, target, weight, ignore_index={ii}, "
                f"reduction='{rname}', label_smoothing={eps})")
        y = F.cross_entropy(x, tt, wt, ignore_index=ii, reduction=rname,
                            label_smoothing=eps)
    y.sum().backward()
    out[f"{case}.in.input"] = x.detach().clone()
    out[f"{case}.in.target"] = tt
    out[f"{case}.in.weight"] = wt
    out[f"{case}.opts"] = torch.tensor([fcode, REDUCTIONS[rname], ii])
    out[f"{case}.smoothing"] = torch.tensor(eps, dtype=torch.float64)
    out[f"{case}.out"] = y.detach().clone()
    out[f"{case}.grad.input"] = x.grad.clone()
    meta[case] = call


def main():
    out, meta = {}, {}
    for dname, dtype in DTYPES.items():
        for fname in FUNCS:
            for wname, (w, t) in WEIGHTS.items():
                if fname.endswith("k") and wname not in KDIM:
                    continue
                ii = -100 if wname == "noignore" else 2
                for rname in REDUCTIONS:
                    record(out, meta, f"{fname}_{wname}_{rname}_{dname}",
                           fname, w, t, ii, rname, dtype)
    # Many targets: nll_loss sums in torch's cascade (levels of 16 terms).
    gen = torch.Generator().manual_seed(5)
    lp = torch.randn(300, 3, generator=gen, dtype=torch.float64)
    w = torch.randn(3, generator=gen, dtype=torch.float64)
    t = torch.randint(0, 3, (300,), generator=gen)
    for dname, dtype in DTYPES.items():
        for rname in ("mean", "sum"):
            case = f"nll_many_{rname}_{dname}"
            x = lp.to(dtype).clone().requires_grad_(True)
            y = F.nll_loss(x, t, w.to(dtype), ignore_index=2, reduction=rname)
            y.backward()
            out[f"{case}.in.input"] = x.detach().clone()
            out[f"{case}.in.target"] = t
            out[f"{case}.in.weight"] = w.to(dtype)
            out[f"{case}.opts"] = torch.tensor([0, REDUCTIONS[rname], 2])
            out[f"{case}.smoothing"] = torch.tensor(0.0, dtype=torch.float64)
            out[f"{case}.out"] = y.detach().clone()
            out[f"{case}.grad.input"] = x.grad.clone()
            meta[case] = (f"F.nll_loss(input, target, weight, ignore_index=2, "
                          f"reduction='{rname}'), 300 targets")
    for dname, dtype in DTYPES.items():
        tiny = 1e-300 if dtype == torch.float64 else 1e-45
        for rcode, rname in enumerate(("mean", "sum", "none", "batchmean")):
            case = f"kl_{rname}_{dname}"
            x = torch.tensor([[-1.0, -2.0, 0.5, -0.3], [0.0, -0.0, 3.0, -1.5]],
                             dtype=dtype, requires_grad=True)
            t = torch.tensor([[0.0, -0.0, 0.5, tiny], [0.0, 0.25, -0.25, 1.0]],
                             dtype=dtype, requires_grad=True)
            y = F.kl_div(x, t, reduction=rname)
            y.sum().backward()
            out[f"{case}.in.input"] = x.detach().clone()
            out[f"{case}.in.target"] = t.detach().clone()
            out[f"{case}.opts"] = torch.tensor([2, rcode, 0])
            out[f"{case}.out"] = y.detach().clone()
            out[f"{case}.grad.input"] = x.grad.clone()
            out[f"{case}.grad.target"] = t.grad.clone()
            meta[case] = f"F.kl_div(input, target, reduction='{rname}')"
    safetensors_io.save(PATH, out, meta)
    print(f"{os.path.relpath(PATH, ROOT)}: {len(out)} tensors, "
          f"{os.path.getsize(PATH)} bytes")


if __name__ == "__main__":
    main()
