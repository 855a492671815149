#!/usr/bin/python3
"""Writes the PyTorch reference files for loom's nn/ and optim/ parity tests.

Run with Debian's python3-torch (1.13) from the repository root:

    OMP_WAIT_POLICY=passive /usr/bin/python3 scripts/gen_nn_reference.py

or name the files to write (nn_layers, nn_losses, optim, schedules,
interop), e.g. `... gen_nn_reference.py optim`.

The output is deterministic (fixed seeds, one thread) and committed, so CI
never needs torch. Every file is safetensors, written by
scripts/safetensors_io.py (the safetensors package is not installed): an
8-byte little-endian header length, a JSON header mapping each name to
dtype/shape/data_offsets (plus "__metadata__" of strings), then the raw
little-endian bytes.

Files in tests/data/ and their naming scheme (CASE is a case name without
dots, e.g. "linear_bias"):

  nn_layers.safetensors, nn_losses.safetensors
    (states, inputs and r are float32; outputs, gradients and "after"
    states are float64, computed by torch in float64 from those values)
    CASE.state.NAME   the module's state_dict entry NAME, under PyTorch's
                      name ("weight", "running_mean", "transform.bias"), as
                      loaded into the module before the forward pass
    CASE.in.NAME      an input of the forward call ("x", "x1", "indices";
                      losses: "input", "target", "weight", "pos_weight")
    CASE.out          the output of the forward call
    CASE.r            a fixed random tensor shaped like out; every gradient
                      below is of sum(out * r)
    CASE.grad.NAME    that gradient w.r.t. input NAME or parameter NAME
    CASE.in.x0, CASE.out0
                      BatchNorm training cases run two forward calls: first
                      on x0 (giving out0), then on x (the recorded one)
    CASE.after.NAME   state_dict entry NAME after the forward call(s)
                      (BatchNorm: running_mean, running_var,
                      num_batches_tracked)
  Metadata: CASE -> the PyTorch call, for people reading the file.

  optim.safetensors
    init.p0, init.p1, init.p2   the three initial parameters
    grads             (20, P): row s holds the gradients of step s+1 for
                      p0, p1, p2 flattened and concatenated (P elements)
    CASE              (20, P): the parameters after step s+1, same layout
                      (float64: torch's steps in float64 from the float32
                      initial values and gradients)
    CASE.f32          (20, P): the same in float32, torch's steps in
                      float32 (torch 1.13's CPU default: the single-tensor
                      loop, neither foreach nor fused)
  Metadata: CASE -> the torch.optim constructor.

  schedules.safetensors (float64)
    CASE              (21,): the optimizer's lr after construction, then
                      after each of 20 scheduler steps
    CASE.metric       (20,): ReduceLROnPlateau cases: the metric passed to
                      each step
  Metadata: CASE -> the scheduler constructor.

  interop_cnn.safetensors, interop_mlp.safetensors
                      a model's bare state_dict (loadable as is by loom's
                      loom_module_load_state_dict(strict) and by torch)
  interop_cnn_io.safetensors, interop_mlp_io.safetensors
    input, output     an input and the model's output on it (eval mode)

scripts/check_interop_reverse.py builds the same models to check files
loom writes.
"""

import copy
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "passive")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import warnings  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402 (the repository's writer and reader)

torch.set_num_threads(1)
# kl_div's reduction='mean' is recorded on purpose (loom matches it).
warnings.filterwarnings("ignore", message="reduction: 'mean' divides")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")


def save_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} (insertion order) to path, and says so."""
    safetensors_io.save(path, tensors, metadata)
    print(f"{os.path.relpath(path, ROOT)}: {len(tensors)} tensors, "
          f"{os.path.getsize(path)} bytes")


load_safetensors = safetensors_io.load


# --------------------------------------------------------------- models


class Highway(nn.Module):
    """loom's Highway: y = g * relu(Wt x + bt) + (1 - g) * x,
    g = sigmoid(Wg x + bg)."""

    def __init__(self, size):
        super().__init__()
        self.transform = nn.Linear(size, size)
        self.gate = nn.Linear(size, size)

    def forward(self, x):
        g = torch.sigmoid(self.gate(x))
        return g * F.relu(self.transform(x)) + (1 - g) * x


class InteropCNN(nn.Module):
    """conv(1->4, 3x3, pad 1) -> relu -> max_pool 2 -> flatten -> fc."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv(x)), 2)
        return self.fc(torch.flatten(h, 1))


