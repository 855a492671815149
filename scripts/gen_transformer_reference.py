#!/usr/bin/python3
"""Reference values for loom's attention and transformer parity tests.

Run with Debian's python3-torch (1.13) from the repository root:

  OMP_WAIT_POLICY=passive /usr/bin/python3 scripts/gen_transformer_reference.py

Writes tests/data/transformer_reference.safetensors (deterministic: one
thread, each case seeded with zlib.crc32 of its name; eval mode, so dropout
is off). Entries for a case CASE (a name without dots):

  CASE.state.NAME   the module's state_dict under PyTorch's names, loaded
                    into loom with strict name checking
  CASE.in.NAME      a forward argument: data ("x" for self-attention,
                    "query", "key", "value", "src", "tgt", "memory") and
                    masks named like loom's fields ("key_padding_mask",
                    "attn_mask", "src_mask", "tgt_mask", "memory_mask",
                    "src_key_padding_mask", "tgt_key_padding_mask",
                    "memory_key_padding_mask")
  CASE.out          the output; CASE.r a fixed random tensor shaped like it
  CASE.weights      MultiheadAttention's attention weights (cases that ask
                    for them); CASE.r_weights a random tensor shaped like it
  CASE.grad.NAME    gradient of sum(out * r) (+ sum(weights * r_weights)
                    when weights are recorded) w.r.t. data input or
                    parameter NAME

  causal_mask.nN    nn.Transformer.generate_square_subsequent_mask(N)
  sinusoidal.nN_dD  float64 sinusoidal position table (Vaswani et al.),
                    built as in PyTorch's tutorial (even D) and by the
                    formula itself (odd D)

Metadata: CASE -> the PyTorch call, for people reading the file.

Masks never block every key of a query row: torch gives NaN there, loom
gives zero weights on purpose (its own tests cover that).
"""

import math
import os
import sys
import zlib

