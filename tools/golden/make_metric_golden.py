#!/usr/bin/env python3
"""Golden reference values for the evaluation metrics of `ept`.

Writes `tests/fixtures/metrics/{single_label,multi_label,features}.json`.
Every metric is written out here in plain numpy from the *semantics* of
mmcls 0.25 / MedFMC (see `tests/fixtures/metrics/README.md` for the exact
definitions, units and edge-case conventions) and, where the definitions
coincide, cross-checked against scikit-learn. The script aborts if a
cross-check fails.

Usage (from the repository root):

    python -m venv /work/venv-metrics
    /work/venv-metrics/bin/pip install -r tools/golden/requirements-metrics.txt
    /work/venv-metrics/bin/python tools/golden/make_metric_golden.py          # write
    /work/venv-metrics/bin/python tools/golden/make_metric_golden.py --check  # compare

The run is deterministic (fixed seeds, no threads involved in the results) and
rewrites byte-identical files.

Inputs (probabilities, scores, features) are float32 values, written as the
shortest decimal string that round-trips to that float32. All expected outputs
are computed in float64 from exactly those float32 values (read back from the
JSON text) and written with full float64 precision (Python repr, round-trips).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.decomposition import PCA

N_BINS = 15
# Bin edges e_k = k / 15, each the correctly rounded float64 quotient (Rust: `k as f64 / 15.0`).
EDGES = np.array([k / N_BINS for k in range(N_BINS + 1)], dtype=np.float64)
F32_EPS = float(np.finfo(np.float32).eps)
MULTI_LABEL_THR = 0.5

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "tests" / "fixtures" / "metrics"


# --------------------------------------------------------------------------------------
# float32 input handling
# --------------------------------------------------------------------------------------

def f32_json(a):
    """Nested lists of Python floats whose repr is the shortest float32 round-trip string."""
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 0:
        s = str(a[()])
        v = float(s)
        # The decimal string must give back the same float32 whether parsed directly as
        # float32 or parsed as float64 and then rounded to float32.
        assert np.float32(s) == a[()] and np.float32(v) == a[()], (s, a)
        return v
    return [f32_json(x) for x in a]


def read_f32(x):
    """What a consumer sees: the float32 values, up-cast exactly to float64."""
    return np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float64)


def opt(x):
    """float or None (JSON null) for undefined values."""
    if x is None:
        return None
    x = float(x)
    return None if not math.isfinite(x) else x


def opt_list(xs):
    return [opt(x) for x in xs]


def softmax_f32(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def sigmoid_f32(x):
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


# --------------------------------------------------------------------------------------
# Shared primitives
# --------------------------------------------------------------------------------------

def binary_auc(score, label):
    """ROC AUC as the Mann-Whitney statistic: P(s_pos > s_neg) + 0.5 P(s_pos == s_neg).

    `label` is 0/1. Returns None when there is no positive or no negative.
    Equals the trapezoidal area under the ROC curve (scikit-learn's definition).
    """
    pos = score[label == 1]
    neg = score[label == 0]
    if pos.size == 0 or neg.size == 0:
        return None
    gt = (pos[:, None] > neg[None, :]).sum()
    eq = (pos[:, None] == neg[None, :]).sum()
    return (gt + 0.5 * eq) / (pos.size * neg.size)


def bin_index(conf):
    """Bin k such that e_k < conf <= e_{k+1}; conf == 0 goes to bin 0. conf in [0, 1]."""
    conf = np.asarray(conf, dtype=np.float64)
    assert np.all((conf >= 0.0) & (conf <= 1.0))
    return np.searchsorted(EDGES[1:], conf, side="left")


def bin_index_loop(conf):
    """Independent (Guo et al. style) binning used only to cross-check `bin_index`."""
    out = np.full(conf.shape, -1)
    for k in range(N_BINS):
        lo, hi = EDGES[k], EDGES[k + 1]
        sel = (conf > lo) & (conf <= hi)
        if k == 0:
            sel |= conf == 0.0
        assert np.all(out[sel] == -1)
        out[sel] = k
    assert np.all(out >= 0)
    return out


def reliability(conf, correct):
    """Per-bin (count, mean confidence, accuracy) and ECE = sum_b n_b/n |acc_b - conf_b|."""
    n = conf.size
    b = bin_index(conf)
    assert np.array_equal(b, bin_index_loop(conf))
    counts, mconf, acc = [], [], []
    ece = 0.0
    for k in range(N_BINS):
        sel = b == k
        nb = int(sel.sum())
        counts.append(nb)
        if nb == 0:
            mconf.append(None)
            acc.append(None)
            continue
        c = float(conf[sel].mean())
        a = float(correct[sel].astype(np.float64).mean())
        mconf.append(c)
        acc.append(a)
        ece += nb / n * abs(a - c)
    return ece, counts, mconf, acc, b


# --------------------------------------------------------------------------------------
# Single-label metrics (mmcls 0.25 semantics; percent)
# --------------------------------------------------------------------------------------

def single_label_expected(prob, target, C):
    n = prob.shape[0]
    pred = np.argmax(prob, axis=1)  # ties -> lowest class index (first maximum)
    top = prob[np.arange(n), pred]
    # mmcls accuracy (thrs=0): correct iff top-1 label == target AND top-1 score > 0.
    correct = (pred == target) & (top > 0.0)
    acc_pct = 100.0 * correct.sum() / n

    # mmcls precision_recall_f1(average_mode='macro', thrs=0.): a prediction is positive
    # only if its top-1 score > 0 (always true for probabilities); all C classes averaged.
    pred_pos = top > 0.0
    prec, rec, f1 = [], [], []
    for c in range(C):
        npred = int(((pred == c) & pred_pos).sum())
        ngt = int((target == c).sum())
        tp = int(((pred == c) & pred_pos & (target == c)).sum())
        p = 100.0 * tp / max(npred, 1)
        r = 100.0 * tp / max(ngt, 1)
        f = 2.0 * p * r / max(p + r, F32_EPS)
        prec.append(p)
        rec.append(r)
        f1.append(f)

    # AUC: one-vs-rest per class on the probabilities, classes without a positive or
    # without a negative among the targets are skipped. C == 2: AUC of the class-1 column.
    onehot = (target[:, None] == np.arange(C)[None, :]).astype(np.int64)
    auc_c = [binary_auc(prob[:, c], onehot[:, c]) for c in range(C)]
    if C == 2:
        a1 = auc_c[1]
        auc_pct = None if a1 is None else 100.0 * a1
    else:
        valid = [a for a in auc_c if a is not None]
        auc_pct = 100.0 * float(np.mean(valid)) if valid else None

    # MedFMC AUC_multiclass: softmax applied AGAIN to the probabilities, per-class
    # one-vs-rest AUC, mean (here: over classes where it is defined), x100.
    z = prob - prob.max(axis=1, keepdims=True)
    s2 = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    medfm_c = [binary_auc(s2[:, c], onehot[:, c]) for c in range(C)]
    medfm_valid = [a for a in medfm_c if a is not None]
    medfm_pct = 100.0 * float(np.mean(medfm_valid)) if medfm_valid else None

    ece, counts, mconf, bacc, b = reliability(top, pred == target)

    exp = {
        "pred_label": pred.tolist(),
        "accuracy_top1_pct": acc_pct,
        "precision_macro_pct": float(np.mean(prec)),
        "recall_macro_pct": float(np.mean(rec)),
        "f1_macro_pct": float(np.mean(f1)),
        "precision_per_class_pct": prec,
        "recall_per_class_pct": rec,
        "f1_per_class_pct": f1,
        "auc_per_class_pct": [None if a is None else 100.0 * a for a in auc_c],
        "auc_ovr_macro_pct": opt(auc_pct),
        "auc_medfm_multiclass_pct": opt(medfm_pct),
        "ece": ece,
        "ece_bin_of_sample": b.tolist(),
        "ece_bin_count": counts,
        "ece_bin_mean_confidence": mconf,
        "ece_bin_accuracy": bacc,
    }
    cross_check_single(prob, target, C, exp, auc_c, onehot)
    return exp


def close(a, b, tol=1e-12):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def cross_check_single(prob, target, C, exp, auc_c, onehot):
    pred = np.array(exp["pred_label"])
    assert close(exp["accuracy_top1_pct"], 100.0 * skm.accuracy_score(target, pred))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, _ = skm.precision_recall_fscore_support(
            target, pred, labels=list(range(C)), average="macro", zero_division=0)
    assert close(exp["precision_macro_pct"], 100 * p), (exp["precision_macro_pct"], p)
    assert close(exp["recall_macro_pct"], 100 * r)
    assert close(exp["f1_macro_pct"], 100 * f)
    # ROC AUC per class against sklearn.
    for c in range(C):
        if auc_c[c] is not None:
            assert close(auc_c[c], skm.roc_auc_score(onehot[:, c], prob[:, c]))
    if exp["auc_ovr_macro_pct"] is not None and all(a is not None for a in auc_c):
        if C == 2:
            ref = skm.roc_auc_score(target, prob[:, 1])
        else:
            ref = skm.roc_auc_score(target, prob, multi_class="ovr", average="macro",
                                    labels=list(range(C)))
        assert close(exp["auc_ovr_macro_pct"], 100 * ref), (exp["auc_ovr_macro_pct"], ref)
    # Reliability: sums.
    assert sum(exp["ece_bin_count"]) == len(target)


# --------------------------------------------------------------------------------------
# Multi-label metrics (mmcls 0.25 / MedFMC semantics; percent)
# --------------------------------------------------------------------------------------

def ap_mmcls(score, target):
    """mmcls average_precision: rank by descending score (ties: lower sample index first),
    AP = (1/P) sum over positives at rank r of (#positives in ranks <= r) /
    (#non-difficult samples in ranks <= r). -1 = difficult. P == 0 -> AP = 0."""
    order = np.argsort(-score, kind="stable")
    t = target[order]
    pos = t == 1
    P = int(pos.sum())
    if P == 0:
        return 0.0
    tp = np.cumsum(pos)
    pn = np.cumsum(t != -1)
    return float(np.sum(tp[pos] / pn[pos]) / P)


def ap_tie_aware(score, target):
    """Step-wise AP over distinct score thresholds (scikit-learn's definition):
    AP = sum_k (R_k - R_{k-1}) P_k with thresholds = distinct scores, descending.
    0/1 targets only; P == 0 -> 0 (what scikit-learn returns, with a warning)."""
    P = int((target == 1).sum())
    if P == 0:
        return 0.0
    ap, tp, seen, prev_r = 0.0, 0, 0, 0.0
    for thr in np.unique(score)[::-1]:
        sel = score == thr
        tp += int((target[sel] == 1).sum())
        seen += int(sel.sum())
        r = tp / P
        ap += (r - prev_r) * (tp / seen)
        prev_r = r
    return ap


def multi_label_expected(score, target):
    n, C = score.shape
    difficult = bool((target == -1).any())
    ap = [ap_mmcls(score[:, c], target[:, c]) for c in range(C)]
    exp = {
        "ap_per_class_pct": [100.0 * a for a in ap],
        "mAP_pct": 100.0 * float(np.mean(ap)),
    }
    if difficult:
        exp["ap_tie_aware_per_class_pct"] = None
        exp["mAP_tie_aware_pct"] = None
    else:
        apt = [ap_tie_aware(score[:, c], target[:, c]) for c in range(C)]
        exp["ap_tie_aware_per_class_pct"] = [100.0 * a for a in apt]
        exp["mAP_tie_aware_pct"] = 100.0 * float(np.mean(apt))

    if difficult:
        exp["auc_per_class_pct"] = None
        exp["auc_macro_pct"] = None
        exp["auc_num_valid_classes"] = None
    else:
        auc_c = [binary_auc(score[:, c], target[:, c]) for c in range(C)]
        valid = [a for a in auc_c if a is not None]
        exp["auc_per_class_pct"] = [None if a is None else 100.0 * a for a in auc_c]
        exp["auc_macro_pct"] = 100.0 * float(np.mean(valid)) if valid else None
        exp["auc_num_valid_classes"] = len(valid)

    # mmcls average_performance(thr=0.5): -1 -> 0, positive iff score >= 0.5.
    t = np.where(target == -1, 0, target)
    pp = score >= MULTI_LABEL_THR
    tp = (pp & (t == 1)).sum(axis=0).astype(np.float64)
    fp = (pp & (t == 0)).sum(axis=0).astype(np.float64)
    fn = (~pp & (t == 1)).sum(axis=0).astype(np.float64)
    pc = tp / np.maximum(tp + fp, F32_EPS)
    rc = tp / np.maximum(tp + fn, F32_EPS)
    CP = 100.0 * pc.mean()
    CR = 100.0 * rc.mean()
    CF1 = 2 * CP * CR / max(CP + CR, F32_EPS)
    OP = 100.0 * tp.sum() / max(tp.sum() + fp.sum(), F32_EPS)
    OR = 100.0 * tp.sum() / max(tp.sum() + fn.sum(), F32_EPS)
    OF1 = 2 * OP * OR / max(OP + OR, F32_EPS)
    f1c = np.where(pc + rc > 0, 2 * pc * rc / np.maximum(pc + rc, F32_EPS), 0.0)
    exp.update({
        "precision_per_class_pct": (100.0 * pc).tolist(),
        "recall_per_class_pct": (100.0 * rc).tolist(),
        "f1_per_class_pct": (100.0 * f1c).tolist(),
        "CP_pct": float(CP), "CR_pct": float(CR), "CF1_pct": float(CF1),
        "OP_pct": float(OP), "OR_pct": float(OR), "OF1_pct": float(OF1),
        "f1_macro_pct": float(100.0 * f1c.mean()),
    })

    if difficult:
        exp["ece_per_class"] = None
        exp["classwise_ece"] = None
    else:
        eces = [reliability(score[:, c], t[:, c] == 1)[0] for c in range(C)]
        exp["ece_per_class"] = eces
        exp["classwise_ece"] = float(np.mean(eces))

    cross_check_multi(score, target, exp, difficult)
    return exp


def cross_check_multi(score, target, exp, difficult):
    n, C = score.shape
    ties = any(len(np.unique(score[:, c])) < n for c in range(C))
    if not difficult:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for c in range(C):
                ref = skm.average_precision_score(target[:, c], score[:, c])
                assert close(exp["ap_tie_aware_per_class_pct"][c], 100 * ref), (c, ref)
                if not ties:
                    assert close(exp["ap_per_class_pct"][c], 100 * ref)
                a = exp["auc_per_class_pct"][c]
                if a is not None:
                    assert close(a, 100 * skm.roc_auc_score(target[:, c], score[:, c]))
    t = np.where(target == -1, 0, target)
    pred = (score >= MULTI_LABEL_THR).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, _ = skm.precision_recall_fscore_support(t, pred, average=None,
                                                         zero_division=0)
        mp, mr, _, _ = skm.precision_recall_fscore_support(t, pred, average="micro",
                                                           zero_division=0)
        mf1 = skm.f1_score(t, pred, average="macro", zero_division=0)
    assert np.allclose(exp["precision_per_class_pct"], 100 * p, rtol=1e-12, atol=0)
    assert np.allclose(exp["recall_per_class_pct"], 100 * r, rtol=1e-12, atol=0)
    assert np.allclose(exp["f1_per_class_pct"], 100 * f, rtol=1e-12, atol=0)
    assert close(exp["CP_pct"], 100 * p.mean()) and close(exp["CR_pct"], 100 * r.mean())
    assert close(exp["OP_pct"], 100 * mp) and close(exp["OR_pct"], 100 * mr)
    assert close(exp["f1_macro_pct"], 100 * mf1)
    # Classwise ECE vs sklearn calibration_curve (bins [e_k, e_{k+1}), last closed), valid
    # when no score lies exactly on an inner edge (and none is 0, where both agree anyway).
    if not difficult:
        on_edge = np.isin(score, EDGES[1:-1])
        sk_edges = np.linspace(0.0, 1.0, N_BINS + 1)
        if not on_edge.any() and np.array_equal(sk_edges, EDGES):
            for c in range(C):
                y, s = t[:, c], score[:, c]
                binids = np.searchsorted(sk_edges[1:-1], s, side="right")
                counts = np.bincount(binids, minlength=N_BINS)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pt, pp_ = calibration_curve(y, s, n_bins=N_BINS, strategy="uniform",
                                                pos_label=1)
                ref = float(np.sum(np.abs(pt - pp_) * counts[counts > 0]) / n)
                assert close(exp["ece_per_class"][c], ref, 1e-10), (c, ref)


# --------------------------------------------------------------------------------------
# Feature-distribution metrics (fractions, population normalisation 1/n)
# --------------------------------------------------------------------------------------

def feature_expected(X, y):
    n, D = X.shape
    mu = X.mean(axis=0)
    sw = 0.0
    sb = 0.0
    classes = np.unique(y)
    for c in classes:
        Xc = X[y == c]
        mc = Xc.mean(axis=0)
        sw += float(((Xc - mc) ** 2).sum())
        sb += Xc.shape[0] * float(((mc - mu) ** 2).sum())
    sw /= n
    sb /= n
    st = float(((X - mu) ** 2).sum()) / n
    assert close(sw + sb, st, 1e-9) or st < 1e-300
    ratio = sb / sw if sw > 0 else None

    evr = None
    if min(n, D) >= 2:
        s = np.linalg.svd(X - mu, compute_uv=False)
        var = s ** 2
        if var.sum() > 0:
            evr = (var[:2] / var.sum()).tolist()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pca = PCA(n_components=2, svd_solver="full").fit(X)
            assert np.allclose(evr, pca.explained_variance_ratio_, rtol=1e-9, atol=1e-12)
            # tr(S_T) with the unbiased 1/(n-1) equals sklearn's total explained variance.
            pca_full = PCA(svd_solver="full").fit(X)
            assert close(st * n / (n - 1), float(pca_full.explained_variance_.sum()), 1e-9)

    return {
        "num_classes_present": int(classes.size),
        "class_counts": [int((y == c).sum()) for c in classes],
        "trace_sw": sw,
        "trace_sb": sb,
        "trace_st": st,
        "ratio_sb_sw": opt(ratio),
        "pca_explained_variance_ratio": evr,
    }


# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------

def sl_random(rng, n, C, signal, cover_all=True, dead_class=None, absent_class=None):
    if cover_all:
        base = np.arange(C)
        if absent_class is not None:
            base = base[base != absent_class]
        target = np.concatenate([base, rng.integers(0, C, n - base.size)])
        rng.shuffle(target)
    else:
        target = rng.integers(0, C, n)
    if absent_class is not None:
        target[target == absent_class] = (absent_class + 1) % C
    logits = rng.normal(0.0, 1.0, (n, C))
    logits[np.arange(n), target] += signal
    if dead_class is not None:
        logits[:, dead_class] = -8.0 + rng.normal(0.0, 0.1, n)
    return softmax_f32(logits), target


def single_label_cases():
    cases = []

    rng = np.random.default_rng(1001)
    p, t = sl_random(rng, 200, 2, 1.0)
    cases.append(("sl_c2_n200", 1001, "ColonPath-like: C=2, n=200, softmax of N(0,1) logits "
                  "+1.0 on the target class.", p, t))

    rng = np.random.default_rng(1002)
    p, t = sl_random(rng, 200, 19, 2.0)
    cases.append(("sl_c19_n200", 1002, "C=19, n=200, every class present among the targets, "
                  "softmax of N(0,1) logits +2.0 on the target class.", p, t))

    rng = np.random.default_rng(1003)
    p, t = sl_random(rng, 60, 4, 1.5, dead_class=3)
    assert not (np.argmax(p, axis=1) == 3).any() and (t == 3).any()
    cases.append(("sl_c4_class_never_predicted", 1003, "C=4, n=60; class 3 occurs among the "
                  "targets but is never the argmax (its precision is 0 and counts in the "
                  "macro mean).", p, t))

    rng = np.random.default_rng(1004)
    p, t = sl_random(rng, 40, 4, 1.5, absent_class=2)
    assert not (t == 2).any()
    cases.append(("sl_c4_class_absent_from_targets", 1004, "C=4, n=40; class 2 never occurs "
                  "among the targets: its recall is 0 (counted in the macro mean), its "
                  "one-vs-rest AUC is undefined and skipped.", p, t))

    # Ties: rows on a 1/20 grid (exact ties inside rows and across samples).
    rng = np.random.default_rng(1005)
    rows = [[4, 4, 4, 4, 4], [4, 4, 4, 4, 4], [8, 8, 2, 1, 1], [2, 7, 7, 2, 2],
            [1, 1, 1, 8, 9], [6, 6, 6, 1, 1], [12, 2, 2, 2, 2], [2, 2, 2, 2, 12]]
    tg = [0, 3, 1, 2, 4, 2, 0, 4]
    while len(rows) < 16:
        cnt = rng.multinomial(20, np.ones(5) / 5)
        rows.append(cnt.tolist())
        tg.append(int(rng.integers(0, 5)))
    p = (np.array(rows, dtype=np.float64) / 20.0).astype(np.float32)
    cases.append(("sl_c5_ties", 1005, "C=5, n=16, probabilities on a 0.05 grid: exact ties "
                  "for the maximum inside rows (argmax takes the lowest class index) and many "
                  "equal scores across samples (AUC counts ties as 1/2). Confidences 0.2, 0.4, "
                  "0.6 are float32 values just above the bin edges 3/15, 6/15, 9/15.",
                  p, np.array(tg)))

    p = np.array([[0.25, 0.6, 0.15]], dtype=np.float32)
    cases.append(("sl_n1", None, "n=1, C=3, correct prediction: every AUC is undefined "
                  "(null); recall of the classes without targets is 0.", p, np.array([1])))

    rng = np.random.default_rng(1007)
    n, C = 30, 3
    t = np.arange(n) % C
    rng.shuffle(t)
    top = rng.uniform(0.55, 1.0, n)
    p = np.zeros((n, C))
    for i in range(n):
        rest = rng.dirichlet(np.ones(C - 1)) * (1 - top[i])
        p[i, [c for c in range(C) if c != t[i]]] = rest
        p[i, t[i]] = top[i]
    cases.append(("sl_c3_perfect", 1007, "C=3, n=30, every prediction correct with "
                  "confidence in (0.55, 1).", p.astype(np.float32), t))

    rng = np.random.default_rng(1008)
    t = np.arange(n) % C
    rng.shuffle(t)
    p = np.zeros((n, C))
    for i in range(n):
        wrong = (t[i] + 1 + rng.integers(0, C - 1)) % C
        other = [c for c in range(C) if c not in (t[i], wrong)][0]
        p[i, wrong] = rng.uniform(0.6, 0.95)
        p[i, t[i]] = rng.uniform(0.0, 1.0 - p[i, wrong]) * 0.5
        p[i, other] = 1.0 - p[i, wrong] - p[i, t[i]]
    assert (np.argmax(p, axis=1) != t).all()
    cases.append(("sl_c3_all_wrong", 1008, "C=3, n=30, every prediction wrong with "
                  "confidence in (0.6, 0.95).", p.astype(np.float32), t))

    # ECE bin boundaries: C=10, confidences float32(k/15) and its float32 neighbours, 1.0.
    C = 10
    confs = []
    for k in range(2, 15):
        c = np.float32(k / 15)
        confs += [np.nextafter(c, np.float32(0)), c, np.nextafter(c, np.float32(1))]
    confs.append(np.float32(1.0))
    confs = np.array(confs, dtype=np.float32)
    rng = np.random.default_rng(1009)
    n = confs.size
    p = np.zeros((n, C), dtype=np.float32)
    t = rng.integers(0, C, n)
    for i in range(n):
        # predicted class: target for even i, another class for odd i
        k = t[i] if i % 2 == 0 else (t[i] + 1) % C
        p[i, :] = (np.float64(1.0) - confs[i]) / (C - 1)
        p[i, k] = confs[i]
    assert (p.max(axis=1) == confs).all()
    cases.append(("sl_c10_ece_bin_edges", 1009, "C=10, n=40; the max probability is, for "
                  "k = 2..14, float32(k/15) and its two float32 neighbours, and 1.0. Binning "
                  "compares the float32 value (exactly up-cast) with the float64 edge k/15; "
                  "the other 9 probabilities share the remainder equally.", p, t))
    return cases


def ml_random(rng, n, C, prev_lo, prev_hi, sep, bias):
    prev = rng.uniform(prev_lo, prev_hi, C)
    while True:
        t = (rng.uniform(size=(n, C)) < prev[None, :]).astype(np.int64)
        if (t.sum(axis=0) > 0).all() and (t.sum(axis=0) < n).all():
            break
    logits = bias + sep * t + rng.normal(0.0, 1.0, (n, C))
    return sigmoid_f32(logits), t


def multi_label_cases():
    cases = []
    rng = np.random.default_rng(2001)
    s, t = ml_random(rng, 200, 19, 0.03, 0.3, 1.5, -1.5)
    cases.append(("ml_c19_n200", 2001, "ChestDR-like: C=19, n=200, class prevalences in "
                  "(0.03, 0.3), every class has positives and negatives; scores = "
                  "sigmoid(-1.5 + 1.5 y + N(0,1)).", s, t))

    rng = np.random.default_rng(2002)
    s, t = ml_random(rng, 200, 4, 0.05, 0.4, 2.0, -1.0)
    cases.append(("ml_c4_n200", 2002, "Endo-like: C=4, n=200; scores = sigmoid(-1 + 2 y + "
                  "N(0,1)).", s, t))

    rng = np.random.default_rng(2003)
    s, t = ml_random(rng, 40, 5, 0.2, 0.5, 1.5, -0.5)
    t[:, 2] = 0
    t[:, 4] = 1
    cases.append(("ml_c5_class_without_positives", 2003, "C=5, n=40; class 2 has no positive "
                  "(AP = 0, counted in the mAP mean; AUC undefined, skipped), class 4 has no "
                  "negative (AP = 100; AUC undefined, skipped).", s, t))

    rng = np.random.default_rng(2004)
    n, C = 30, 4
    t = (rng.uniform(size=(n, C)) < 0.4).astype(np.int64)
    t[0, :] = 1
    t[1, :] = 0
    q = np.clip(np.round(rng.uniform(0, 10, (n, C)) * 0.5 + 5 * t * rng.uniform(0, 1, (n, C))),
                0, 10)
    s = (q / 10.0).astype(np.float32)
    s[2, :] = 0.5
    s[3, :] = 0.0
    s[4, :] = 1.0
    cases.append(("ml_c4_ties", 2004, "C=4, n=30, scores on a 0.1 grid (many ties across "
                  "samples, several exactly 0.5 = threshold, 0.0 and 1.0). mAP_pct (mmcls order, "
                  "ties broken by lower sample index first) differs from the tie-aware AP.",
                  s, t))

    s = np.array([[0.7, 0.2, 0.3, 0.6]], dtype=np.float32)
    t = np.array([[1, 0, 1, 0]])
    cases.append(("ml_n1", None, "n=1, C=4: AP is 100 for a positive class and 0 for a "
                  "negative one; every AUC undefined.", s, t))

    rng = np.random.default_rng(2006)
    n, C = 40, 4
    while True:
        t = (rng.uniform(size=(n, C)) < 0.4).astype(np.int64)
        if (t.sum(axis=0) > 0).all() and (t.sum(axis=0) < n).all():
            break
    s = np.where(t == 1, rng.uniform(0.5, 1.0, (n, C)), rng.uniform(0.0, 0.499, (n, C)))
    cases.append(("ml_c4_perfect", 2006, "C=4, n=40: every positive scores in [0.5, 1), every "
                  "negative in [0, 0.499).", s.astype(np.float32), t))
    s = np.where(t == 1, rng.uniform(0.0, 0.499, (n, C)), rng.uniform(0.5, 1.0, (n, C)))
    cases.append(("ml_c4_all_wrong", 2006, "C=4, n=40, same targets as ml_c4_perfect: every "
                  "positive scores in [0, 0.499), every negative in [0.5, 1).",
                  s.astype(np.float32), t))

    rng = np.random.default_rng(2008)
    n, C = 20, 3
    t = (rng.uniform(size=(n, C)) < 0.4).astype(np.int64)
    t[rng.uniform(size=(n, C)) < 0.2] = -1
    t[0, :] = [1, 1, 1]
    s = sigmoid_f32(rng.normal(0, 1.5, (n, C)) + 1.0 * (t == 1))
    cases.append(("ml_c3_difficult", 2008, "C=3, n=20 with 'difficult' labels -1 (mmcls "
                  "convention; MedFMC data has none): AP ignores -1 samples in the precision "
                  "denominator; CP/CR/OP/OR/F1 treat -1 as 0; AUC and ECE are not defined "
                  "(null).", s, t))
    return cases


def feature_cases():
    cases = []
    rng = np.random.default_rng(3001)
    n, D, C = 200, 16, 4
    y = np.concatenate([np.arange(C), rng.integers(0, C, n - C)])
    rng.shuffle(y)
    centers = rng.normal(0, 2.0, (C, D))
    X = centers[y] + rng.normal(0, 1.0, (n, D)) * rng.uniform(0.5, 2.0, D)
    cases.append(("feat_c4_n200_d16", 3001, "4 Gaussian clusters, n=200, D=16, anisotropic "
                  "noise.", X.astype(np.float32), y))

    rng = np.random.default_rng(3002)
    n, D, C = 95, 8, 19
    y = np.concatenate([np.arange(C), rng.integers(0, C - 2, n - C)])  # classes 17, 18: 1 member
    rng.shuffle(y)
    X = rng.normal(0, 1.0, (C, D))[y] * 3.0 + rng.normal(0, 1.0, (n, D))
    cases.append(("feat_c19_n95_d8", 3002, "19 classes, n=95, D=8; classes 17 and 18 have a "
                  "single member (they add 0 to tr(S_W)).", X.astype(np.float32), y))

    X = np.array([[0, 0], [2, 0], [0, 2], [2, 2], [10, 10], [12, 10], [10, 12], [12, 12]],
                 dtype=np.float32)
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    cases.append(("feat_c2_hand", None, "Hand-checkable: two squares of side 2 centred at "
                  "(1,1) and (11,11): tr(S_W) = 2, tr(S_B) = 50, ratio 25.", X, y))

    rng = np.random.default_rng(3004)
    X = rng.normal(0, 1, (25, 6)).astype(np.float32)
    y = np.zeros(25, dtype=np.int64)
    cases.append(("feat_single_class", 3004, "One class only: tr(S_B) = 0, ratio 0.", X, y))

    rng = np.random.default_rng(3005)
    centers = rng.normal(0, 1, (3, 5)).astype(np.float32)
    y = np.array([0, 0, 1, 1, 1, 2, 2, 0, 2, 1])
    X = centers[y]
    cases.append(("feat_identical_within_class", 3005, "Members of a class are identical: "
                  "tr(S_W) = 0 and the ratio is undefined (null).", X, y))

    X = np.array([[1.5, -2.0, 0.25]], dtype=np.float32)
    cases.append(("feat_n1", None, "n = 1: all traces 0, ratio and PCA undefined (null).",
                  X, np.array([0])))
    return cases


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------

def versions():
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
    }


def header(kind, units, notes):
    return {
        "schema_version": 1,
        "kind": kind,
        "generator": "tools/golden/make_metric_golden.py",
        "versions": versions(),
        "conventions": notes,
        "units": units,
    }


def build():
    out = {}

    cases = []
    for name, seed, desc, p, t in single_label_cases():
        prob_json = f32_json(p)
        prob = read_f32(prob_json)
        t = np.asarray(t, dtype=np.int64)
        C = prob.shape[1]
        cases.append({
            "name": name, "seed": seed, "description": desc,
            "n": int(prob.shape[0]), "num_classes": int(C),
            "inputs": {"prob": prob_json, "target": t.tolist()},
            "expected": single_label_expected(prob, t, C),
        })
    out["single_label.json"] = dict(header(
        "single_label",
        {"*_pct": "percent (0..100), as mmcls/MedFMC report",
         "ece, ece_bin_mean_confidence, ece_bin_accuracy": "fractions (0..1)"},
        "See tests/fixtures/metrics/README.md. argmax ties -> lowest class index; "
        "ECE bins (k/15, (k+1)/15], confidence 0 -> bin 0, float32 input compared in float64 "
        "with the float64 edge k/15; empty bins -> null mean confidence / accuracy; undefined "
        "AUC -> null."), cases=cases)

    cases = []
    for name, seed, desc, s, t in multi_label_cases():
        score_json = f32_json(s)
        score = read_f32(score_json)
        t = np.asarray(t, dtype=np.int64)
        cases.append({
            "name": name, "seed": seed, "description": desc,
            "n": int(score.shape[0]), "num_classes": int(score.shape[1]),
            "inputs": {"score": score_json, "target": t.tolist()},
            "expected": multi_label_expected(score, t),
        })
    out["multi_label.json"] = dict(header(
        "multi_label",
        {"*_pct": "percent (0..100), as mmcls/MedFMC report",
         "ece_per_class, classwise_ece": "fractions (0..1)"},
        "See tests/fixtures/metrics/README.md. mAP: mmcls average_precision, descending "
        "stable order (ties: lower sample index first), class without positives -> AP 0 "
        "counted in the mean; AUC: classes with a single target value skipped; threshold "
        "score >= 0.5; ECE bins as in single_label.json."), cases=cases)

    cases = []
    for name, seed, desc, X, y in feature_cases():
        x_json = f32_json(X)
        Xr = read_f32(x_json)
        y = np.asarray(y, dtype=np.int64)
        cases.append({
            "name": name, "seed": seed, "description": desc,
            "n": int(Xr.shape[0]), "dim": int(Xr.shape[1]),
            "inputs": {"features": x_json, "label": y.tolist()},
            "expected": feature_expected(Xr, y),
        })
    out["features.json"] = dict(header(
        "features",
        {"trace_sw, trace_sb, trace_st": "squared feature units, normalised by 1/n",
         "ratio_sb_sw, pca_explained_variance_ratio": "fractions / plain ratios"},
        "See tests/fixtures/metrics/README.md. tr(S_W) = (1/n) sum_c sum_{i in c} "
        "||x_i - mu_c||^2, tr(S_B) = (1/n) sum_c n_c ||mu_c - mu||^2; PCA on centred "
        "features, no whitening."), cases=cases)
    return out


def dump(obj, indent=0):
    """Pretty JSON: objects indented, arrays of scalars on one line, matrices one row a line."""
    pad = "  " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad}  {json.dumps(k)}: {dump(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if obj and all(isinstance(x, list) for x in obj) and \
                all(not isinstance(y, (list, dict)) for x in obj for y in x):
            rows = [pad + "  " + json.dumps(x, separators=(",", ":")) for x in obj]
            return "[\n" + ",\n".join(rows) + "\n" + pad + "]"
        if any(isinstance(x, (list, dict)) for x in obj):
            rows = [pad + "  " + dump(x, indent + 1) for x in obj]
            return "[\n" + ",\n".join(rows) + "\n" + pad + "]"
        return json.dumps(obj, separators=(", ", ": "), allow_nan=False)
    return json.dumps(obj, allow_nan=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--check", action="store_true",
                    help="compare with the files on disk instead of writing them")
    args = ap.parse_args()
    files = build()
    bad = 0
    for fname, obj in files.items():
        text = dump(obj) + "\n"
        json.loads(text)  # valid JSON
        path = args.out / fname
        if args.check:
            same = path.exists() and path.read_text() == text
            print(f"{'ok  ' if same else 'DIFF'} {path}")
            bad += not same
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path} ({len(text.encode())} bytes)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
