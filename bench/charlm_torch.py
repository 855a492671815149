"""PyTorch counterpart of apps/charlm in bench/charlm.sh (the peers'
torch_charlm.py model, measured the way charlm reports itself).

Model: Embedding(65, 64) -> LSTM(64, 512, num_layers=2) -> Linear(512, 65);
seq 100, batch 32, float32, cross-entropy over all 3200 positions, Adam
(lr 2e-3), gradient-norm clipping at 5.0, state carried (detached) between
steps; random token data (content does not change CPU time). One step =
zero_grad + forward + loss + backward + clip + Adam step.

Runs `--steps` steps in this fresh process and prints characters per
second over all of them (what charlm's "chars/s while training" is), the
median step, and the peak RSS (ru_maxrss) so far; bench/charlm.sh also
wraps it in /usr/bin/time -v. Runs with torch.set_num_threads(--threads)
and OMP_WAIT_POLICY=passive (set here if unset, before torch loads).
Lines starting with "@charlm" are for bench/charlm.sh.

Usage: /usr/bin/python3 bench/charlm_torch.py [--threads N] [--steps N]
"""
import argparse
import os
import resource
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import torch  # noqa: E402  (the environment must be set first)
import torch.nn as nn  # noqa: E402

V, E, H, L, T, B = 65, 64, 512, 2, 100, 32


class CharLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, E)
        self.rnn = nn.LSTM(E, H, num_layers=L)
        self.out = nn.Linear(H, V)

    def forward(self, x, st=None):  # x: (T, B) int64
        h, st = self.rnn(self.emb(x), st)
        return self.out(h), st


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=50)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = CharLM()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    lossf = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(1)
    data = torch.randint(0, V, (a.steps, T + 1, B), generator=g)
    st = None
    times = []
    t_start = time.perf_counter()
    for s in range(a.steps):
        t0 = time.perf_counter()
        x, y = data[s, :-1], data[s, 1:]
        if st is not None:
            st = tuple(v.detach() for v in st)
        logits, st = model(x, st)
        loss = lossf(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - t_start
    rate = a.steps * T * B / total
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    nparams = sum(q.numel() for q in model.parameters())
    print(f"# torch {torch.__version__}, threads {a.threads}, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}; {nparams} parameters")
    print(f"{a.steps} steps in {total:.2f} s: {rate:.0f} chars/s (median step "
          f"{med * 1e3:.1f} ms: {T * B / med:.0f} chars/s), final loss "
          f"{loss.item():.4f}, peak RSS {rss:.1f} MiB")
    print(f"@charlm torch{a.threads} {rate:.1f} {T * B / med:.1f} {rss:.1f}")


if __name__ == "__main__":
    main()
