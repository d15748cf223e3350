#!/usr/bin/env python3
"""Swift vs PyTorch eager: one CMAPKD distillation step at the scene benchmark's sizes.

The step: the frozen teacher's features computed live (no gradient), the student's forward
pass, the vision pyramid P2-P5 and language hierarchy L1-L4 of both (parameter-free
extraction, the student's resampled to the teacher's resolutions), the student's adapters and
the ALSN's level weights (`gating` selection, detached), CMAPKD's default lambda-weighted
losses (intra-modal per level, alignment and relation on the deployed embeddings, the
unified-space embedding term, the task loss; the shared-space pyramid alignment and layer
relation are off by default, and without them there are no bridges), backward, and one AdamW
step over student + head. The unified term's PHI-S standardisation is fitted once by the Swift
worker on the teacher's embeddings of the batch (phis.safetensors), before any timed step, and
used by both sides.

PyTorch side: transformers.CLIPModel for both towers, hand-written modules for the head with
the Swift key names, and the method's definitions (docs/method.md; the losses as in
scripts/fixtures/distillation.py). The towers are the Swift presets (Presets.sceneTeacher /
sceneStudent) as `DistillBench export` writes them (Hugging Face folders, CLIP's training
initialisation); this script initialises the head and draws the batch, saves them, and the
Swift worker (`DistillBench worker`) loads the same files: both run the same computation, and
their first-step losses must agree. The ALSN runs in eval mode on both sides (no dropout, so
no random numbers are drawn).

Rounds alternate between the two (and swap who goes first), same number of intra-op
threads. Prints the median step times and their ratio; writes <out>/distill_step.json.
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
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

from alternate import SwiftWorker, alternate
from transformers import CLIPConfig, CLIPModel

LEVELS = range(4)
TAU = 0.07
# CMAPKDConfig()'s defaults (Sources/Distillation/CMAPKD.swift); `embedding` is the unified-space loss.
LAMBDAS = dict(intra_v=1.0, intra_l=1.0, align=0.5, pyramid=0.0, relation=0.3, layer_relation=0.0, task=1.0, embedding=200.0,
               affinity=1.0)
BRIDGES = LAMBDAS["pyramid"] != 0 or LAMBDAS["layer_relation"] != 0
PROJECTOR_HIDDEN = 256
PHRASE_WINDOW = 3


# --- The head: adapters, bridge, ALSN (Sources/Pyramid, Sources/Distillation/ALSN.swift key names).

def groups(channels):
    return max(g for g in range(1, min(32, channels) + 1) if channels % g == 0)


class SpatialAdapter(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = nn.GroupNorm(groups(cout), cout)
        self.out = nn.Conv2d(cout, cout, 1)

    def forward(self, x):
        return self.out(F.gelu(self.norm(self.conv(x))))


class VectorAdapter(nn.Module):
    def __init__(self, din, dout):
        super().__init__()
        self.proj, self.norm, self.out = nn.Linear(din, dout), nn.LayerNorm(dout), nn.Linear(dout, dout)

    def forward(self, x):
        return self.out(F.gelu(self.norm(self.proj(x))))


class LinearAdapter(nn.Module):
    """One Linear over channels: per position of a map [B, C, H, W] (a 1×1 conv), or on the last dimension."""

    def __init__(self, din, dout, spatial):
        super().__init__()
        self.proj, self.spatial = nn.Linear(din, dout), spatial

    def forward(self, x):
        return self.proj(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) if self.spatial else self.proj(x)


class StudentPyramid(nn.Module):
    def __init__(self, sv, st, tv, tt, kind):
        super().__init__()
        if kind == "mlp":
            self.p2, self.p3, self.p4 = SpatialAdapter(sv, tv), SpatialAdapter(sv, tv), SpatialAdapter(sv, tv)
            self.p5 = VectorAdapter(sv, tv)
            self.l1, self.l2, self.l3, self.l4 = (VectorAdapter(st, tt) for _ in range(4))
        else:
            self.p2, self.p3, self.p4 = (LinearAdapter(sv, tv, True) for _ in range(3))
            self.p5 = LinearAdapter(sv, tv, False)
            self.l1, self.l2, self.l3, self.l4 = (LinearAdapter(st, tt, False) for _ in range(4))


class BridgeProjector(nn.Module):
    """LayerNorm + Linear (no bias), a copy of a frozen tower's post-norm and projection."""

    def __init__(self, norm, projection):
        super().__init__()
        self.norm = nn.LayerNorm(projection.in_features, eps=norm.eps)
        self.proj = nn.Linear(projection.in_features, projection.out_features, bias=False)
        with torch.no_grad():
            self.norm.load_state_dict(norm.state_dict())
            self.proj.weight.copy_(projection.weight)

    def forward(self, x):
        return self.proj(self.norm(x))