class InteropMLP(nn.Module):
    """fc1 -> bn (eval: running statistics) -> tanh -> norm -> fc2."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.bn = nn.BatchNorm1d(8)
        self.norm = nn.LayerNorm(8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.norm(torch.tanh(self.bn(self.fc1(x)))))


INTEROP_MODELS = {"cnn": InteropCNN, "mlp": InteropMLP}
INTEROP_INPUT_SHAPES = {"cnn": (2, 1, 8, 8), "mlp": (4, 6)}


# --------------------------------------------------------------- layers


def randomize(module, scale=0.5):
    """Gives every parameter random values (so affine weights of 1 and
    biases of 0 do not hide a mistake)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * scale)


def record(out, meta, case, call, module, inputs, forward, pre=None,
           grad_of=None):
    """Runs forward(module, inputs) and records the case (see the naming
    scheme above). The state and inputs are recorded as given (float32:
    what loom computes with); the outputs and gradients are torch's float64
    results from exactly those values, the truth rather than another
    float32 computation, so the tests measure loom's own error. `pre(out,
    case, module)` runs first on the float64 module (BatchNorm's first
    forward call). grad_of: the inputs to differentiate (None: every float
    input). Returns the float64 module, as the forward calls left it."""
    meta[case] = call
    wide = None
    if module is not None:
        for k, v in module.state_dict().items():
            out[f"{case}.state.{k}"] = v.clone()
        wide = copy.deepcopy(module).double()
    if pre is not None:
        pre(out, case, wide)
    leaves = {}
    for k, v in inputs.items():
        out[f"{case}.in.{k}"] = v.detach().clone()
        v = v.detach().clone()
        if v.is_floating_point():
            v = v.double()
            if grad_of is None or k in grad_of:
                v.requires_grad_(True)
        leaves[k] = v
    y = forward(wide, leaves)
    r = torch.randn(y.shape)
    (y * r.double()).sum().backward()
    out[f"{case}.out"] = y.detach().clone()
    out[f"{case}.r"] = r
    for k, v in leaves.items():
        if v.requires_grad:
            out[f"{case}.grad.{k}"] = v.grad.clone()
    if wide is not None:
        for k, p in wide.named_parameters():
            out[f"{case}.grad.{k}"] = p.grad.clone()
    return wide


