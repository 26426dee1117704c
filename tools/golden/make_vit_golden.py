#!/usr/bin/env python3
"""Golden parity fixtures for `ept`'s ViT, made by the independent reference
(PyTorch + timm).

Run from the repository root (versions pinned in tools/golden/requirements.txt):

    python tools/golden/make_vit_golden.py            # writes tests/fixtures/vit_tiny/
    python tools/golden/make_vit_golden.py --out DIR  # writes somewhere else

The run is deterministic: fixed seeds, one CPU thread, deterministic algorithms,
fixed metadata. Re-running it with the pinned versions rewrites identical
files (byte-identical; the .pth `.data/serialization_id` is derived from the
content, not random).

What it writes (all tensors float32, contiguous):

* ``weights_timm.safetensors`` - the state_dict of a tiny timm
  ``VisionTransformer`` (img 32, patch 8, 3 channels, 5 classes, dim 48, depth 2,
  3 heads, mlp_ratio 4, qkv_bias, class token, global_pool='token'), under
  timm's own key names. Every tensor is re-initialised with non-trivial random
  values (no all-zero / all-one tensor, LayerNorm weights ~ 1 + 0.1 N(0,1)).
* ``weights_timm.pth`` - ``torch.save(model.state_dict(), path)`` (default zip
  format, keeps the ``OrderedDict`` ``_metadata`` attribute like every real
  ``.pth`` made this way).
* ``weights_mmcls.pth`` - the same tensors renamed to mmcls 0.25 / MedFM / EPT
  key names (see ``TIMM_TO_MMCLS`` below), saved like an mmcv
  ``save_checkpoint`` file: ``{'meta': {...}, 'state_dict': OrderedDict}``,
  written through an open file handle (as mmcv does), so its zip entries are
  under ``archive/`` while ``weights_timm.pth``'s are under ``weights_timm/``.
* ``io.safetensors`` - ``input`` [2,3,32,32] and the reference outputs
  (``features``, ``pre_logits``, ``logits``) plus per-stage intermediates.
* ``io_48.safetensors`` - the same weights loaded into the 48-px architecture
  (grid 6x6) through ``timm.models.vision_transformer.checkpoint_filter_fn``,
  i.e. ``timm.layers.resample_abs_pos_embed(..., interpolation='bicubic',
  antialias=True, align_corners=None)``; plus, for comparison, the pos-embed
  resampled the mmcls 0.25 way (``F.interpolate(mode='bicubic',
  align_corners=False)``, no antialias) - the two differ.

The mmcls key mapping was checked against mmcls v0.25.0 (commit 2495400a98a3,
tag v0.25.0 of open-mmlab/mmclassification, now open-mmlab/mmpretrain) and
mmcv 1.7.0; see the comment above ``TIMM_TO_MMCLS``. The script also checks the
mapping functionally: it runs an mmcls-style forward (written from that source)
on the renamed tensors and asserts it matches timm.
"""

import argparse
import collections
import hashlib
import io
import os
import pickletools
import re
import sys
import zipfile

import numpy as np
import torch
import torch.nn.functional as F
import timm
import safetensors
from safetensors.torch import load_file, save_file
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