class MLP(nn.Module):
    def __init__(self, din, hidden, dout):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(din, hidden), nn.Linear(hidden, dout)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class ALSN(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.encoder1, self.encoder2 = nn.Linear(2 * width, 512), nn.Linear(512, 256)
        self.dropout = nn.Dropout(0.1)
        self.vision_head, self.language_head, self.coupling_head = nn.Linear(256, 4), nn.Linear(256, 4), nn.Linear(256, 16)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, image, text):
        """Every level active (the fine stage): softmax(head / T) per head (no sigmoid cap)."""
        h = self.dropout(F.gelu(self.encoder2(self.dropout(F.gelu(self.encoder1(torch.cat([image.detach(), text.detach()], 1)))))))
        t = self.log_temperature.exp()
        return [(head(h) / t).softmax(-1) for head in (self.vision_head, self.language_head, self.coupling_head)]


class Head(nn.Module):
    def __init__(self, student, teacher, adapter):
        super().__init__()
        s, t = student.config, teacher.config
        self.pyramid = StudentPyramid(s.vision_config.hidden_size, s.text_config.hidden_size,
                                      t.vision_config.hidden_size, t.text_config.hidden_size, adapter)
        tv, tt = teacher.vision_model, teacher.text_model
        if BRIDGES:
            self.bridge = nn.Module()
            self.bridge.v2l = nn.ModuleList(BridgeProjector(tv.post_layernorm, teacher.visual_projection) for _ in LEVELS)
            self.bridge.l2v = nn.ModuleList(BridgeProjector(tt.final_layer_norm, teacher.text_projection) for _ in LEVELS)
        self.alsn = ALSN(s.projection_dim)
        # The unified embedding term's projector (Swift's TeacherProjector, kind mlp).
        self.embedding_projector = nn.Module()
        self.embedding_projector.mlp = MLP(s.projection_dim, PROJECTOR_HIDDEN, t.projection_dim)


def load_standardizer(folder, device="cpu"):
    """The PHI-S map the Swift worker fitted (mean, rotation, scale): y = R (x − μ) / φ."""
    from safetensors.torch import load_file
    f = load_file(os.path.join(folder, "phis.safetensors"))
    mean, rotation, scale = f["mean"].double().to(device), f["rotation"].double().to(device), f["scale"].double().item()
    return lambda x: ((x.double() - mean) @ rotation.T / scale).to(x.dtype)


def unified_loss(prediction, target):
    """Per sample 0.5·(1 − cos) + 0.5·mean_d smoothL1 (β 1), as MultiTeacherMethod.perSampleLoss."""
    cosine_similarity = F.cosine_similarity(prediction, target, dim=1)
    smooth = F.smooth_l1_loss(prediction, target, reduction="none").mean(1)
    return 0.5 * (1 - cosine_similarity) + 0.5 * smooth


# --- Pyramid extraction (docs/method.md): quarter-depth taps, parameter-free levels.

def quarter_taps(depth):
    return [max(1, int(depth * q / 4 + 0.5)) for q in (1, 2, 3, 4)]  # rounded half away from zero, as Swift


def masked_mean(x, mask):
    m = mask.unsqueeze(2)
    return (x * m).sum(1) / m.sum(1).clamp(min=1)


