#!/usr/bin/env python3
"""PyTorch peer of ``cargo xtask bench`` (xtask/src/bench.rs).

Runs the same workloads, shapes and thread count on a timm ViT (random init) and
prints one JSON line per measurement to stdout, in the Rust bench's format with
``"impl": "pytorch"`` and ``"backend": "cpu"`` (or ``"cuda"``), plus ``max_rss_mb``
(process peak RSS so far, ``ru_maxrss``: monotonic over the run), ``baseline_rss_mb``
(the same right after ``import torch, timm``, before any model), ``precision`` and
``attn``; on CUDA also ``max_gpu_mb`` (peak allocated during that measurement).
Progress goes to stderr; stdout carries only the JSON lines.

Each measurement is one warm-up run, then ``--reps`` timed runs; the reported
``median_s`` is ``sorted(times)[reps // 2]`` (as the Rust side). On CUDA the clock
stops after ``torch.cuda.synchronize()``.

Groups (``--groups``, as xtask; default all, with ``--quick`` only ``vit``):

* ``gemm``: ``sgemm_2048``, one 2048³ matrix product (also reported as GFLOP/s); f32,
  or bf16/fp16 matrices under ``--precision bf16|fp16``.
* ``vit``: ``vit_forward`` (eval, inference mode, with the 1000-class head) and
  ``vit_forward_backward_input`` (frozen model, ``model(x).sum()`` back to the input).
* ``layers``: each component of one block of the model, ``layer_fwd`` (no grad) and
  ``layer_fwd_bwd`` (frozen weights, ``sum()`` of the output back to its inputs), named
  by ``method``: layer_norm, qkv, attention_core (F.scaled_dot_product_attention, or
  softmax(q·kᵀ·scale)·v under ``--attn explicit``; heads merged; gradients to q, k, v),
  proj, fc1, gelu, fc2, block — xtask/src/bench_layers.rs times the same; at least 10
  repetitions each. One measurement (``--single layers``) reports all 16 lines.
* ``methods``: ``train_step`` per method: ``none_fwd_bwd`` (frozen forward + backward
  to the tokens entering block 0, loss = sum of the CLS feature), then one SGD step
  (lr 6e-4, momentum 0.9, weight decay 1e-4; cross-entropy on 2 classes) of
  full, linear, partial, mlp3, lora, bitfit, adapter, vp, vpt, ept_reference.
  ``--quick``: linear and ept_reference.
* ``ept_length``: the ept_reference step at L = 1, 10, 100, 1000 (``--quick``: 1, 1000),
  named ``ept_reference_L{L}``.

PyTorch has only EPT's literal concatenate-then-softmax form (the reference's), so
every EPT line here is ``ept_reference*``; the Rust ``ept`` (fast exact form) has no
PyTorch counterpart.

``--single NAME`` runs one measurement (``vit_forward``, ``none_fwd_bwd``, a method
name, or ``ept_reference_L{L}``) so that ``max_rss_mb`` belongs to it alone;
``--isolate`` runs every selected measurement that way, one child process each.

Examples::

    python bench/peer/peer_bench.py --groups vit,methods,ept_length --threads 2
    python bench/peer/peer_bench.py --single ept_reference_L1000 --threads 2
    python bench/peer/peer_bench.py --model tiny --batch 2 --reps 1 --quick   # smoke test
"""

import argparse
import contextlib
import gc
import json
import os
import re
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

GROUPS = ("gemm", "vit", "layers", "methods", "ept_length")
LAYER_MIN_REPS = 10         # as xtask's layers group: the components take milliseconds
GEMM_SIDE = 2048            # as xtask: one 2048 × 2048 · 2048 × 2048 f32 product
LENGTHS = (1, 10, 100, 1000)
QUICK_LENGTHS = (1, 1000)
QUICK_METHODS = ("linear", "ept_reference")
CLASSES = 2
LR, MOMENTUM, WEIGHT_DECAY = 6e-4, 0.9, 1e-4

# (width, depth, heads) as crates/ept-backbones/src/vit/config.rs `size_preset`.
SIZES = {"micro": (96, 6, 3), "tiny": (192, 12, 3), "small": (384, 12, 6),
         "base": (768, 12, 12), "large": (1024, 24, 16)}
# Short aliases: `tiny` is a smoke-test model (not timm's vit_tiny), also valid for xtask.
ALIASES = {"base": "vit_base_patch16_224", "tiny": "vit_micro_patch16_64"}


