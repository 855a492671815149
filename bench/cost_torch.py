"""PyTorch counterpart of bench/cost.c: one configuration per run.

  lstm     nn.LSTM(H, H) on (T, B, H)
  gru      nn.GRU(H, H) on (T, B, H)
  rnn      nn.RNN(H, H) (tanh) on (T, B, H)
  encoder  nn.TransformerEncoder(TransformerEncoderLayer(H, 8, 4H,
           dropout=0.1, batch_first=True), 2, enable_nested_tensor=False)
           on (B, T, H), training mode
A step is zero_grad(set_to_none) + forward + mean(out^2) + backward + Adam
(lr 1e-4). Untimed steps as bench/cost.c's (at least two and a second),
then --steps timed: the median ms. Memory:
the peak resident set (getrusage) and the step's share, the peak less the
resident set before the first step (torch imported, model, optimizer and
input in place). Prints "@cost torchN MODEL T B H ms peak_mib step_mib".

Usage: /usr/bin/python3 bench/cost_torch.py --model lstm|gru|rnn|encoder
       --seq T --batch B --hidden H [--steps N] [--threads N]
"""
import argparse
import resource
import statistics

from torch_util import setup, _clock  # first: it sets up the environment

import torch  # after torch_util
import torch.nn as nn


def resident_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / (1 << 20)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=["lstm", "gru", "rnn", "encoder"],
                   required=True)
    p.add_argument("--seq", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--hidden", type=int, required=True)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    setup(torch, a.threads, 1, a.steps)
    torch.manual_seed(0)
    T, B, H = a.seq, a.batch, a.hidden
    if a.model in ("lstm", "gru", "rnn"):
        net = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[a.model](H, H)
        x = torch.randn(T, B, H)
    else:
        layer = nn.TransformerEncoderLayer(H, 8, 4 * H, dropout=0.1,
                                           batch_first=True)
        net = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        x = torch.randn(B, T, H)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        out = net(x)
        if isinstance(out, tuple):
            out = out[0]
        out.square().mean().backward()
        opt.step()

    before = resident_mib()
    warm, n = _clock(), 0
    while n < 2 or (_clock() - warm < 1.0 and n < 50):
        step()
        n += 1
    times = []
    for _ in range(a.steps):
        t0 = _clock()
        step()
        times.append((_clock() - t0) * 1e3)
    ms = statistics.median(times)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"# {a.model} T {T} B {B} H {H}: {ms:.3f} ms/step, peak RSS "
          f"{peak:.1f} MiB, step {peak - before:.1f} MiB")
    print(f"@cost torch{a.threads} {a.model} {T} {B} {H} {ms:.4f} {peak:.1f} "
          f"{peak - before:.1f}", flush=True)


if __name__ == "__main__":
    main()
