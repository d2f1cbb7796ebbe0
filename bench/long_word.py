#!/usr/bin/env python3
"""Is one very long word slower than its tokens? Times the CLI on a 100,000-character word of
random letters and on MACCROBAT text cut to about as many tokens, side by side, and prints the
seconds per 1,000 tokens of each and their ratio.

    python3 bench/long_word.py [--model models/maccrobat-small] [--cli target/release/biomed-ner]
                               [--threads 2] [--chars 100000] [--runs 2]
                               [--maccrobat data/maccrobat]

Needs the `tokenizers` Python package (to count tokens with the model's own tokenizer.json).
"""
import argparse
import glob
import json
import os
import random
import subprocess
import tempfile

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def seconds(args, text):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write(json.dumps({"text": text}) + "\n")
    cmd = [args.cli, "--model", args.model, "--threads", str(args.threads), "--stats"]
    best = None
    for _ in range(args.runs):
        with open(f.name) as stdin:
            p = subprocess.run(cmd, stdin=stdin, capture_output=True, text=True, check=True)
        s = json.loads(p.stderr.strip().splitlines()[-1])["annotate_seconds"]
        best = s if best is None else min(best, s)
    os.unlink(f.name)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models/maccrobat-small"))
    ap.add_argument("--cli", default=os.path.join(ROOT, "target/release/biomed-ner"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chars", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--maccrobat", default=os.path.join(ROOT, "data", "maccrobat"))
    args = ap.parse_args()
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    count = lambda s: len(tok.encode(s, add_special_tokens=False).ids)
    rng = random.Random(1)
    word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(args.chars))
    want = count(word)
    # Whole reports until the text has as many tokens as the word, then cut by characters.
    text = ""
    for path in sorted(glob.glob(os.path.join(args.maccrobat, "*.txt"))):
        text += open(path, encoding="utf-8").read() + "\n"
        if count(text) >= want:
            break
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi) // 2
        if count(text[:mid]) < want:
            lo = mid + 1
        else:
            hi = mid
    text = text[:lo]
    rows = []
    for name, s in (("random word", word), ("clinical text", text)):
        n, t = count(s), seconds(args, s)
        rows.append((name, len(s), n, t, 1000 * t / n))
        print(f"{name:14} {len(s):>8} chars {n:>7} tokens {t:7.2f} s  {1000 * t / n:.3f} s per 1,000 tokens")
    print(f"per-token time, word / clinical text: {rows[0][4] / rows[1][4]:.2f}")


if __name__ == "__main__":
    main()
