#!/usr/bin/env python3
"""CPU throughput of every engine a user could run on the same model, side by side in one run:
the Hugging Face pipeline on PyTorch (f32, and bf16 autocast), the same pipeline on ONNX Runtime f32 and int8 (the
Optimum route: export to ONNX, every graph optimisation, dynamic int8 quantisation of the
matrix products with `quantize_dynamic`), and the biomed-ner CLI in f32, bf16 and int8.

    python3 bench/make_base_model.py /tmp/biomed-bench
    python3 bench/cpu_engines.py /tmp/biomed-bench [--threads 2] [--batches 1,8] [--rounds 2]
                                 [--cli target/release/biomed-ner] [--engines ...]

Every engine reads the same texts (DIR/sentences.jsonl), with the same thread count and batch
size, and does the whole job: tokenisation, forward passes, and aggregation into entities
(`simple`). Model loading, ONNX export and quantisation are excluded. The ONNX Runtime engines
run inside the transformers pipeline (a small module hands the pipeline's batches to an
`InferenceSession`), so pre- and post-processing are PyTorch's own. Rounds alternate the engines
(A B C ... A B C ...) and the best round of each is reported, with the spread. Prints one line
per engine and batch size, the ratios, and a JSON summary.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import warnings

import torch
import transformers
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline
from transformers.modeling_outputs import TokenClassifierOutput

ENGINES = ["pytorch", "pytorch-bf16", "ort-f32", "ort-int8", "biomed-ner-f32", "biomed-ner-bf16", "biomed-ner-int8"]
# Also runnable: biomed-ner-bf16-avx512 and biomed-ner-int8-vnni, this engine with its AVX-512
# kernels where the CPU has AMX tiles (DEBERTA_NER_BF16_KERNEL=avx512, DEBERTA_NER_INT8_KERNEL=vnni).
KERNEL_ENV = {"avx512": ("DEBERTA_NER_BF16_KERNEL", "avx512"), "vnni": ("DEBERTA_NER_INT8_KERNEL", "vnni")}


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def export_onnx(model_dir, out_dir):
    """The model as ONNX (dynamic batch and length), and its dynamic int8 quantisation."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    f32 = os.path.join(out_dir, "model.onnx")
    model = AutoModelForTokenClassification.from_pretrained(model_dir).eval()
    ids = torch.ones((2, 16), dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(model, (ids, torch.ones_like(ids)), f32, input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "len"}, "attention_mask": {0: "batch", 1: "len"},
                                        "logits": {0: "batch", 1: "len"}})
    int8 = os.path.join(out_dir, "model.int8.onnx")
    quantize_dynamic(f32, int8, weight_type=QuantType.QInt8)
    return f32, int8


class OrtModel(torch.nn.Module):
    """What the pipeline calls as its model, running an ONNX Runtime session."""

    def __init__(self, path, config, threads):
        super().__init__()
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.config = config
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    @property
    def dtype(self):
        return torch.float32

    @property
    def device(self):
        return torch.device("cpu")

    def can_generate(self):
        return False

    def forward(self, input_ids=None, attention_mask=None, **_):
        logits = self.session.run(["logits"], {"input_ids": input_ids.numpy(),
                                               "attention_mask": attention_mask.numpy()})[0]
        return TokenClassifierOutput(logits=torch.from_numpy(logits))


