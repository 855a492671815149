#!/usr/bin/python3
"""Reference values for the recurrent regularisers and padded batches
(tests/test_rnn_regularisers.c), from PyTorch.

Writes tests/data/rnn_regularisers.safetensors, all float64. Random masks are
loom's: loom's generator (xoshiro256** seeded through splitmix64, uniform
draws (u64 >> 11) * 2^-53, loom_bernoulli(p) = 1 where a draw is below p, in
element order) is reproduced below, and the masks are drawn in the order
nn/rnn.h documents for the runner. So each case is PyTorch computing what
AWD-LSTM computes with the masks loom draws for the case's seed:

  wd_lstm    nn.LSTM (2 layers, bidirectional, lengths) whose weight_hh are
             replaced by W * mask / (1 - p) (AWD-LSTM's WeightDrop)
  wd_gru     nn.GRU with weight-drop
  zone_train an LSTM cell (nn.LSTMCell) stepped with zoneout masks on h
             and c, lengths
  zone_eval  the same in evaluation: h + rate * (h_prev - h)
  locked     2-layer LSTM, weight-drop and locked dropout between layers
  wn_lstm    nn.LSTM with torch.nn.utils.weight_norm on weight_hh_l0
  emb        embedding dropout: F.embedding(ids, mask * W), mask (V, 1)
  pad        nn.utils.rnn.pad_sequence, time-major and batch-first

For case <c>: <c>.param.<name> (the state dict), <c>.x, <c>.lengths,
<c>.out, <c>.h_n, <c>.c_n, <c>.r_* (loss = sum of each output times its
r_*), <c>.grad.<name> (gradients of that loss; grad.x for the input).
Run: /usr/bin/python3 scripts/gen_rnn_regulariser_reference.py
"""
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.utils.stateless import functional_call

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import save  # noqa: E402

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
M64 = (1 << 64) - 1
I, H, T, B = 3, 4, 5, 3
LENGTHS = [5, 2, 4]


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class LoomRng:
    """loom_rng_new(seed): the stream of tensor/random.c."""

    def __init__(self, seed):
        self.s = []
        x = seed
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & M64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            self.s.append(z ^ (z >> 31))

    def u64(self):
        s = self.s
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def bernoulli(self, p, shape):
        n = 1
        for d in shape:
            n *= d
        v = [1.0 if (self.u64() >> 11) * 2.0 ** -53 < p else 0.0
             for _ in range(n)]
        return torch.tensor(v).reshape(shape)


def finish(out, name, m_params, x, outputs, extra=None):
    """Seeds r_* for each output, backpropagates, stores everything."""
    p = name + "."
    gen = torch.Generator().manual_seed(len(name) * 7919)
    loss = 0
    for k, (key, y) in enumerate(outputs):
        r = torch.randn(y.shape, generator=gen)
        out[p + "r_" + key] = r
        out[p + key] = y.detach().clone()
        loss = loss + (y * r).sum()
    loss.backward()
    for k, v in m_params.items():
        out[p + "param." + k] = v.detach().clone()
        out[p + "grad." + k] = v.grad.clone()
    if x is not None:
        out[p + "x"] = x.detach().clone()
        out[p + "grad.x"] = x.grad.clone()
    for k, v in (extra or {}).items():
        out[p + k] = v


def weight_drop_case(out, name, cls, layers, bidir, p, seed, use_len):
    torch.manual_seed(seed)
    m = cls(I, H, num_layers=layers, bidirectional=bidir)
    rng = LoomRng(seed)
    dropped = {}
    for l in range(layers):
        for suffix in [""] + (["_reverse"] if bidir else []):
            k = "weight_hh_l%d%s" % (l, suffix)
            w = getattr(m, k)
            dropped[k] = w * rng.bernoulli(1 - p, w.shape) * (1 / (1 - p))
    raw = dict(m.named_parameters())
    for k, w in dropped.items():  # as AWD-LSTM's WeightDrop swaps them in
        del m._parameters[k]
        setattr(m, k, w)
    x = torch.randn(T, B, I, requires_grad=True)
    if use_len:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.tensor(LENGTHS), enforce_sorted=False)
        y, hn = m(packed)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, total_length=T)
    else:
        y, hn = m(x)
    outs = [("out", y)]
    if cls is torch.nn.LSTM:
        outs += [("h_n", hn[0]), ("c_n", hn[1])]
    else:
        outs += [("h_n", hn)]
    extra = {"lengths": torch.tensor(LENGTHS)} if use_len else {}
    finish(out, name, raw, x, outs, extra)