def peak_rss_mb():
    """Peak resident set size of this process so far (ru_maxrss), in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", help="comma-separated: vit, methods, ept_length "
                    "(default: all; with --quick only vit)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, help="timed repetitions (default 5; 2 with --quick)")
    ap.add_argument("--threads", type=int,
                    help="intra- and inter-op threads (default: $RAYON_NUM_THREADS, else all "
                    "cores, as xtask)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--quick", action="store_true",
                    help="reps 2; methods linear + ept_reference; lengths 1, 1000")
    ap.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                    help="bf16/fp16 = torch.autocast(bfloat16/float16) around forward + loss; "
                    "the gemm group multiplies bf16/fp16 matrices")
    ap.add_argument("--model", default="base",
                    help="base (= vit_base_patch16_224), tiny (= vit_micro_patch16_64, smoke "
                    "tests only), or a name vit_{micro,tiny,small,base,large}_patchP_IMG")
    ap.add_argument("--attn", choices=("fused", "explicit"), default="fused",
                    help="timm attention: fused = F.scaled_dot_product_attention (timm "
                    "default); explicit = softmax(q k^T) v, the computation the Rust side does")
    ap.add_argument("--single", metavar="NAME",
                    help="run only this measurement (vit_forward, vit_forward_backward_input, "
                    "none_fwd_bwd, a method name, ept_reference_L{L})")
    ap.add_argument("--isolate", action="store_true",
                    help="run each measurement in its own child process (--single)")
    ap.add_argument("--json", action="store_true", help="no human summary on stderr")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.reps is None:
        args.reps = 2 if args.quick else 5
    if args.threads is None:
        env = os.environ.get("RAYON_NUM_THREADS", "")
        args.threads = int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)
    if args.groups is None:
        args.groups = "vit" if args.quick else ",".join(GROUPS)
    args.groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    for g in args.groups:
        if g not in GROUPS:
            ap.error(f"unknown benchmark group '{g}': expected {', '.join(GROUPS)}")
    args.model = ALIASES.get(args.model, args.model)
    m = re.fullmatch(r"vit_(\w+?)_patch(\d+)_(\d+)", args.model)
    if not m or m.group(1) not in SIZES or int(m.group(3)) % int(m.group(2)):
        ap.error(f"unknown model '{args.model}'")
    args.arch = dict(zip(("embed_dim", "depth", "num_heads"), SIZES[m.group(1)]),
                     patch_size=int(m.group(2)), img_size=int(m.group(3)))
    if args.device != "cpu" and not re.fullmatch(r"cuda(:\d+)?", args.device):
        ap.error(f"unknown device '{args.device}': expected cpu, cuda or cuda:N")
    return args


def measurements(args):
    """(bench, method-or-None) of every selected measurement, in xtask's order."""
    out = []
    if "gemm" in args.groups:
        out.append(("sgemm_2048", None))
    if "vit" in args.groups:
        out += [("vit_forward", None), ("vit_forward_backward_input", None)]
    if "layers" in args.groups:
        out.append(("layers", None))
    if "methods" in args.groups:
        from methods import METHODS
        out.append(("train_step", "none_fwd_bwd"))
        out += [("train_step", m) for m in (QUICK_METHODS if args.quick else METHODS)]
    if "ept_length" in args.groups:
        out += [("ept_length", f"ept_reference_L{L}")
                for L in (QUICK_LENGTHS if args.quick else LENGTHS)]
    return out


def single_measurement(name):
    from methods import METHODS
    if name in ("sgemm_2048", "vit_forward", "vit_forward_backward_input", "layers"):
        return (name, None)
    if name == "none_fwd_bwd" or name in METHODS:
        return ("train_step", name)
    if re.fullmatch(r"ept_reference_L[1-9]\d*", name):
        return ("ept_length", name)
    raise SystemExit(f"--single: unknown measurement '{name}'")


