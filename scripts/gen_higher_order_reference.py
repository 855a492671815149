#!/usr/bin/python3
"""Writes PyTorch's higher-order gradients for tests/test_higher_order.c.

Run with Debian's python3-torch from the repository root:

    OMP_WAIT_POLICY=passive /usr/bin/python3 scripts/gen_higher_order_reference.py

Deterministic (fixed seed, one thread, float64); the output is committed,
so CI never needs torch. tests/data/higher_order.safetensors holds:

  mlp.x, mlp.w1, mlp.b1, mlp.w2, mlp.b2      a 2-layer tanh MLP, f(x) =
                                             sum(tanh(x w1^T + b1) w2^T + b2)
  mlp.penalty                                ||df/dx||^2 (scalar)
  mlp.grad.NAME                              d penalty / d NAME (x, w1, b1,
                                             w2, b2; zeros where torch has
                                             None: b2)
  lstm.x, lstm.h, lstm.c, lstm.w_ih, lstm.w_hh, lstm.b_ih, lstm.b_hh
                                             one torch.nn.LSTMCell step
                                             (gates i, f, g, o), f =
                                             sum(h' * r) + sum(c' * s)
  lstm.r, lstm.s                             fixed weights of that sum
  lstm.penalty                               ||df/dx||^2
  lstm.grad.NAME                             d penalty / d parameter NAME
  hvp.x, hvp.w, hvp.v                        f(x) = sum(softplus(w x) ^ 2)
                                             + sum(x^3) (w is a matrix)
  hvp.hv                                     the Hessian of f at x times v
  lstm_layer.x, .lengths, .h0, .c0           torch.nn.LSTM (2 layers of 4,
                                             bidirectional, input 3) on a
                                             packed batch of 3 sequences
                                             (lengths 4, 2, 3) from given
                                             initial states
  lstm_layer.param.NAME                      its parameters (torch's names)
  lstm_layer.r, .s, .u                       f = sum(out * r) + sum(h_n * s)
                                             + sum(c_n * u), out padded with
                                             zeros past each sequence's end
  lstm_layer.penalty                         ||df/dx||^2
  lstm_layer.grad.x, .grad.NAME              d penalty / d x and each
                                             parameter
  bn.param.NAME                              torch.nn.BatchNorm2d(2)'s state
                                             (random affine and running
                                             statistics) before the forward
  bn.x, bn.r                                 x (3, 2, 2, 2); f = sum(bn(x) r)
                                             in training mode
  bn.penalty, bn.grad.NAME                   ||df/dx||^2 and its gradients
                                             (x, weight, bias)
  bn.after.running_mean, .running_var        the running statistics after
                                             (one update, by the forward)
  bn_eval.*                                  the same in evaluation mode
                                             (running statistics used, kept)
  ln.x, ln.r, ln.param.NAME                  torch.nn.LayerNorm((3, 4)) on x
                                             (2, 3, 4), f = sum(ln(x) r)
  ln.penalty, ln.grad.NAME                   ||df/dx||^2 and its gradients
  prod.x, prod.v, prod.u                     x (2, 3, 2) with zeros (two in
                                             the group x[:, 0, :], one in
                                             x[:, 1, :]), p = prod(x, (0, 2))
  prod.g                                     dp/dx seeded with v (3)
  prod.hu                                    d(g . u)/dx, u (2, 3, 2)
  prod_all.*                                 the same for prod(x) of all
                                             elements (v a scalar 1.5),
                                             x holding one zero (torch
                                             1.13 gives prod(x) with two
                                             zeros a constant zero
                                             gradient: no second
                                             derivative; loom's is
                                             checked by value instead)
  cnn.x, cnn.w1, cnn.b1, cnn.w2, cnn.b2, cnn.r
                                             a small CNN, f(x) = sum(r *
                                             adaptive_avg_pool2d(avg_pool2d(
                                             tanh(conv2(max_pool2d(tanh(
                                             conv1(x))))))) (the options in
                                             cnn() below)
  cnn.penalty, cnn.grad.NAME                 ||df/dx||^2 and its gradients
                                             (x, w1, b1, w2, b2)
"""

import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "passive")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = os.path.join(ROOT, "tests", "data", "higher_order.safetensors")


