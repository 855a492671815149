"""Validation loss a PyTorch char-LSTM reaches on tinyshakespeare in a fixed wall-clock budget.

A copy of the peers' torch_charlm_quality.py for bench/charlm.sh --quality:
the same model, training and evaluation; only the default data path (the
repo's ../shared/data) and OMP_WAIT_POLICY=passive (set if unset, before
torch loads) differ.

The same model as torch_charlm.py (Embedding 65x64 -> LSTM 512 x2 -> Linear), seq 100,
batch 32, Adam 2e-3, clip 5, truncated BPTT over contiguous batch streams with the hidden
state carried (detached) between chunks. Split: first 90 % train, last 10 % validation.
Validation loss (nats/char) is measured on the whole validation split at the end.
Run: /usr/bin/python3 bench/charlm_quality_torch.py --minutes 10
"""
import argparse, math, os, time
os.environ.setdefault('OMP_WAIT_POLICY', 'passive')
import torch, torch.nn as nn  # noqa: E402  (the environment must be set first)

ap = argparse.ArgumentParser()
ap.add_argument('--data', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'data', 'tinyshakespeare', 'input.txt'))
ap.add_argument('--minutes', type=float, default=10)
ap.add_argument('--threads', type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads); torch.manual_seed(0)
text = open(a.data, 'rb').read()
chars = sorted(set(text)); V = len(chars); idx = {c: i for i, c in enumerate(chars)}
data = torch.tensor([idx[c] for c in text], dtype=torch.int64)
n = int(len(data) * 0.9); tr, va = data[:n], data[n:]
E, H, L, T, B = 64, 512, 2, 100, 32

class CharLM(nn.Module):
    def __init__(s):
        super().__init__(); s.emb = nn.Embedding(V, E); s.rnn = nn.LSTM(E, H, L); s.out = nn.Linear(H, V)
    def forward(s, x, st=None):
        h, st = s.rnn(s.emb(x), st); return s.out(h), st

def streams(d):
    m = (len(d) - 1) // B
    return d[:m * B + 1], m

m = CharLM(); opt = torch.optim.Adam(m.parameters(), lr=2e-3); lf = nn.CrossEntropyLoss()
d, m_len = streams(tr)
X = d[:-1].view(B, m_len).t(); Y = d[1:].view(B, m_len).t()
t0 = time.perf_counter(); steps = 0; st = None; pos = 0; chars = 0
while time.perf_counter() - t0 < a.minutes * 60:
    if pos + T > m_len: pos = 0; st = None
    x, y = X[pos:pos + T], Y[pos:pos + T]; pos += T
    if st is not None: st = tuple(s.detach() for s in st)
    logits, st = m(x, st)
    loss = lf(logits.reshape(-1, V), y.reshape(-1))
    opt.zero_grad(set_to_none=True); loss.backward()
    nn.utils.clip_grad_norm_(m.parameters(), 5.0); opt.step()
    steps += 1; chars += T * B
    if steps % 50 == 0:
        print(f'step {steps} loss {loss.item():.3f} elapsed {time.perf_counter()-t0:.0f}s', flush=True)
train_s = time.perf_counter() - t0
with torch.no_grad():
    m.eval(); vd, vm = streams(va)
    VX = vd[:-1].view(B, vm).t(); VY = vd[1:].view(B, vm).t(); st = None; tot = 0.0; cnt = 0
    for p in range(0, vm - T + 1, T):
        lg, st = m(VX[p:p + T], st); tot += lf(lg.reshape(-1, V), VY[p:p + T].reshape(-1)).item() * T * B; cnt += T * B
vl = tot / cnt
print(f'RESULT minutes={a.minutes} steps={steps} chars/s={chars/train_s:.0f} val_loss_nats={vl:.4f} bits/char={vl/math.log(2):.4f} unigram_entropy_nats={-(torch.bincount(tr, minlength=V).float()/len(tr)).clamp_min(1e-12).log().mul(torch.bincount(tr, minlength=V).float()/len(tr)).sum().item():.4f}')
