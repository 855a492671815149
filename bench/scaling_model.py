#!/usr/bin/env python3
"""The scaling model of docs/distributed.md: predicted data-parallel
efficiency of the char-LSTM and the translation transformer on 8-256 ranks.

A ring all-reduce of n bytes over p ranks (nn/dist_ring.c) takes
    T(n, p) = 2 (p - 1) alpha + 2 (p - 1) / p * n / beta
and a step's K buckets go through the ring one after another:
    C(p) = 2 (p - 1) K alpha + 2 (p - 1) / p * N / beta   (N = all bytes).
The buckets start while backward runs; the last ones hold the parameters
that backward finishes at its very end, so they cannot overlap anything:
    exposed(p) = max(T_last(p), C(p) - W),
W being the part of backward that follows the first full bucket (and
the buckets polled often enough that alpha, not the time between polls,
bounds a ring step: docs/distributed.md). With a
fixed batch per rank (weak scaling) one step on p ranks takes the
single-rank step plus what is exposed:
    E(p) = step / (step + exposed(p)).
The defaults are what was measured on this machine (docs/distributed.md
says how); every input is an option, so other figures (another network,
a faster node) can be put in.

    python3 bench/scaling_model.py [--alpha-us A] [--beta-gbs B]
        [--speedup S ...] [--ranks P ...]
"""
import argparse

# Per model: gradient bytes and buckets in all, the bytes and buckets
# ready only when backward ends, a single-rank step and its backward
# (seconds), and W as a fraction of backward.
MODELS = {
    "char-LSTM": dict(
        what="charlm 2x512 LSTM, 3.32M parameters, 32 streams x 100 chars "
        "per rank",
        bytes=13.29e6, buckets=7,
        # layer 0 (weight_hh_l0 alone; weight_ih_l0, biases, embedding)
        last_bytes=4.75e6, last_buckets=2,
        step=1.992, backward=1.196,
        # layer 1's weights are done when its backward through time is,
        # about half-way
        window=0.5),
    "transformer": dict(
        what="translate transformer d256 3+3 layers, 9.00M parameters, "
        "128 pairs per rank",
        bytes=35.99e6, buckets=28,
        last_bytes=8.07e6, last_buckets=1,  # the source embedding
        # backward taken as 60% of the step, as measured for the LSTM
        step=2.85, backward=0.6 * 2.85,
        # the output layer's 6 MB bucket is full once the loss's backward
        # through it is done, about a quarter of the way
        window=0.7),
}


def ring(n, p, buckets, alpha, beta):
    """Seconds for `buckets` ring all-reduces of n bytes in all."""
    return 2 * (p - 1) * buckets * alpha + 2 * (p - 1) / p * n / beta


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alpha-us", type=float, default=1.0,
                    help="seconds per ring step, in microseconds (1.0)")
    ap.add_argument("--beta-gbs", type=float, default=0.63,
                    help="ring bandwidth, GB/s (0.63)")
    ap.add_argument("--speedup", type=float, nargs="+", default=[1, 10, 100],
                    help="nodes that compute a step this many times faster")
    ap.add_argument("--ranks", type=int, nargs="+",
                    default=[2, 8, 16, 32, 64, 128, 256])
    a = ap.parse_args()
    alpha, beta = a.alpha_us * 1e-6, a.beta_gbs * 1e9
    print(f"# alpha {a.alpha_us:g} us, beta {a.beta_gbs:g} GB/s; E = step / "
          f"(step + exposed), exposed = max(T_last, C - W)")
    for name, m in MODELS.items():
        print(f"\n{name}: {m['what']}; {m['bytes'] / 1e6:.2f} MB in "
              f"{m['buckets']} buckets, {m['last_bytes'] / 1e6:.2f} MB last; "
              f"step {m['step'] * 1e3:.0f} ms (backward "
              f"{m['backward'] * 1e3:.0f})")
        head = " ".join(f"{'E x' + format(s, 'g'):>8}" for s in a.speedup)
        print(f"{'ranks':>5} {'C ms':>7} {'T_last':>7} {'exposed':>8} {head}")
        for p in a.ranks:
            c = ring(m["bytes"], p, m["buckets"], alpha, beta)
            last = ring(m["last_bytes"], p, m["last_buckets"], alpha, beta)
            cells, exposed1 = [], None
            for s in a.speedup:
                step, w = m["step"] / s, m["window"] * m["backward"] / s
                exposed = max(last, c - w)
                exposed1 = exposed if exposed1 is None else exposed1
                cells.append(f"{100 * step / (step + exposed):7.1f}%")
            print(f"{p:5d} {c * 1e3:7.1f} {last * 1e3:7.1f} "
                  f"{exposed1 * 1e3:8.1f} {' '.join(cells)}")


if __name__ == "__main__":
    main()
