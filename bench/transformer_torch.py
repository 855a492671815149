"""PyTorch counterpart of bench/transformer.c (the peers' torch_transformer.py).

  encoder_drop0.1, encoder_drop0.0
      nn.TransformerEncoder(TransformerEncoderLayer(d_model=256, nhead=8,
      dim_feedforward=1024, dropout=p, batch_first=True), num_layers=2,
      enable_nested_tensor=False), training mode, input (32, 64, 256):
      zero_grad(set_to_none) + forward + mean(out^2) + backward + Adam
      (lr 1e-4) step
  mha
      nn.MultiheadAttention(256, 8, batch_first=True) self-attention on the
      same input (requires grad), training mode, need_weights=False:
      forward + mean(out^2) + backward
  translate
      apps/translate's transformer: nn.Transformer(256, 8, 3, 3, 512,
      dropout=0.1), embeddings of 8000 and 6000 words scaled by 16 plus
      fixed positions, dropout, a causal target mask, Linear(256, 6000),
      CrossEntropyLoss(label_smoothing=0.1), clip_grad_norm_(1) and Adam
      (5e-4, betas 0.9/0.98, eps 1e-9) on 128 pairs of 15 + 15 tokens;
      tokens/s counts target tokens
Each case: `--warmup` untimed steps, then `--reps` timed; the figure is the
median ms. Runs with torch.set_num_threads(--threads) and
OMP_WAIT_POLICY=passive (set by torch_util.py if unset). Lines
starting with "@tf" are for bench/run_models.sh.

Usage: /usr/bin/python3 bench/transformer_torch.py [--threads N]
       [--reps N] [--warmup N]
"""
import argparse

from torch_util import median_ms, setup  # first: it sets up the environment

import torch  # after torch_util
import torch.nn as nn

D, NH, FF, NL, S, B = 256, 8, 1024, 2, 64, 32


def make_encoder_step(dropout):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=D, nhead=NH, dim_feedforward=FF,
                                       dropout=dropout, batch_first=True)
    enc = nn.TransformerEncoder(layer, num_layers=NL,
                                enable_nested_tensor=False)
    enc.train()
    opt = torch.optim.Adam(enc.parameters(), lr=1e-4)
    x = torch.randn(B, S, D)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = enc(x).square().mean()
        loss.backward()
        opt.step()

    return step


def make_mha_step():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(D, NH, batch_first=True)
    mha.train()
    x = torch.randn(B, S, D, requires_grad=True)

    def step():
        mha.zero_grad(set_to_none=True)
        x.grad = None
        out, _ = mha(x, x, x, need_weights=False)
        out.square().mean().backward()

    return step


TL, TB, SV, TV = 15, 128, 8000, 6000


def make_translate_step():
    torch.manual_seed(0)
    tf = nn.Transformer(D, NH, 3, 3, 512, dropout=0.1)
    src_emb, tgt_emb = nn.Embedding(SV, D), nn.Embedding(TV, D)
    out = nn.Linear(D, TV)
    drop = nn.Dropout(0.1)
    mods = nn.ModuleList([tf, src_emb, tgt_emb, out, drop])
    mods.train()
    params = list(mods.parameters())
    opt = torch.optim.Adam(params, lr=5e-4, betas=(0.9, 0.98), eps=1e-9)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    src = torch.randint(4, SV, (TL, TB))
    tgt_in = torch.randint(4, TV, (TL, TB))
    tgt_out = torch.randint(4, TV, (TL, TB))
    pos = torch.randn(TL, 1, D)
    mask = nn.Transformer.generate_square_subsequent_mask(TL)

    def step():
        opt.zero_grad(set_to_none=True)
        h = tf(drop(src_emb(src) * 16 + pos), drop(tgt_emb(tgt_in) * 16 + pos),
               tgt_mask=mask)
        loss = loss_fn(out(h).reshape(-1, TV), tgt_out.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    return step


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=30)
    # how the figures are labelled for run_models.sh: torch<tag> (the
    # thread count unless told)
    p.add_argument("--tag", default=None)
    p.add_argument("--warmup", type=int, default=5)
    a = p.parse_args()
    setup(torch, a.threads, a.warmup, a.reps)
    print(f"{'# case':<18} {'ms/step':>10} {'tokens/s':>12}")
    for name, make in [("encoder_drop0.1", lambda: make_encoder_step(0.1)),
                       ("encoder_drop0.0", lambda: make_encoder_step(0.0)),
                       ("mha", make_mha_step),
                       ("translate", make_translate_step)]:
        ms = median_ms(make(), a.warmup, a.reps)
        tokens = TL * TB if name == "translate" else S * B
        print(f"{name:<18} {ms:10.3f} {tokens / ms * 1e3:12.0f}")
        print(f"@tf torch{a.tag or a.threads} {name} {ms:.4f}", flush=True)


if __name__ == "__main__":
    main()