def randn(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def leaf(t):
    return t.clone().requires_grad_(True)


def cnn(x, w1, b1, w2, b2, r):
    """Convolutions with padding, stride, dilation and groups, and the three
    pools (tests/test_higher_order.c repeats it with loom's ops)."""
    h = torch.tanh(F.conv2d(x, w1, b1, padding=1))
    h = F.max_pool2d(h, 2)
    h = torch.tanh(F.conv2d(h, w2, b2, stride=(1, 2), padding=(2, 1),
                            dilation=(2, 1), groups=2))
    h = F.avg_pool2d(h, 2, stride=1, padding=1, count_include_pad=False)
    return (F.adaptive_avg_pool2d(h, (2, 3)) * r).sum()


def main():
    torch.manual_seed(17)
    out = {}

    # Gradient penalty of an MLP.
    names = ["x", "w1", "b1", "w2", "b2"]
    vals = [randn(4, 3), randn(5, 3) * 0.7, randn(5) * 0.3, randn(2, 5) * 0.7,
            randn(2) * 0.3]
    p = {n: leaf(v) for n, v in zip(names, vals)}
    h = torch.tanh(F.linear(p["x"], p["w1"], p["b1"]))
    f = F.linear(h, p["w2"], p["b2"]).sum()
    (gx,) = torch.autograd.grad(f, p["x"], create_graph=True)
    penalty = (gx * gx).sum()
    penalty.backward()
    for n, v in zip(names, vals):
        out["mlp." + n] = v
        # None (b2 does not change df/dx) is written as zeros
        g = p[n].grad
        out["mlp.grad." + n] = torch.zeros_like(v) if g is None else g
    out["mlp.penalty"] = penalty.detach().reshape(())

    # Gradient penalty of an LSTM cell, gradients w.r.t. its parameters.
    batch, n_in, hidden = 3, 4, 5
    cell = torch.nn.LSTMCell(n_in, hidden).double()
    x, h0, c0 = leaf(randn(batch, n_in)), randn(batch, hidden), randn(batch, hidden)
    r, s = randn(batch, hidden), randn(batch, hidden)
    h1, c1 = cell(x, (h0, c0))
    f = (h1 * r).sum() + (c1 * s).sum()
    (gx,) = torch.autograd.grad(f, x, create_graph=True)
    penalty = (gx * gx).sum()
    penalty.backward()
    out.update({"lstm.x": x.detach(), "lstm.h": h0, "lstm.c": c0,
                "lstm.r": r, "lstm.s": s,
                "lstm.penalty": penalty.detach().reshape(())})
    for n, prm in cell.named_parameters():
        out["lstm." + n] = prm.detach().clone()
        g = prm.grad
        out["lstm.grad." + n] = torch.zeros_like(prm) if g is None else g

    # A Hessian-vector product.
    x, w, v = leaf(randn(6)), randn(4, 6) * 0.5, randn(6)
    f = (F.softplus(w @ x) ** 2).sum() + (x ** 3).sum()
    (g,) = torch.autograd.grad(f, x, create_graph=True)
    (hv,) = torch.autograd.grad(g, x, grad_outputs=v)
    out.update({"hvp.x": x.detach(), "hvp.w": w, "hvp.v": v, "hvp.hv": hv})

    # Gradient penalty through the whole LSTM layer, with lengths.
    T, batch, n_in, hidden, lengths = 4, 3, 3, 4, [4, 2, 3]
    rnn = torch.nn.LSTM(n_in, hidden, num_layers=2, bidirectional=True).double()
    x = leaf(randn(T, batch, n_in))
    h0, c0 = randn(4, batch, hidden), randn(4, batch, hidden)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, torch.tensor(lengths), enforce_sorted=False)
    y, (h_n, c_n) = rnn(packed, (h0, c0))
    y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, total_length=T)
    r, s, u = randn(*y.shape), randn(*h_n.shape), randn(*c_n.shape)
    f = (y * r).sum() + (h_n * s).sum() + (c_n * u).sum()
    (gx,) = torch.autograd.grad(f, x, create_graph=True)
    penalty = (gx * gx).sum()
    penalty.backward()
    out.update({"lstm_layer.x": x.detach(), "lstm_layer.h0": h0,
                "lstm_layer.c0": c0, "lstm_layer.r": r, "lstm_layer.s": s,
                "lstm_layer.u": u,
                "lstm_layer.lengths": torch.tensor(lengths, dtype=torch.int64),
                "lstm_layer.penalty": penalty.detach().reshape(()),
                "lstm_layer.grad.x": x.grad})
    for n, prm in rnn.named_parameters():
        out["lstm_layer.param." + n] = prm.detach().clone()
        out["lstm_layer.grad." + n] = prm.grad

    # Gradient penalties through batch norm (training and evaluation) and
    # layer norm.
    for p, training in [("bn.", True), ("bn_eval.", False)]:
        bn = torch.nn.BatchNorm2d(2).double()
        with torch.no_grad():
            bn.weight.copy_(randn(2))
            bn.bias.copy_(randn(2))
            bn.running_mean.copy_(randn(2))
            bn.running_var.copy_(randn(2).abs() + 0.5)
        for n, t in bn.state_dict().items():
            out[p + "param." + n] = t.clone()
        bn.train(training)
        x, r = leaf(randn(3, 2, 2, 2)), randn(3, 2, 2, 2)
        f = (bn(x) * r).sum()
        (gx,) = torch.autograd.grad(f, x, create_graph=True)
        penalty = (gx * gx).sum()
        penalty.backward()
        out.update({p + "x": x.detach(), p + "r": r,
                    p + "penalty": penalty.detach().reshape(()),
                    p + "after.running_mean": bn.running_mean.clone(),
                    p + "after.running_var": bn.running_var.clone()})
        for n, t in [("x", x), ("weight", bn.weight), ("bias", bn.bias)]:
            g = t.grad
            out[p + "grad." + n] = torch.zeros_like(t) if g is None else g
    ln = torch.nn.LayerNorm((3, 4)).double()
    with torch.no_grad():
        ln.weight.copy_(randn(3, 4))
        ln.bias.copy_(randn(3, 4))
    x, r = leaf(randn(2, 3, 4)), randn(2, 3, 4)
    f = (ln(x) * r).sum()
    (gx,) = torch.autograd.grad(f, x, create_graph=True)
    penalty = (gx * gx).sum()
    penalty.backward()
    out.update({"ln.x": x.detach(), "ln.r": r,
                "ln.penalty": penalty.detach().reshape(())})
    for n, t in [("x", x), ("weight", ln.weight), ("bias", ln.bias)]:
        if n != "x":
            out["ln.param." + n] = t.detach().clone()
        g = t.grad
        out["ln.grad." + n] = torch.zeros_like(t) if g is None else g

    # prod's first and second derivatives through zeros.
    for p, dims, zeros in [("prod.", (0, 2), [0, 3, 7]),
                           ("prod_all.", None, [9])]:
        x = randn(2, 3, 2).flatten()
        x[zeros] = 0
        x = leaf(x.reshape(2, 3, 2))
        y = x.prod() if dims is None else x.prod(dims[1]).prod(dims[0])
        v = torch.tensor(1.5, dtype=torch.float64) if dims is None \
            else randn(3)
        u = randn(2, 3, 2)
        (g,) = torch.autograd.grad(y, x, grad_outputs=v, create_graph=True)
        (hu,) = torch.autograd.grad(g, x, grad_outputs=u)
        out.update({p + "x": x.detach(), p + "v": v, p + "u": u,
                    p + "g": g.detach(), p + "hu": hu})
    # Gradient penalty of a small CNN (convolutions and the three pools).
    names = ["x", "w1", "b1", "w2", "b2"]
    vals = [randn(2, 2, 6, 7), randn(4, 2, 3, 3) * 0.4, randn(4) * 0.3,
            randn(4, 2, 2, 3) * 0.4, randn(4) * 0.3]
    p = {n: leaf(v) for n, v in zip(names, vals)}
    r = randn(2, 4, 2, 3)
    f = cnn(*[p[n] for n in names], r)
    (gx,) = torch.autograd.grad(f, p["x"], create_graph=True)
    penalty = (gx * gx).sum()
    penalty.backward()
    for n, v in zip(names, vals):
        out["cnn." + n] = v
        out["cnn.grad." + n] = p[n].grad
    out["cnn.r"] = r
    out["cnn.penalty"] = penalty.detach().reshape(())

    safetensors_io.save(PATH, {k: t.contiguous() for k, t in out.items()})
    print("wrote", PATH, len(out), "tensors")


if __name__ == "__main__":
    main()
