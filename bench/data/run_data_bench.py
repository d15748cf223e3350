#!/usr/bin/env python3
"""Data pipeline throughput: decode + CLIP preprocess + batch, Swift vs PIL + torchvision.

Both sides read the same JPEG files (written here: photo-sized 500×375 pictures with smooth
gradients, edges and noise, quality 90, like COCO's), listed in one TSV, and produce the same
thing: normalized [B, 3, 224, 224] float32 batches (Resize(224, bicubic) + CenterCrop(224) +
ToTensor + Normalize with CLIP's mean/std) plus the batch's captions, with the same number of
worker processes/threads and the same batch size. Each side's clock starts at its first batch
(worker start-up excluded) and rounds alternate, so drift in machine speed hits both alike.

Prints the median images/s of each and, on the line containing `ratio`, Swift / PyTorch.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def write_images(folder, count, width, height):
    """JPEGs with content JPEG has to work on (not flat colour): gradients, blocks, noise."""
    rng = np.random.RandomState(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    lines = []
    for i in range(count):
        phase = rng.uniform(0, 6.28, size=3)
        image = np.stack([127 + 100 * np.sin(x / (20 + 7 * c) + phase[c]) * np.cos(y / (30 + 5 * c)) for c in range(3)], -1)
        block = ((x // (16 + i % 9)) + (y // 24)) % 2 == 0
        image[block] *= 0.8
        image += rng.normal(0, 8, size=image.shape)
        name = f"{i:05d}.jpg"
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(os.path.join(folder, name), quality=90)
        lines.append(f"{name}\tpicture number {i} with some caption words\n")
    tsv = os.path.join(folder, "captions.tsv")
    with open(tsv, "w") as f:
        f.writelines(lines)
    return tsv


class TsvDataset(Dataset):
    def __init__(self, tsv, image_size):
        root = os.path.dirname(tsv)
        with open(tsv) as f:
            self.rows = [(os.path.join(root, p), c) for p, c in (line.rstrip("\n").split("\t") for line in f)]
        # CLIP's preprocessing, as open_clip builds it for evaluation.
        self.transform = transforms.Compose([
            transforms.Resize(image_size, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ])

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        path, caption = self.rows[i]
        with Image.open(path) as image:
            return self.transform(image.convert("RGB")), caption


def run_pytorch(tsv, workers, batch_size, image_size, batches):
    loader = DataLoader(TsvDataset(tsv, image_size), batch_size=batch_size, num_workers=workers, shuffle=False,
                        drop_last=True, prefetch_factor=2 if workers > 0 else None, persistent_workers=False)
    it = iter(loader)
    first, _ = next(it)
    checksum = first.sum().item()
    start = time.perf_counter()
    images = 0
    for k, (batch, captions) in enumerate(it, start=1):
        if k >= batches:
            break
        images += batch.shape[0]
        checksum += batch.sum().item()
    seconds = time.perf_counter() - start
    del it
    return images / seconds, checksum


def run_swift(binary, tsv, workers, batch_size, image_size, batches):
    out = subprocess.run([binary, "pipeline", "--tsv", tsv, "--workers", str(workers), "--batch-size", str(batch_size),
                          "--image-size", str(image_size), "--batches", str(batches)],
                         check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["images_per_second"], result["checksum"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--swift-binary", required=True)
    parser.add_argument("--images", type=int, default=1536)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--folder", help="reuse (or keep) the JPEG folder here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    folder = args.folder or tempfile.mkdtemp(prefix="cmapkd-data-bench-")
    os.makedirs(folder, exist_ok=True)
    tsv = os.path.join(folder, "captions.tsv")
    if not os.path.exists(tsv):
        print(f"writing {args.images} JPEGs (500×375) to {folder} …", flush=True)
        tsv = write_images(folder, args.images, 500, 375)
    batches = args.images // args.batch_size
    print(f"{batches} batches of {args.batch_size} at {args.image_size} px, {args.workers} workers each side, "
          f"{args.rounds} alternating rounds", flush=True)

    swift, pytorch = [], []
    for r in range(args.rounds):
        order = [("swift", run_swift), ("pytorch", run_pytorch)]
        if r % 2:
            order.reverse()
        for name, fn in order:
            if name == "swift":
                rate, checksum = fn(args.swift_binary, tsv, args.workers, args.batch_size, args.image_size, batches)
                swift.append((rate, checksum))
            else:
                rate, checksum = fn(tsv, args.workers, args.batch_size, args.image_size, batches)
                pytorch.append((rate, checksum))
            print(f"  round {r} {name:8s} {rate:8.1f} images/s  (checksum {checksum:.1f})", flush=True)

    # Same pixels in, same preprocessing: the sums of every normalized value should agree.
    s_sum, p_sum = swift[0][1], pytorch[0][1]
    agree = abs(s_sum - p_sum) <= 1e-4 * max(1.0, abs(p_sum))
    print(f"checksums {'agree' if agree else 'DIFFER'}: swift {s_sum:.3f}, pytorch {p_sum:.3f}")
    s = statistics.median(rate for rate, _ in swift)
    p = statistics.median(rate for rate, _ in pytorch)
    print(f"swift   (BatchLoader, libjpeg-turbo + PIL-exact resize): {s:8.1f} images/s")
    print(f"pytorch (DataLoader, PIL + torchvision transforms):      {p:8.1f} images/s")
    print(f"ratio swift/pytorch images/s: {s / p:.2f}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
