#!/usr/bin/env python3
"""Base-sized parity: the biomed-ner CLI against transformers' pipeline on the same model and
texts (made by bench/make_base_model.py). Prints the share of lines with identical entities
(type, start, end after the engine's documented start trim), the worst score difference, and
checks that every `word` is `text[start:end]`.

    python3 bench/parity_base.py DIR [--cli target/release/biomed-ner] [--threads 2] [--stride 128]
    python3 bench/parity_base.py DIR --ours FILE   (entities made elsewhere, one JSON array a line;
                                                   bench/sql_parity.sh uses this for the extension)
"""
import argparse
import json
import os
import subprocess
import sys

import torch
from transformers import pipeline


def trimmed(text, ents):
    out = []
    for e in ents:
        s, end = int(e["start"]), int(e["end"])
        while s < end and text[s].isspace():
            s += 1
        if s < end:
            out.append((e["entity_group"], s, end, float(e["score"])))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--cli", default="target/release/biomed-ner")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--file", default="parity.jsonl")
    ap.add_argument("--dtype", default="f32")
    ap.add_argument("--ours", help="read our entities from this file instead of running the CLI")
    ap.add_argument("--stride", type=int, help="the pipeline's stride, for models with absolute positions "
                    "(BERT family): texts over their 512 tokens then go in windows, as the CLI's do")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = os.path.join(a.dir, "model")
    lines = open(os.path.join(a.dir, a.file), encoding="utf-8").read().splitlines()
    texts = [json.loads(l)["text"] for l in lines]
    if a.ours:
        out = open(a.ours, encoding="utf-8").read()
    else:
        out = subprocess.run([a.cli, "--model", model, "--threads", str(a.threads), "--dtype", a.dtype],
                             input="\n".join(lines) + "\n", capture_output=True, text=True, check=True).stdout
    ours = [json.loads(l) for l in out.splitlines()]
    assert len(ours) == len(texts), (len(ours), len(texts))
    windows = {} if a.stride is None else {"stride": a.stride}
    nlp = pipeline("token-classification", model=model, aggregation_strategy="simple", device="cpu", **windows)
    same, worst, bad_words, differing = 0, 0.0, 0, []
    for i, (text, mine) in enumerate(zip(texts, ours)):
        theirs = trimmed(text, nlp(text)) if text else []
        for e in mine:
            bad_words += e["word"] != text[e["start"]:e["end"]]
        key = lambda es: [(g, s, e) for g, s, e, _ in es]
        mine_t = [(e["entity_group"], e["start"], e["end"], e["score"]) for e in mine]
        if key(mine_t) == key(theirs):
            same += 1
            worst = max([worst] + [abs(x[3] - y[3]) for x, y in zip(mine_t, theirs)])
        else:
            differing.append(i)
    share = same / len(texts)
    print(json.dumps({"lines": len(texts), "identical": same, "share": round(share, 4),
                      "worst_score_diff": worst, "word_not_slice": bad_words, "dtype": a.dtype,
                      "differing_lines": differing[:20]}))
    sys.exit(0 if share >= 0.99 and worst <= 1e-3 and bad_words == 0 else 1)


if __name__ == "__main__":
    main()