def layers():
    out, meta = {}, {}
    torch.manual_seed(1)

    def mod(m, case, call, inputs, fwd=lambda m, a: m(a["x"])):
        randomize(m)
        record(out, meta, case, call, m, inputs, fwd)

    mod(nn.Linear(4, 3), "linear_bias", "nn.Linear(4, 3)",
        {"x": torch.randn(2, 4)})
    mod(nn.Linear(4, 3, bias=False), "linear_nobias",
        "nn.Linear(4, 3, bias=False)", {"x": torch.randn(2, 4)})
    mod(nn.Linear(4, 3), "linear_3d", "nn.Linear(4, 3) on (2, 3, 4)",
        {"x": torch.randn(2, 3, 4)})
    mod(nn.Bilinear(3, 4, 2), "bilinear", "nn.Bilinear(3, 4, 2)",
        {"x1": torch.randn(5, 3), "x2": torch.randn(5, 4)},
        lambda m, a: m(a["x1"], a["x2"]))

    emb = nn.Embedding(6, 3, padding_idx=1)
    with torch.no_grad():
        emb.weight.copy_(torch.randn(6, 3))
        emb.weight[1].zero_()
    record(out, meta, "embedding", "nn.Embedding(6, 3, padding_idx=1)", emb,
           {"indices": torch.tensor([[0, 1, 4, 4], [5, 1, 0, 4]])},
           lambda m, a: m(a["indices"]))

    mod(nn.Conv2d(2, 3, 3), "conv_basic", "nn.Conv2d(2, 3, 3)",
        {"x": torch.randn(2, 2, 5, 5)})
    mod(nn.Conv2d(2, 4, (3, 2), stride=(2, 1), padding=(1, 2)),
        "conv_stride_pad",
        "nn.Conv2d(2, 4, (3, 2), stride=(2, 1), padding=(1, 2))",
        {"x": torch.randn(1, 2, 6, 5)})
    mod(nn.Conv2d(2, 2, 3, padding=1, dilation=2), "conv_dilation",
        "nn.Conv2d(2, 2, 3, padding=1, dilation=2)",
        {"x": torch.randn(1, 2, 7, 6)})
    mod(nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False), "conv_groups",
        "nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False)",
        {"x": torch.randn(2, 4, 4, 4)})
    mod(nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2, groups=4),
        "conv_depthwise",
        "nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2, groups=4)",
        {"x": torch.randn(1, 4, 6, 5)})

    def batch_norm(case, call, m, shape):
        randomize(m)
        x0 = torch.randn(*shape) * 2 + 1

        def pre(o, c, wide):
            o[f"{c}.in.x0"] = x0
            with torch.no_grad():
                o[f"{c}.out0"] = wide(x0.double())

        wide = record(out, meta, case, call, m,
                      {"x": torch.randn(*shape) - 0.5},
                      lambda mm, a: mm(a["x"]), pre)
        for k in ("running_mean", "running_var", "num_batches_tracked"):
            out[f"{case}.after.{k}"] = wide.state_dict()[k].clone()

    batch_norm("bn1d_train", "nn.BatchNorm1d(3), training, on (4, 3)",
               nn.BatchNorm1d(3), (4, 3))
    batch_norm("bn1d_3d_train",
               "nn.BatchNorm1d(3, momentum=0.3), training, on (4, 3, 5)",
               nn.BatchNorm1d(3, momentum=0.3), (4, 3, 5))
    batch_norm("bn2d_train",
               "nn.BatchNorm2d(3, eps=1e-3), training, on (2, 3, 4, 4)",
               nn.BatchNorm2d(3, eps=1e-3), (2, 3, 4, 4))

    def batch_norm_eval(case, call, m, shape):
        randomize(m)
        with torch.no_grad():
            m.running_mean.copy_(torch.randn(m.num_features))
            m.running_var.copy_(torch.rand(m.num_features) + 0.5)
            m.num_batches_tracked.fill_(7)
        m.eval()
        record(out, meta, case, call, m, {"x": torch.randn(*shape)},
               lambda mm, a: mm(a["x"]))

    batch_norm_eval("bn1d_eval", "nn.BatchNorm1d(3), eval, on (4, 3, 2)",
                    nn.BatchNorm1d(3), (4, 3, 2))
    batch_norm_eval("bn2d_eval", "nn.BatchNorm2d(2), eval, on (2, 2, 3, 3)",
                    nn.BatchNorm2d(2), (2, 2, 3, 3))

    mod(nn.LayerNorm(5), "layernorm_1", "nn.LayerNorm(5) on (2, 3, 5)",
        {"x": torch.randn(2, 3, 5)})
    mod(nn.LayerNorm((3, 5), eps=1e-3), "layernorm_2",
        "nn.LayerNorm((3, 5), eps=1e-3) on (2, 3, 5)",
        {"x": torch.randn(2, 3, 5)})

    def fn(case, call, f, shape):
        record(out, meta, case, call, None, {"x": torch.randn(*shape)},
               lambda m, a: f(a["x"]))

    fn("max_pool_basic", "F.max_pool2d(x, 2)", lambda x: F.max_pool2d(x, 2),
       (2, 2, 4, 6))
    fn("max_pool_ceil", "F.max_pool2d(x, 3, stride=2, padding=1, "
       "ceil_mode=True)",
       lambda x: F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
       (1, 2, 6, 7))
    fn("max_pool_dilation", "F.max_pool2d(x, (2, 3), stride=1, "
       "dilation=(2, 1))",
       lambda x: F.max_pool2d(x, (2, 3), stride=1, dilation=(2, 1)),
       (1, 1, 5, 5))
    fn("avg_pool_incl", "F.avg_pool2d(x, 3, stride=2, padding=1)",
       lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), (2, 1, 5, 6))
    fn("avg_pool_excl", "F.avg_pool2d(x, 3, stride=2, padding=1, "
       "count_include_pad=False)",
       lambda x: F.avg_pool2d(x, 3, stride=2, padding=1,
                              count_include_pad=False), (2, 1, 5, 6))
    fn("avg_pool_ceil", "F.avg_pool2d(x, 2, ceil_mode=True)",
       lambda x: F.avg_pool2d(x, 2, ceil_mode=True), (1, 2, 5, 5))
    fn("avg_pool_ceil_pad_incl", "F.avg_pool2d(x, 3, stride=2, padding=1, "
       "ceil_mode=True)",
       lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
       (1, 1, 6, 6))
    fn("avg_pool_ceil_pad_excl", "F.avg_pool2d(x, 3, stride=2, padding=1, "
       "ceil_mode=True, count_include_pad=False)",
       lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True,
                              count_include_pad=False), (1, 1, 6, 6))
    fn("adaptive_avg_pool", "F.adaptive_avg_pool2d(x, (3, 2))",
       lambda x: F.adaptive_avg_pool2d(x, (3, 2)), (2, 2, 7, 5))

    mod(Highway(4), "highway", "Highway(4)", {"x": torch.randn(3, 4)})

    # max_norm: each distinct looked-up row whose norm is above it is
    # scaled down in place before the lookup (rows 0, 2, 4, 5 here, some
    # twice in the indices); the weight after the call is compared too.
    emb = nn.Embedding(6, 3, max_norm=1.5, norm_type=3.0)
    with torch.no_grad():
        emb.weight.copy_(2 * torch.randn(6, 3))
    wide = record(out, meta, "embedding_max_norm",
                  "nn.Embedding(6, 3, max_norm=1.5, norm_type=3.0)", emb,
                  {"indices": torch.tensor([[4, 0, 4, 2], [2, 5, 0, 4]])},
                  lambda m, a: m(a["indices"]))
    out["embedding_max_norm.after.weight"] = wide.weight.detach().clone()
    return out, meta


