#!/usr/bin/env python3
"""Golden fixtures for `ept`'s parameter-efficient tuning methods, made by an
independent PyTorch implementation on the frozen tiny timm ViT of
``tests/fixtures/vit_tiny/``.

Run from the repository root (versions pinned in tools/golden/requirements.txt;
``tests/fixtures/vit_tiny/`` must exist, see make_vit_golden.py):

    python tools/golden/make_method_golden.py            # writes tests/fixtures/methods/
    python tools/golden/make_method_golden.py --out DIR  # writes somewhere else

Deterministic: fixed per-method seeds, one CPU thread, deterministic algorithms,
a single metadata entry per file. Re-running with the pinned versions rewrites
byte-identical files.

For every method the script
  1. builds the method's parameters from a fixed generator with non-trivial
     values (float32; e.g. LoRA B and the adapter's up-projection are NOT
     zero-initialised as in peft / AdaptFormer, which would make the test vacuous),
  2. runs the forward of the frozen ViT (weights_timm.safetensors, eval mode)
     with the method on ``io.safetensors['input']`` [2,3,32,32],
  3. takes ``loss = (logits * W).sum()`` with a fixed random ``W`` [2,5] and
     back-propagates to the method parameters,
  4. saves params, ``W``, ``logits`` [2,5], ``features`` (CLS token after the
     final norm, [2,48]) and ``grad.<param>`` for each param.

Precision: the saved parameters, W and input are float32; the forward and
backward are evaluated in float64 (model and params up-cast) and the outputs
are rounded to float32. The goldens are therefore the exact answer for the
stored float32 inputs (up to f32 rounding of the result), not a float32 run;
the script also reports the float32-vs-float64 difference so a tolerance can be
chosen (it is ~1e-6 here).

The backbone is frozen (requires_grad False everywhere) and its own head
(``head.weight``/``head.bias``) is the classifier for every method.

Semantics (read from the reference code for semantics only; no code copied):

* EPT, zuwenqiang/EPT @ f330a02 ``medfmc/models/ept.py``
  - :26-27 prompt shape [n_prompt_layers, num_extra_tokens + num_patches, L]
  - :45-54 h = norm1(x); qkv reshaped (B,N,3,H,hd) permuted like timm; S = q k^T * scale
  - :56-57 prompt[i] [B,N,L] -> unsqueeze(1).expand over heads, cat([P, S], -1) (P in FRONT)
  - :58-60 softmax over the last axis, then keep columns L: (drop the prompt columns)
  - :63-64 (A @ v) merged over heads -> proj
  - :107-108 x = x + attn_out; x = x + ffn(norm2(x))  (mmcv FFN identity=x)
  - :93 the same prompt for every sample of the batch.
  The reference has ONLY the concatenation ("Pure_Cat") way. The ablation ways
  (paper, arXiv 2407.01003 / MedIA 97:103258, Sec. 4.3 "Prompt embedding way",
  Fig. 5) are described in words only: "add" = P_E + K^T Q, "multiply" =
  P_E * K^T Q, "multiply and concat": alpha = max - min "in each patch of
  K^T Q", P_E * alpha, concatenated with K^T Q. Implemented here as:
    add:       A = softmax(S + P_i),          P_i [N, N]
    multi:     A = softmax(S * P_i),          P_i [N, N] (elementwise)
    multi_cat: alpha = amax(S, -1) - amin(S, -1)  ([B,H,N,1], over the key
               axis of the SCALED S, i.e. per query row, per head, per sample;
               NOT detached: gradients flow through alpha), then the pure_cat
               recipe with alpha * P_i in place of P_i.
* VPT, KMnP/vpt @ 4410440 ``src/models/vit_prompt/vit.py``
  - :79-84 prompts inserted after CLS, after the embeddings (cls + pos_embed), no pos-embed on prompts
  - :109-124 deep: before block i>0 the prompt slots x[:,1:1+L] are replaced
    by deep_prompt_embeddings[i-1] (reference keeps the block-0 prompt as a
    separate [1,L,D] tensor; here stacked as prompt[0..depth-1])
  - :129,163 final norm over all tokens, CLS token -> head
  (zuwenqiang/EPT medfmc/models/prompt_vit.py:64-81 does the same on mmcls.)
  Prompt dropout / projection: VPT default (dropout 0 at eval, PROJECT -1 = identity).
* LoRA, huggingface/peft ``src/peft/tuners/lora/layer.py``
  - :263-264 lora_A = Linear(in, r, bias=False), lora_B = Linear(r, out, bias=False)
  - :281 scaling = lora_alpha / r
  - :1063 result = base(x) + lora_B(lora_A(dropout(x))) * scaling
  Applied to the q and v thirds of the fused timm qkv only (k untouched).
* Adapter, ShoufaChen/AdaptFormer @ 6967d67
  - models/adapter.py:36-38,50-70 down_proj -> ReLU -> (dropout) -> up_proj, * scale;
    layernorm option "none" (main_image.py:188), scale 0.1 (main_image.py:190),
    parallel (main_image.py:187)
  - models/custom_modules.py:76-93 x = x + attn(norm1(x)); adapt_x = adapter(x)
    on the residual stream x (NOT norm2(x)); x = x + fc2(act(fc1(norm2(x)))) + adapt_x
* VP, hjbahng/visual_prompting @ 679e71f ``models/prompters.py``
  - :12-16 pad_up/pad_down [1,3,p,S], pad_left/pad_right [1,3,S-2p,p]
  - :19-24 prompt = cat_h(pad_up, cat_w(pad_left, zeros, pad_right), pad_down); x + prompt
    (added to the already-normalised image tensor)
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
import timm
import safetensors
from safetensors.torch import load_file, save_file
from timm.models.vision_transformer import VisionTransformer

SEED = 1000
ARCH = dict(
    img_size=32,
    patch_size=8,
    in_chans=3,
    num_classes=5,
    embed_dim=48,
    depth=2,
    num_heads=3,
    mlp_ratio=4.0,
    qkv_bias=True,
    class_token=True,
    global_pool="token",
)
DEPTH = ARCH["depth"]
DIM = ARCH["embed_dim"]
HEADS = ARCH["num_heads"]
N_TOK = 1 + (ARCH["img_size"] // ARCH["patch_size"]) ** 2  # 17
CALC = torch.float64

EPT_L = 4
EPT_L_LARGE = 1000
VPT_L = 3
LORA_R = 2
LORA_ALPHA = 4.0
ADAPTER_BN = 8
ADAPTER_SCALE = 0.1
VP_PAD = 4

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
VIT_DIR = os.path.join(ROOT, "tests", "fixtures", "vit_tiny")


def set_determinism():
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def f32(t):
    return t.detach().to(torch.float32).contiguous().clone()


def load_model(dtype):
    m = VisionTransformer(**ARCH)
    sd = load_file(os.path.join(VIT_DIR, "weights_timm.safetensors"))
    m.load_state_dict(sd, strict=True)
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m.to(dtype)


# ---------------------------------------------------------------------------
# building blocks written out (timm layout), so every method can hook in
# ---------------------------------------------------------------------------
def embed(model, img):
    """cls + patches + pos_embed: the input of blocks[0] ([B, 17, D])."""
    x = model.patch_embed(img)
    cls = model.cls_token.expand(x.shape[0], -1, -1)
    return torch.cat([cls, x], dim=1) + model.pos_embed


def split_heads(t, B, N):
    # [B, N, D] -> [B, H, N, hd]   (same as timm's reshape(B,N,3,H,hd).permute)
    return t.reshape(B, N, HEADS, DIM // HEADS).permute(0, 2, 1, 3)


def qkv_heads(blk, h, lora=None):
    """q, k, v [B, H, N, hd] from h = norm1(x); optional LoRA on q and v."""
    B, N, _ = h.shape
    qkv = blk.attn.qkv(h)                       # [B, N, 3D], q|k|v thirds
    q, k, v = qkv[..., :DIM], qkv[..., DIM:2 * DIM], qkv[..., 2 * DIM:]
    if lora is not None:
        s = lora["scaling"]
        q = q + s * ((h @ lora["q.a"].t()) @ lora["q.b"].t())
        v = v + s * ((h @ lora["v.a"].t()) @ lora["v.b"].t())
    return split_heads(q, B, N), split_heads(k, B, N), split_heads(v, B, N)


def attn_out(blk, A, v):
    B, H, N, hd = v.shape
    o = (A @ v).permute(0, 2, 1, 3).reshape(B, N, H * hd)
    return blk.attn.proj(o)


def scores(blk, q, k):
    return (q @ k.transpose(-2, -1)) * blk.attn.scale


def mlp(blk, x):
    return blk.mlp.fc2(F.gelu(blk.mlp.fc1(blk.norm2(x))))   # exact (erf) GELU


def head_out(model, x):
    feats = model.norm(x)[:, 0]
    return feats, model.head(feats)


# ---------------------------------------------------------------------------
# methods
# ---------------------------------------------------------------------------
def ept_attention_probs(S, P, way, L):
    """S [B,H,N,N] (scaled), P [N,L] (cat ways) or [N,N]; returns A [B,H,N,N]."""
    B, H, N, _ = S.shape
    if way == "pure_cat":
        Pb = P.expand(B, H, N, L)
    elif way in ("multi_cat", "multi_cat_detached"):
        alpha = S.amax(dim=-1, keepdim=True) - S.amin(dim=-1, keepdim=True)  # [B,H,N,1]
        if way == "multi_cat_detached":      # NOT the golden; only for the report
            alpha = alpha.detach()
        Pb = alpha * P                                                        # [B,H,N,L]
    elif way == "add":
        return torch.softmax(S + P, dim=-1)
    elif way == "multi":
        return torch.softmax(S * P, dim=-1)
    else:
        raise ValueError(way)
    full = torch.softmax(torch.cat([Pb, S], dim=-1), dim=-1)  # [B,H,N,L+N]
    return full[..., L:]


def forward_ept(model, img, prompt, way, L):
    x = embed(model, img)
    for i, blk in enumerate(model.blocks):
        q, k, v = qkv_heads(blk, blk.norm1(x))
        A = ept_attention_probs(scores(blk, q, k), prompt[i], way, L)
        x = x + attn_out(blk, A, v)
        x = x + mlp(blk, x)
    return head_out(model, x)


def forward_ept_pure_cat_o1(model, img, prompt):
    """O(1)-in-L exact form: ordinary attention, every row scaled by
    c = sum_j e^{s_j} / (sum_j e^{s_j} + e^{lse(P_i[n,:])})."""
    x = embed(model, img)
    for i, blk in enumerate(model.blocks):
        q, k, v = qkv_heads(blk, blk.norm1(x))
        S = scores(blk, q, k)
        lse_p = torch.logsumexp(prompt[i], dim=-1)[:, None]     # [N,1]
        lse_s = torch.logsumexp(S, dim=-1, keepdim=True)         # [B,H,N,1]
        c = torch.sigmoid(lse_s - lse_p)                          # = e^{lse_s}/(e^{lse_s}+e^{lse_p})
        A = torch.softmax(S, dim=-1) * c
        x = x + attn_out(blk, A, v)
        x = x + mlp(blk, x)
    return head_out(model, x)


def forward_plain(model, img):
    """The written-out block with no method (checks the helpers against timm)."""
    x = embed(model, img)
    for blk in model.blocks:
        q, k, v = qkv_heads(blk, blk.norm1(x))
        x = x + attn_out(blk, torch.softmax(scores(blk, q, k), -1), v)
        x = x + mlp(blk, x)
    return head_out(model, x)


def forward_vpt(model, img, prompt, deep):
    x = embed(model, img)
    B = x.shape[0]
    L = prompt.shape[1]
    x = torch.cat([x[:, :1], prompt[0].expand(B, -1, -1), x[:, 1:]], dim=1)
    for i, blk in enumerate(model.blocks):
        if deep and i > 0:
            x = torch.cat([x[:, :1], prompt[i].expand(B, -1, -1), x[:, 1 + L:]], dim=1)
        x = blk(x)          # timm's own block
    return head_out(model, x)


def forward_lora(model, img, p):
    x = embed(model, img)
    for i, blk in enumerate(model.blocks):
        lora = {
            "scaling": LORA_ALPHA / LORA_R,
            "q.a": p[f"blocks.{i}.lora_q.a"], "q.b": p[f"blocks.{i}.lora_q.b"],
            "v.a": p[f"blocks.{i}.lora_v.a"], "v.b": p[f"blocks.{i}.lora_v.b"],
        }
        q, k, v = qkv_heads(blk, blk.norm1(x), lora)
        x = x + attn_out(blk, torch.softmax(scores(blk, q, k), -1), v)
        x = x + mlp(blk, x)
    return head_out(model, x)


def forward_adapter(model, img, p):
    x = embed(model, img)
    for i, blk in enumerate(model.blocks):
        x = x + blk.attn(blk.norm1(x))
        pre = f"blocks.{i}.adapter."
        a = F.linear(x, p[pre + "down.weight"], p[pre + "down.bias"])
        a = F.linear(torch.relu(a), p[pre + "up.weight"], p[pre + "up.bias"]) * ADAPTER_SCALE
        x = x + blk.mlp(blk.norm2(x)) + a
    return head_out(model, x)


def vp_prompt(p, img_size, pad):
    base = torch.zeros(1, 3, img_size - 2 * pad, img_size - 2 * pad, dtype=p["pad_up"].dtype)
    mid = torch.cat([p["pad_left"], base, p["pad_right"]], dim=3)
    return torch.cat([p["pad_up"], mid, p["pad_down"]], dim=2)


def forward_vp(model, img, p):
    """images + pad prompt, then timm's own forward (features = CLS after the norm)."""
    feats = model.forward_features(img + vp_prompt(p, ARCH["img_size"], VP_PAD))[:, 0]
    return feats, model.head(feats)


