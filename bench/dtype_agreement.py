#!/usr/bin/env python3
"""How often f16, bf16 and int8 give the same entities as f32, for biomed-ner and for PyTorch, on
CPU; with --maccrobat, also each dtype's strict F1 on the MACCROBAT test split (biomed-ner).

    python3 bench/dtype_agreement.py [--model models/maccrobat-small] [--texts FILE.jsonl]
                                     [--cli target/release/biomed-ner] [--threads 2]
                                     [--maccrobat data/maccrobat]

Each engine is compared with its own f32 run (the texts whose entity lists, type and span, are
identical, and the f32 entities kept), so the figures say what the narrower dtype costs, not how the
two engines differ. PyTorch runs `transformers`' token-classification pipeline (`simple`, stride
128) with the model loaded in each dtype. Texts: JSON lines {"text": ...}, e.g. the 318 parity lines
that `bench/make_base_model.py DIR` writes to DIR/parity.jsonl. PyTorch's int8 is its dynamic
quantisation of every `nn.Linear` (`torch.ao.quantization.quantize_dynamic`, qint8 weights).
"""
import argparse
import json
import os
import subprocess
import sys

from gpu_bench import DTYPES, entities

HERE = os.path.dirname(os.path.abspath(__file__))
OURS = list(DTYPES) + ["int8"]


def ours(args, lines):
    out = {}
    for dt in OURS:
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
    for dt in OURS:
        model = AutoModelForTokenClassification.from_pretrained(args.model, torch_dtype=DTYPES.get(dt)).eval()
        if dt == "int8":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        pipe = pipeline("token-classification", model=model, tokenizer=tok, aggregation_strategy="simple",
                        stride=128, device="cpu")
        out[dt] = [[(e["entity_group"], e["start"], e["end"]) for e in pipe(t)] if t.strip() else [] for t in texts]
    return out


def report(name, runs):
    base = runs["f32"]
    for dt in [d for d in runs if d != "f32"]:
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
    ap.add_argument("--maccrobat", help="brat folder with SPLIT.tsv: strict F1 of each dtype on its test split")
    args = ap.parse_args()
    lines = open(args.texts, encoding="utf-8").read()
    texts = [json.loads(l)["text"] for l in lines.splitlines()]
    report("biomed-ner", ours(args, lines))
    report("PyTorch", pytorch(args, texts))
    if args.maccrobat:
        for dt in OURS:
            p = subprocess.run([args.cli, "eval", "--model", args.model, "--dtype", dt, "--threads", str(args.threads),
                                "--brat", args.maccrobat, "--split-file", os.path.join(args.maccrobat, "SPLIT.tsv"),
                                "--split", "test"], capture_output=True, text=True, check=True)
            micro = json.loads(p.stdout.strip().splitlines()[-1])["strict"]["micro"]
            print(f"biomed-ner {dt:5} MACCROBAT test split: strict F1 {micro['f1']:.4f} "
                  f"(precision {micro['precision']:.4f}, recall {micro['recall']:.4f})")


if __name__ == "__main__":
    main()