def lstm_layer(cell, x, lengths, zone, rates, rng, training, h0=None):
    """One LSTM layer stepped as the runner steps it: the cell, zoneout of
    h and c, then sequences past their end keep their state and output 0."""
    h = torch.zeros(B, H) if h0 is None else h0
    c = torch.zeros(B, H)
    live_len = torch.tensor(lengths if lengths else [T] * B)
    outs = []
    for t in range(x.shape[0]):
        h2, c2 = cell(x[t], (h, c))
        if zone:
            if training:
                mh = rng.bernoulli(rates[0], (B, H))
                mc = rng.bernoulli(rates[1], (B, H))
            else:
                mh, mc = rates[0], rates[1]
            h2 = mh * h + (1 - mh) * h2 if training else h2 + mh * (h - h2)
            c2 = mc * c + (1 - mc) * c2 if training else c2 + mc * (c - c2)
        live = (live_len > t).reshape(B, 1)
        h, c = torch.where(live, h2, h), torch.where(live, c2, c)
        outs.append(torch.where(live, h, torch.zeros(())))
    return torch.stack(outs), h, c


def zoneout_case(out, name, training, seed):
    torch.manual_seed(seed)
    cell = torch.nn.LSTMCell(I, H)
    x = torch.randn(T, B, I, requires_grad=True)
    rng = LoomRng(seed)
    y, h, c = lstm_layer(cell, x, LENGTHS, True, (0.3, 0.5), rng, training)
    params = {k + "_l0": v for k, v in cell.named_parameters()}
    finish(out, name, params, x, [("out", y), ("h_n", h[None]),
                                  ("c_n", c[None])],
           {"lengths": torch.tensor(LENGTHS)})


def locked_case(out, name, seed):
    """Two layers, weight-drop 0.25 on both, locked dropout 0.3 between."""
    torch.manual_seed(seed)
    cells = [torch.nn.LSTMCell(I, H), torch.nn.LSTMCell(H, H)]
    x = torch.randn(T, B, I, requires_grad=True)
    rng = LoomRng(seed)
    p, q = 0.25, 0.3
    masks = [rng.bernoulli(1 - p, c.weight_hh.shape) for c in cells]
    inp, hs, cs = x, [], []
    for l, cell in enumerate(cells):
        w = {"weight_hh": cell.weight_hh * masks[l] * (1 / (1 - p))}

        def step(xt, state, cell=cell, w=w):
            return functional_call(cell, w, (xt, state))
        y, h, c = lstm_layer(step, inp, None, False, None, rng, True)
        hs.append(h)
        cs.append(c)
        inp = y
        if l == 0:
            inp = y * (rng.bernoulli(1 - q, (1, B, H)) * (1 / (1 - q)))
    params = {}
    for l, cell in enumerate(cells):
        for k, v in cell.named_parameters():
            params["%s_l%d" % (k, l)] = v
    finish(out, name, params, x, [("out", y), ("h_n", torch.stack(hs)),
                                  ("c_n", torch.stack(cs))])


def weight_norm_case(out, name, seed):
    torch.manual_seed(seed)
    m = torch.nn.LSTM(I, H)
    torch.nn.utils.weight_norm(m, "weight_hh_l0")
    with torch.no_grad():  # so that the weight differs from v
        m.weight_hh_l0_g.mul_(torch.rand(m.weight_hh_l0_g.shape) + 0.5)
    x = torch.randn(T, B, I, requires_grad=True)
    y, (h, c) = m(x)
    finish(out, name, dict(m.named_parameters()), x,
           [("out", y), ("h_n", h), ("c_n", c)])


def embedding_case(out, name, seed):
    torch.manual_seed(seed)
    V, D, p = 7, 3, 0.5
    w = torch.randn(V, D, requires_grad=True)
    ids = torch.tensor([[1, 4], [4, 0], [6, 1], [2, 4]])
    mask = LoomRng(seed).bernoulli(1 - p, (V, 1)) * (1 / (1 - p))
    y = F.embedding(ids, mask * w)
    finish(out, name, {"weight": w}, None, [("out", y)], {"ids": ids})


def pad_case(out, name):
    torch.manual_seed(5)
    seqs = [torch.randn(n, 2) for n in [3, 1, 4]]
    for i, s in enumerate(seqs):
        out["%s.seq%d" % (name, i)] = s
    pad = torch.nn.utils.rnn.pad_sequence
    out[name + ".time_major"] = pad(seqs, padding_value=-1.0)
    out[name + ".batch_first"] = pad(seqs, batch_first=True, padding_value=-1.0)


def main():
    out = {}
    weight_drop_case(out, "wd_lstm", torch.nn.LSTM, 2, True, 0.4, 11, True)
    weight_drop_case(out, "wd_gru", torch.nn.GRU, 1, False, 0.5, 12, False)
    zoneout_case(out, "zone_train", True, 13)
    zoneout_case(out, "zone_eval", False, 13)
    locked_case(out, "locked", 14)
    weight_norm_case(out, "wn_lstm", 15)
    embedding_case(out, "emb", 16)
    pad_case(out, "pad")
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "tests", "data",
                        "rnn_regularisers.safetensors")
    save(path, out, {})
    print("wrote", os.path.normpath(path), len(out), "tensors")


if __name__ == "__main__":
    main()
