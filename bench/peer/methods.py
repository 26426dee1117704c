"""PyTorch tuning methods for the peer benchmark (``peer_bench.py``).

Ported from ``tools/golden/make_method_golden.py`` (same repository), which holds
the independent PyTorch implementations the Rust methods are tested against. That
script is not imported: its helpers are hard-wired to the 48-wide golden ViT
(module-level ``DIM``/``HEADS``) and it needs the golden fixtures on import-time
paths, so the pieces needed here are re-written for any timm ViT:

* EPT ``pure_cat`` in the reference's literal form (``ept_attention_probs`` /
  ``forward_ept`` there): ``softmax(cat[P, S], -1)[..., L:]`` with the prompt in front.
* VPT deep (``forward_vpt``): tokens inserted after CLS, replaced before every block > 0.
* LoRA on the q and v thirds of the fused qkv (``qkv_heads``); here added to the qkv
  output as ``[dq, 0, dv]`` exactly as ``crates/ept-tuning/src/lora.rs`` does, so
  timm's own attention (fused or explicit) still runs.
* AdaptFormer parallel adapter (``forward_adapter``) on the residual stream after attention.
* VP pad prompt (``vp_prompt`` / ``forward_vp``).

Initialisation follows the Rust side (``crates/ept-tuning/src/*.rs``), not the golden
script (which uses non-zero values on purpose to make its tests non-vacuous); for
timing only the shapes matter.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

METHODS = (
    "full", "linear", "partial", "mlp3", "lora", "bitfit", "adapter", "vp", "vpt",
    "ept_reference",
)


def embed(vit, images):
    """Tokens entering ``blocks[0]``: timm ``forward_features`` up to the blocks."""
    x = vit.patch_embed(images)
    x = vit._pos_embed(x)
    x = vit.patch_drop(x)
    return vit.norm_pre(x)


def num_tokens(vit):
    return vit.patch_embed.num_patches + vit.num_prefix_tokens


# ---------------------------------------------------------------------------
# LoRA (peft conventions: A kaiming-uniform = nn.Linear default, B zero, scale alpha/r)
# ---------------------------------------------------------------------------
class LoraQkv(nn.Module):
    """Wraps a frozen fused qkv Linear: ``qkv(x) + cat[s*B_q A_q x, 0, s*B_v A_v x]``."""

    def __init__(self, base, rank, alpha, dropout=0.0):
        super().__init__()
        dim = base.in_features
        self.base = base
        self.dim = base.out_features // 3
        self.q_a = nn.Linear(dim, rank, bias=False)
        self.q_b = nn.Linear(rank, self.dim, bias=False)
        self.v_a = nn.Linear(dim, rank, bias=False)
        self.v_b = nn.Linear(rank, self.dim, bias=False)
        nn.init.zeros_(self.q_b.weight)
        nn.init.zeros_(self.v_b.weight)
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        h = self.dropout(x)
        dq = self.q_b(self.q_a(h)) * self.scaling
        dv = self.v_b(self.v_a(h)) * self.scaling
        return self.base(x) + torch.cat([dq, torch.zeros_like(dq), dv], dim=-1)


# ---------------------------------------------------------------------------
# AdaptFormer parallel adapter
# ---------------------------------------------------------------------------
class Bottleneck(nn.Module):
    """``up(dropout(relu(down(x)))) * scale``; up and biases zero (AdaptFormer "lora" init)."""

    def __init__(self, dim, bottleneck, scale, dropout):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.scale = scale
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.up(self.dropout(F.relu(self.down(x)))) * self.scale


# ---------------------------------------------------------------------------
# EPT, reference (literal concatenate-then-softmax) form
# ---------------------------------------------------------------------------
def ept_reference_block(blk, x, prompt):
    """One timm block with EPT pure_cat attention; ``prompt`` is ``[N, L]``."""
    attn = blk.attn
    B, N, C = x.shape
    H, hd = attn.num_heads, attn.head_dim
    qkv = attn.qkv(blk.norm1(x)).reshape(B, N, 3, H, hd).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    s = (q @ k.transpose(-2, -1)) * attn.scale                      # [B, H, N, N]
    L = prompt.shape[-1]
    full = torch.softmax(torch.cat([prompt.expand(B, H, N, L).to(s.dtype), s], dim=-1), dim=-1)
    a = full[..., L:]                                                # prompt columns dropped
    o = (a @ v).transpose(1, 2).reshape(B, N, H * hd)
    x = x + attn.proj(o)
    return x + blk.mlp(blk.norm2(x))


# ---------------------------------------------------------------------------
# the tuned model
# ---------------------------------------------------------------------------
class TunedViT(nn.Module):
    """A timm ViT (its own head removed), one method, and a fresh class head on the
    CLS feature after the final norm. ``requires_grad`` marks what the method trains."""

    def __init__(self, vit, method, num_classes=2, *, lora_rank=8, lora_alpha=None,
                 adapter_reduction=8, adapter_scale=0.1, adapter_dropout=0.1, vp_pad=30,
                 vpt_length=10, vpt_deep=True, ept_length=100):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
        vit.reset_classifier(0)                      # backbone.head = None on the Rust side
        self.backbone = vit
        self.method = method
        dim = vit.embed_dim
        depth = len(vit.blocks)
        if method == "mlp3":
            self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim),
                                      nn.ReLU(), nn.Linear(dim, num_classes))
        else:
            self.head = nn.Sequential(nn.Linear(dim, num_classes))

        # trainability of the backbone (method tensors and the head always train)
        for name, p in vit.named_parameters():
            if method == "full":
                train = True
            elif method == "bitfit":
                train = name.endswith(".bias")       # incl. LayerNorm beta
            elif method == "partial":
                train = name.startswith(f"blocks.{depth - 1}.") or name.startswith("norm.")
            else:
                train = False
            p.requires_grad_(train)

        self.vp = self.vpt = self.ept = self.adapters = None
        if method == "lora":
            alpha = float(lora_rank if lora_alpha is None else lora_alpha)
            for blk in vit.blocks:                   # created after freezing: trainable
                blk.attn.qkv = LoraQkv(blk.attn.qkv, lora_rank, alpha)
        elif method == "adapter":
            self.adapters = nn.ModuleList(
                Bottleneck(dim, dim // adapter_reduction, adapter_scale, adapter_dropout)
                for _ in range(depth))
        elif method == "vp":
            size = vit.patch_embed.img_size[0]
            chans = vit.patch_embed.proj.in_channels
            inner = size - 2 * vp_pad
            assert inner > 0, f"vp pad {vp_pad} too large for {size}-px images"
            self.vp = nn.ParameterDict({
                "pad_up": nn.Parameter(torch.randn(1, chans, vp_pad, size)),
                "pad_down": nn.Parameter(torch.randn(1, chans, vp_pad, size)),
                "pad_left": nn.Parameter(torch.randn(1, chans, inner, vp_pad)),
                "pad_right": nn.Parameter(torch.randn(1, chans, inner, vp_pad)),
            })
        elif method == "vpt":
            patch = vit.patch_embed.proj.kernel_size[0]
            bound = math.sqrt(6.0 / (3 * patch * patch + dim))
            layers = depth if vpt_deep else 1
            self.vpt = nn.Parameter(torch.empty(layers, vpt_length, dim).uniform_(-bound, bound))
        elif method == "ept_reference":
            self.ept = nn.Parameter(torch.randn(depth, num_tokens(vit), ept_length) * 0.02)

    def vp_frame(self, images):
        p = self.vp
        _, c, inner, _ = p["pad_left"].shape
        center = torch.zeros(1, c, inner, inner, dtype=p["pad_left"].dtype, device=images.device)
        mid = torch.cat([p["pad_left"], center, p["pad_right"]], dim=3)
        return torch.cat([p["pad_up"], mid, p["pad_down"]], dim=2)

    def features(self, images):
        """Normalised tokens with the method applied, ``[B, N', D]``."""
        vit = self.backbone
        if self.vp is not None:
            images = images + self.vp_frame(images)
        if self.vpt is None and self.ept is None and self.adapters is None:
            return vit.forward_features(images)      # plain, vp, lora: timm's own path
        x = embed(vit, images)
        B = x.shape[0]
        for i, blk in enumerate(vit.blocks):
            if self.vpt is not None:
                if i < self.vpt.shape[0]:
                    L = self.vpt.shape[1]
                    skip = 1 if i == 0 else 1 + L
                    x = torch.cat([x[:, :1], self.vpt[i].expand(B, -1, -1).to(x.dtype),
                                   x[:, skip:]], dim=1)
                x = blk(x)
            elif self.ept is not None:
                x = ept_reference_block(blk, x, self.ept[i])
            else:  # adapter, parallel to the MLP, fed by the residual stream after attention
                x = x + blk.attn(blk.norm1(x))
                x = x + blk.mlp(blk.norm2(x)) + self.adapters[i](x)
        return vit.norm(x)

    def forward(self, images):
        return self.head(self.features(images)[:, 0])