# ---------------------------------------------------------------------------
# parameter construction (float32, fixed generators)
# ---------------------------------------------------------------------------
def gen(offset):
    return torch.Generator().manual_seed(SEED + offset)


def params_ept(way, L, offset):
    g = gen(offset)
    shape = (DEPTH, N_TOK, L) if way in ("pure_cat", "multi_cat") else (DEPTH, N_TOK, N_TOK)
    z = torch.randn(shape, generator=g)
    if way == "multi":
        return {"prompt": 1.0 + 0.5 * z}   # multiplicative: around the identity
    return {"prompt": 0.5 * z}


def params_vpt(deep, offset):
    g = gen(offset)
    return {"prompt": 0.5 * torch.randn((DEPTH if deep else 1, VPT_L, DIM), generator=g)}


def params_lora(offset):
    g = gen(offset)
    p = {}
    for i in range(DEPTH):
        for t in ("q", "v"):
            p[f"blocks.{i}.lora_{t}.a"] = torch.randn((LORA_R, DIM), generator=g) / DIM ** 0.5
            p[f"blocks.{i}.lora_{t}.b"] = 0.25 * torch.randn((DIM, LORA_R), generator=g)
    return p


def params_adapter(offset):
    g = gen(offset)
    p = {}
    for i in range(DEPTH):
        pre = f"blocks.{i}.adapter."
        p[pre + "down.weight"] = torch.randn((ADAPTER_BN, DIM), generator=g) / DIM ** 0.5
        p[pre + "down.bias"] = 0.1 * torch.randn((ADAPTER_BN,), generator=g)
        p[pre + "up.weight"] = torch.randn((DIM, ADAPTER_BN), generator=g)
        p[pre + "up.bias"] = 0.5 * torch.randn((DIM,), generator=g)
    return p


