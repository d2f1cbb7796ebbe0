#!/usr/bin/env python3
"""Trains the learned stage of clinical assertion: a multinomial logistic regression over the
features the rule engine computes for each entity (its verdict, the triggers within reach with
category, direction, side, distance in tokens and in entities, the words between, the words
around and inside the entity, its type and place in the sentence), on the gold event spans of
MACCROBAT's train and dev splits. The L2 strength, the least count of a feature and the margin
by which "absent" and "possible" must beat "present" are chosen by 5-fold cross-validation over
the reports of train and dev (folds by report); the test split is never read.

    cargo build -p biomed-ner-cli
    for s in train dev; do
        BIOMED_NER_ASSERTION=rules BIOMED_NER_ASSERTION_FEATURES=/tmp/assertion-$s.jsonl \\
            $CARGO_TARGET_DIR/debug/biomed-ner eval --assertion --brat data/maccrobat \\
            --split-file data/maccrobat/SPLIT.tsv --split $s >/dev/null
    done
    python3 train/assertion.py /tmp/assertion-train.jsonl /tmp/assertion-dev.jsonl \\
        crates/biomed-ner-engine/src/assertion_model.json

Needs numpy. Deterministic (full-batch Adam from zero, folds by a fixed order of reports).
"""
import json
import sys

import numpy as np

CLASSES = ["present", "absent", "possible"]


def read(paths):
    rows = [json.loads(l) for p in paths for l in open(p, encoding="utf-8")]
    return ([r["doc"] for r in rows], [r["features"] for r in rows],
            np.array([CLASSES.index(r["label"]) for r in rows]))


def vocabulary(feats, min_count):
    counts = {}
    for fs in feats:
        for f in set(fs):
            counts[f] = counts.get(f, 0) + 1
    return {f: i for i, f in enumerate(sorted(f for f, c in counts.items() if c >= min_count))}


def sparse(feats, vocab):
    """Each row's active feature indices, flattened, with the row of each."""
    cols, rows = [], []
    for i, fs in enumerate(feats):
        idx = sorted({vocab[f] for f in fs if f in vocab})
        cols += idx
        rows += [i] * len(idx)
    return np.array(cols, dtype=np.int64), np.array(rows, dtype=np.int64), len(feats)


def scores(x, w, b):
    cols, rows, n = x
    return b + np.stack([np.bincount(rows, weights=w[cols, c], minlength=n) for c in range(3)], 1)


def fit(x, y, d, l2, steps=300, lr=0.05):
    cols, rows, n = x
    w, b = np.zeros((d, 3)), np.zeros(3)
    onehot = np.eye(3)[y]
    mw, vw, mb, vb = 0, 0, 0, 0
    for t in range(1, steps + 1):
        z = scores(x, w, b)
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / n
        gw = l2 * w + np.stack([np.bincount(cols, weights=g[rows, c], minlength=d) for c in range(3)], 1)
        gb = g.sum(0)
        mw, vw = 0.9 * mw + 0.1 * gw, 0.999 * vw + 0.001 * gw * gw
        mb, vb = 0.9 * mb + 0.1 * gb, 0.999 * vb + 0.001 * gb * gb
        w -= lr * (mw / (1 - 0.9**t)) / (np.sqrt(vw / (1 - 0.999**t)) + 1e-8)
        b -= lr * (mb / (1 - 0.9**t)) / (np.sqrt(vb / (1 - 0.999**t)) + 1e-8)
    return w, b


def f1(y, pred, c):
    tp = ((pred == c) & (y == c)).sum()
    p = tp / max((pred == c).sum(), 1)
    r = tp / max((y == c).sum(), 1)
    return 0 if p + r == 0 else 2 * p * r / (p + r)


def main():
    docs, feats, y = read(sys.argv[1:3])
    order = sorted(set(docs))
    fold_of = {d: i % 5 for i, d in enumerate(order)}
    folds = np.array([fold_of[d] for d in docs])
    best = None
    for min_count in [1, 2]:
        for l2 in [1e-4, 3e-4, 1e-3, 3e-3]:
            z = np.zeros((len(y), 3))
            for k in range(5):
                tr, te = np.where(folds != k)[0], np.where(folds == k)[0]
                vocab = vocabulary([feats[i] for i in tr], min_count)
                w, b = fit(sparse([feats[i] for i in tr], vocab), y[tr], len(vocab), l2)
                z[te] = scores(sparse([feats[i] for i in te], vocab), w, b)
            for margin in [0.0, 0.25, 0.5]:
                pred = (z - np.array([margin, 0, 0])).argmax(1)
                fa, fp = f1(y, pred, 1), f1(y, pred, 2)
                print(f"min_count={min_count} l2={l2:g} margin={margin}: cv absent F1 {fa:.3f}, possible F1 {fp:.3f}",
                      file=sys.stderr)
                if best is None or fa + 0.5 * fp > best[0]:
                    best = (fa + 0.5 * fp, min_count, l2, margin)
    _, min_count, l2, margin = best
    vocab = vocabulary(feats, min_count)
    w, b = fit(sparse(feats, vocab), y, len(vocab), l2)
    b = b - np.array([margin, 0, 0])
    names = sorted(vocab, key=vocab.get)
    weights = {f: [round(float(v), 4) for v in w[vocab[f]]] for f in names if np.abs(w[vocab[f]]).max() >= 1e-3}
    out = {"classes": CLASSES, "l2": l2, "min_count": min_count, "margin": margin, "features": len(weights),
           "bias": [round(float(v), 4) for v in b], "weights": weights}
    with open(sys.argv[3], "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    print(f"chose min_count={min_count} l2={l2:g} margin={margin}; {len(weights)} features", file=sys.stderr)


if __name__ == "__main__":
    main()