SEED = 0
BATCH = 2
ARCH = dict(
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
IMG = 32
IMG_48 = 48

# ---------------------------------------------------------------------------
# timm -> mmcls 0.25 key mapping.
#
# Sources read (mmcls tag v0.25.0 = commit 2495400a98a3da9bd8cfb3731a711f4c77cc56a3,
# mmcv tag v1.7.0; mmcls 0.25 requires mmcv-full>=1.4.2,<1.9.0 and the layout
# below is identical in mmcv v1.4.2 .. v1.7.2):
#   mmcls/models/classifiers/image.py:22,28      self.backbone / self.head        -> 'backbone.' / 'head.'
#   mmcls/models/backbones/vision_transformer.py
#       :243  self.patch_embed = PatchEmbed(...)  (mmcv PatchEmbed)
#       :253  self.cls_token                                      -> backbone.cls_token [1,1,C]
#       :257  self.pos_embed                                      -> backbone.pos_embed [1,1+N,C]
#       :279,293 self.layers = ModuleList of TransformerEncoderLayer -> backbone.layers.{i}
#       :57-59  norm1 built with build_norm_layer(postfix=1)      -> layers.{i}.ln1
#       :61     self.attn = MultiheadAttention(...)               -> layers.{i}.attn
#       :69-71  norm2 (postfix=2)                                 -> layers.{i}.ln2
#       :73     self.ffn = FFN(...)  (mmcv FFN)                   -> layers.{i}.ffn
#       :296-299 final norm: build_norm_layer(postfix=1)          -> backbone.ln1  (NOT 'norm')
#       :206    default norm_cfg=dict(type='LN', eps=1e-6)       (same eps as timm)
#   mmcls/models/utils/attention.py:541,543  self.qkv, self.proj (nn.Linear; qkv packed
#       [3*C, C] in q,k,v order, reshape(B,N,3,H,D) at :550 - same layout as timm)
#   mmcls/models/heads/vision_transformer_head.py:54,61  Sequential(OrderedDict(
#       [('head', nn.Linear)])) as self.layers                   -> head.layers.head
#   mmcv/cnn/bricks/norm.py:57-58,107  LayerNorm abbr 'ln', name = abbr + str(postfix)
#   mmcv/cnn/bricks/transformer.py:215  PatchEmbed.projection (Conv2d) -> patch_embed.projection
#   mmcv/cnn/bricks/transformer.py:602-612 FFN.layers = Sequential(
#       Sequential(Linear, act, Dropout), Linear, Dropout)        -> ffn.layers.0.0 / ffn.layers.1
#
# NOTE: the EPT / MedFM fine-tuning configs (e.g. zuwenqiang/EPT
# configs/vit-b16-ept/chest_1shot.py) use MultiLabelLinearClsHead / LinearClsHead,
# whose classifier is `self.fc` (mmcls/models/heads/multi_label_linear_head.py:40,
# linear_head.py:36) -> keys 'head.fc.weight' / 'head.fc.bias'. This fixture uses
# the VisionTransformerClsHead names ('head.layers.head.*', configs/_base_/models/
# vit-base-p16.py). EPT checkpoints also carry 'backbone.prompt'
# [num_layers, 1+N, prompt_length]; not produced here.
# ---------------------------------------------------------------------------
TIMM_TO_MMCLS = [
    # (timm regex, mmcls replacement)
    (r"^cls_token$", r"backbone.cls_token"),
    (r"^pos_embed$", r"backbone.pos_embed"),
    (r"^patch_embed\.proj\.(weight|bias)$", r"backbone.patch_embed.projection.\1"),
    (r"^blocks\.(\d+)\.norm1\.(weight|bias)$", r"backbone.layers.\1.ln1.\2"),
    (r"^blocks\.(\d+)\.attn\.qkv\.(weight|bias)$", r"backbone.layers.\1.attn.qkv.\2"),
    (r"^blocks\.(\d+)\.attn\.proj\.(weight|bias)$", r"backbone.layers.\1.attn.proj.\2"),
    (r"^blocks\.(\d+)\.norm2\.(weight|bias)$", r"backbone.layers.\1.ln2.\2"),
    (r"^blocks\.(\d+)\.mlp\.fc1\.(weight|bias)$", r"backbone.layers.\1.ffn.layers.0.0.\2"),
    (r"^blocks\.(\d+)\.mlp\.fc2\.(weight|bias)$", r"backbone.layers.\1.ffn.layers.1.\2"),
    (r"^norm\.(weight|bias)$", r"backbone.ln1.\1"),
    (r"^head\.(weight|bias)$", r"head.layers.head.\1"),
]


def timm_key_to_mmcls(k):
    for pat, rep in TIMM_TO_MMCLS:
        if re.match(pat, k):
            return re.sub(pat, rep, k)
    raise KeyError(f"no mmcls mapping for timm key {k!r}")


def timm_module_to_mmcls(prefix):
    """Map a module prefix from state_dict._metadata (e.g. 'blocks.0.mlp.fc1')."""
    if prefix == "":
        return ""
    try:
        return timm_key_to_mmcls(prefix + ".weight")[: -len(".weight")]
    except KeyError:
        return None


def set_determinism():
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def build(img_size):
    m = VisionTransformer(img_size=img_size, **ARCH)
    m.eval()
    return m


@torch.no_grad()
def reinit_(model):
    """Overwrite every parameter with non-trivial values from a fixed generator.

    Scales are chosen so every path matters numerically (a loader bug moves the
    outputs by O(0.1..1), far above the parity tolerance):
      Linear / Conv weights: N(0, 1/fan_in)      (std 0.02 would leave the
                                                  blocks near-identity)
      biases:                0.1 * N(0,1)
      LayerNorm weight:      1 + 0.1 * N(0,1);  LayerNorm bias: 0.1 * N(0,1)
      cls_token, pos_embed:  0.5 * N(0,1)       (so resampling errors show)
    """
    g = torch.Generator().manual_seed(SEED + 1)
    for name, p in model.named_parameters():
        is_norm = re.search(r"(^|\.)norm\d?\.", name) is not None
        if name in ("cls_token", "pos_embed"):
            v = 0.5 * torch.randn(p.shape, generator=g)
        elif is_norm and name.endswith(".weight"):
            v = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
        elif name.endswith(".bias"):
            v = 0.1 * torch.randn(p.shape, generator=g)
        elif name.endswith(".weight"):
            fan_in = int(np.prod(p.shape[1:]))
            v = torch.randn(p.shape, generator=g) / fan_in ** 0.5
        else:
            raise AssertionError(f"unhandled parameter {name}")
        p.copy_(v)
    for name, t in model.state_dict().items():
        assert not torch.all(t == 0), name
        assert not torch.all(t == 1), name
        assert torch.isfinite(t).all(), name


def plain_state_dict(model):
    """model.state_dict() with contiguous f32 tensors, keeping `_metadata`."""
    sd = model.state_dict()
    out = collections.OrderedDict(
        (k, v.detach().to(torch.float32).contiguous().clone()) for k, v in sd.items()
    )
    out._metadata = sd._metadata  # noqa: SLF001 - what torch.save(model.state_dict()) stores
    return out


def mmcls_state_dict(sd):
    out = collections.OrderedDict(
        (timm_key_to_mmcls(k), v.clone()) for k, v in sd.items()
    )
    # mmcv's weights_to_cpu() keeps `_metadata`; rename its module prefixes too
    meta = collections.OrderedDict()
    for prefix, val in sd._metadata.items():
        new = timm_module_to_mmcls(prefix)
        if new is not None:
            meta[new] = dict(val)
    out._metadata = meta
    return out


MMCLS_META = {
    # shaped like mmcv.runner.save_checkpoint's meta, all values fixed
    "mmcls_version": "0.25.0",
    "mmcv_version": "1.7.0",
    "time": "Thu Jan  1 00:00:00 2026",
    "epoch": 1,
    "iter": 1,
    "CLASSES": ["c0", "c1", "c2", "c3", "c4"],
    "config": "model = dict(type='ImageClassifier', backbone=dict(type='VisionTransformer', "
    "arch=dict(embed_dims=48, num_layers=2, num_heads=3, feedforward_channels=192), "
    "img_size=32, patch_size=8), neck=None, head=dict(type='VisionTransformerClsHead', "
    "num_classes=5, in_channels=48))",
    "note": "ept golden fixture: tools/golden/make_vit_golden.py",
}


def _save_pth(obj, path, via_handle):
    """torch.save in the default zip format.

    via_handle=False: torch.save(obj, path)  -> zip entries '<basename-without-ext>/...'
    via_handle=True:  torch.save(obj, f)     -> zip entries 'archive/...' (mmcv style)
    """
    if via_handle:
        with open(path, "wb") as f:
            torch.save(obj, f)
    else:
        torch.save(obj, path)


# ---------------------------------------------------------------------------
# Independent mmcls-style forward written from the mmcls 0.25 source, run on the
# renamed state dict: checks that the mapping is semantically right.
# ---------------------------------------------------------------------------
def mmcls_style_forward(sd, x, num_heads, num_layers, eps=1e-6):
    p = lambda k: sd[k]  # noqa: E731
    w = p("backbone.patch_embed.projection.weight")
    x = F.conv2d(x, w, p("backbone.patch_embed.projection.bias"), stride=w.shape[-1])
    x = x.flatten(2).transpose(1, 2)
    B = x.shape[0]
    x = torch.cat((p("backbone.cls_token").expand(B, -1, -1), x), dim=1)
    x = x + p("backbone.pos_embed")
    C = x.shape[-1]
    hd = C // num_heads
    for i in range(num_layers):
        L = f"backbone.layers.{i}."
        h = F.layer_norm(x, (C,), p(L + "ln1.weight"), p(L + "ln1.bias"), eps)
        N = h.shape[1]
        qkv = F.linear(h, p(L + "attn.qkv.weight"), p(L + "attn.qkv.bias"))
        qkv = qkv.reshape(B, N, 3, num_heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = ((q @ k.transpose(-2, -1)) * hd ** -0.5).softmax(-1)
        h = (a @ v).transpose(1, 2).reshape(B, N, C)
        x = x + F.linear(h, p(L + "attn.proj.weight"), p(L + "attn.proj.bias"))
        h = F.layer_norm(x, (C,), p(L + "ln2.weight"), p(L + "ln2.bias"), eps)
        h = F.gelu(F.linear(h, p(L + "ffn.layers.0.0.weight"), p(L + "ffn.layers.0.0.bias")))
        x = x + F.linear(h, p(L + "ffn.layers.1.weight"), p(L + "ffn.layers.1.bias"))
    x = F.layer_norm(x, (C,), p("backbone.ln1.weight"), p("backbone.ln1.bias"), eps)
    cls = x[:, 0]
    return x, F.linear(cls, p("head.layers.head.weight"), p("head.layers.head.bias"))


def mmcls_resize_pos_embed(pos_embed, src_shape, dst_shape, mode="bicubic", num_extra_tokens=1):
    """Copy of mmcls 0.25 mmcls/models/utils/embed.py:16-57 (resize_pos_embed)."""
    _, L, C = pos_embed.shape
    src_h, src_w = src_shape
    extra_tokens = pos_embed[:, :num_extra_tokens]
    src_weight = pos_embed[:, num_extra_tokens:]
    src_weight = src_weight.reshape(1, src_h, src_w, C).permute(0, 3, 1, 2)
    dst_weight = F.interpolate(src_weight, size=dst_shape, align_corners=False, mode=mode)
    dst_weight = torch.flatten(dst_weight, 2).transpose(1, 2)
    return torch.cat((extra_tokens, dst_weight), dim=1)


def describe_pth(path):
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = [n for n in names if n.endswith("data.pkl")][0]
        out = io.StringIO()
        pickletools.dis(z.read(pkl), out=out)
    return names, out.getvalue()


def c(t):
    return t.detach().to(torch.float32).contiguous().clone()


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join("tests", "fixtures", "vit_tiny"))
    ap.add_argument("--dump-pickle", action="store_true",
                    help="print the pickletools disassembly of both .pth files")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    set_determinism()

    # ---- 1. model with non-trivial weights --------------------------------
    model = build(IMG)
    reinit_(model)
    sd = plain_state_dict(model)

    # ---- 2. weights --------------------------------------------------------
    # a single metadata entry: safetensors writes `__metadata__` from a hash map, so
    # several entries would come out in a random order and break byte-determinism
    st_meta = {"format": "pt"}
    save_file(dict(sd), os.path.join(args.out, "weights_timm.safetensors"), metadata=st_meta)
    _save_pth(sd, os.path.join(args.out, "weights_timm.pth"), via_handle=False)
    msd = mmcls_state_dict(sd)
    _save_pth({"meta": MMCLS_META, "state_dict": msd},
              os.path.join(args.out, "weights_mmcls.pth"), via_handle=True)

    # ---- 3. 32-px reference outputs -----------------------------------------
    gin = torch.Generator().manual_seed(SEED + 2)
    x = torch.randn((BATCH, 3, IMG, IMG), generator=gin)
    patch_tokens = model.patch_embed(x)                     # [B,16,C]
    tokens = model.norm_pre(model.patch_drop(model._pos_embed(patch_tokens)))  # [B,17,C]
    block0_out = model.blocks[0](tokens)
    block1_out = model.blocks[1](block0_out)
    features = model.forward_features(x)
    pre_logits = model.forward_head(features, pre_logits=True)
    logits = model(x)
    assert torch.equal(model.norm(block1_out), features)
    assert torch.equal(model.head(pre_logits), logits)
    assert torch.equal(pre_logits, features[:, 0])
    io32 = {
        "input": c(x),
        "patch_tokens": c(patch_tokens),
        "tokens_embedded": c(tokens),
        "block0_out": c(block0_out),
        "block1_out": c(block1_out),
        "features": c(features),
        "pre_logits": c(pre_logits),
        "logits": c(logits),
    }
    save_file(io32, os.path.join(args.out, "io.safetensors"),
              metadata={"source": "tools/golden/make_vit_golden.py"})

    # mapping check: independent mmcls-style forward on the renamed tensors
    mm_feat, mm_logits = mmcls_style_forward(msd, x, ARCH["num_heads"], ARCH["depth"])
    d_feat = (mm_feat - features).abs().max().item()
    d_log = (mm_logits - logits).abs().max().item()
    assert d_feat < 1e-5 and d_log < 1e-5, (d_feat, d_log)

    # ---- 4. 48-px: pos-embed resampled by timm's checkpoint_filter_fn -------
    # checkpoint_filter_fn(state_dict, model) defaults: interpolation='bicubic',
    # antialias=True, align_corners=None; for 'pos_embed' it calls
    #   resample_abs_pos_embed(v, new_size=model.patch_embed.grid_size (6,6),
    #       old_size=None (-> sqrt(16) = 4x4), num_prefix_tokens=1,
    #       interpolation='bicubic', antialias=True, verbose=True, align_corners=None)
    # which does F.interpolate(grid [1,C,4,4], size=(6,6), mode='bicubic',
    #       align_corners=None (== False), antialias=True) on the 16 grid tokens and
    # re-prepends the cls-token row unchanged.
    model48 = build(IMG_48)
    fsd = checkpoint_filter_fn(collections.OrderedDict(sd), model48)
    model48.load_state_dict(fsd, strict=True)
    pos48 = model48.pos_embed
    x48 = torch.randn((BATCH, 3, IMG_48, IMG_48), generator=gin)
    features48 = model48.forward_features(x48)
    logits48 = model48(x48)
    pos48_mmcls = mmcls_resize_pos_embed(sd["pos_embed"], (4, 4), (6, 6))
    pos48_check = F.interpolate(
        sd["pos_embed"][:, 1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2),
        size=(6, 6), mode="bicubic", align_corners=False, antialias=True,
    ).permute(0, 2, 3, 1).reshape(1, 36, -1)
    assert torch.equal(pos48[:, 1:], pos48_check)
    assert torch.equal(pos48[:, :1], sd["pos_embed"][:, :1])
    d_aa = (pos48 - pos48_mmcls).abs().max().item()
    io48 = {
        "input": c(x48),
        "pos_embed_resampled": c(pos48),
        "pos_embed_resampled_mmcls": c(pos48_mmcls),
        "features": c(features48),
        "logits": c(logits48),
    }
    save_file(io48, os.path.join(args.out, "io_48.safetensors"),
              metadata={"source": "tools/golden/make_vit_golden.py"})

    # ---- 5. reload checks ----------------------------------------------------
    st = load_file(os.path.join(args.out, "weights_timm.safetensors"))
    assert list(st) == sorted(sd) or set(st) == set(sd)
    for k in sd:
        assert torch.equal(st[k], sd[k]), k
    pt = torch.load(os.path.join(args.out, "weights_timm.pth"), weights_only=True)
    assert list(pt) == list(sd) and all(torch.equal(pt[k], sd[k]) for k in sd)
    ck = torch.load(os.path.join(args.out, "weights_mmcls.pth"), weights_only=True)
    assert set(ck) == {"meta", "state_dict"}
    assert list(ck["state_dict"]) == list(msd)
    assert all(torch.equal(ck["state_dict"][k], msd[k]) for k in msd)
    for name, ref in (("io.safetensors", io32), ("io_48.safetensors", io48)):
        got = load_file(os.path.join(args.out, name))
        assert set(got) == set(ref) and all(torch.equal(got[k], ref[k]) for k in ref)

    # ---- report ----------------------------------------------------------------
    print(f"torch {torch.__version__}  timm {timm.__version__}  "
          f"safetensors {safetensors.__version__}  numpy {np.__version__}  "
          f"python {sys.version.split()[0]}")
    print(f"mmcls-style forward vs timm: max|d features| {d_feat:.3g}, max|d logits| {d_log:.3g}")
    print(f"pos_embed 48px: timm (bicubic, antialias=True) vs mmcls (bicubic, no AA): "
          f"max|d| {d_aa:.4g}")
    print("\ntimm key -> mmcls key")
    for k in sd:
        print(f"  {k:28s} -> {timm_key_to_mmcls(k):44s} {list(sd[k].shape)}")
    total = 0
    print("\nfiles")
    for fn in sorted(os.listdir(args.out)):
        path = os.path.join(args.out, fn)
        size = os.path.getsize(path)
        total += size
        h = hashlib.sha256(open(path, "rb").read()).hexdigest()[:16]
        print(f"  {fn:28s} {size:8d} B  sha256:{h}")
        if fn.endswith(".safetensors") and fn.startswith("io"):
            for k, v in load_file(path).items():
                print(f"      {k:28s} {list(v.shape)}")
    print(f"  total {total} B")
    assert total < 1_000_000, "fixtures must stay under 1 MB"
    for fn in ("weights_timm.pth", "weights_mmcls.pth"):
        names, dis = describe_pth(os.path.join(args.out, fn))
        print(f"\n{fn} zip entries: {names}")
        if args.dump_pickle:
            print(dis)


if __name__ == "__main__":
    main()
