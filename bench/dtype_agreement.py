#!/usr/bin/env python3
"""How often f16 and bf16 give the same entities as f32, for biomed-ner and for PyTorch, on CPU.

    python3 bench/dtype_agreement.py [--model models/maccrobat-small] [--texts FILE.jsonl]
                                     [--cli target/release/biomed-ner] [--threads 2]

Each engine is compared with its own f32 run (the texts whose entity lists, type and span, are
identical, and the f32 entities kept), so the figures say what the narrower dtype costs, not how the
two engines differ. PyTorch runs `transformers`' token-classification pipeline (`simple`, stride
128) with the model loaded in each dtype. Texts: JSON lines {"text": ...}, e.g. the 318 parity lines
that `bench/make_base_model.py DIR` writes to DIR/parity.jsonl.
"""
import argparse
import json
import os
import sys

from gpu_bench import DTYPES, entities

HERE = os.path.dirname(os.path.abspath(__file__))


def ours(args, lines):
    out = {}
    for dt in DTYPES:
        got = entities(args.cli, args.model, "cpu", dt, lines, ("--threads", str(args.threads)))
        if got is None:
            sys.exit(1)
        out[dt] = got
    return out


def pytorch(args, texts):
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline
    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.model)
    out = {}
    for dt, tdt in DTYPES.items():
        model = AutoModelForTokenClassification.from_pretrained(args.model, torch_dtype=tdt).eval()
        pipe = pipeline("token-classification", model=model, tokenizer=tok, aggregation_strategy="simple",
                        stride=128, device="cpu")
        out[dt] = [[(e["entity_group"], e["start"], e["end"]) for e in pipe(t)] if t.strip() else [] for t in texts]
    return out


def report(name, runs):
    base = runs["f32"]
    for dt in [d for d in DTYPES if d != "f32"]:
        same = sum(a == b for a, b in zip(base, runs[dt]))
        kept = sum(len(set(a) & set(b)) for a, b in zip(base, runs[dt]))
        total = sum(len(a) for a in base)
        print(f"{name:10} {dt:5} vs f32: {same}/{len(base)} texts identical ({100 * same / len(base):.1f}%); "
              f"{kept}/{total} entities kept")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(HERE, "..", "models", "maccrobat-small"))
    ap.add_argument("--texts", default="/tmp/biomed-bench/parity.jsonl")
    ap.add_argument("--cli", default=os.path.join(HERE, "..", "target", "release", "biomed-ner"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    lines = open(args.texts, encoding="utf-8").read()
    texts = [json.loads(l)["text"] for l in lines.splitlines()]
    report("biomed-ner", ours(args, lines))
    report("PyTorch", pytorch(args, texts))


if __name__ == "__main__":
    main()