def make_runner(engine, args, model_dir, tok, lines, texts, onnx):
    if engine.startswith("biomed-ner"):
        parts = engine.split("-")
        dtype, kernel = parts[2], (parts[3] if len(parts) > 3 else None)

        def run(batch):
            env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
            if kernel:
                env[KERNEL_ENV[kernel][0]] = KERNEL_ENV[kernel][1]
            p = subprocess.run([args.cli, "--model", model_dir, "--threads", str(args.threads), "--batch-size",
                                str(batch), "--dtype", dtype, "--stats"], input="\n".join(lines) + "\n",
                               capture_output=True, text=True, check=True, env=env)
            return json.loads(p.stderr.strip().splitlines()[-1])["annotate_seconds"]
        return run
    if engine.startswith("pytorch"):
        model = AutoModelForTokenClassification.from_pretrained(model_dir).eval()
    else:
        config = AutoModelForTokenClassification.from_pretrained(model_dir).config
        model = OrtModel(onnx[engine], config, args.threads)
    nlp = pipeline("token-classification", model=model, tokenizer=tok, aggregation_strategy="simple", device="cpu")

    # PyTorch's bf16 autocast: its matrix products in bf16 through oneDNN (AMX tiles where the
    # CPU has them), the rest f32.
    autocast = engine == "pytorch-bf16"

    def run(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            nlp(texts[:8], batch_size=batch)  # warm-up
            t0 = time.perf_counter()
            nlp(texts, batch_size=batch)
            return time.perf_counter() - t0
    return run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cli", default="target/release/biomed-ner")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--engines", default=",".join(ENGINES))
    a = ap.parse_args()
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    import logging
    logging.getLogger().setLevel(logging.ERROR)
    # The pipeline names every model class it has no mapping for (the ONNX Runtime module).
    logging.getLogger("transformers.pipelines.base").setLevel(logging.CRITICAL)
    torch.set_num_threads(a.threads)
    engines = a.engines.split(",")
    model_dir = os.path.join(a.dir, "model")
    lines = open(os.path.join(a.dir, "sentences.jsonl"), encoding="utf-8").read().splitlines()
    texts = [json.loads(l)["text"] for l in lines]
    tok = AutoTokenizer.from_pretrained(model_dir)
    tokens = sum(len(tok(t)["input_ids"]) for t in texts)
    import onnxruntime
    print(f"# {cpu_name()}, {os.cpu_count()} cores, {a.threads} threads; torch {torch.__version__}, "
          f"transformers {transformers.__version__}, onnxruntime {onnxruntime.__version__}; "
          f"{len(texts)} texts, {tokens} tokens ({tokens / len(texts):.1f} per text); best of {a.rounds} rounds",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        onnx = {}
        if any(e.startswith("ort") for e in engines):
            f32, int8 = export_onnx(model_dir, tmp)
            onnx = {"ort-f32": f32, "ort-int8": int8}
        runners = {e: make_runner(e, a, model_dir, tok, lines, texts, onnx) for e in engines}
        results = {}
        for b in [int(x) for x in a.batches.split(",")]:
            times = {e: [] for e in engines}
            for _ in range(a.rounds):
                for e in engines:
                    times[e].append(runners[e](b))
            best = {e: min(t) for e, t in times.items()}
            r = {}
            for e in engines:
                r[e] = {"seconds": round(best[e], 3), "tok_s": round(tokens / best[e], 1),
                        "spread": round(max(times[e]) / best[e] - 1, 3)}
                print(f"batch {b}: {e:16} {best[e]:7.2f} s  {tokens / best[e]:8.1f} tok/s  "
                      f"(rounds {', '.join(f'{t:.2f}' for t in times[e])})", flush=True)
            ratios = {}
            for ours, theirs in [("biomed-ner-f32", "pytorch"), ("biomed-ner-f32", "ort-f32"),
                                 ("biomed-ner-int8", "ort-int8"), ("biomed-ner-int8", "biomed-ner-f32"),
                                 ("biomed-ner-bf16", "biomed-ner-f32"), ("biomed-ner-bf16", "pytorch-bf16"),
                                 ("biomed-ner-int8", "biomed-ner-int8-vnni"), ("biomed-ner-bf16", "biomed-ner-bf16-avx512")]:
                if ours in best and theirs in best:
                    ratios[f"{ours} vs {theirs}"] = round(best[theirs] / best[ours], 2)
                    print(f"batch {b}: {ours} is {best[theirs] / best[ours]:.2f}x {theirs}")
            results[f"batch_{b}"] = {"engines": r, "speedups": ratios}
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
