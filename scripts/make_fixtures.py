#!/usr/bin/env python3
"""Reference values for the Swift tests, computed with PyTorch (the pinned torch==2.11.0).

Run with `make fixtures`. Writes safetensors files into Tests/*/Fixtures/. Each op case
`name` stores its inputs `name/in{i}`, outputs `name/out{i}`; for differentiable cases a
cotangent `name/cot{i}` per output and the gradients `name/grad{i}` of
sum_i <out_i, cot_i> with respect to each floating-point input. The Swift tests run the same
computation on the same inputs and compare.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
torch.set_num_threads(1)
assert torch.__version__.startswith("2.11.0"), torch.__version__


class Fixtures:
    def __init__(self):
        self.tensors = {}

    def put(self, key, t):
        assert key not in self.tensors, key
        self.tensors[key] = t.detach().contiguous().clone()

    def case(self, name, fn, *inputs, grad=True):
        inputs = [x.detach().clone() for x in inputs]
        for i, x in enumerate(inputs):
            self.put(f"{name}/in{i}", x)
        leaves = [x.clone().requires_grad_(grad and x.is_floating_point()) for x in inputs]
        outs = fn(*leaves)
        outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
        for i, o in enumerate(outs):
            self.put(f"{name}/out{i}", o)
        diff = [o for o in outs if o.requires_grad]
        if grad and diff:
            g = torch.Generator().manual_seed(len(self.tensors))
            total = 0
            for i, o in enumerate(outs):
                if o.requires_grad:
                    cot = torch.randn(o.shape, generator=g, dtype=o.dtype)
                    self.put(f"{name}/cot{i}", cot)
                    total = total + (o * cot).sum()
            total.backward()
            for i, x in enumerate(leaves):
                if x.requires_grad:
                    self.put(f"{name}/grad{i}", x.grad if x.grad is not None else torch.zeros_like(x))

    def save(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        save_file(self.tensors, path)
        size = os.path.getsize(path)
        print(f"wrote {os.path.relpath(path, ROOT)}: {len(self.tensors)} tensors, {size / 1024:.0f} KiB")


def ops_fixtures():
    torch.manual_seed(0)
    fx = Fixtures()
    x = torch.randn(3, 4)
    y = torch.randn(3, 4)
    pos = torch.rand(3, 4) + 0.5
    c = fx.case
    # Elementwise, unary.
    for name, fn, inp in [
        ("neg", torch.neg, x), ("exp", torch.exp, x), ("log", torch.log, pos), ("sqrt", torch.sqrt, pos),
        ("rsqrt", torch.rsqrt, pos), ("abs", torch.abs, x), ("sigmoid", torch.sigmoid, x), ("tanh", torch.tanh, x),
        ("relu", torch.relu, x), ("gelu", F.gelu, x), ("gelu_tanh", lambda a: F.gelu(a, approximate="tanh"), x),
        ("quick_gelu", lambda a: a * torch.sigmoid(1.702 * a), x), ("silu", F.silu, x), ("sin", torch.sin, x),
        ("cos", torch.cos, x), ("square", torch.square, x), ("reciprocal", torch.reciprocal, pos),
        ("log_sigmoid", F.logsigmoid, x), ("erf", torch.erf, x), ("log1p", torch.log1p, pos), ("expm1", torch.expm1, x),
    ]:
        c(name, fn, inp)
    for name, fn in [("sign", torch.sign), ("floor", torch.floor), ("ceil", torch.ceil), ("round", torch.round)]:
        c(name, fn, x * 3, grad=False)
    # Elementwise, binary and with scalars.
    c("add", torch.add, x, y)
    c("sub", torch.sub, x, y)
    c("mul", torch.mul, x, y)
    c("div", torch.div, x, pos)
    c("pow", torch.pow, pos, y)
    c("maximum", torch.maximum, x, y)
    c("minimum", torch.minimum, x, y)
    c("atan2", torch.atan2, x, y)
    c("add_broadcast", torch.add, torch.randn(3, 1), torch.randn(1, 4))
    c("add_scalar", lambda a: a + 2.5, x)
    c("sub_scalar", lambda a: a - 2.5, x)
    c("mul_scalar", lambda a: a * -1.5, x)
    c("div_scalar", lambda a: a / 4.0, x)
    c("rsub_scalar", lambda a: 2.0 - a, x)
    c("rdiv_scalar", lambda a: 3.0 / a, pos)
    c("pow_scalar", lambda a: a ** 3.0, x)
    c("clamp", lambda a: a.clamp(-0.5, 0.7), x)
    c("clamp_min", lambda a: a.clamp(min=0.1), x)
    c("lerp", lambda a, b: torch.lerp(a, b, 0.3), x, y)
    c("where", lambda m, a, b: torch.where(m, a, b), x > 0, x, y)
    c("masked_fill", lambda a, m: a.masked_fill(m, -1e4), x, y > 0)
    c("compare_lt", lambda a, b: (a < b, a <= 0.0, a.eq(b), a.ne(0.0), a.gt(b), a.ge(0.0)), x, y, grad=False)
    c("logical", lambda a, b: (torch.logical_and(a, b), torch.logical_or(a, b), torch.logical_not(a)), x > 0, y > 0, grad=False)
    # Reductions.
    z = torch.randn(2, 3, 4)
    c("sum_all", lambda a: a.sum(), z)
    c("sum_dims", lambda a: a.sum(dim=(0, 2), keepdim=True), z)
    c("mean_dim", lambda a: a.mean(dim=1), z)
    c("amax", lambda a: a.amax(dim=-1), z)
    c("amin", lambda a: a.amin(dim=(0, 1)), z)
    c("prod", lambda a: a.prod(dim=2), z)
    c("logsumexp", lambda a: torch.logsumexp(a, dim=(1,)), z)
    c("norm2", lambda a: torch.linalg.vector_norm(a, 2, dim=-1, keepdim=True), z)
    c("norm1_all", lambda a: torch.linalg.vector_norm(a, 1), z)
    c("var", lambda a: a.var(dim=1), z)
    c("std_all", lambda a: a.std(), z)
    c("var_biased", lambda a: a.var(dim=(0, 2), correction=0), z)
    c("argmax", lambda a: (a.argmax(dim=2), a.argmin(dim=0)), z, grad=False)
    c("cumsum", lambda a: a.cumsum(dim=1), z)
    c("max_dim", lambda a: tuple(a.max(dim=1)), z)
    c("min_dim", lambda a: tuple(a.min(dim=2, keepdim=True)), z)
    c("topk", lambda a: tuple(torch.topk(a, 2, dim=-1)), z)
    c("topk_smallest", lambda a: tuple(torch.topk(a, 3, dim=1, largest=False)), z)
    c("sort", lambda a: tuple(torch.sort(a, dim=-1, descending=True)), z)
    c("argsort", lambda a: torch.argsort(a, dim=0), z, grad=False)
    # Shape and indexing.
    c("reshape", lambda a: a.reshape(4, -1), z)
    c("permute", lambda a: a.permute(2, 0, 1), z)
    c("transpose", lambda a: a.transpose(0, 2), z)
    c("expand", lambda a: a.expand(2, 3, 4), torch.randn(3, 1))
    c("repeat", lambda a: a.repeat(2, 1, 3), torch.randn(3, 2))
    c("squeeze_unsqueeze", lambda a: a.unsqueeze(1).squeeze(2), torch.randn(3, 1, 4))
    c("flatten", lambda a: a.flatten(1), z)
    c("narrow", lambda a: a.narrow(2, 1, 2), z)
    c("slice_step", lambda a: a[:, ::2, 1:], z)
    c("select", lambda a: a.select(1, 2), z)
    c("index_select", lambda a, i: a.index_select(1, i), z, torch.tensor([2, 0, 2]))
    c("gather", lambda a, i: a.gather(2, i), z, torch.randint(0, 4, (2, 3, 2)))
    c("scatter_add", lambda a, i, s: a.scatter_add(1, i, s), torch.zeros(2, 5), torch.randint(0, 5, (2, 3)), torch.randn(2, 3))
    c("masked_select", lambda a, m: a[m], x, y > 0)
    c("cat", lambda a, b: torch.cat([a, b], dim=1), x, y)
    c("stack", lambda a, b: torch.stack([a, b], dim=1), x, y)
    c("chunk", lambda a: a.chunk(3, dim=2), torch.randn(2, 3, 7))
    c("split", lambda a: a.split(2, dim=1), z)
    c("tril_triu", lambda a: (a.tril(), a.triu(1)), torch.randn(4, 4))
    c("flip", lambda a: a.flip([0, 2]), z)
    c("diagonal", lambda a: a.diagonal(offset=1, dim1=0, dim2=1), torch.randn(4, 4))
    c("einsum", lambda a, b: torch.einsum("bij,bjk->bik", a, b), torch.randn(2, 3, 4), torch.randn(2, 4, 5))
    # Products and softmax.
    c("matmul", torch.matmul, x, torch.randn(4, 5))
    c("matmul_batched", torch.matmul, torch.randn(2, 3, 4), torch.randn(4, 2))
    c("softmax", lambda a: a.softmax(dim=-1), z)
    c("log_softmax", lambda a: a.log_softmax(dim=1), z)
    # Neural-network functions (checked by TorchNN's tests against Functional).
    fn = Fixtures()
    c = fn.case
    c("linear", F.linear, torch.randn(2, 3, 4), torch.randn(5, 4), torch.randn(5))
    c("linear_nobias", F.linear, torch.randn(3, 4), torch.randn(5, 4))
    c("layer_norm", lambda a, w, b: F.layer_norm(a, (4,), w, b, 1e-5), z, torch.randn(4), torch.randn(4))
    c("layer_norm_2d", lambda a: F.layer_norm(a, (3, 4), eps=1e-6), z)
    c("group_norm", lambda a, w, b: F.group_norm(a, 2, w, b, 1e-5), torch.randn(2, 4, 3, 3), torch.randn(4), torch.randn(4))
    q, k, v = torch.randn(2, 2, 5, 8), torch.randn(2, 2, 6, 8), torch.randn(2, 2, 6, 8)
    c("sdpa", lambda a, b, d: F.scaled_dot_product_attention(a, b, d), q, k, v)
    c("sdpa_bool_mask", lambda a, b, d, m: F.scaled_dot_product_attention(a, b, d, attn_mask=m), q, k, v,
      torch.rand(2, 1, 5, 6) > 0.3)
    c("sdpa_float_mask", lambda a, b, d, m: F.scaled_dot_product_attention(a, b, d, attn_mask=m), q, k, v,
      torch.randn(5, 6))
    c("sdpa_causal_scale", lambda a, b, d: F.scaled_dot_product_attention(a, b, d, is_causal=True, scale=0.3),
      q, k[:, :, :5], v[:, :, :5])
    img = torch.randn(2, 4, 9, 9)
    c("conv2d", lambda a, w, b: F.conv2d(a, w, b, stride=2, padding=1), img, torch.randn(6, 4, 3, 3), torch.randn(6))
    c("conv2d_groups_dilation", lambda a, w: F.conv2d(a, w, None, stride=1, padding=(2, 1), dilation=(2, 1), groups=2),
      img, torch.randn(4, 2, 3, 3))
    c("avg_pool1d", lambda a: F.avg_pool1d(a, 3, 2, 1), torch.randn(2, 3, 10))
    c("avg_pool2d", lambda a: F.avg_pool2d(a, (2, 3), (2, 2), (1, 1), count_include_pad=False), img)
    c("adaptive_avg_pool1d", lambda a: F.adaptive_avg_pool1d(a, 4), torch.randn(2, 3, 10))
    c("adaptive_avg_pool2d", lambda a: F.adaptive_avg_pool2d(a, (4, 3)), img)
    c("max_pool2d", lambda a: F.max_pool2d(a, 3, 2, 1), img)
    c("interp_nearest", lambda a: F.interpolate(a, size=(5, 13), mode="nearest"), img)
    c("interp_bilinear", lambda a: F.interpolate(a, size=(14, 6), mode="bilinear", align_corners=False), img)
    c("interp_bilinear_ac", lambda a: F.interpolate(a, size=(14, 6), mode="bilinear", align_corners=True), img)
    c("interp_bicubic", lambda a: F.interpolate(a, size=(4, 4), mode="bicubic", align_corners=False), img)
    c("interp_bicubic_aa", lambda a: F.interpolate(a, size=(4, 4), mode="bicubic", antialias=True), img)
    c("embedding", lambda w, i: F.embedding(i, w), torch.randn(10, 4), torch.randint(0, 10, (2, 5)))
    c("normalize", lambda a: F.normalize(a, dim=-1), z)
    c("normalize_p1", lambda a: F.normalize(a, p=1.0, dim=1), z)
    c("cosine_similarity", lambda a, b: F.cosine_similarity(a, b, dim=1), x, y)
    c("one_hot", lambda i: F.one_hot(i, 6), torch.tensor([0, 5, 2, 2]), grad=False)
    # Losses.
    logits = torch.randn(6, 5)
    target = torch.tensor([0, 4, 2, 2, 1, 3])
    c("cross_entropy", lambda a, t: F.cross_entropy(a, t), logits, target)
    c("cross_entropy_smooth_sum", lambda a, t: F.cross_entropy(a, t, reduction="sum", label_smoothing=0.1), logits, target)
    c("cross_entropy_ignore_none", lambda a, t: F.cross_entropy(a, t, reduction="none", ignore_index=2), logits, target)
    c("cross_entropy_probs", lambda a, t: F.cross_entropy(a, t), logits, torch.randn(6, 5).softmax(-1))
    lp, tp = torch.randn(4, 7).log_softmax(-1), torch.randn(4, 7).softmax(-1)
    c("kl_div_batchmean", lambda a, t: F.kl_div(a, t, reduction="batchmean"), lp, tp)
    c("kl_div_log_target_sum", lambda a, t: F.kl_div(a, t, reduction="sum", log_target=True), lp, tp.log())
    c("kl_div_none", lambda a, t: F.kl_div(a, t, reduction="none"), lp, tp)
    c("mse", lambda a, b: F.mse_loss(a, b), x, y)
    c("mse_sum", lambda a, b: F.mse_loss(a, b, reduction="sum"), x, y)
    c("mse_none", lambda a, b: F.mse_loss(a, b, reduction="none"), x, y)
    c("smooth_l1", lambda a, b: F.smooth_l1_loss(a, b, beta=0.5), x, y)
    c("bce_logits", lambda a, t: F.binary_cross_entropy_with_logits(a, t), x, torch.rand(3, 4))
    # A composite graph (gradients through several ops at once).
    c("composite", lambda a, w, t: F.cross_entropy(F.gelu(a @ w).softmax(-1).log(), t), torch.randn(6, 4),
      torch.randn(4, 5), target)
    # Seeded random streams: the same generator algorithm, so the same numbers.
    fn.put("random/dropout_seed7", (torch.manual_seed(7), F.dropout(torch.ones(4, 8), 0.5, training=True))[1])
    g = torch.Generator().manual_seed(1234)
    fx.put("random/randn_seed1234", torch.randn(3, 5, generator=g))
    fx.put("random/rand_after", torch.rand(4, generator=g))
    fx.put("random/randint_after", torch.randint(0, 100, (6,), generator=g))
    fx.put("random/randperm_after", torch.randperm(10, generator=g))
    return fx, fn


class Attention(torch.nn.Module):
    """The layout of our MultiHeadAttention: separate q/k/v/out projections, SDPA inside."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)
        self.v_proj, self.out_proj = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)

    def forward(self, x, mask=None, is_causal=False):
        b, l, d = x.shape
        split = lambda t: t.view(b, l, self.heads, d // self.heads).transpose(1, 2)
        o = F.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x)),
                                           attn_mask=mask, is_causal=is_causal)
        return self.out_proj(o.transpose(1, 2).reshape(b, l, d))


