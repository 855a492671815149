#!/usr/bin/python3
"""Reference values for loom's RNN/LSTM/GRU parity tests, from torch.nn.

Writes tests/data/rnn_reference.safetensors. For case <c> the entries are:
  <c>.param.<name>   the layer's state_dict (PyTorch names)
  <c>.x              input, (T, B, I) or (B, T, I) when batch_first
  <c>.lengths        int64 sequence lengths (cases with "len" only)
  <c>.h0, <c>.c0     initial states (cases with "init" only)
  <c>.out, <c>.h_n, <c>.c_n   outputs
  <c>.r_out, <c>.r_h, <c>.r_c random weights; loss = sum(out * r_out) +
                     sum(h_n * r_h) (+ sum(c_n * r_c))
  <c>.grad.<name>    gradient of that loss w.r.t. each parameter, x, h0, c0
The metadata lists the cases with their settings as
  case.<c> = "kind layers bidirectional batch_first len init bias".
Cases <kind>_nobias_* are layers made with bias=False (no bias_ih_* and
bias_hh_* in their state_dict). Cases ending in _f64 are float64 throughout. In the others the parameters,
inputs and r_* are float32 (what loom computes with), and the outputs and
gradients are torch's float64 results from exactly those values: the truth,
not another float32 computation, so the tests measure loom's own error.

Single cells (torch.nn.LSTMCell, GRUCell, RNNCell) looped by hand for
CELL_STEPS steps, float64, cases
cell_<kind>[_nobias]_<batched|unbatched>_<init|zero>:
  <c>.param.<name>   the cell's state_dict (weight_ih, ..., no suffix)
  <c>.x              (CELL_STEPS, B, I), or (CELL_STEPS, I) unbatched
  <c>.h0, <c>.c0     initial states, (B, H) or (H) (init cases only;
                     the others start from torch's zeros, hx=None)
  <c>.out            the outputs h_t stacked, (CELL_STEPS, B, H) or
                     (CELL_STEPS, H)
  <c>.h_n, <c>.c_n   the states after the last step
  <c>.r_out, <c>.r_c random weights; loss = sum(out * r_out) (+ sum(c_n *
                     r_c))
  <c>.grad.<name>    as for the layers
with metadata cell.<c> = "kind batched init bias".
Run: /usr/bin/python3 scripts/gen_rnn_reference.py (Debian's python3-torch).
"""
import os
import sys
import zlib

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import save  # noqa: E402

torch.set_num_threads(1)
I, H, T, B = 3, 4, 5, 3
LENGTHS = [5, 2, 4]
CELL_STEPS = 3


def make(kind, layers, bidir, batch_first, bias):
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU,
           "rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN}[kind]
    kw = {"nonlinearity": "relu"} if kind == "rnn_relu" else {}
    return cls(I, H, num_layers=layers, bidirectional=bidir,
               batch_first=batch_first, bias=bias, **kw)


def run_case(out, meta, name, kind, layers, bidir, batch_first, use_len,
             use_init, dtype=torch.float32, bias=True):
    torch.manual_seed(zlib.crc32(name.encode()))
    torch.set_default_dtype(dtype)
    m = make(kind, layers, bidir, batch_first, bias)
    D = 2 if bidir else 1
    x = torch.randn((B, T, I) if batch_first else (T, B, I))
    h0 = torch.randn(layers * D, B, H) if use_init else None
    c0 = torch.randn(layers * D, B, H) if use_init else None
    p = name + "."
    for k, v in m.state_dict().items():
        out[p + "param." + k] = v.clone()
    out[p + "x"] = x
    if use_init:
        out[p + "h0"] = h0
        if kind == "lstm":
            out[p + "c0"] = c0
    # the truth: float64 from the stored values
    m.double()
    x = x.double().requires_grad_(True)
    h0 = h0.double().requires_grad_(True) if use_init else None
    c0 = c0.double().requires_grad_(True) if use_init else None
    state = None
    if use_init:
        state = (h0, c0) if kind == "lstm" else h0
    if use_len:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.tensor(LENGTHS), batch_first=batch_first,
            enforce_sorted=False)
        y, hn = m(packed, state)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(
            y, batch_first=batch_first, total_length=T)
    else:
        y, hn = m(x, state)
    h_n, c_n = hn if kind == "lstm" else (hn, None)
    r_out = torch.randn(y.shape, dtype=dtype)
    r_h = torch.randn(h_n.shape, dtype=dtype)
    loss = (y * r_out.double()).sum() + (h_n * r_h.double()).sum()
    if c_n is not None:
        r_c = torch.randn(c_n.shape, dtype=dtype)
        loss = loss + (c_n * r_c.double()).sum()
    loss.backward()
    for k, v in m.named_parameters():
        out[p + "grad." + k] = v.grad
    out[p + "grad.x"] = x.grad
    if use_len:
        out[p + "lengths"] = torch.tensor(LENGTHS, dtype=torch.int64)
    if use_init:
        out[p + "grad.h0"] = h0.grad
        if kind == "lstm":
            out[p + "grad.c0"] = c0.grad
    out[p + "out"], out[p + "h_n"] = y.detach(), h_n.detach()
    out[p + "r_out"], out[p + "r_h"] = r_out, r_h
    if c_n is not None:
        out[p + "c_n"], out[p + "r_c"] = c_n.detach(), r_c
    meta["case." + name] = "%s %d %d %d %d %d %d" % (
        kind, layers, bidir, batch_first, use_len, use_init, bias)
    torch.set_default_dtype(torch.float32)


