#!/usr/bin/python3
"""Writes PyTorch's values for loom's tensor ops (tests/test_ops_parity.c).

Run with Debian's python3-torch (1.13) from the repository root:

    OMP_WAIT_POLICY=passive /usr/bin/python3 scripts/gen_ops_reference.py

The output is deterministic (a fixed seed per family of ops, one thread) and committed, so CI
never needs torch. The file is safetensors, written by
scripts/safetensors_io.py.

tests/data/ops_reference.safetensors holds, for each CASE (a name without
dots, e.g. "flip_two_dims"):

    CASE.in.NAME      an input of the call (float64 values, int64
                      indices, bool masks; int32 where the case is
                      about int32), as loom is given it
    CASE.out          the call's result (CASE.out1, ... for further results,
                      such as sort's indices)
    CASE.r            a fixed random tensor shaped like out; every gradient
                      below is of sum(out * r)
    CASE.grad.NAME    that gradient w.r.t. input NAME (float inputs)
  Metadata: CASE -> the torch call, which the C test repeats with loom.

The cases are not the unit tests' examples: other shapes, negative dims,
repeated and out-of-range arguments where PyTorch accepts them.
"""

import os
import sys
import zlib

os.environ.setdefault("OMP_WAIT_POLICY", "passive")
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = os.path.join(ROOT, "tests", "data", "ops_reference.safetensors")


def randn(*shape):
    return torch.randn(shape, dtype=torch.float64)


class Cases:
    def __init__(self):
        self.out, self.meta = {}, {}

    def add(self, case, call, fn, **inputs):
        """Records fn(**inputs) under `case`; `call` is the torch call as
        text. fn returns a tensor or a tuple whose first element is the
        differentiable result."""
        assert case not in self.meta and "." not in case
        self.meta[case] = call
        leaves = {}
        for k, v in inputs.items():
            self.out[f"{case}.in.{k}"] = v.clone()
            v = v.clone()
            if v.is_floating_point():
                v.requires_grad_(True)
            leaves[k] = v
        res = fn(**leaves)
        res = res if isinstance(res, tuple) else (res,)
        for i, t in enumerate(res):
            self.out[f"{case}.out{i if i else ''}"] = t.detach().clone()
        y = res[0]
        if y.is_floating_point() and y.requires_grad:
            r = randn(*y.shape)
            (y * r).sum().backward()
            self.out[f"{case}.r"] = r
            for k, v in leaves.items():
                if v.requires_grad:
                    self.out[f"{case}.grad.{k}"] = v.grad.clone()


def rearranging(c):
    c.add("flip_two_dims", "torch.flip(x, [0, 2])",
          lambda x: torch.flip(x, [0, 2]), x=randn(3, 4, 5))
    c.add("flip_last", "torch.flip(x, [-1])",
          lambda x: torch.flip(x, [-1]), x=randn(2, 3, 4))
    c.add("roll_two_dims", "torch.roll(x, (2, -7), (0, 1))",
          lambda x: torch.roll(x, (2, -7), (0, 1)), x=randn(4, 5))
    c.add("roll_flat", "torch.roll(x, 5)",
          lambda x: torch.roll(x, 5), x=randn(3, 4))
    c.add("roll_same_dim_twice", "torch.roll(x, (3, -1), (0, 0))",
          lambda x: torch.roll(x, (3, -1), (0, 0)), x=randn(6))


def padding(c):
    import torch.nn.functional as F
    c.add("pad_constant_two_dims", "F.pad(x, (1, 2, -1, 3), value=0.5)",
          lambda x: F.pad(x, (1, 2, -1, 3), value=0.5), x=randn(2, 3, 4))
    c.add("pad_constant_crop", "F.pad(x, (-2, 1), value=-1.0)",
          lambda x: F.pad(x, (-2, 1), value=-1.0), x=randn(3, 5))
    c.add("pad_reflect_two_dims", "F.pad(x, (2, 1, 3, 0), mode='reflect')",
          lambda x: F.pad(x, (2, 1, 3, 0), mode="reflect"),
          x=randn(2, 3, 4, 5))
    c.add("pad_reflect_crop", "F.pad(x, (-2, 4), mode='reflect')",
          lambda x: F.pad(x, (-2, 4), mode="reflect"), x=randn(1, 2, 6))
    c.add("pad_replicate_three_dims",
          "F.pad(x, (1, 2, 0, 3, 2, 1), mode='replicate')",
          lambda x: F.pad(x, (1, 2, 0, 3, 2, 1), mode="replicate"),
          x=randn(1, 2, 3, 3, 4))
    c.add("pad_replicate_crop", "F.pad(x, (-3, 5), mode='replicate')",
          lambda x: F.pad(x, (-3, 5), mode="replicate"), x=randn(2, 7))
    c.add("pad_circular", "F.pad(x, (1, 3, 4, 0), mode='circular')",
          lambda x: F.pad(x, (1, 3, 4, 0), mode="circular"),
          x=randn(2, 2, 5, 4))
    c.add("repeat_new_dim", "x.repeat(2, 1, 3)",
          lambda x: x.repeat(2, 1, 3), x=randn(2, 3))
    c.add("repeat_zero", "x.repeat(0, 2)", lambda x: x.repeat(0, 2),
          x=randn(3))
    c.add("tile_fewer_reps", "torch.tile(x, (2,))",
          lambda x: torch.tile(x, (2,)), x=randn(2, 3, 2))
    c.add("tile_more_reps", "torch.tile(x, (2, 1, 2))",
          lambda x: torch.tile(x, (2, 1, 2)), x=randn(3))