class MLP(torch.nn.Module):
    def __init__(self, d, h, act):
        super().__init__()
        self.fc1, self.fc2, self.act = torch.nn.Linear(d, h), torch.nn.Linear(h, d), act

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(torch.nn.Module):
    """A pre-norm transformer block, keyed as the Swift test's composite module."""

    def __init__(self, d, heads):
        super().__init__()
        self.layer_norm1 = torch.nn.LayerNorm(d)
        self.self_attn = Attention(d, heads)
        self.layer_norm2 = torch.nn.LayerNorm(d)
        self.mlp = MLP(d, 4 * d, lambda t: t * torch.sigmoid(1.702 * t))

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x), is_causal=True)
        return x + self.mlp(self.layer_norm2(x))


def module_fixtures():
    torch.manual_seed(1)
    fx = Fixtures()

    def module_case(name, module, *inputs, call=None):
        for k, v in module.state_dict().items():
            fx.put(f"{name}/state/{k}", v)
        inputs = [i.clone().requires_grad_(i.is_floating_point()) for i in inputs]
        out = (call or module)(*inputs)
        fx.put(f"{name}/out", out)
        cot = torch.randn(out.shape)
        fx.put(f"{name}/cot", cot)
        (out * cot).sum().backward()
        for i, x in enumerate(inputs):
            fx.put(f"{name}/in{i}", x)
            if x.requires_grad:
                fx.put(f"{name}/in{i}_grad", x.grad)
        for k, p in module.named_parameters():
            fx.put(f"{name}/param_grad/{k}", p.grad)

    module_case("linear", torch.nn.Linear(6, 3), torch.randn(2, 4, 6))
    module_case("layer_norm", torch.nn.LayerNorm(6, eps=1e-6), torch.randn(2, 4, 6))
    ln = torch.nn.LayerNorm(6)
    with torch.no_grad():
        ln.weight.normal_(), ln.bias.normal_()
    module_case("layer_norm_affine", ln, torch.randn(3, 6))
    module_case("embedding", torch.nn.Embedding(11, 5), torch.randint(0, 11, (3, 4)))
    module_case("conv2d", torch.nn.Conv2d(3, 8, 4, stride=4), torch.randn(2, 3, 16, 16))
    module_case("group_norm", torch.nn.GroupNorm(2, 6), torch.randn(2, 6, 3, 3))
    module_case("mlp_gelu", MLP(8, 32, F.gelu), torch.randn(2, 5, 8))
    module_case("attention", Attention(16, 4), torch.randn(2, 7, 16))
    causal = Attention(16, 2)
    module_case("attention_causal", causal, torch.randn(2, 7, 16), call=lambda x: causal(x, is_causal=True))
    attn = Attention(16, 2)
    module_case("attention_masked", attn, torch.randn(2, 7, 16), torch.rand(2, 1, 7, 7) > 0.4,
                call=lambda x, m: attn(x, mask=m))
    block = Block(16, 4)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.1 * torch.randn_like(p))
    module_case("block", block, torch.randn(2, 6, 16))
    return fx