def vision_levels(hidden_states, grid, target):
    taps = [hidden_states[i] for i in quarter_taps(len(hidden_states) - 1)]
    b, _, d = taps[0].shape
    maps = [t[:, 1:1 + grid * grid].transpose(1, 2).reshape(b, d, grid, grid) for t in taps[:3]]
    out = []
    # The native ladder (the default): P2 on the teacher's grid g, P3 at ceil(g/2), P4 at ceil(g/4);
    # larger maps are adaptive-average-pooled, smaller ones upsampled bilinearly.
    for m, factor in zip(maps, (1, 2, 4)):
        size = -(-target // factor)
        if m.shape[-1] == size:
            out.append(m)
        elif m.shape[-1] > size:
            out.append(F.adaptive_avg_pool2d(m, (size, size)))
        else:
            out.append(F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False))
    last = taps[3]
    return out + [(last[:, 0] + last[:, 1:].mean(1)) * 0.5]


def language_levels(hidden_states, mask, pooled, mirror=False):
    """[tokens, phrases, sentence, global] and [token mask, phrase mask]. mirror: the phrase
    windows as the Swift side computes them (shifted slices added), not by avg_pool1d."""
    taps = [hidden_states[i] for i in quarter_taps(len(hidden_states) - 1)]
    mask = mask.to(taps[0].dtype)
    m = mask.unsqueeze(2)
    tokens, source = taps[0] * m, taps[1] * m
    if mirror:
        w = source.shape[1] - PHRASE_WINDOW + 1
        sums, counts = source[:, :w], mask[:, :w]
        for k in range(1, PHRASE_WINDOW):
            sums, counts = sums + source[:, k:k + w], counts + mask[:, k:k + w]
        phrases, phrase_mask = sums / counts.clamp(min=1).unsqueeze(2), (counts > 0.5).to(mask.dtype)
    else:
        sums = F.avg_pool1d((source * m).transpose(1, 2), PHRASE_WINDOW, 1) * PHRASE_WINDOW
        counts = F.avg_pool1d(mask.unsqueeze(1), PHRASE_WINDOW, 1) * PHRASE_WINDOW
        phrases = (sums / counts.clamp(min=1)).transpose(1, 2)
        phrase_mask = (counts.squeeze(1) > 0.5).to(mask.dtype)
    last = taps[3]
    glob = last[torch.arange(last.shape[0], device=last.device), pooled]
    return [tokens, phrases, masked_mean(taps[2], mask), glob], [mask, phrase_mask]


def level_vector(x, mask=None):
    if x.dim() == 4:
        return x.mean((2, 3))
    if x.dim() == 3:
        return masked_mean(x, mask)
    return x


EOS = 49407  # CLIP's end-of-text id: texts are pooled at its first occurrence


def eos_positions(ids):
    return (ids == EOS).int().argmax(-1)


# --- Losses (SPEC section 5; as scripts/fixtures/distillation.py).

def per_sample_mse(a, b):
    return (a - b).square().flatten(1).mean(1)


def symmetric_ce(logits):
    """½ [CE(logits, diag) + CE(logitsᵀ, diag)]: the CLIP loss of a [B, B] similarity matrix."""
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def info_nce(a, b):
    return symmetric_ce(F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / TAU)


def cosine(a, b):
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def row_kl(t, s, dim=1):
    log_p, log_q = t.log_softmax(dim), s.log_softmax(dim)
    return (log_p.exp() * (log_p - log_q)).sum(dim)


def level_correlation(levels):
    x = F.normalize(torch.stack(levels, 1), dim=-1)
    return x @ x.transpose(1, 2)


