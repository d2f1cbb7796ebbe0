#!/usr/bin/env python3
"""CPU throughput: the biomed-ner CLI against the Hugging Face pipeline (PyTorch) on the same
model, texts and thread count, at batch 1 and 8, side by side in one run.

    python3 bench/make_base_model.py /tmp/biomed-bench
    python3 bench/cli_vs_pytorch.py /tmp/biomed-bench [--threads 2] [--cli target/release/biomed-ner]

Tokens are counted with the model's tokenizer, special tokens included. Model loading is
excluded on both sides (the CLI reports it separately with --stats).
"""
import argparse
import json
import os
import platform
import subprocess
import time

import torch
import transformers
from transformers import AutoTokenizer, pipeline


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cli", default="target/release/biomed-ner")
    ap.add_argument("--batches", default="1,8")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = os.path.join(a.dir, "model")
    lines = open(os.path.join(a.dir, "sentences.jsonl"), encoding="utf-8").read().splitlines()
    texts = [json.loads(l)["text"] for l in lines]
    tok = AutoTokenizer.from_pretrained(model)
    tokens = sum(len(tok(t)["input_ids"]) for t in texts)
    nlp = pipeline("token-classification", model=model, aggregation_strategy="simple", device="cpu")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {a.threads} threads; "
          f"torch {torch.__version__}, transformers {transformers.__version__}; "
          f"{len(texts)} texts, {tokens} tokens ({tokens / len(texts):.1f} per text)")
    results = {}
    for b in [int(x) for x in a.batches.split(",")]:
        nlp(texts[:8], batch_size=b)  # warm-up
        t0 = time.perf_counter()
        nlp(texts, batch_size=b)
        torch_s = time.perf_counter() - t0
        env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
        p = subprocess.run([a.cli, "--model", model, "--threads", str(a.threads), "--batch-size", str(b), "--stats"],
                           input="\n".join(lines) + "\n", capture_output=True, text=True, check=True, env=env)
        stats = json.loads(p.stderr.strip().splitlines()[-1])
        ours_s = stats["annotate_seconds"]
        r = {"pytorch_tok_s": round(tokens / torch_s, 1), "biomed_ner_tok_s": round(tokens / ours_s, 1),
             "ratio": round(torch_s / ours_s, 2), "biomed_ner_load_s": round(stats["load_seconds"], 2)}
        results[f"batch_{b}"] = r
        print(f"batch {b}: pytorch {r['pytorch_tok_s']} tok/s, biomed-ner {r['biomed_ner_tok_s']} tok/s, "
              f"ratio {r['ratio']}x")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