# --------------------------------------------------------------- losses


def losses():
    out, meta = {}, {}
    torch.manual_seed(2)
    N, C = 4, 5

    def case(name, call, f, inputs):
        record(out, meta, name, call, None, inputs, lambda m, a: f(**a),
               grad_of=("input",))

    logits = torch.randn(N, C)
    tgt = torch.tensor([1, 0, 4, 2])
    tgt_ign = torch.tensor([1, 2, 4, 2])  # ignore_index 2 twice
    cw = torch.rand(C) + 0.5

    def ce(**kw):
        return lambda input, target, weight=None: F.cross_entropy(
            input, target, weight=weight, **kw)

    case("ce_plain", "F.cross_entropy(input, target)", ce(),
         {"input": logits, "target": tgt})
    case("ce_ignore", "F.cross_entropy(input, target, ignore_index=2)",
         ce(ignore_index=2), {"input": logits, "target": tgt_ign})
    case("ce_smooth", "F.cross_entropy(input, target, label_smoothing=0.2)",
         ce(label_smoothing=0.2), {"input": logits, "target": tgt})
    case("ce_weight", "F.cross_entropy(input, target, weight=weight)", ce(),
         {"input": logits, "target": tgt, "weight": cw})
    for red in ("mean", "sum", "none"):
        case(f"ce_wsi_{red}", "F.cross_entropy(input, target, weight=weight, "
             f"label_smoothing=0.1, ignore_index=2, reduction='{red}')",
             ce(label_smoothing=0.1, ignore_index=2, reduction=red),
             {"input": logits, "target": tgt_ign, "weight": cw})
    for red in ("sum", "none"):
        case(f"ce_{red}", f"F.cross_entropy(input, target, reduction='{red}')",
             ce(reduction=red), {"input": logits, "target": tgt})
    kd_logits = torch.randn(3, 4, 5)
    kd_tgt = torch.randint(0, 4, (3, 5))
    kd_tgt[1, 2] = -100
    case("ce_kdim", "F.cross_entropy(input, target) on (3, 4, 5), one target "
         "-100", ce(), {"input": kd_logits, "target": kd_tgt})
    case("ce_kdim_wsi", "F.cross_entropy(input, target, weight=weight, "
         "label_smoothing=0.3) on (3, 4, 5), one target -100",
         ce(label_smoothing=0.3),
         {"input": kd_logits, "target": kd_tgt, "weight": torch.rand(4) + 0.5})
    probs = torch.softmax(torch.randn(N, C) * 2, 1)
    case("ce_prob", "F.cross_entropy(input, target) with probabilities", ce(),
         {"input": logits, "target": probs})
    case("ce_prob_smooth", "F.cross_entropy(input, target, "
         "label_smoothing=0.15) with probabilities", ce(label_smoothing=0.15),
         {"input": logits, "target": probs})
    case("ce_prob_weight_sum", "F.cross_entropy(input, target, "
         "weight=weight, label_smoothing=0.15, reduction='sum') with "
         "probabilities", ce(label_smoothing=0.15, reduction="sum"),
         {"input": logits, "target": probs, "weight": cw})

    logp = torch.log_softmax(torch.randn(N, C), 1)
    case("nll", "F.nll_loss(input, target)",
         lambda input, target: F.nll_loss(input, target),
         {"input": logp, "target": tgt})
    case("nll_weight_ignore", "F.nll_loss(input, target, weight=weight, "
         "ignore_index=2)",
         lambda input, target, weight: F.nll_loss(input, target, weight,
                                                   ignore_index=2),
         {"input": logp, "target": tgt_ign, "weight": cw})

    x, y = torch.randn(3, 4), torch.randn(3, 4)
    case("mse", "F.mse_loss(input, target)", F.mse_loss,
         {"input": x, "target": y})
    case("mse_sum", "F.mse_loss(input, target, reduction='sum')",
         lambda input, target: F.mse_loss(input, target, reduction="sum"),
         {"input": x, "target": y})
    case("l1", "F.l1_loss(input, target)", F.l1_loss,
         {"input": x, "target": y})
    case("l1_none", "F.l1_loss(input, target, reduction='none')",
         lambda input, target: F.l1_loss(input, target, reduction="none"),
         {"input": x, "target": y})
    for beta, tag in ((0.5, "05"), (1.0, "1")):
        case(f"smooth_l1_b{tag}", f"F.smooth_l1_loss(input, target, "
             f"beta={beta})",
             lambda input, target, b=beta: F.smooth_l1_loss(input, target,
                                                            beta=b),
             {"input": x, "target": y})
    case("smooth_l1_b1_sum", "F.smooth_l1_loss(input, target, beta=1.0, "
         "reduction='sum')",
         lambda input, target: F.smooth_l1_loss(input, target,
                                                reduction="sum"),
         {"input": x, "target": y})

    p = torch.sigmoid(torch.randn(3, 4))
    yb = (torch.rand(3, 4) > 0.5).float()
    yb[0, 0] = 0.3  # soft labels are allowed too
    case("bce", "F.binary_cross_entropy(input, target)",
         F.binary_cross_entropy, {"input": p, "target": yb})
    case("bce_weight_sum", "F.binary_cross_entropy(input, target, "
         "weight=weight (4,), reduction='sum')",
         lambda input, target, weight: F.binary_cross_entropy(
             input, target, weight, reduction="sum"),
         {"input": p, "target": yb, "weight": torch.rand(4) + 0.5})
    z = torch.randn(3, 4) * 3
    case("bce_logits", "F.binary_cross_entropy_with_logits(input, target)",
         F.binary_cross_entropy_with_logits, {"input": z, "target": yb})
    case("bce_logits_weight_pos", "F.binary_cross_entropy_with_logits(input, "
         "target, weight=weight (3, 4), pos_weight=pos_weight (4,))",
         lambda input, target, weight, pos_weight:
         F.binary_cross_entropy_with_logits(input, target, weight,
                                            pos_weight=pos_weight),
         {"input": z, "target": yb, "weight": torch.rand(3, 4) + 0.5,
          "pos_weight": torch.rand(4) * 2 + 0.5})
    case("bce_logits_none_pos", "F.binary_cross_entropy_with_logits(input, "
         "target, pos_weight=pos_weight (4,), reduction='none')",
         lambda input, target, pos_weight:
         F.binary_cross_entropy_with_logits(input, target, reduction="none",
                                            pos_weight=pos_weight),
         {"input": z, "target": yb, "pos_weight": torch.rand(4) * 2 + 0.5})

    lq = torch.log_softmax(torch.randn(3, 4), 1)
    pt = torch.softmax(torch.randn(3, 4), 1)
    pt[1, 2] = 0  # t log t is 0 at t = 0
    lt = torch.log_softmax(torch.randn(3, 4), 1)
    case("kl_batchmean", "F.kl_div(input, target, reduction='batchmean'), a "
         "target of 0",
         lambda input, target: F.kl_div(input, target,
                                        reduction="batchmean"),
         {"input": lq, "target": pt})
    case("kl_mean", "F.kl_div(input, target, reduction='mean')",
         lambda input, target: F.kl_div(input, target, reduction="mean"),
         {"input": lq, "target": pt})
    case("kl_none", "F.kl_div(input, target, reduction='none')",
         lambda input, target: F.kl_div(input, target, reduction="none"),
         {"input": lq, "target": pt})
    case("kl_log_target", "F.kl_div(input, target, reduction='batchmean', "
         "log_target=True)",
         lambda input, target: F.kl_div(input, target, reduction="batchmean",
                                        log_target=True),
         {"input": lq, "target": lt})
    case("kl_log_target_sum", "F.kl_div(input, target, reduction='sum', "
         "log_target=True)",
         lambda input, target: F.kl_div(input, target, reduction="sum",
                                        log_target=True),
         {"input": lq, "target": lt})
    return out, meta


