"""PyTorch eager counterpart of bench/overhead.c: ns per op of y = y + b on
1x1 float32 tensors that require grad, in chains of 1000 ops.

Modes, as in the C program: fwd (grad on, the graph is dropped with the
chain), fwd+bwd (plus y.backward through the chain), nograd (under
torch.no_grad). Runs with torch.set_num_threads(1) and (2) in one process
and OMP_WAIT_POLICY=passive (set here if unset, before torch loads), since
PyTorch's OpenMP spinning otherwise fights its other pool. A sample is
`--chains` chains (default 100: Python is slow; the C program's per-op
figure does not depend on the count); the figure is the median over
`--samples` samples after one warm-up sample. Lines starting with
"@overhead" are for bench/run.sh.

Usage: OMP_WAIT_POLICY=passive /usr/bin/python3 bench/overhead_torch.py
       [--samples N] [--chains C]
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import torch  # noqa: E402  (the environment must be set first)

CHAIN = 1000


def chains_fwd(a, b, chains):
    for _ in range(chains):
        y = a
        for _ in range(CHAIN):
            y = y + b
        del y


def chains_fwd_bwd(a, b, chains, seed):
    for _ in range(chains):
        y = a
        for _ in range(CHAIN):
            y = y + b
        y.backward(seed)


def chains_nograd(a, b, chains):
    with torch.no_grad():
        chains_fwd(a, b, chains)


def median_ns_per_op(fn, samples, chains):
    fn()  # warm-up: allocator, autograd engine threads
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / (chains * CHAIN) * 1e9


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--chains", type=int, default=100)
    args = p.parse_args()
    print(f"# torch {torch.__version__}, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}; chains of {CHAIN}, "
          f"{args.chains} chains per sample, {args.samples} samples")
    print(f"{'# threads':<10} {'mode':<8} {'ns/op':>10}")
    a = torch.ones(1, 1, requires_grad=True)
    b = torch.full((1, 1), 0.001, requires_grad=True)
    seed = torch.ones(1, 1)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        modes = [
            ("fwd", lambda: chains_fwd(a, b, args.chains)),
            ("fwd+bwd", lambda: chains_fwd_bwd(a, b, args.chains, seed)),
            ("nograd", lambda: chains_nograd(a, b, args.chains)),
        ]
        for name, fn in modes:
            ns = median_ns_per_op(fn, args.samples, args.chains)
            print(f"{threads:<10} {name:<8} {ns:10.1f}")
            print(f"@overhead torch{threads} {name} {ns:.2f}", flush=True)
    print(f"# grad of b: {b.grad.item():g} (a multiple of {CHAIN})")


if __name__ == "__main__":
    main()
