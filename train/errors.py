#!/usr/bin/env python3
"""Sorts a model's strict false positives on a MACCROBAT split into kinds, to see what limits it.

    python3 train/errors.py [--split dev] [--model DIR] [--cli target/release/biomed-ner]

Runs the CLI (the same pipeline as the extension) on the split's documents and compares its
entities with the gold ones the way `biomed-ner eval` does (type and whitespace-trimmed span; a
discontinuous entity is its whole extent). Each false positive gets one kind:
- type: a gold entity has exactly its span, with another type;
- inside: it lies inside a gold entity of its type (a fragment, or too short);
- covers: it covers a gold entity of its type (too long);
- crosses: it overlaps a gold entity of its type, neither inside nor covering;
- other type: it overlaps only gold entities of other types;
- none: it overlaps no gold entity.
Separately, "mid-word" counts those that start or end between two letters or digits, i.e. where
the pieces of one word were given different entity types (the `simple` aggregation then cuts the
word).
"""
import argparse
import collections
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def trim(text, s, e):
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return (s, e) if s < e else None


def gold(root, doc_id, text):
    out = set()
    for line in open(os.path.join(root, doc_id + ".ann"), encoding="utf-8"):
        if not line.startswith("T"):
            continue
        ty, ranges = line.rstrip("\n").split("\t")[1].split(" ", 1)
        frags = [tuple(map(int, f.split())) for f in ranges.split(";")]
        span = trim(text, frags[0][0], frags[-1][1])
        if span:
            out.add((ty,) + span)
    return out


def kind(pred, golds):
    ty, s, e = pred
    if any(g[1] == s and g[2] == e for g in golds):
        return "type"
    same = [g for g in golds if g[0] == ty and g[1] < e and s < g[2]]
    if any(g[1] <= s and e <= g[2] for g in same):
        return "inside"
    if any(s <= g[1] and g[2] <= e for g in same):
        return "covers"
    if same:
        return "crosses"
    return "other type" if any(g[1] < e and s < g[2] for g in golds) else "none"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maccrobat", default=os.path.join(HERE, "..", "data", "maccrobat"))
    ap.add_argument("--split", default="dev")
    ap.add_argument("--model", default=None, help="model folder (default: the CLI's bundled model)")
    ap.add_argument("--cli", default=os.path.join(HERE, "..", "target", "release", "biomed-ner"))
    args = ap.parse_args()
    rows = open(os.path.join(args.maccrobat, "SPLIT.tsv"), encoding="utf-8").read().splitlines()[1:]
    ids = sorted(r.split("\t")[0] for r in rows if r.split("\t")[1] == args.split)
    texts = [open(os.path.join(args.maccrobat, i + ".txt"), encoding="utf-8").read() for i in ids]
    cmd = [args.cli] + (["--model", args.model] if args.model else [])
    lines = subprocess.run(cmd, input="".join(json.dumps({"text": t}) + "\n" for t in texts),
                           capture_output=True, text=True, check=True).stdout.splitlines()
    kinds, tp, npred, ngold, midword = collections.Counter(), 0, 0, 0, 0
    for doc_id, text, line in zip(ids, texts, lines):
        golds = gold(args.maccrobat, doc_id, text)
        preds = set()
        for ent in json.loads(line):
            span = trim(text, ent["start"], ent["end"])
            if span:
                preds.add((ent["entity_group"],) + span)
        tp += len(preds & golds)
        npred += len(preds)
        ngold += len(golds)
        for p in preds - golds:
            kinds[kind(p, golds)] += 1
            _, s, e = p
            midword += (s > 0 and text[s - 1].isalnum() and text[s].isalnum()) or \
                       (e < len(text) and text[e].isalnum() and text[e - 1].isalnum())
    fp = npred - tp
    report = {"split": args.split, "pred": npred, "gold": ngold, "tp": tp, "false_positives": fp,
              "kinds": dict(kinds.most_common()), "mid_word": midword,
              "mid_word_share": round(midword / max(fp, 1), 3)}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