def optim_fixtures():
    torch.manual_seed(2)
    fx = Fixtures()
    x, y = torch.randn(16, 8), torch.randint(0, 4, (16,))

    def model():
        torch.manual_seed(3)
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))

    fx.put("data/x", x)
    fx.put("data/y", y)
    m = model()
    for k, v in m.state_dict().items():
        fx.put(f"init/{k}", v)

    def run(name, make_opt, steps=6, clip=None, schedule=None):
        net = model()
        opt = make_opt(net)
        for s in range(steps):
            if schedule:
                for g in opt.param_groups:
                    g["lr"] = schedule(s) * g.get("lr_scale", 1.0)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            if clip:
                norm = torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
                fx.put(f"{name}/grad_norm{s}", norm.reshape(1))
            opt.step()
            fx.put(f"{name}/loss{s}", loss.detach().reshape(1))
        for k, v in net.state_dict().items():
            fx.put(f"{name}/final/{k}", v)

    def groups(net):
        decay = [p for p in net.parameters() if p.ndim >= 2]
        no_decay = [p for p in net.parameters() if p.ndim < 2]
        return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]

    run("adamw", lambda n: torch.optim.AdamW(groups(n), lr=1e-2, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2))
    run("adamw_clip", lambda n: torch.optim.AdamW(n.parameters(), lr=5e-2, weight_decay=0.1), clip=0.5)

    def cosine(s, base=2e-2, warm=2, total=6):
        if s < warm:
            return base * (s + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm))) * base

    run("adamw_schedule", lambda n: torch.optim.AdamW(n.parameters(), lr=0.0, weight_decay=0.05), schedule=cosine)
    run("sgd", lambda n: torch.optim.SGD(n.parameters(), lr=0.1))
    run("sgd_momentum", lambda n: torch.optim.SGD(n.parameters(), lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-3))
    run("sgd_nesterov", lambda n: torch.optim.SGD(n.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2))
    return fx


def main():
    ops, functional = ops_fixtures()
    ops.save(os.path.join(ROOT, "Tests/TorchTests/Fixtures/ops.safetensors"))
    functional.save(os.path.join(ROOT, "Tests/TorchNNTests/Fixtures/functional.safetensors"))
    module_fixtures().save(os.path.join(ROOT, "Tests/TorchNNTests/Fixtures/modules.safetensors"))
    optim_fixtures().save(os.path.join(ROOT, "Tests/TorchOptimTests/Fixtures/optim.safetensors"))


if __name__ == "__main__":
    sys.exit(main())