# --------------------------------------------------------------- optim

OPTIMIZERS = {
    "sgd_plain": ("SGD", dict(lr=0.1)),
    "sgd_momentum": ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    "sgd_nesterov": ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    "sgd_weight_decay": ("SGD", dict(lr=0.1, momentum=0.5,
                                     weight_decay=0.05)),
    "sgd_maximize": ("SGD", dict(lr=0.1, momentum=0.9, maximize=True)),
    "adam_default": ("Adam", dict(lr=0.01)),
    "adam_weight_decay": ("Adam", dict(lr=0.02, betas=(0.8, 0.99),
                                       eps=1e-6, weight_decay=0.1)),
    "adam_amsgrad": ("Adam", dict(lr=0.01, amsgrad=True)),
    "adam_maximize": ("Adam", dict(lr=0.01, maximize=True)),
    "adamw_default": ("AdamW", dict(lr=0.01)),
    "adamw_decay": ("AdamW", dict(lr=0.03, weight_decay=0.2)),
    "adamw_amsgrad": ("AdamW", dict(lr=0.01, amsgrad=True)),
    "rmsprop_plain": ("RMSprop", dict(lr=0.01)),
    "rmsprop_centered": ("RMSprop", dict(lr=0.01, centered=True)),
    "rmsprop_momentum": ("RMSprop", dict(lr=0.01, momentum=0.9,
                                         alpha=0.9)),
    "rmsprop_weight_decay": ("RMSprop", dict(lr=0.01, weight_decay=0.1,
                                             centered=True, momentum=0.5)),
    "rmsprop_maximize": ("RMSprop", dict(lr=0.01, maximize=True)),
    "adagrad_lr_decay": ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    "adagrad_weight_decay": ("Adagrad", dict(lr=0.1, weight_decay=0.1)),
    "adagrad_initial": ("Adagrad", dict(lr=0.1,
                                        initial_accumulator_value=0.5)),
    "adagrad_maximize": ("Adagrad", dict(lr=0.1, maximize=True)),
}
OPTIM_SHAPES = [(3, 4), (5,), (2, 2, 2)]
OPTIM_STEPS = 20