def params_vp(offset):
    g = gen(offset)
    S, pad = ARCH["img_size"], VP_PAD
    return {
        "pad_up": torch.randn((1, 3, pad, S), generator=g),
        "pad_down": torch.randn((1, 3, pad, S), generator=g),
        "pad_left": torch.randn((1, 3, S - 2 * pad, pad), generator=g),
        "pad_right": torch.randn((1, 3, S - 2 * pad, pad), generator=g),
    }


# ---------------------------------------------------------------------------
def run_case(model, img, W, params32, fwd):
    """Up-cast params to the model dtype, forward, loss = sum(logits * W), backward."""
    dt = next(model.parameters()).dtype
    p = {k: v.to(dt).requires_grad_(True) for k, v in params32.items()}
    feats, logits = fwd(model, img.to(dt), p)
    loss = (logits * W.to(dt)).sum()
    grads = torch.autograd.grad(loss, list(p.values()))
    return feats, logits, {k: g for k, g in zip(p, grads)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "methods"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    set_determinism()

    model = load_model(CALC)
    model32 = load_model(torch.float32)
    io = load_file(os.path.join(VIT_DIR, "io.safetensors"))
    img = io["input"]
    W = torch.randn((2, ARCH["num_classes"]), generator=gen(0))

    # ---- helper checks against timm -------------------------------------------
    with torch.no_grad():
        f_p, l_p = forward_plain(model, img.to(CALC))
        l_t = model(img.to(CALC))
        assert (l_p - l_t).abs().max().item() < 1e-12
        assert (l_p.float() - io["logits"]).abs().max().item() < 1e-5
        assert (f_p.float() - io["pre_logits"]).abs().max().item() < 1e-5
    plain_logits = l_p

    cases = []   # (file name, params32, forward(model, img, p), config dict)
    for j, way in enumerate(("pure_cat", "multi_cat", "add", "multi")):
        cases.append((f"ept_{way}", params_ept(way, EPT_L, 10 + j),
                      (lambda w: lambda m, x, p: forward_ept(m, x, p["prompt"], w, EPT_L))(way),
                      dict(method="ept", way=way, prompt_length=EPT_L, prompt_layers=[0, 1])))
    cases.append(("ept_pure_cat_L1000", params_ept("pure_cat", EPT_L_LARGE, 20),
                  lambda m, x, p: forward_ept(m, x, p["prompt"], "pure_cat", EPT_L_LARGE),
                  dict(method="ept", way="pure_cat", prompt_length=EPT_L_LARGE,
                       prompt_layers=[0, 1])))
    cases.append(("vpt_deep", params_vpt(True, 30),
                  lambda m, x, p: forward_vpt(m, x, p["prompt"], True),
                  dict(method="vpt", deep=True, prompt_length=VPT_L)))
    cases.append(("vpt_shallow", params_vpt(False, 31),
                  lambda m, x, p: forward_vpt(m, x, p["prompt"], False),
                  dict(method="vpt", deep=False, prompt_length=VPT_L)))
    cases.append(("lora", params_lora(40), forward_lora,
                  dict(method="lora", targets=["q", "v"], r=LORA_R, alpha=LORA_ALPHA,
                       scaling=LORA_ALPHA / LORA_R, dropout=0.0)))
    cases.append(("adapter", params_adapter(50), forward_adapter,
                  dict(method="adapter", style="adaptformer_parallel", bottleneck=ADAPTER_BN,
                       scale=ADAPTER_SCALE, layernorm="none", input="residual_stream")))
    cases.append(("vp", params_vp(60), forward_vp,
                  dict(method="vp", kind="padding", pad=VP_PAD, image_size=ARCH["img_size"])))

    report = []
    for name, p32, fwd, cfg in cases:
        feats, logits, grads = run_case(model, img, W, p32, fwd)
        # float32 run of the same thing, for the tolerance report
        f32_feats, f32_logits, f32_grads = run_case(model32, img, W, p32, fwd)
        d32 = max((f32_logits - logits.float()).abs().max().item(),
                  max((f32_grads[k] - grads[k].float()).abs().max().item() for k in grads))
        gmax = max(g.abs().max().item() for g in grads.values())
        gsum = sum(g.abs().sum().item() for g in grads.values())
        assert torch.isfinite(logits).all() and all(torch.isfinite(g).all() for g in grads.values())
        assert gsum > 1e-2, (name, gsum)   # (per-element grads shrink ~1/L for EPT L=1000)
        dplain = (logits - plain_logits).abs().max().item()
        assert dplain > 1e-2, (name, dplain)          # the method really changes the output
        tensors = dict((k, f32(v)) for k, v in p32.items())
        tensors["W"] = f32(W)
        tensors["logits"] = f32(logits)
        tensors["features"] = f32(feats)
        for k, g in grads.items():
            tensors[f"grad.{k}"] = f32(g)
        cfg = dict(cfg, source="tools/golden/make_method_golden.py", loss="sum(logits * W)",
                   compute_dtype="float64")
        save_file(tensors, os.path.join(args.out, f"{name}.safetensors"),
                  metadata={"config": json.dumps(cfg, sort_keys=True)})
        report.append((name, dplain, d32, gmax, gsum, {k: list(v.shape) for k, v in tensors.items()}))

    # ---- sanity checks ------------------------------------------------------------
    with torch.no_grad():
        xin = img.to(CALC)
        # pure_cat with an all -1e9 prompt == the plain ViT
        neg = torch.full((DEPTH, N_TOK, EPT_L), -1e9, dtype=CALC)
        _, l_neg = forward_ept(model, xin, neg, "pure_cat", EPT_L)
        d_neg = (l_neg - plain_logits).abs().max().item()
        assert d_neg < 1e-12, d_neg
        # add with a zero prompt / multi with a ones prompt == the plain ViT
        _, l_add0 = forward_ept(model, xin, torch.zeros(DEPTH, N_TOK, N_TOK, dtype=CALC), "add", 0)
        _, l_mul1 = forward_ept(model, xin, torch.ones(DEPTH, N_TOK, N_TOK, dtype=CALC), "multi", 0)
        assert (l_add0 - plain_logits).abs().max().item() < 1e-12
        assert (l_mul1 - plain_logits).abs().max().item() < 1e-12
        # multi_cat with a zero prompt == pure_cat with a zero prompt (alpha * 0 = 0)
        z = torch.zeros(DEPTH, N_TOK, EPT_L, dtype=CALC)
        assert torch.allclose(forward_ept(model, xin, z, "multi_cat", EPT_L)[1],
                              forward_ept(model, xin, z, "pure_cat", EPT_L)[1], atol=1e-12)
        # O(1) exact form == the concatenation, at L = 4 and L = 1000, in f64 and f32
        o1 = {}
        for nm, L in (("ept_pure_cat", EPT_L), ("ept_pure_cat_L1000", EPT_L_LARGE)):
            st = load_file(os.path.join(args.out, f"{nm}.safetensors"))
            P = st["prompt"]
            _, l_o1 = forward_ept_pure_cat_o1(model, xin, P.to(CALC))
            _, l_o1_32 = forward_ept_pure_cat_o1(model32, img, P)
            _, l_cat_32 = forward_ept(model32, img, P, "pure_cat", L)
            o1[nm] = ((l_o1.float() - st["logits"]).abs().max().item(),
                      (l_o1_32 - st["logits"]).abs().max().item(),
                      (l_cat_32 - st["logits"]).abs().max().item())
            assert o1[nm][0] < 1e-6 and o1[nm][1] < 1e-4, o1[nm]
        # LoRA with B = 0 / adapter with up = 0 / VP with zero pads == plain ViT
        pl = {k: (torch.zeros_like(v) if k.endswith(".b") else v).to(CALC)
              for k, v in params_lora(40).items()}
        assert (forward_lora(model, xin, pl)[1] - plain_logits).abs().max().item() < 1e-12
        pa = {k: (torch.zeros_like(v) if ".up." in k else v).to(CALC)
              for k, v in params_adapter(50).items()}
        assert (forward_adapter(model, xin, pa)[1] - plain_logits).abs().max().item() < 1e-12
        pv = {k: torch.zeros_like(v).to(CALC) for k, v in params_vp(60).items()}
        assert (forward_vp(model, xin, pv)[1] - plain_logits).abs().max().item() < 1e-12
        # the EPT row scale c at L = 1000 (how much the prompt matters)
        P = load_file(os.path.join(args.out, "ept_pure_cat_L1000.safetensors"))["prompt"].to(CALC)
        x = embed(model, xin)
        blk = model.blocks[0]
        q, k, v = qkv_heads(blk, blk.norm1(x))
        S = scores(blk, q, k)
        c = torch.sigmoid(torch.logsumexp(S, -1) - torch.logsumexp(P[0], -1))
        c_range = (c.min().item(), c.max().item())

    # how much detaching alpha would change the multi_cat gradient (report only)
    st = load_file(os.path.join(args.out, "ept_multi_cat.safetensors"))
    Pd = st["prompt"].to(CALC).requires_grad_(True)
    _, l_det = forward_ept(model, img.to(CALC), Pd, "multi_cat_detached", EPT_L)
    (g_det,) = torch.autograd.grad((l_det * W.to(CALC)).sum(), [Pd])
    d_detach = (g_det.float() - st["grad.prompt"]).abs().max().item()
    assert d_detach > 1e-3, d_detach      # the golden can tell the two apart

    # ---- reload check + report ----------------------------------------------------
    print(f"torch {torch.__version__}  timm {timm.__version__}  "
          f"safetensors {safetensors.__version__}  numpy {np.__version__}  "
          f"python {sys.version.split()[0]}")
    print(f"pure_cat, prompt = -1e9: max|logits - plain| = {d_neg:.3g}")
    for nm, (a, b, cc) in o1.items():
        print(f"{nm}: O(1) form f64 vs golden {a:.3g}; O(1) form f32 vs golden {b:.3g}; "
              f"naive concat f32 vs golden {cc:.3g}")
    print(f"multi_cat: max|grad.prompt(alpha detached) - golden| = {d_detach:.4g} "
          f"(golden keeps alpha attached)")
    print(f"L=1000 block-0 row scale c in [{c_range[0]:.4g}, {c_range[1]:.4g}]")
    total = 0
    for name, dplain, d32, gmax, gsum, shapes in report:
        path = os.path.join(args.out, f"{name}.safetensors")
        size = os.path.getsize(path)
        total += size
        h = hashlib.sha256(open(path, "rb").read()).hexdigest()
        print(f"\n{name}.safetensors  {size} B  sha256 {h}")
        print(f"  max|logits - plain ViT| {dplain:.4g}   max|f32 run - golden| {d32:.3g}   "
              f"max|grad| {gmax:.4g}   sum|grad| {gsum:.4g}")
        st = load_file(path)
        assert set(st) == set(shapes)
        for k in sorted(shapes):
            print(f"    {k:36s} {shapes[k]}")
    print(f"\ntotal {total} B")
    assert total < 1_500_000, "method fixtures must stay under 1.5 MB"


if __name__ == "__main__":
    main()
