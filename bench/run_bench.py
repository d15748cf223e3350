#!/usr/bin/env python3
"""Swift vs PyTorch eager: one transformer training step (forward, backward, AdamW).

The same model (same initial weights, same batch) runs in PyTorch in this process and in
Swift in a worker process (bench/TorchBench), with the same number of intra-op threads.
Rounds alternate between the two (and swap who goes first) so drift in machine speed hits
both alike. Prints the median step time of each and their ratio, and checks the two
compute the same thing (first-step losses agree).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

from alternate import SwiftWorker, alternate


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj = nn.Linear(d, d), nn.Linear(d, d)
        self.v_proj, self.out_proj = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        split = lambda y: y.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        o = F.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x)),
                                           is_causal=True)
        return self.out_proj(o.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.attn, self.ln2, self.mlp = nn.LayerNorm(d), Attention(d, heads), nn.LayerNorm(d), MLP(d)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class LanguageModel(nn.Module):
    def __init__(self, vocab, context, width, heads, layers):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, width)
        self.pos_emb = nn.Parameter(0.02 * torch.randn(context, width))
        self.blocks = nn.ModuleList([Block(width, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens):
        h = self.tok_emb(tokens) + self.pos_emb[: tokens.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln_f(h))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--swift-binary", required=True)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--vocab", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=3, help="timed steps per side per round")
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = LanguageModel(args.vocab, args.seq, args.width, args.heads, args.layers)
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq))
    targets = torch.randint(0, args.vocab, (args.batch, args.seq))
    config = torch.tensor([args.vocab, args.seq, args.width, args.heads, args.layers])

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.safetensors")
        tensors = {f"model/{k}": v.detach().clone() for k, v in model.state_dict().items()}
        tensors.update({"config": config, "batch/tokens": tokens, "batch/targets": targets})
        save_file(tensors, path)
        worker = SwiftWorker([args.swift_binary, "--weights", path, "--threads", str(args.threads)])
        print(f"swift worker: {worker.ready}")

    # The fused kernel, as ours (Sources/CTorch: AdamW runs ATen's _fused_adamw_), so both sides
    # run the same update; torch.optim's CPU default is the slower single-tensor form.
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=True)

    def torch_steps(n):
        times, loss = [], None
        for _ in range(n):
            start = time.perf_counter()
            logits = model(tokens)
            loss = F.cross_entropy(logits.reshape(-1, args.vocab), targets.reshape(-1))
            loss.backward()
            opt.step()
            opt.zero_grad()
            times.append(time.perf_counter() - start)
        return times, loss.item()

    swift_steps = worker.steps

    # Both start from the same weights and batch: their first losses must agree.
    _, swift_first = swift_steps(1)
    _, torch_first = torch_steps(1)
    agree = abs(swift_first - torch_first) <= 1e-4 * abs(torch_first)
    print(f"first-step loss: swift {swift_first:.6f}  pytorch {torch_first:.6f}  ({'agree' if agree else 'DIFFER'})")
    swift_steps(args.warmup)
    torch_steps(args.warmup)

    swift_times, torch_times = alternate(swift_steps, torch_steps, args.rounds, args.steps)
    worker.close()

    s, t = statistics.median(swift_times), statistics.median(torch_times)
    print(f"transformer train step  batch={args.batch} seq={args.seq} width={args.width} heads={args.heads} "
          f"layers={args.layers} threads={args.threads} torch={torch.__version__}")
    print(f"  swift   median {s * 1e3:8.2f} ms  min {min(swift_times) * 1e3:8.2f} ms  ({len(swift_times)} steps)")
    print(f"  pytorch median {t * 1e3:8.2f} ms  min {min(torch_times) * 1e3:8.2f} ms  ({len(torch_times)} steps)")
    print(f"ratio swift/pytorch (median step time): {s / t:.3f}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