def masks(c):
    c.add("tril_batched", "torch.tril(x, -1)",
          lambda x: torch.tril(x, -1), x=randn(2, 4, 5))
    c.add("triu_wide", "torch.triu(x, 2)",
          lambda x: torch.triu(x, 2), x=randn(3, 6))
    c.add("tril_past_corner", "torch.tril(x, 10)",
          lambda x: torch.tril(x, 10), x=randn(4, 3))
    c.add("triu_below", "torch.triu(x, -2)",
          lambda x: torch.triu(x, -2), x=randn(5, 4))
    c.add("masked_select_mask_broadcast", "torch.masked_select(x, mask)",
          torch.masked_select, x=randn(3, 4),
          mask=torch.tensor([True, False, True, True]))
    c.add("masked_select_input_broadcast", "torch.masked_select(x, mask)",
          torch.masked_select, x=randn(1, 4), mask=torch.rand(2, 3, 4) > 0.4)


def with_zeros(x, where):
    x = x.clone()
    x.view(-1)[list(where)] = 0
    return x


def scans(c):
    c.add("cumsum_middle_dim", "torch.cumsum(x, -2)",
          lambda x: torch.cumsum(x, -2), x=randn(3, 5, 4))
    c.add("cumsum_float32", "torch.cumsum(x, 1) (float32: sums in double)",
          lambda x: torch.cumsum(x, 1),
          x=(torch.randn(3, 700) * 1e3).float())
    c.add("cumsum_int64", "torch.cumsum(x, 0)", lambda x: torch.cumsum(x, 0),
          x=torch.randint(-50, 50, (6, 2)))
    c.add("cumprod_signs", "torch.cumprod(x, 1)",
          lambda x: torch.cumprod(x, 1), x=randn(4, 6))
    c.add("cumprod_zeros", "torch.cumprod(x, -1)",
          lambda x: torch.cumprod(x, -1),
          x=with_zeros(randn(3, 7), (2, 5, 7, 15, 16, 20)))


def sorting(c):
    ties = torch.randint(0, 4, (5, 3)).double()
    c.add("sort_descending_ties", "torch.sort(x, stable=True, dim=0, descending=True)",
          lambda x: torch.sort(x, stable=True, dim=0, descending=True),
          x=ties)
    nan = randn(2, 6)
    nan[0, 1] = nan[1, 4] = nan[1, 0] = float("nan")
    c.add("sort_nan", "torch.sort(x, stable=True)",
          lambda x: torch.sort(x, stable=True), x=nan)
    big = torch.tensor([2**53 + 1, 2**53, -2**62, 2**62, 2**53 + 1, 7])
    c.add("argsort_int64_beyond_double", "torch.argsort(x, stable=True)",
          lambda x: torch.argsort(x, stable=True), x=big)
    c.add("topk_largest", "torch.topk(x, 3, -1)",
          lambda x: torch.topk(x, 3, -1), x=randn(4, 9))
    c.add("topk_smallest_dim0", "torch.topk(x, 2, 0, largest=False)",
          lambda x: torch.topk(x, 2, 0, largest=False), x=randn(5, 3, 2))