class Bench:
    def __init__(self, args):
        import torch
        self.torch = torch
        self.args = args
        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(args.threads)
        torch.manual_seed(args.seed)
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            if self.device.index is None:                # plain "cuda": the current GPU
                self.device = torch.device("cuda", torch.cuda.current_device())
            torch.cuda.set_device(self.device)
            torch.zeros(1, device=self.device)       # CUDA context in the baseline
        import timm  # noqa: F401  (imported here so the baseline includes it)
        import methods  # noqa: F401
        self.baseline_rss_mb = peak_rss_mb()    # after imports, before any model

    # --- helpers --------------------------------------------------------------
    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def reduced_dtype(self):
        """The autocast dtype of ``--precision``, or None for fp32."""
        return {"bf16": self.torch.bfloat16, "fp16": self.torch.float16}.get(self.args.precision)

    def autocast(self):
        dtype = self.reduced_dtype()
        if dtype is not None:
            return self.torch.autocast(self.device.type, dtype=dtype)
        return contextlib.nullcontext()

    def median_seconds(self, f, min_reps=1):
        f()
        self.sync()
        times = []
        for _ in range(max(self.args.reps, min_reps)):
            start = time.perf_counter()
            f()
            self.sync()
            times.append(time.perf_counter() - start)
        times.sort()
        return times[len(times) // 2]

    def vit(self):
        """A fresh randomly initialised timm ViT with its 1000-class head."""
        import timm
        from timm.models.vision_transformer import VisionTransformer
        if self.args.model == "vit_base_patch16_224":
            model = timm.create_model("vit_base_patch16_224", pretrained=False)
        else:
            model = VisionTransformer(num_classes=1000, qkv_bias=True, mlp_ratio=4.0,
                                      **self.args.arch)
        for blk in model.blocks:
            blk.attn.fused_attn = self.args.attn == "fused"
        return model.to(self.device)

    def images(self):
        s = self.args.arch["img_size"]
        return self.torch.rand(self.args.batch, 3, s, s, device=self.device)

    def report(self, bench, method, seconds):
        a = self.args
        rss_mb = peak_rss_mb()
        line = {"bench": bench, "model": a.model, "backend": a.device, "batch": a.batch,
                "image_size": a.arch["img_size"], "threads": a.threads, "median_s": seconds,
                "images_per_s": a.batch / seconds, "impl": "pytorch",
                "max_rss_mb": round(rss_mb, 1), "baseline_rss_mb": round(self.baseline_rss_mb, 1),
                "precision": a.precision, "attn": a.attn}
        if self.cuda:
            line["max_gpu_mb"] = round(self.torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        if method is not None:
            line["method"] = method
        if bench == "sgemm_2048":
            line["gflops"] = 2 * GEMM_SIDE ** 3 / seconds / 1e9
        print(json.dumps(line), flush=True)
        if not a.json:
            log(f"  {bench:<28} {method or '':<28} {a.device:<8} batch {a.batch:>3}  "
                f"{seconds:>8.3f} s  {a.batch / seconds:>8.2f} images/s  "
                f"peak RSS {rss_mb:>7.0f} MB")

    # --- workloads ------------------------------------------------------------
    def run(self, bench, method):
        torch = self.torch
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        log(f"[peer] {bench} {method or ''} ({self.args.model}, batch {self.args.batch}, "
            f"{self.args.reps} reps)")
        if bench == "sgemm_2048":
            seconds = self.sgemm()
        elif bench == "vit_forward":
            seconds = self.vit_forward()
        elif bench == "vit_forward_backward_input":
            seconds = self.vit_forward_backward_input()
        elif bench == "layers":
            self.layers()                   # reports one line per component itself
            return
        elif method == "none_fwd_bwd":
            seconds = self.none_fwd_bwd()
        elif bench == "ept_length":
            length = int(method.rsplit("_L", 1)[1])
            seconds = self.step_seconds("ept_reference", ept_length=length)
        else:
            seconds = self.step_seconds(method)
        self.report(bench, method, seconds)

    def frozen_vit(self):
        model = self.vit().eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def sgemm(self):
        torch = self.torch
        dtype = self.reduced_dtype() or torch.float32
        a, b = (torch.rand(GEMM_SIDE, GEMM_SIDE, device=self.device, dtype=dtype) for _ in range(2))
        reps = self.args.reps
        self.args.reps = max(reps, 3)               # as xtask: at least 3 timed products
        seconds = self.median_seconds(lambda: (a @ b).cpu())
        self.args.reps = reps
        return seconds

    def vit_forward(self):
        torch = self.torch
        model, images = self.frozen_vit(), self.images()

        def f():
            with torch.inference_mode(), self.autocast():
                model(images).cpu()
        return self.median_seconds(f)

    def vit_forward_backward_input(self):
        model, images = self.frozen_vit(), self.images()

        def f():
            x = images.clone().requires_grad_(True)
            with self.autocast():
                loss = model(x).float().sum()
            loss.backward()
            x.grad.cpu()
        return self.median_seconds(f)

    def layers(self):
        """Each component of block 0, forward and forward + backward to its inputs."""
        torch = self.torch
        blk = self.frozen_vit().blocks[0]
        a = self.args
        dim, heads = a.arch["embed_dim"], a.arch["num_heads"]
        tokens = (a.arch["img_size"] // a.arch["patch_size"]) ** 2 + 1
        shape = (a.batch, tokens, dim)

        def normal(*dims):
            return torch.randn(*dims, device=self.device)

        def attention_core(q, k, v):
            if a.attn == "fused":
                out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            else:
                out = ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(-1) @ v
            return out.transpose(1, 2).reshape(shape)

        x, wide = [normal(*shape)], [normal(a.batch, tokens, 4 * dim)]
        qkv = [normal(a.batch, heads, tokens, dim // heads) for _ in range(3)]
        for name, inputs, f in (("layer_norm", x, blk.norm1), ("qkv", x, blk.attn.qkv),
                                ("attention_core", qkv, attention_core),
                                ("proj", x, blk.attn.proj), ("fc1", x, blk.mlp.fc1),
                                ("gelu", wide, blk.mlp.act), ("fc2", wide, blk.mlp.fc2),
                                ("block", x, blk)):
            def forward():
                with torch.no_grad(), self.autocast():
                    f(*inputs).cpu()

            def forward_backward():
                tracked = [t.detach().requires_grad_(True) for t in inputs]
                with self.autocast():
                    loss = f(*tracked).float().sum()
                loss.backward()
                for t in tracked:
                    t.grad.cpu()
            self.report("layer_fwd", name, self.median_seconds(forward, LAYER_MIN_REPS))
            self.report("layer_fwd_bwd", name, self.median_seconds(forward_backward, LAYER_MIN_REPS))

    def none_fwd_bwd(self):
        """Frozen forward + backward to the tokens entering block 0 (no method, no head)."""
        from methods import embed
        model, images = self.frozen_vit(), self.images()

        def f():
            with self.autocast():
                x = embed(model, images).detach().requires_grad_(True)
                for blk in model.blocks:
                    x = blk(x)
                loss = model.norm(x)[:, 0].float().sum()
            loss.backward()
        return self.median_seconds(f)

    def step_seconds(self, method, **options):
        """One SGD step of `method` on a random batch: forward, cross-entropy, backward, step."""
        torch = self.torch
        from methods import TunedViT
        model = TunedViT(self.vit(), method, CLASSES, **options).to(self.device).train()
        params = [p for p in model.parameters() if p.requires_grad]
        n_train = sum(p.numel() for p in params)
        n_all = sum(p.numel() for p in model.parameters())
        log(f"[peer]   {method}: {n_train:,} of {n_all:,} parameters train")
        optim = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
        images = self.images()
        labels = torch.arange(self.args.batch, device=self.device) % 2
        probe = model.head[0].bias          # as xtask: read head.layers[0].bias back

        def f():
            with self.autocast():
                logits = model(images)
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            loss.backward()
            optim.step()
            optim.zero_grad(set_to_none=True)
            probe.detach().cpu()
        seconds = self.median_seconds(f)
        del model, optim, params
        return seconds


def run_isolated(args, argv):
    """Re-run this script once per measurement with --single; pass its stdout through."""
    base = [a for a in argv if a != "--isolate"]
    failed = 0
    for bench, method in measurements(args):
        name = method or bench
        cmd = [sys.executable, os.path.abspath(__file__), *base, "--single", name]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        sys.stdout.write(proc.stdout)
        sys.stdout.flush()
        if proc.returncode != 0:
            log(f"[peer] {name}: child exited with {proc.returncode}")
            failed += 1
    return 1 if failed else 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.isolate and args.single is None:
        return run_isolated(args, argv)
    todo = [single_measurement(args.single)] if args.single else measurements(args)
    bench = Bench(args)
    import torch
    import timm
    log(f"[peer] torch {torch.__version__}, timm {timm.__version__}, device {args.device}, "
        f"threads {args.threads}, precision {args.precision}, attn {args.attn}")
    for name, method in todo:
        bench.run(name, method)
    return 0


if __name__ == "__main__":
    sys.exit(main())