def optim():
    torch.manual_seed(3)
    init = [torch.randn(*s) for s in OPTIM_SHAPES]
    grads = [[torch.randn(*s) for s in OPTIM_SHAPES]
             for _ in range(OPTIM_STEPS)]
    # Sometimes a zero gradient element, and larger swings in late steps.
    grads[3][1][2] = 0
    for s in range(10, OPTIM_STEPS):
        grads[s][0] *= 3
    out = {f"init.p{i}": t for i, t in enumerate(init)}
    out["grads"] = torch.stack([torch.cat([g.flatten() for g in gs])
                                for gs in grads])
    meta = {}

    def trajectory(cls, kw, dtype):
        params = [t.to(dtype, copy=True).requires_grad_(True) for t in init]
        opt = getattr(torch.optim, cls)(params, **kw)
        rows = []
        for gs in grads:
            for p, g in zip(params, gs):
                p.grad = g.to(dtype)
            opt.step()
            rows.append(torch.cat([p.detach().flatten() for p in params]))
        return torch.stack(rows)

    for case, (cls, kw) in OPTIMIZERS.items():
        # the truth: float64 steps from the float32 values loom starts from
        out[case] = trajectory(cls, kw, torch.float64)
        # what a torch user gets in float32 (torch 1.13's CPU default: the
        # single-tensor loop, neither foreach nor fused), which loom's
        # float32 steps are to equal bit for bit
        out[f"{case}.f32"] = trajectory(cls, kw, torch.float32)
        meta[case] = f"torch.optim.{cls}(params, **{kw})"
    return out, meta


