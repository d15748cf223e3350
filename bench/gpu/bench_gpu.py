#!/usr/bin/env python3
"""GPU benchmark (`make bench-gpu`): one real-size CMAPKD distillation step, Swift vs PyTorch eager.

Default sizes: ViT-B/16 teacher -> ViT-S/16 student (Presets vit-b-16 / vit-s-16), 224 px,
77 tokens, batch 256, bf16 autocast, then the same at fp32. The step is bench/distill_step.py's:
the teacher's features computed live, the student's forward pass, pyramids, adapters, bridge,
ALSN weights, the lambda-weighted losses, backward and AdamW over student + head.

Both sides start from the same weights (`DistillBench export` writes them as Hugging Face
folders) and the same batch; their first-step losses must agree (bf16: to 2 %). Rounds
alternate between the two. Prints median step times, the ratio Swift / PyTorch, and model FLOPs
utilisation: the step's FLOPs (torch.utils.flop_counter on the PyTorch step: matmuls,
convolutions, attention, forward and backward) / step time / the GPU's peak for the precision.

Runs only where CUDA is present (exits 0 with a message otherwise), unless --device cpu is
given: `--device cpu --teacher scene-teacher --student scene-student --batch 8 --quick` is the
smoke test that checks the script here. Writes <out>/bench_gpu.json.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from safetensors.torch import save_file
from transformers import CLIPModel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import distill_step as ds  # noqa: E402  (the step's PyTorch definition, shared with make bench-distill)
from alternate import SwiftWorker, alternate  # noqa: E402

# Dense peak TFLOP/s by GPU name fragment: (bf16/fp16 tensor cores, fp32 without TF32).
PEAKS = {"H200": (989.0, 67.0), "H100": (989.0, 67.0), "A100": (312.0, 19.5), "L40S": (362.0, 91.6)}


def peak_tflops(device, precision, override):
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (half, full) in PEAKS.items():
        if key in name:
            return full if precision == "fp32" else half
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--swift-binary", required=True, help="DistillBench (or the bundle's launcher for it)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--teacher", default="vit-b-16")
    p.add_argument("--student", default="vit-s-16")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--precisions", default="bf16,fp32")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=3, help="timed steps per side per round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--peak-tflops", type=float, default=None, help="override the GPU's peak (TFLOP/s)")
    p.add_argument("--quick", action="store_true", help="2 rounds of 1 step, 1 warm-up")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "out"))
    args = p.parse_args()
    if args.quick:
        args.rounds, args.steps, args.warmup = 2, 1, 1
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench-gpu: no CUDA device here; nothing to measure (run it on a GPU machine, e.g. from `make bundle`)")
        return 0
    # LibTorch's defaults on both sides: matmuls in true fp32 (TF32 off), cuDNN convolutions
    # (the patch embedding) allowed TF32. The Swift worker does not change them, so neither do we.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = True
    results = []
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "bench_gpu.json")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([args.swift_binary, "export", "--out", tmp, "--teacher", args.teacher, "--student", args.student],
                       check=True)
        for precision in args.precisions.split(","):
            results.append(measure(args, device, precision, tmp))
            # Written after every precision: a run cut short by a time limit keeps what it measured.
            with open(path, "w") as f:
                json.dump(dict(teacher=args.teacher, student=args.student, batch=args.batch, device=str(device),
                               gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                               torch=torch.__version__, results=results), f, indent=2)
            print(f"wrote {os.path.relpath(path)} ({precision})")
            if device.type == "cuda":
                torch.cuda.empty_cache()  # the next precision's Swift worker needs the memory
    return 0 if all(r["losses_agree"] for r in results) else 1


def measure(args, device, precision, tmp):
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    torch.manual_seed(0)
    teacher = CLIPModel.from_pretrained(os.path.join(tmp, "teacher"), attn_implementation="sdpa").to(device)
    student = CLIPModel.from_pretrained(os.path.join(tmp, "student"), attn_implementation="sdpa").to(device)
    head = ds.Head(student, teacher, "linear").to(device)  # the Swift worker's default adapters
    image, length = student.config.vision_config.image_size, student.config.text_config.max_position_embeddings
    pixels, ids, mask = ds.random_batch(args.batch, image, length, torch.Generator().manual_seed(1))
    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, os.path.join(tmp, "head.safetensors"))
    save_file({"pixels": pixels, "ids": ids, "mask": mask}, os.path.join(tmp, "batch.safetensors"))
    pixels, ids, mask = pixels.to(device), ids.to(device), mask.to(device)
    step = ds.Step(student, teacher, head, torch.get_num_threads())

    def torch_step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = step.loss(pixels, ids, mask, step.teacher_features(pixels, ids, mask))
        loss.float().backward()
        step.optimizer.step()
        step.optimizer.zero_grad()
        return loss.item()

    def torch_steps(n):
        times, loss = [], None
        for _ in range(n):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            loss = torch_step()  # .item() waits for the device
            times.append(time.perf_counter() - start)
        return times, loss

    worker = SwiftWorker([args.swift_binary, "worker", "--weights", tmp, "--device", str(device), "--precision", precision,
                          "--threads", str(torch.get_num_threads())])
    print(f"[{precision}] swift worker: {worker.ready}")
    step.standardizer = ds.load_standardizer(tmp, device)
    swift_steps = worker.steps

    _, swift_first = swift_steps(1)
    # The step's FLOPs, counted on PyTorch's first step (the same computation on both sides).
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        torch_first = torch_step()
    flops = counter.get_total_flops()
    tolerance = 1e-4 if dtype is None else 2e-2
    agree = abs(swift_first - torch_first) <= tolerance * abs(torch_first)
    print(f"[{precision}] first-step loss: swift {swift_first:.6f}  pytorch {torch_first:.6f}  ({'agree' if agree else 'DIFFER'})")
    swift_steps(args.warmup)
    torch_steps(args.warmup)
    swift_times, torch_times = alternate(swift_steps, torch_steps, args.rounds, args.steps)
    worker.close()
    s, t = statistics.median(swift_times), statistics.median(torch_times)
    peak = peak_tflops(device, precision, args.peak_tflops)
    mfu = (lambda seconds: flops / seconds / (peak * 1e12)) if peak else (lambda seconds: None)
    print(f"[{precision}] {args.teacher} -> {args.student} batch {args.batch}: {flops / 1e9:.1f} GFLOP per step")
    print(f"[{precision}]   swift   median {s * 1e3:8.1f} ms" + (f"  MFU {mfu(s) * 100:5.1f} %" if peak else ""))
    print(f"[{precision}]   pytorch median {t * 1e3:8.1f} ms" + (f"  MFU {mfu(t) * 100:5.1f} %" if peak else ""))
    print(f"[{precision}] ratio swift/pytorch (median step time): {s / t:.3f}")
    return dict(precision=precision, swift_ms=[x * 1e3 for x in swift_times], pytorch_ms=[x * 1e3 for x in torch_times],
                swift_median_ms=s * 1e3, pytorch_median_ms=t * 1e3, ratio_swift_over_pytorch=s / t, flops_per_step=flops,
                peak_tflops=peak, mfu_swift=mfu(s), mfu_pytorch=mfu(t),
                first_step_loss=dict(swift=swift_first, pytorch=torch_first), losses_agree=agree)


if __name__ == "__main__":
    sys.exit(main())