def int32s(c):
    """int32 as PyTorch treats it: arithmetic wraps, promotion, the dtypes
    of reductions, sorting and conversions, int32 indices."""
    i32 = torch.int32
    edge = torch.tensor([[2**31 - 1, -2**31, 7], [-5, 65536, 46341]], dtype=i32)
    other = torch.tensor([[1, -1, -9], [2**31 - 1, 65536, 46341]], dtype=i32)
    c.add("int32_add_wraps", "a + b", lambda a, b: a + b, a=edge, b=other)
    c.add("int32_sub_wraps", "a - b", lambda a, b: a - b, a=edge, b=other)
    c.add("int32_mul_wraps", "a * b", lambda a, b: a * b, a=edge, b=other)
    c.add("int32_neg_abs_square", "(-a, a.abs(), a.square())",
          lambda a: (-a, a.abs(), a.square()), a=edge)
    c.add("int32_scalars", "(a + 2**40 + 3, a * 3, 5 - a)",
          lambda a: (a + 2**40 + 3, a * 3, 5 - a), a=edge)
    c.add("int32_clamp", "a.clamp(-10, 50000)",
          lambda a: a.clamp(-10, 50000), a=edge)
    small = torch.randint(-20, 20, (3, 4), dtype=i32)
    c.add("int32_plus_int64", "a + b",
          lambda a, b: a + b, a=small, b=torch.randint(-9, 9, (4,)))
    c.add("int32_plus_float64", "a + x",
          lambda a, x: a + x, a=small, x=randn(3, 1))
    c.add("int32_plus_uint8", "a + u",
          lambda a, u: a + u, a=small,
          u=torch.tensor([250, 3, 0, 1], dtype=torch.uint8))
    c.add("int32_plus_bool", "a + m", lambda a, m: a + m, a=small,
          m=torch.tensor([True, False, True, True]))
    c.add("int32_plus_int64_0dim", "a + torch.tensor(2**33 + 1)",
          lambda a: a + torch.tensor(2**33 + 1), a=small)
    c.add("int32_div", "(a / b, torch.true_divide(a, 4))",
          lambda a: (a / torch.tensor([3, -7, 2, 5], dtype=i32),
                     torch.true_divide(a, 4)), a=small)
    c.add("int32_compare", "(a < b, a == 3)",
          lambda a: (a < torch.tensor([0, 5, -3, 2], dtype=i32), a == 3),
          a=small)
    c.add("int32_sum_prod", "(a.sum(), a.sum(1), a.prod(0))",
          lambda a: (a.sum(), a.sum(1), a.prod(0)), a=edge)
    c.add("int32_max_dim", "torch.max(a, 1)",
          lambda a: tuple(torch.max(a, 1)), a=edge)
    c.add("int32_min_argmax", "(a.min(), a.argmax(0), torch.maximum(a, b))",
          lambda a, b: (a.min(), a.argmax(0), torch.maximum(a, b)),
          a=edge, b=other)
    c.add("int32_cumsum", "torch.cumsum(a, 1)",
          lambda a: torch.cumsum(a, 1), a=edge)
    ties = torch.randint(-3, 3, (4, 7), dtype=i32)
    ties[0, 2] = 2**31 - 1
    ties[1, 5] = -2**31
    c.add("int32_sort", "torch.sort(a, stable=True, descending=True)",
          lambda a: torch.sort(a, stable=True, descending=True), a=ties)
    c.add("int32_argsort_dim0", "torch.argsort(a, dim=0, stable=True)",
          lambda a: torch.argsort(a, dim=0, stable=True), a=ties)
    distinct = torch.randperm(24).reshape(3, 8).to(i32) * 1000 - 12000
    c.add("int32_topk", "torch.topk(a, 3)", lambda a: torch.topk(a, 3),
          a=distinct)
    c.add("int32_from_float64", "x.to(torch.int32)",
          lambda x: x.to(i32), x=randn(3, 4) * 1e4)
    c.add("int32_from_int64_wraps", "n.to(torch.int32)",
          lambda n: n.to(i32),
          n=torch.tensor([2**31, 2**32 + 5, -2**31 - 1, -2**63, 2**63 - 1]))
    c.add("int32_to_others", "(a.double(), a.long(), a.float())",
          lambda a: (a.double(), a.long(), a.float()), a=edge)
    table = randn(6, 3)
    idx = torch.tensor([[5, 0], [2, 2], [0, 4]], dtype=i32)
    c.add("int32_embedding", "F.embedding(ix, w)",
          lambda w, ix: torch.nn.functional.embedding(ix, w), w=table, ix=idx)
    c.add("int32_index_select", "x.index_select(1, ix)",
          lambda x, ix: x.index_select(1, ix), x=randn(2, 5),
          ix=torch.tensor([4, 0, 4, 1], dtype=i32))
    c.add("int32_index_add", "x.index_add(0, ix, s, alpha=2)",
          lambda x, ix, s: x.index_add(0, ix, s, alpha=2), x=randn(3, 2),
          ix=torch.tensor([2, 0, 2], dtype=i32), s=randn(3, 2))


