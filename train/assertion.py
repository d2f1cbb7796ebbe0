#!/usr/bin/env python3
"""Trains the learned stage of clinical assertion: a multinomial logistic regression over the
features the rule engine computes for each entity (its verdict, the triggers near the entity
with direction, side and distance, the words around it, its type), on the gold event spans of
MACCROBAT's training split, its L2 strength chosen on the dev split.

    cargo build --release -p biomed-ner-cli
    for s in train dev; do
        BIOMED_NER_ASSERTION=rules BIOMED_NER_ASSERTION_FEATURES=/tmp/assertion-$s.jsonl \\
            target/release/biomed-ner eval --assertion --brat data/maccrobat \\
            --split-file data/maccrobat/SPLIT.tsv --split $s >/dev/null
    done
    python3 train/assertion.py /tmp/assertion-train.jsonl /tmp/assertion-dev.jsonl \\
        crates/deberta-ner/src/assertion_model.json

Needs numpy. Deterministic (full-batch gradient descent from zero).
"""
import json
import sys

import numpy as np

CLASSES = ["present", "absent", "possible"]


def read(path):
    rows = [json.loads(l) for l in open(path, encoding="utf-8")]
    return [r["features"] for r in rows], np.array([CLASSES.index(r["label"]) for r in rows])


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
    z = np.tile(b, (n, 1))
    np.add.at(z, rows, w[cols])
    return z


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
        gw = l2 * w
        np.add.at(gw, cols, g[rows])
        gb = g.sum(0)
        # Adam
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
    train_f, train_y = read(sys.argv[1])
    dev_f, dev_y = read(sys.argv[2])
    counts = {}
    for fs in train_f:
        for f in set(fs):
            counts[f] = counts.get(f, 0) + 1
    vocab = {f: i for i, f in enumerate(sorted(f for f, c in counts.items() if c >= 2))}
    xt, xd = sparse(train_f, vocab), sparse(dev_f, vocab)
    best = None
    for l2 in [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]:
        w, b = fit(xt, train_y, len(vocab), l2)
        pred = scores(xd, w, b).argmax(1)
        score = f1(dev_y, pred, 1) + 0.5 * f1(dev_y, pred, 2)
        print(f"l2={l2:g}: dev absent F1 {f1(dev_y, pred, 1):.3f}, possible F1 {f1(dev_y, pred, 2):.3f}", file=sys.stderr)
        if best is None or score > best[0]:
            best = (score, l2, w, b)
    _, l2, w, b = best
    names = sorted(vocab, key=vocab.get)
    weights = {f: [round(float(v), 4) for v in w[vocab[f]]] for f in names if np.abs(w[vocab[f]]).max() >= 1e-3}
    out = {"classes": CLASSES, "l2": l2, "features": len(weights), "bias": [round(float(v), 4) for v in b],
           "weights": weights}
    with open(sys.argv[3], "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    print(f"chose l2={l2:g}; {len(weights)} features", file=sys.stderr)


if __name__ == "__main__":
    main()
