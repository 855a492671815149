"""CPU time per training step of the PyTorch caption baseline
(../shared/peers/torch_caption_quality.py) on the Flickr8k 1k subset, for
bench/caption.sh's step timing: the same model (4 blocks conv3x3 without
bias - BatchNorm - ReLU - maxpool of 32/64/128/256 channels on 64x64
images, global average pooling, Linear 256; Embedding 256, LSTM 512,
dropout 0.5, Linear(512, V)), the same data and the same step (random
flips, cross entropy ignoring padding, Adam 1e-3, clipping 5, batches of
64 pairs), timed with the process's CPU time (user + system) so that a
run pinned to one core of a busy machine still measures the step.

Usage: python3 caption_torch.py --data DIR [--threads N] [--warmup W]
       [--steps S]
Prints one line: steps, CPU ms per step (mean of the timed steps) and
images/s of CPU time.
"""
import argparse
import collections
import os
import random
import re
import time

import torch_util  # noqa: F401 (sets OMP_WAIT_POLICY before torch loads)
import numpy as np
import torch
import torch.nn as nn

ap = argparse.ArgumentParser()
ap.add_argument("--data", required=True)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--warmup", type=int, default=3)
ap.add_argument("--steps", type=int, default=20)
ap.add_argument("--batch", type=int, default=64)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
random.seed(0)
PAD, BOS, EOS, UNK = 0, 1, 2, 3

parts = [np.fromfile(os.path.join(a.data, f"images_64x64_rgb_chw.part{p}.u8"),
                     dtype=np.uint8) for p in range(4)]
images = np.concatenate(parts).reshape(-1, 3, 64, 64)
split, names = {}, []
with open(os.path.join(a.data, "images.tsv")) as f:
    next(f)
    for line in f:
        cols = line.rstrip("\n").split("\t")
        split[int(cols[0])] = cols[2]
        names.append(cols[1])
index = {n: i for i, n in enumerate(names)}
caps = collections.defaultdict(list)
with open(os.path.join(a.data, "captions.txt")) as f:
    for line in f:
        key, text = line.rstrip("\n").split("\t")
        words = re.sub(r"[^a-z0-9\s]", "", text.lower()).split()
        caps[index[key.split("#")[0]]].append(words)
train_ids = [i for i in range(len(names)) if split[i] == "train"]
count = collections.Counter(w for i in train_ids for c in caps[i] for w in c)
vocab = ["<pad>", "<bos>", "<eos>", "<unk>"] + sorted(
    w for w, n in count.items() if n >= 3)
ids = {w: i for i, w in enumerate(vocab)}
V = len(vocab)
x = torch.from_numpy(images.astype(np.float32) / 255.0)
mean = x[train_ids].mean(dim=(0, 2, 3), keepdim=True)
std = x[train_ids].std(dim=(0, 2, 3), keepdim=True)
x = (x - mean) / std
pairs = [(i, [BOS] + [ids.get(w, UNK) for w in c] + [EOS])
         for i in train_ids for c in caps[i]]
random.shuffle(pairs)


class Captioner(nn.Module):
    def __init__(self):
        super().__init__()
        layers, cin = [], 3
        for cout in (32, 64, 128, 256):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                       nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
            cin = cout
        self.cnn = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(256, 256))
        self.emb = nn.Embedding(V, 256, padding_idx=PAD)
        self.lstm = nn.LSTM(256, 512, batch_first=True)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(512, V)

    def forward(self, im, words):
        h, _ = self.lstm(torch.cat([self.cnn(im).unsqueeze(1),
                                    self.emb(words)], 1))
        return self.out(self.drop(h[:, 1:]))


def batch(k):
    b = [pairs[(k * a.batch + j) % len(pairs)] for j in range(a.batch)]
    im = x[[i for i, _ in b]]
    flip = torch.rand(im.size(0)) < 0.5
    im = torch.where(flip[:, None, None, None], im.flip(3), im)
    L = max(len(c) for _, c in b)
    c = torch.tensor([c + [PAD] * (L - len(c)) for _, c in b])
    return im, c[:, :-1], c[:, 1:]


model = Captioner()
model.train()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss(ignore_index=PAD)
spent = 0.0
for k in range(a.warmup + a.steps):
    t0 = time.process_time()
    im, cin, y = batch(k)
    loss = loss_fn(model(im, cin).reshape(-1, V), y.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()
    loss.item()
    if k >= a.warmup:
        spent += time.process_time() - t0
ms = spent * 1e3 / a.steps
print(f"torch {torch.__version__} threads {a.threads}: {a.steps} steps, "
      f"{ms:.1f} CPU ms/step, {a.batch * 1e3 / ms:.1f} images/s of CPU time")