# --------------------------------------------------------------- schedules


def noam(d_model, warmup):
    def f(epoch):
        step = epoch + 1
        return d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)
    return f


def schedules():
    S = torch.optim.lr_scheduler
    cases = {
        "step": ("StepLR(opt, step_size=3, gamma=0.5)", 0.1,
                 lambda o: S.StepLR(o, step_size=3, gamma=0.5)),
        "multistep": ("MultiStepLR(opt, milestones=[2, 5, 11], gamma=0.3)",
                      0.1, lambda o: S.MultiStepLR(o, [2, 5, 11], gamma=0.3)),
        "exponential": ("ExponentialLR(opt, gamma=0.9)", 0.1,
                        lambda o: S.ExponentialLR(o, gamma=0.9)),
        "cosine": ("CosineAnnealingLR(opt, T_max=8, eta_min=0.001)", 0.1,
                   lambda o: S.CosineAnnealingLR(o, T_max=8, eta_min=0.001)),
        "linear": ("LinearLR(opt, start_factor=0.25, total_iters=6)", 0.1,
                   lambda o: S.LinearLR(o, start_factor=0.25,
                                        total_iters=6)),
        "noam": ("LambdaLR(opt, noam(d_model=16, warmup=4)), lr=2.0", 2.0,
                 lambda o: S.LambdaLR(o, noam(16, 4))),
    }
    metric = torch.tensor([1.0, 0.9, 0.95, 0.95, 0.94, 0.96, 0.85, 0.86,
                           0.86, 0.8499, 0.87, 0.88, 0.5, 0.6, 0.6, 0.6,
                           0.6, 0.6, 0.6, 0.6], dtype=torch.float64)
    plateau = {
        "plateau_min": ("ReduceLROnPlateau(opt, factor=0.5, patience=2, "
                        "cooldown=1)", metric,
                        dict(factor=0.5, patience=2, cooldown=1)),
        "plateau_max_abs": ("ReduceLROnPlateau(opt, mode='max', factor=0.3, "
                            "patience=2, cooldown=1, threshold=0.05, "
                            "threshold_mode='abs', min_lr=0.002)", -metric,
                            dict(mode="max", factor=0.3, patience=2,
                                 cooldown=1, threshold=0.05,
                                 threshold_mode="abs", min_lr=0.002)),
    }
    out, meta = {}, {}

    def opt_for(lr):
        return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)

    for case, (call, lr, make) in cases.items():
        o = opt_for(lr)
        s = make(o)
        lrs = [o.param_groups[0]["lr"]]
        for _ in range(20):
            o.step()
            s.step()
            lrs.append(o.param_groups[0]["lr"])
        out[case] = torch.tensor(lrs, dtype=torch.float64)
        meta[case] = f"{call}, lr={lr}"
    for case, (call, m, kw) in plateau.items():
        o = opt_for(0.1)
        s = S.ReduceLROnPlateau(o, **kw)
        lrs = [o.param_groups[0]["lr"]]
        for v in m.tolist():
            o.step()
            s.step(v)
            lrs.append(o.param_groups[0]["lr"])
        out[case] = torch.tensor(lrs, dtype=torch.float64)
        out[f"{case}.metric"] = m.clone()
        meta[case] = f"{call}, lr=0.1"
    return out, meta