def run_cell_case(out, meta, name, kind, batched, use_init, bias):
    torch.manual_seed(zlib.crc32(name.encode()))
    torch.set_default_dtype(torch.float64)
    cls = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell,
           "rnn_tanh": torch.nn.RNNCell, "rnn_relu": torch.nn.RNNCell}[kind]
    kw = {"nonlinearity": "relu"} if kind == "rnn_relu" else {}
    m = cls(I, H, bias=bias, **kw)
    lead = (B,) if batched else ()
    x = torch.randn((CELL_STEPS,) + lead + (I,), requires_grad=True)
    h0 = torch.randn(lead + (H,), requires_grad=True) if use_init else None
    c0 = torch.randn(lead + (H,), requires_grad=True) if use_init else None
    p = name + "."
    for k, v in m.state_dict().items():
        out[p + "param." + k] = v.clone()
    out[p + "x"] = x.detach().clone()
    if use_init:
        out[p + "h0"] = h0.detach().clone()
        if kind == "lstm":
            out[p + "c0"] = c0.detach().clone()
    state = None
    if use_init:
        state = (h0, c0) if kind == "lstm" else h0
    hs = []
    for t in range(CELL_STEPS):
        state = m(x[t], state)
        hs.append(state[0] if kind == "lstm" else state)
    y = torch.stack(hs)
    h_n, c_n = state if kind == "lstm" else (state, None)
    r_out = torch.randn(y.shape)
    loss = (y * r_out).sum()
    if c_n is not None:
        r_c = torch.randn(c_n.shape)
        loss = loss + (c_n * r_c).sum()
    loss.backward()
    for k, v in m.named_parameters():
        out[p + "grad." + k] = v.grad
    out[p + "grad.x"] = x.grad
    if use_init:
        out[p + "grad.h0"] = h0.grad
        if kind == "lstm":
            out[p + "grad.c0"] = c0.grad
    out[p + "out"], out[p + "h_n"], out[p + "r_out"] = y.detach(), \
        h_n.detach(), r_out
    if c_n is not None:
        out[p + "c_n"], out[p + "r_c"] = c_n.detach(), r_c
    meta["cell." + name] = "%s %d %d %d" % (kind, batched, use_init, bias)
    torch.set_default_dtype(torch.float32)


def main():
    out, meta = {}, {}
    for kind in ["lstm", "gru", "rnn_tanh", "rnn_relu"]:
        for layers in [1, 2, 3]:
            for bidir in [False, True]:
                for use_len in [False, True]:
                    if kind.startswith("rnn") and layers == 3:
                        continue
                    name = "%s_l%d%s%s" % (kind, layers, "_bi" if bidir else "",
                                           "_len" if use_len else "")
                    run_case(out, meta, name, kind, layers, bidir, False,
                             use_len, False)
        run_case(out, meta, kind + "_init_bf", kind, 2, True, True, True, True)
        # float64: loom must agree to ~1e-10 (the dtype is read from x)
        run_case(out, meta, kind + "_f64", kind, 2, True, False, True, True,
                 torch.float64)
        # bias=False: the same settings, float32 batch-first and float64
        run_case(out, meta, kind + "_nobias_init_bf", kind, 2, True, True,
                 True, True, bias=False)
        run_case(out, meta, kind + "_nobias_f64", kind, 2, True, False, True,
                 True, torch.float64, bias=False)
    for kind in ["lstm", "gru", "rnn_tanh", "rnn_relu"]:
        for bias in [True, False]:
            for batched in [True, False]:
                for use_init in [True, False]:
                    name = "cell_%s%s_%s_%s" % (
                        kind, "" if bias else "_nobias",
                        "batched" if batched else "unbatched",
                        "init" if use_init else "zero")
                    run_cell_case(out, meta, name, kind, batched, use_init,
                                  bias)
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "tests", "data", "rnn_reference.safetensors")
    save(path, out, meta)
    print("wrote", os.path.normpath(path), len(out), "tensors")


if __name__ == "__main__":
    main()
