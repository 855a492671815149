"""PyTorch counterpart of bench/rnn.c (the cases of the peers' torch_rnn.py).

One training step = zero_grad(set_to_none) + forward + loss mean(out^2) +
backward + Adam(lr 1e-3) step, input (35, B, 256) fixed, zero initial state:
  nn.LSTM_b32, nn.LSTM_b1, nn.GRU_b32, nn.GRU_b1   nn.LSTM / nn.GRU(256, 512)
  LSTMCell_loop_b32   nn.LSTMCell(256, 512) in a Python loop over 35 steps
  prim_loop_b32       the same LSTM from primitives (two matmuls, chunk,
                      sigmoid/tanh, elementwise) in a Python loop
Each case: `--warmup` untimed steps, then `--reps` timed steps; the figure
is the median ms. `--forward` adds forward-only (no_grad) figures. Runs
with torch.set_num_threads(--threads) and OMP_WAIT_POLICY=passive (set by
torch_util.py if unset): PyTorch's best configuration on 2 cores.
Lines starting with "@rnn" are for bench/run_models.sh.

Usage: /usr/bin/python3 bench/rnn_torch.py [--threads N] [--reps N]
       [--warmup N] [--forward] [--cases a,b,...]
"""
import argparse

from torch_util import median_ms, setup  # first: it sets up the environment

import torch  # after torch_util
import torch.nn as nn

I, H, T = 256, 512, 35


def adam_step(params, run):
    opt = torch.optim.Adam(params, lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = run().square().mean()
        loss.backward()
        opt.step()

    def fwd():
        with torch.no_grad():
            run()

    return step, fwd


def make_layer(kind, B):
    torch.manual_seed(0)
    layer = (nn.LSTM if kind == "lstm" else nn.GRU)(I, H, num_layers=1)
    x = torch.randn(T, B, I)
    return adam_step(layer.parameters(), lambda: layer(x)[0])


def make_cell_loop(B):
    torch.manual_seed(0)
    cell = nn.LSTMCell(I, H)
    x = torch.randn(T, B, I)

    def run():
        h = torch.zeros(B, H)
        c = torch.zeros(B, H)
        outs = []
        for t in range(T):
            h, c = cell(x[t], (h, c))
            outs.append(h)
        return torch.stack(outs)

    return adam_step(cell.parameters(), run)


class PrimLSTM(nn.Module):
    """LSTM written from primitives, the way a user composes a custom cell."""

    def __init__(self, i, h):
        super().__init__()
        k = 1.0 / h**0.5
        self.w_x = nn.Parameter(torch.empty(i, 4 * h).uniform_(-k, k))
        self.w_h = nn.Parameter(torch.empty(h, 4 * h).uniform_(-k, k))
        self.b = nn.Parameter(torch.zeros(4 * h))
        self.h = h

    def forward(self, x):
        T_, B_, _ = x.shape
        h = x.new_zeros(B_, self.h)
        c = x.new_zeros(B_, self.h)
        outs = []
        for t in range(T_):
            g = x[t] @ self.w_x + h @ self.w_h + self.b
            i_, f_, g_, o_ = g.chunk(4, dim=1)
            c = torch.sigmoid(f_) * c + torch.sigmoid(i_) * torch.tanh(g_)
            h = torch.sigmoid(o_) * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs)


def make_prim_loop(B):
    torch.manual_seed(0)
    m = PrimLSTM(I, H)
    x = torch.randn(T, B, I)
    return adam_step(m.parameters(), lambda: m(x))


CASES = {
    "nn.LSTM_b32": (lambda: make_layer("lstm", 32), 32),
    "nn.LSTM_b1": (lambda: make_layer("lstm", 1), 1),
    "nn.GRU_b32": (lambda: make_layer("gru", 32), 32),
    "nn.GRU_b1": (lambda: make_layer("gru", 1), 1),
    "LSTMCell_loop_b32": (lambda: make_cell_loop(32), 32),
    "prim_loop_b32": (lambda: make_prim_loop(32), 32),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=30)
    # how the figures are labelled for run_models.sh: torch<tag> (the
    # thread count unless told)
    p.add_argument("--tag", default=None)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--forward", action="store_true")
    p.add_argument("--cases", default=",".join(CASES))
    a = p.parse_args()
    setup(torch, a.threads, a.warmup, a.reps)
    print(f"{'# case':<20} {'ms/step':>10} {'steps*B/s':>12}")
    for name in a.cases.split(","):
        make, B = CASES[name]
        step, fwd = make()
        ms = median_ms(step, a.warmup, a.reps)
        print(f"{name:<20} {ms:10.3f} {T * B / ms * 1e3:12.0f}")
        print(f"@rnn torch{a.tag or a.threads} train {name} {ms:.4f}", flush=True)
        if a.forward:
            ms = median_ms(fwd, a.warmup, a.reps)
            print(f"{name:<20} {ms:10.3f}  (forward only, no_grad)")
            print(f"@rnn torch{a.tag or a.threads} fwd {name} {ms:.4f}", flush=True)


if __name__ == "__main__":
    main()