class Step:
    def __init__(self, student, teacher, head, threads, fused=True, mirror=False):
        self.student, self.teacher, self.head = student, teacher, head
        self.mirror = mirror
        teacher.eval().requires_grad_(False)
        student.train()
        head.train()
        head.alsn.eval()
        self.standardizer = None  # load_standardizer(...), once the Swift worker has fitted it
        # fused: the fused kernel, as ours (Sources/CTorch: AdamW runs ATen's _fused_adamw_), so both
        # sides run the same update; else torch.optim's CPU default, the single-tensor form.
        self.optimizer = torch.optim.AdamW(list(student.parameters()) + list(head.parameters()), lr=1e-4, weight_decay=0.01,
                                           fused=fused or None)

    def teacher_features(self, pixels, ids, mask):
        t = self.teacher
        with torch.no_grad():
            v = t.vision_model(pixel_values=pixels, output_hidden_states=True)
            x = t.text_model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            grid = pixels.shape[-1] // t.config.vision_config.patch_size
            vision = vision_levels(v.hidden_states, grid, grid)
            language, masks = language_levels(x.hidden_states, mask, eos_positions(ids), self.mirror)
            shared_v = [t.visual_projection(t.vision_model.post_layernorm(level_vector(vision[i]))) for i in LEVELS]
            shared_l = [t.text_projection(t.text_model.final_layer_norm(level_vector(language[i], masks[i] if i < 2 else None)))
                        for i in LEVELS]
            image = t.visual_projection(v.pooler_output)
            caption = t.text_projection(x.pooler_output)
        return dict(grid=grid, vision=vision, language=language, masks=masks, shared_v=shared_v, shared_l=shared_l,
                    image=image, caption=caption)

    def loss(self, pixels, ids, mask, tf):
        return self.loss_mirrored(pixels, ids, mask, tf) if self.mirror else self.loss_plain(pixels, ids, mask, tf)

    def loss_mirrored(self, pixels, ids, mask, tf):
        """The same loss with the Swift side's operator-level choices (Sources/Distillation/
        CMAPKD.swift, Losses.swift; --mirror): each deployed embedding normalised once for every
        global term, each intra level one weighted sum of F.mse_loss, phrase windows by shifted
        sums, no mask multiply after the L1/L2 adapters (their loss masks), no multiply by a λ of 1,
        the unified term on both modalities stacked. Bridges are off in this form (the default)."""
        assert not BRIDGES, "--mirror covers the default terms only (pyramid and layer_relation off)"
        s, head = self.student, self.head
        image, caption, sv, sl, masks = self.student_levels(pixels, ids, mask, tf)
        wv, wl, wc = (w.detach() for w in head.alsn(image, caption))
        scaled = lambda lam, t: t if lam == 1 else lam * t
        terms = []
        for i in LEVELS:
            sq = F.mse_loss(sv[i], tf["vision"][i], reduction="none")
            b = sq.shape[0]
            scale = (wv[:, i] / (b * (sq.numel() // b))).view([b] + [1] * (sq.dim() - 1))
            terms.append(scaled(LAMBDAS["intra_v"], (sq * scale).sum()))
        for i in LEVELS:
            sq = F.mse_loss(sl[i], tf["language"][i], reduction="none")
            b, d = sq.shape[0], sq.shape[-1]
            if i < 2:
                m = masks[i]
                scale = (wl[:, i].unsqueeze(1) * m / (m.sum(1, keepdim=True).clamp(min=1) * (b * d))).unsqueeze(2)
            else:
                scale = (wl[:, i] / (b * d)).unsqueeze(1)
            terms.append(scaled(LAMBDAS["intra_l"], (sq * scale).sum()))
        ui, uc = F.normalize(image, dim=-1), F.normalize(caption, dim=-1)
        with torch.no_grad():
            ti, tc = F.normalize(tf["image"], dim=-1), F.normalize(tf["caption"], dim=-1)

        terms.append(scaled(LAMBDAS["align"], symmetric_ce(ui @ tc.T / TAU) * 0.5))
        terms.append(scaled(LAMBDAS["align"], symmetric_ce(ti @ uc.T / TAU) * 0.5))
        if LAMBDAS["affinity"]:
            sa = s.logit_scale.exp() * (ui @ uc.T)
            ta = (ti @ tc.T) * self.teacher.logit_scale.exp()
            terms.append(scaled(LAMBDAS["affinity"], row_kl(ta, sa).mean() * 0.5))
            terms.append(scaled(LAMBDAS["affinity"], row_kl(ta.T, sa.T).mean() * 0.5))
        phis, project = self.standardizer, head.embedding_projector.mlp
        prediction = project(torch.cat([ui, uc])).float()
        target = phis(torch.cat([ti, tc]).float())
        terms.append(scaled(LAMBDAS["embedding"], unified_loss(prediction, target).mean()))
        for a, b in ((ui, ti), (uc, tc)):
            terms.append(scaled(LAMBDAS["relation"], (a @ a.T - b @ b.T).square().mean() / 2))
        terms.append(scaled(LAMBDAS["task"], symmetric_ce(s.logit_scale.exp() * (ui @ uc.T))))
        return torch.stack(terms).sum()

    def student_levels(self, pixels, ids, mask, tf):
        """The student's towers, deployed embeddings and adapted levels (L1, L2 unmasked; phrase
        windows as `language_levels(mirror=self.mirror)` computes them) and the [token, phrase] masks."""
        s, p = self.student, self.head.pyramid
        v = s.vision_model(pixel_values=pixels, output_hidden_states=True)
        x = s.text_model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        image, caption = s.visual_projection(v.pooler_output), s.text_projection(x.pooler_output)
        grid = pixels.shape[-1] // s.config.vision_config.patch_size
        raw_v = vision_levels(v.hidden_states, grid, tf["grid"])
        raw_l, masks = language_levels(x.hidden_states, mask, eos_positions(ids), self.mirror)
        sv = [p.p2(raw_v[0]), p.p3(raw_v[1]), p.p4(raw_v[2]), p.p5(raw_v[3])]
        sl = [p.l1(raw_l[0]), p.l2(raw_l[1]), p.l3(raw_l[2]), p.l4(raw_l[3])]
        return image, caption, sv, sl, masks

    def loss_plain(self, pixels, ids, mask, tf):
        s, head = self.student, self.head
        image, caption, sv, sl, masks = self.student_levels(pixels, ids, mask, tf)
        sl[0], sl[1] = sl[0] * masks[0].unsqueeze(2), sl[1] * masks[1].unsqueeze(2)
        if BRIDGES:
            shared_v = [head.bridge.v2l[i](level_vector(sv[i])) for i in LEVELS]
            shared_l = [head.bridge.l2v[i](level_vector(sl[i], masks[i] if i < 2 else None)) for i in LEVELS]
        wv, wl, wc = (w.detach() for w in head.alsn(image, caption))
        wc = wc.view(-1, 4, 4)

        terms = []
        for i in LEVELS:
            terms.append(LAMBDAS["intra_v"] * (per_sample_mse(sv[i], tf["vision"][i]) * wv[:, i]).mean())
        for i in LEVELS:
            if i < 2:
                m = masks[i]
                per = ((sl[i] - tf["language"][i]).square().mean(2) * m).sum(1) / m.sum(1).clamp(min=1)
            else:
                per = per_sample_mse(sl[i], tf["language"][i])
            terms.append(LAMBDAS["intra_l"] * (per * wl[:, i]).mean())
        # The global terms act on the deployed embeddings (SPEC section 5).
        terms.append(LAMBDAS["align"] * 0.5 * info_nce(image, tf["caption"]))
        terms.append(LAMBDAS["align"] * 0.5 * info_nce(tf["image"], caption))
        if LAMBDAS["affinity"]:
            # Pyramid alignment's global pair on the deployed embeddings, each model at its own
            # logit scale (Losses.deployedAffinity).
            sa = s.logit_scale.exp() * cosine(image, caption)
            ta = self.teacher.logit_scale.exp() * cosine(tf["image"], tf["caption"])
            terms.append(LAMBDAS["affinity"] * 0.5 * row_kl(ta, sa).mean())
            terms.append(LAMBDAS["affinity"] * 0.5 * row_kl(ta.T, sa.T).mean())
        # The unified-space loss on the deployed embeddings (CMAPKD.unifiedEmbedding).
        phis, project = self.standardizer, head.embedding_projector.mlp
        per_sample = [unified_loss(project(F.normalize(s_emb, dim=-1)).float(), phis(F.normalize(t_emb.float(), dim=-1)))
                      for s_emb, t_emb in ((image, tf["image"]), (caption, tf["caption"]))]
        terms.append(LAMBDAS["embedding"] * (0.5 * (per_sample[0] + per_sample[1])).mean())
        if BRIDGES:
            # Every (i, j) pair at once, as Losses.pyramidAlignment: [4, 4, B, B] similarities.
            def pairs(v, l):
                v, l = F.normalize(torch.stack(v), dim=-1), F.normalize(torch.stack(l), dim=-1)
                return v.unsqueeze(1) @ l.transpose(1, 2).unsqueeze(0) / TAU
            st, tt = pairs(shared_v, shared_l), pairs(tf["shared_v"], tf["shared_l"])
            kl = (row_kl(tt, st, 3) + row_kl(tt, st, 2)) * 0.5  # [4, 4, B]
            per_pair = (kl * wc.permute(1, 2, 0)).mean(2)
            terms.extend(LAMBDAS["pyramid"] * per_pair.flatten())
            for a, b in ((shared_v, tf["shared_v"]), (shared_l, tf["shared_l"])):
                terms.append(LAMBDAS["layer_relation"] * (level_correlation(a) - level_correlation(b)).square().mean() / 2)
        for a, b in ((image, tf["image"]), (caption, tf["caption"])):
            terms.append(LAMBDAS["relation"] * (cosine(a, a) - cosine(b, b)).square().mean() / 2)
        logits = s.logit_scale.exp() * cosine(image, caption)
        terms.append(LAMBDAS["task"] * symmetric_ce(logits))
        return torch.stack(terms).sum()

    def train(self, pixels, ids, mask):
        loss = self.loss(pixels, ids, mask, self.teacher_features(pixels, ids, mask))
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return loss.item()


def random_batch(size, image, length, generator):
    pixels = torch.randn(size, 3, image, image, generator=generator)
    ids = torch.zeros(size, length, dtype=torch.long)
    lengths = torch.randint(6, length + 1, (size,), generator=generator)
    for row, n in enumerate(lengths.tolist()):
        ids[row, 0] = 49406
        ids[row, 1:n - 1] = torch.randint(400, 49000, (n - 2,), generator=generator)
        ids[row, n - 1] = EOS
    return pixels, ids, (ids != 0).long()


def compare_operators(worker, torch_step):
    """One step of each side under the same (Kineto) profiler: operator calls and self time,
    the operators whose call counts differ first."""
    swift = worker.profile()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        torch_step()
    pytorch = {e.key: (e.count, e.self_cpu_time_total) for e in prof.key_averages()}
    names = sorted(set(swift) | set(pytorch), key=lambda n: -abs(swift.get(n, (0, 0))[1] - pytorch.get(n, (0, 0))[1]))
    print("operators of one step, swift vs pytorch (calls, self ms), the ones whose calls differ:")
    for n in names:
        (sc, st), (pc, pt) = swift.get(n, (0, 0.0)), pytorch.get(n, (0, 0.0))
        if sc != pc:
            print(f"  {n[:60]:60s} {sc:5d} {pc:5d}   {st / 1e3:7.2f} {pt / 1e3:7.2f}")
    total = lambda d, i: sum(v[i] for v in d.values())
    print(f"  all operators: calls swift {total(swift, 0)} pytorch {total(pytorch, 0)}; "
          f"self time swift {total(swift, 1) / 1e3:.1f} ms, pytorch {total(pytorch, 1) / 1e3:.1f} ms")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--swift-binary", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--pytorch-adamw", choices=["fused", "default"], default="fused",
                   help="PyTorch's AdamW: fused (the same kernel as the Swift side) or torch.optim's CPU default (single-tensor)")
    p.add_argument("--adapter", choices=["linear", "mlp"], default="linear", help="the level adapters (pyramid.adapter)")
    p.add_argument("--mirror", action="store_true",
                   help="write the PyTorch loss with the Swift side's operator-level choices (shared normalisations, "
                        "one weighted sum per intra level, shifted-sum phrase windows, ...) instead of the plain definitions")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--steps", type=int, default=3, help="timed steps per side per round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="2 rounds of 1 step, 1 warm-up: a smoke run")
    p.add_argument("--operators", action="store_true",
                   help="after the timed rounds, profile one step on each side and list the operators whose call counts differ")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
    args = p.parse_args()
    if args.quick:
        args.rounds, args.steps, args.warmup = 2, 1, 1

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([args.swift_binary, "export", "--out", tmp], check=True)
        teacher = CLIPModel.from_pretrained(os.path.join(tmp, "teacher"), attn_implementation="sdpa")
        student = CLIPModel.from_pretrained(os.path.join(tmp, "student"), attn_implementation="sdpa")
        assert student.config.text_config.eos_token_id == EOS, student.config.text_config.eos_token_id
        head = Head(student, teacher, args.adapter)
        image, length = student.config.vision_config.image_size, student.config.text_config.max_position_embeddings
        pixels, ids, mask = random_batch(args.batch, image, length, torch.Generator().manual_seed(1))
        save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()}, os.path.join(tmp, "head.safetensors"))
        save_file({"pixels": pixels, "ids": ids, "mask": mask}, os.path.join(tmp, "batch.safetensors"))
        worker = SwiftWorker([args.swift_binary, "worker", "--weights", tmp, "--threads", str(args.threads), "--adapter", args.adapter])
        print(f"swift worker: {worker.ready}")
        standardizer = load_standardizer(tmp)

    step = Step(student, teacher, head, args.threads, fused=args.pytorch_adamw == "fused", mirror=args.mirror)
    step.standardizer = standardizer

    def torch_steps(n):
        times, loss = [], None
        for _ in range(n):
            start = time.perf_counter()
            loss = step.train(pixels, ids, mask)
            times.append(time.perf_counter() - start)
        return times, loss

    swift_steps = worker.steps

    load_before = os.getloadavg()
    # Both start from the same weights and batch: their first losses must agree.
    first_swift_times, swift_first = swift_steps(1)
    first_torch_times, torch_first = torch_steps(1)
    agree = abs(swift_first - torch_first) <= 1e-4 * abs(torch_first)
    print(f"first-step loss: swift {swift_first:.6f}  pytorch {torch_first:.6f}  ({'agree' if agree else 'DIFFER'})")
    swift_steps(args.warmup)
    torch_steps(args.warmup)

    swift_times, torch_times = alternate(swift_steps, torch_steps, args.rounds, args.steps)
    if args.operators:
        compare_operators(worker, lambda: step.train(pixels, ids, mask))
    worker.close()
    load_after = os.getloadavg()

    s, t = statistics.median(swift_times), statistics.median(torch_times)
    print(f"CMAPKD step (teacher live, forward + backward + AdamW over student + head)  batch={args.batch} "
          f"image={image} text={length} threads={args.threads} torch={torch.__version__} adapters={args.adapter} "
          f"pytorch AdamW={args.pytorch_adamw} pytorch loss={'mirrored' if args.mirror else 'plain'}")
    print(f"  swift   median {s * 1e3:9.1f} ms  min {min(swift_times) * 1e3:9.1f} ms  ({len(swift_times)} steps)")
    print(f"  pytorch median {t * 1e3:9.1f} ms  min {min(torch_times) * 1e3:9.1f} ms  ({len(torch_times)} steps)")
    print(f"ratio swift/pytorch (median step time): {s / t:.3f}")
    # Round by round (each round's two sides ran back to back), as the machine's speed drifts.
    k = args.steps
    per_round = sorted(statistics.median(swift_times[i:i + k]) / statistics.median(torch_times[i:i + k])
                       for i in range(0, len(swift_times), k))
    print(f"  per round ({len(per_round)} rounds): median ratio {statistics.median(per_round):.3f}, "
          f"range {per_round[0]:.3f}-{per_round[-1]:.3f}")
    print(f"load average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}  "
          f"after: {' '.join(f'{x:.2f}' for x in load_after)}  cores: {os.cpu_count()}")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "distill_step.json")
    with open(path, "w") as f:
        json.dump(dict(batch=args.batch, image_size=image, text_length=length, threads=args.threads, adapter=args.adapter, pytorch_adamw=args.pytorch_adamw, pytorch_loss="mirrored" if args.mirror else "plain", rounds=args.rounds, steps_per_round=args.steps, torch=torch.__version__,
                       swift_ms=[x * 1e3 for x in swift_times], pytorch_ms=[x * 1e3 for x in torch_times],
                       swift_median_ms=s * 1e3, pytorch_median_ms=t * 1e3, ratio_swift_over_pytorch=s / t,
                       ratio_per_round=per_round, ratio_per_round_median=statistics.median(per_round),
                       first_step_loss=dict(swift=swift_first, pytorch=torch_first, agree=agree),
                       first_step_ms=dict(swift=first_swift_times[0] * 1e3, pytorch=first_torch_times[0] * 1e3),
                       load_average_before=load_before, load_average_after=load_after, cores=os.cpu_count()), f, indent=2)
    print(f"wrote {os.path.relpath(path)}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