def convolving(c):
    import torch.nn.functional as F
    c.add("conv1d_groups",
          "F.conv1d(x, w, b, stride=2, padding=3, dilation=2, groups=2)",
          lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=3, dilation=2,
                                   groups=2),
          x=randn(2, 4, 13), w=randn(6, 2, 3), b=randn(6))
    c.add("conv1d_unbatched", "F.conv1d(x, w, padding=1)",
          lambda x, w: F.conv1d(x, w, padding=1),
          x=randn(3, 8), w=randn(2, 3, 4))
    c.add("conv1d_causal",
          "F.conv1d(F.pad(x, (2 * (3 - 1), 0)), w, b, dilation=2)",
          lambda x, w, b: F.conv1d(F.pad(x, (4, 0)), w, b, dilation=2),
          x=randn(2, 3, 9), w=randn(5, 3, 3), b=randn(5))
    c.add("conv1d_causal_strided",
          "F.conv1d(F.pad(x, (3, 0)), w, stride=3)",
          lambda x, w: F.conv1d(F.pad(x, (3, 0)), w, stride=3),
          x=randn(1, 2, 10), w=randn(3, 2, 4))


def folding(c):
    import torch.nn.functional as F
    c.add("unfold_strided_dilated",
          "F.unfold(x, (2, 3), dilation=(2, 1), padding=(1, 2), stride=(1, 2))",
          lambda x: F.unfold(x, (2, 3), dilation=(2, 1), padding=(1, 2),
                             stride=(1, 2)),
          x=randn(2, 3, 5, 6))
    c.add("unfold_unbatched", "F.unfold(x, 3, padding=1, stride=2)",
          lambda x: F.unfold(x, 3, padding=1, stride=2), x=randn(2, 5, 4))
    c.add("fold_overlapping",
          "F.fold(x, (5, 4), (3, 2), dilation=(1, 2), padding=(1, 0))",
          lambda x: F.fold(x, (5, 4), (3, 2), dilation=(1, 2),
                           padding=(1, 0)),
          x=randn(2, 12, 10))
    c.add("fold_unbatched_strided", "F.fold(x, (6, 5), 2, padding=1, stride=(2, 3))",
          lambda x: F.fold(x, (6, 5), 2, padding=1, stride=(2, 3)),
          x=randn(8, 8))


def contracting(c):
    cases = [
        ("einsum_matmul", "ij,jk->ik", [(3, 4), (4, 5)]),
        ("einsum_batched_transposed", "bij,bkj->bik", [(2, 3, 4), (2, 5, 4)]),
        ("einsum_implicit", "kj,ji", [(3, 4), (4, 2)]),
        ("einsum_implicit_case", "aB,Bc", [(2, 3), (3, 4)]),
        ("einsum_diagonal", "ii->i", [(4, 4)]),
        ("einsum_trace", "ii", [(3, 3)]),
        ("einsum_batch_diagonal", "iji->j", [(3, 4, 3)]),
        ("einsum_outer", "i,j->ij", [(3,), (4,)]),
        ("einsum_sum_all", "ijk->", [(2, 3, 4)]),
        ("einsum_three", "ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
        ("einsum_bilinear", "bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
        ("einsum_attention", "bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
        ("einsum_ellipsis", "...ij,...jk->...ik", [(2, 1, 3, 4), (3, 4, 2)]),
        ("einsum_ellipsis_broadcast", "...i,...i", [(2, 1, 3), (4, 3)]),
        ("einsum_ellipsis_summed", " ...ij -> j ", [(2, 3, 4)]),
        ("einsum_size1_broadcast", "ij,j->ij", [(3, 4), (1,)]),
        ("einsum_shared_kept", "ij,ij,j->i", [(3, 4), (3, 4), (4,)]),
        ("einsum_permute", "abc->cab", [(2, 3, 4)]),
    ]
    for case, eq, shapes in cases:
        names = [f"x{i}" for i in range(len(shapes))]
        c.add(case, f"torch.einsum({eq!r}, {', '.join(names)})",
              lambda eq=eq, **xs: torch.einsum(eq, *xs.values()),
              **{n: randn(*s) for n, s in zip(names, shapes)})


def main():
    c = Cases()
    for family in (rearranging, padding, masks, scans, sorting,
                   convolving, folding, contracting, int32s):
        # a seed per family, so adding cases to one leaves the others' be
        torch.manual_seed(zlib.crc32(family.__name__.encode()))
        family(c)
    safetensors_io.save(PATH, c.out, c.meta)
    print(f"{os.path.relpath(PATH, ROOT)}: {len(c.meta)} cases, "
          f"{len(c.out)} tensors, {os.path.getsize(PATH)} bytes")


if __name__ == "__main__":
    main()