# --------------------------------------------------------------- interop


def interop():
    torch.manual_seed(4)
    for name, cls in INTEROP_MODELS.items():
        model = cls()
        if name == "mlp":
            randomize(model.bn)
            randomize(model.norm)
            with torch.no_grad():
                model.bn.running_mean.copy_(torch.randn(8) * 0.3)
                model.bn.running_var.copy_(torch.rand(8) + 0.5)
                model.bn.num_batches_tracked.fill_(12)
        model.eval()
        x = torch.randn(*INTEROP_INPUT_SHAPES[name])
        with torch.no_grad():
            y = model(x)
        save_safetensors(os.path.join(DATA, f"interop_{name}.safetensors"),
                         {k: v.clone() for k, v in
                          model.state_dict().items()},
                         {"model": cls.__doc__})
        save_safetensors(os.path.join(DATA,
                                      f"interop_{name}_io.safetensors"),
                         {"input": x, "output": y})


def main():
    files = (("nn_layers", layers), ("nn_losses", losses),
             ("optim", optim), ("schedules", schedules))
    known = [f for f, _ in files] + ["interop"]
    # Some files only: the convolutions' results differ in their last bits
    # from one CPU to another, so regenerating every file on another
    # machine rewrites files nothing changed.
    chosen = sys.argv[1:] or known
    if any(c not in known for c in chosen):
        print(f"usage: {sys.argv[0]} [{' | '.join(known)}]...",
              file=sys.stderr)
        return 2
    os.makedirs(DATA, exist_ok=True)
    written = []
    for fname, make in files:
        if fname not in chosen:
            continue
        tensors, meta = make()
        written.append(os.path.join(DATA, f"{fname}.safetensors"))
        save_safetensors(written[-1], tensors, meta)
    if "interop" in chosen:
        for name in INTEROP_MODELS:
            written += [os.path.join(DATA, f"interop_{name}{s}.safetensors")
                        for s in ("", "_io")]
        interop()
    print(f"total {sum(os.path.getsize(f) for f in written)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
