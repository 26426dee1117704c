#!/usr/bin/env python3
"""Fit the polynomial coefficients of burn-flex's vectorised GELU
(vendor/burn-flex/src/ops/gelu_simd.rs, an ept patch).

Three weighted-least-squares fits driven toward minimax relative error (Lawson's
iteration) on Chebyshev nodes, in float64 against Python's `math.erf`/`math.erfc`/
`math.exp`:

* ERF_SMALL:  erf(a)/a           ≈ P(a²),          a in [0, 0.75], degree 5
* ERFC_LARGE: a·exp(a²)·erfc(a)  ≈ Q(1/(1 + a/2)), a in [0.75, 9.2], degree 9
* EXP:        exp(r)             ≈ E(r),           r in [−ln2/2, ln2/2], degree 6

Prints each fit's worst relative error and its coefficients (lowest order first);
the Rust constants are these values rounded to f32. Needs only torch (used as a
float64 linear-algebra library):

    .venv-peer/bin/python tools/fit_gelu_coefficients.py

Generated with torch 2.15.0, Python 3.11.
"""
import math

import torch

torch.set_default_dtype(torch.float64)


def chebyshev_nodes(lo, hi, n=4000):
    k = torch.arange(n)
    return (lo + hi) / 2 + (hi - lo) / 2 * torch.cos(math.pi * (k + 0.5) / n)


def minimax(xs, ys, degree, variable, iters=60):
    """Polynomial in variable(xs) with (near) minimax relative error to ys."""
    v = torch.stack([variable(xs) ** i for i in range(degree + 1)], 1)
    w = torch.ones_like(xs)
    for _ in range(iters):
        sw = w.sqrt() / ys.abs()
        c = torch.linalg.lstsq(v * sw[:, None], (ys * sw)[:, None]).solution.squeeze(1)
        err = (v @ c - ys) / ys.abs()
        w = w * err.abs()
        w = w / w.sum()
    return c, err.abs().max().item()


def show(name, xs, ys, degree, variable):
    c, err = minimax(xs, ys, degree, variable)
    print(f"{name}: worst relative error {err:.3e}")
    print("  [" + ", ".join(repr(float(x)) for x in c.tolist()) + "]")


def main():
    a = chebyshev_nodes(0, 0.75)
    show("ERF_SMALL", a, torch.tensor([math.erf(v) / v for v in a.tolist()]), 5, lambda v: v * v)
    a = chebyshev_nodes(0.75, 9.2)
    ys = torch.tensor([v * math.exp(v * v) * math.erfc(v) for v in a.tolist()])
    show("ERFC_LARGE", a, ys, 9, lambda v: 1 / (1 + 0.5 * v))
    r = chebyshev_nodes(-math.log(2) / 2, math.log(2) / 2)
    show("EXP", r, torch.exp(r), 6, lambda v: v)


if __name__ == "__main__":
    main()