os.environ.setdefault("OMP_WAIT_POLICY", "passive")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402 (the repository's writer)

torch.set_num_threads(1)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = os.path.join(ROOT, "tests", "data", "transformer_reference.safetensors")

E, HEADS, L, S, B, FF = 8, 2, 5, 6, 2, 16
KDIM, VDIM = 5, 7
# Valid (unpadded) lengths per batch element; padding is trailing, so key 0
# is always valid and a causal row 0 always has a key to attend to.
VALID = [None, 3]  # None: the full length


def seed(case):
    torch.manual_seed(zlib.crc32(case.encode()))


def randomize(module):
    """Fresh xavier values for every matrix (so layers deep-copied by
    TransformerEncoder differ) and random biases and norm affines (so
    zeros and ones hide no mistake)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))


def padding_bool(n):
    """(B, n) bool key padding, true at padded (trailing) positions."""
    m = torch.zeros(B, n, dtype=torch.bool)
    for b, v in enumerate(VALID):
        if v is not None:
            m[b, v:] = True
    return m


def padding_float(n, finite):
    """(B, n) float key padding: -inf at padded positions; with `finite`,
    random additive values elsewhere (torch adds a float mask)."""
    m = 0.5 * torch.randn(B, n) if finite else torch.zeros(B, n)
    return m.masked_fill(padding_bool(n), float("-inf"))


def min_valid(n):
    return min(n if v is None else v for v in VALID)


def block_random(shape, n_keys, p=0.3):
    """Random bool mask (true = blocked) over (..., rows, n_keys) that
    leaves every row at least one key below every batch's valid length."""
    m = torch.rand(shape) < p
    keep = min_valid(n_keys)
    rows = m.reshape(-1, n_keys)
    for i in range(rows.shape[0]):
        if rows[i, :keep].all():
            rows[i, i % keep] = False
    return rows.reshape(shape)


def float_mask(shape, n_keys):
    """Random additive float mask with -inf at randomly blocked keys."""
    blocked = block_random(shape, n_keys)
    return (0.5 * torch.randn(shape)).masked_fill(blocked, float("-inf"))


def causal(n):
    return nn.Transformer.generate_square_subsequent_mask(n)


def record(out, meta, case, call, module, data, masks, forward):
    """Runs forward(module, leaves, masks) -> (y, weights or None) and
    records the case (naming scheme in the docstring).

    Parameters, inputs and the loss weights r are stored in float32, and
    loom computes with exactly those; torch computes in float64 from the
    same values (widening is exact) and the results are stored rounded to
    float32. So a test measures loom's float32 error alone, not the sum of
    two float32 implementations' errors."""
    meta[case] = call
    module.eval()
    for k, v in module.state_dict().items():
        out[f"{case}.state.{k}"] = v.clone()
    module.double()
    leaves = {}
    for k, v in data.items():
        leaves[k] = v.double().requires_grad_(True)
        out[f"{case}.in.{k}"] = v.clone()
    wide = {}
    for k, v in masks.items():
        out[f"{case}.in.{k}"] = v.clone()
        wide[k] = v.double() if v.is_floating_point() else v
    module.zero_grad()
    y, w = forward(module, leaves, wide)
    assert torch.isfinite(y).all(), case
    r = torch.randn(y.shape)
    loss = (y * r.double()).sum()
    out[f"{case}.out"] = y.detach().float()
    out[f"{case}.r"] = r
    if w is not None:
        rw = torch.randn(w.shape)
        loss = loss + (w * rw.double()).sum()
        out[f"{case}.weights"] = w.detach().float()
        out[f"{case}.r_weights"] = rw
    loss.backward()
    for k, v in leaves.items():
        assert torch.isfinite(v.grad).all(), case
        out[f"{case}.grad.{k}"] = v.grad.float()
    for k, p in module.named_parameters():
        out[f"{case}.grad.{k}"] = p.grad.float()


# --------------------------------------------------------------- attention


def mha(out, meta, case, self_attn=False, bf=False, kdim=None, vdim=None,
        bias=True, kpm=None, attn=None, need_weights=True, average=True):
    """kpm: None, "bool", "float" (-inf/0) or "float_finite"; attn: None,
    "bool2", "float2", "bool3", "float3" or "causal"."""
    seed(case)
    m = nn.MultiheadAttention(E, HEADS, bias=bias, kdim=kdim, vdim=vdim,
                              batch_first=bf)
    randomize(m)
    Lq, Sk = (L, L) if self_attn else (L, S)

    def seq(n, d):
        return torch.randn((B, n, d) if bf else (n, B, d))

    if self_attn:
        data = {"x": seq(Lq, E)}
    else:
        data = {"query": seq(Lq, E), "key": seq(Sk, kdim or E),
                "value": seq(Sk, vdim or E)}
    masks = {}
    if kpm == "bool":
        masks["key_padding_mask"] = padding_bool(Sk)
    elif kpm is not None:
        masks["key_padding_mask"] = padding_float(Sk, kpm == "float_finite")
    if attn == "bool2":
        masks["attn_mask"] = block_random((Lq, Sk), Sk)
    elif attn == "float2":
        masks["attn_mask"] = float_mask((Lq, Sk), Sk)
    elif attn == "bool3":
        masks["attn_mask"] = block_random((B * HEADS, Lq, Sk), Sk)
    elif attn == "float3":
        masks["attn_mask"] = float_mask((B * HEADS, Lq, Sk), Sk)
    elif attn == "causal":
        masks["attn_mask"] = causal(Lq)

    def fwd(m, a, mk):
        q, k, v = ((a["x"],) * 3 if self_attn
                   else (a["query"], a["key"], a["value"]))
        return m(q, k, v, key_padding_mask=mk.get("key_padding_mask"),
                 attn_mask=mk.get("attn_mask"), need_weights=need_weights,
                 average_attn_weights=average)

    call = (f"nn.MultiheadAttention({E}, {HEADS}, bias={bias}, kdim={kdim}, "
            f"vdim={vdim}, batch_first={bf}) "
            f"{'self' if self_attn else 'cross'}-attention, key_padding_mask "
            f"{kpm}, attn_mask {attn}, need_weights={need_weights}, "
            f"average_attn_weights={average}")
    record(out, meta, case, call, m, data, masks, fwd)


def attention_cases(out, meta):
    mha(out, meta, "mha_self", self_attn=True)
    mha(out, meta, "mha_cross", need_weights=False)
    mha(out, meta, "mha_kpm_bool", kpm="bool")
    mha(out, meta, "mha_kpm_float_finite", kpm="float_finite")
    mha(out, meta, "mha_mask_bool2d", attn="bool2")
    mha(out, meta, "mha_mask_float2d", attn="float2")
    mha(out, meta, "mha_mask_float3d", attn="float3", average=False)
    # torch merges the masks three ways: bool | bool, masked_fill of a
    # float attn_mask, and bool | (float kpm != 0) (so only -inf/0 there)
    mha(out, meta, "mha_both_bool", kpm="bool", attn="bool2")
    mha(out, meta, "mha_both_float_attn", kpm="bool", attn="float3")
    mha(out, meta, "mha_both_float_kpm", kpm="float", attn="bool2")
    mha(out, meta, "mha_self_causal", self_attn=True, kpm="bool",
        attn="causal")
    mha(out, meta, "mha_self_bf", self_attn=True, bf=True, attn="bool3",
        average=False)
    mha(out, meta, "mha_batch_first", bf=True, kpm="bool", attn="float2")
    mha(out, meta, "mha_kvdim", kdim=KDIM, vdim=VDIM, kpm="bool",
        attn="float2")
    mha(out, meta, "mha_kvdim_bf_nobias", kdim=KDIM, vdim=VDIM, bf=True,
        bias=False, kpm="float", average=False)
    mha(out, meta, "mha_nobias_self", self_attn=True, bias=False,
        attn="bool2")
    mha(out, meta, "mha_per_head", kpm="bool", attn="float2", average=False)


# --------------------------------------------------------------- layers


def transformer_masks(kind, causal_mask, other):
    """Masks for src (enc) or tgt/memory (dec), S = L for self-attention."""
    m = {}
    if kind == "enc":
        if causal_mask:
            m["src_mask"] = causal(L)
        elif other:
            m["src_mask"] = block_random((L, L), L)
        m["src_key_padding_mask"] = padding_bool(L)
    else:
        if causal_mask:
            m["tgt_mask"] = causal(L)
        m["tgt_key_padding_mask"] = padding_bool(L)
        m["memory_key_padding_mask"] = (padding_float(S, False) if other
                                        else padding_bool(S))
        if other:  # torch cannot merge a float kpm into a float mask
            m["memory_mask"] = block_random((L, S), S)
    return m


def layer(out, meta, case, kind, act, norm_first, bf, causal_mask=True,
          other=False):
    """One TransformerEncoderLayer (kind "enc") or TransformerDecoderLayer
    ("dec"); `other` gives a random bool src_mask instead of the causal one,
    or a bool memory_mask and a float memory padding mask."""
    seed(case)
    cls = (nn.TransformerEncoderLayer if kind == "enc"
           else nn.TransformerDecoderLayer)
    m = cls(E, HEADS, dim_feedforward=FF, dropout=0.0, activation=act,
            batch_first=bf, norm_first=norm_first)
    randomize(m)

    def seq(n):
        return torch.randn((B, n, E) if bf else (n, B, E))

    data = {"src": seq(L)} if kind == "enc" else {"tgt": seq(L),
                                                   "memory": seq(S)}
    masks = transformer_masks(kind, causal_mask, other)

    def fwd(m, a, mk):
        if kind == "enc":
            return m(a["src"], **mk), None
        return m(a["tgt"], a["memory"], **mk), None

    call = (f"nn.{cls.__name__}({E}, {HEADS}, dim_feedforward={FF}, "
            f"activation='{act}', batch_first={bf}, norm_first={norm_first})"
            f" with {', '.join(masks)}")
    record(out, meta, case, call, m, data, masks, fwd)


def layer_cases(out, meta):
    # each of activation, norm order, layout and mask set twice, in pairs
    # that differ (the whole product would make the file too big)
    for kind in ["enc", "dec"]:
        for act, norm_first, bf, other in [("relu", False, False, False),
                                           ("gelu", True, False, True),
                                           ("gelu", False, True, False),
                                           ("relu", True, True, True)]:
            case = "%s_%s_%s%s" % (kind, act, "pre" if norm_first else "post",
                                   "_bf" if bf else "")
            layer(out, meta, case, kind, act, norm_first, bf,
                  causal_mask=not other, other=other)


def encoder(out, meta, case, norm_first, bf, act):
    seed(case)
    lay = nn.TransformerEncoderLayer(E, HEADS, dim_feedforward=FF,
                                     dropout=0.0, activation=act,
                                     batch_first=bf, norm_first=norm_first)
    m = nn.TransformerEncoder(lay, 2, norm=nn.LayerNorm(E))
    randomize(m)
    src = torch.randn((B, L, E) if bf else (L, B, E))
    masks = {"src_mask": causal(L), "src_key_padding_mask": padding_bool(L)}
    call = (f"nn.TransformerEncoder(TransformerEncoderLayer({E}, {HEADS}, "
            f"{FF}, activation='{act}', batch_first={bf}, "
            f"norm_first={norm_first}), 2, norm=LayerNorm({E})) causal")
    record(out, meta, case, call, m, {"src": src}, masks,
           lambda m, a, mk: (m(a["src"], mask=mk["src_mask"],
                               src_key_padding_mask=mk[
                                   "src_key_padding_mask"]), None))


def transformer(out, meta, case, norm_first, bf, act):
    seed(case)
    m = nn.Transformer(E, HEADS, 2, 2, dim_feedforward=FF, dropout=0.0,
                       activation=act, batch_first=bf, norm_first=norm_first)
    randomize(m)
    src = torch.randn((B, S, E) if bf else (S, B, E))
    tgt = torch.randn((B, L, E) if bf else (L, B, E))
    masks = {"tgt_mask": causal(L),
             "src_key_padding_mask": padding_bool(S),
             "tgt_key_padding_mask": padding_bool(L),
             "memory_key_padding_mask": padding_bool(S)}
    call = (f"nn.Transformer({E}, {HEADS}, 2, 2, {FF}, activation='{act}', "
            f"batch_first={bf}, norm_first={norm_first}) causal tgt")
    record(out, meta, case, call, m, {"src": src, "tgt": tgt}, masks,
           lambda m, a, mk: (m(a["src"], a["tgt"], **mk), None))


def stack_cases(out, meta):
    encoder(out, meta, "encoder_post", False, False, "relu")
    transformer(out, meta, "transformer_pre_bf", True, True, "gelu")


# --------------------------------------------------------------- tables


def tables(out):
    for n in [1, 5, 9]:
        out[f"causal_mask.n{n}"] = causal(n)
    # PyTorch's tutorial (PositionalEncoding), which needs an even d
    n, d = 7, 8
    pos = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) *
                    (-math.log(10000.0) / d))
    pe = torch.zeros(n, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    out[f"sinusoidal.n{n}_d{d}"] = pe
    # the formula for an odd d: PE(p, 2i) = sin(p / 10000^(2i/d)),
    # PE(p, 2i+1) = cos(the same)
    n, d = 6, 5
    pe = torch.zeros(n, d, dtype=torch.float64)
    for p in range(n):
        for i in range(d):
            a = p / 10000.0 ** ((i - i % 2) / d)
            pe[p, i] = math.cos(a) if i % 2 else math.sin(a)
    out[f"sinusoidal.n{n}_d{d}"] = pe


def main():
    out, meta = {}, {}
    attention_cases(out, meta)
    layer_cases(out, meta)
    stack_cases(out, meta)
    tables(out)
    safetensors_io.save(PATH, out, meta)
    print(f"{os.path.relpath(PATH, ROOT)}: {len(out)} tensors, "
          f"{sum(1 for k in out if k.endswith('.out'))} cases, "
          f"{os.path.getsize(PATH)} bytes")


if __name__ == "__main__":
    main()
