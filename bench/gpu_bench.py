#!/usr/bin/env python3
"""GPU throughput of the forward pass: biomed-ner (candle, CUDA build) against PyTorch's
DebertaV2ForTokenClassification in eager mode, on the same random DeBERTa-v3-base-shaped weights,
the same shapes and the same card, side by side in one run; then entity agreement of GPU
f32/f16/bf16 with the CPU f32 path on a text set.

    scripts/build-cuda --cli-only            # on the build machine; carry target/cuda/release/biomed-ner
    python3 bench/gpu_bench.py --cli PATH [--tokenizer DIR] [--texts FILE.jsonl] [--agree-model DIR]
           [--dtypes f32,f16,bf16] [--batches 1,8,32] [--lens 64,256,512] [--iters 20] [--profile]

--tokenizer: a folder with the DeBERTa-v3 tokenizer.json (default: data/deberta-v3-tokenizer).
--texts: JSON lines {"text": ...} (bench/make_base_model.py writes parity.jsonl); entity agreement
is checked on the random base-shaped model and on each --agree-model (a trained model folder, e.g.
models/maccrobat-small, whose decisions are not near-ties the way a random model's are).
--profile: per-stage times of one 32 x 256 pass of both engines (biomed-ner bench --profile, and
torch.profiler's CUDA time per operator), for finding where time goes.
Needs transformers 4.57.x and torch. Tokens/s counts batch x len per pass; each pass on both
sides ends with the logits copied to the host. --device cpu and --small exist to check the
script itself on a machine without a GPU; their figures mean nothing for the GPU.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import torch
from transformers import DebertaV2Config, DebertaV2ForTokenClassification

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
from make_fixtures import BIO_LABELS  # noqa: E402

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def make_model(out, small):
    size = (dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256) if small else
            dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072))
    cfg = DebertaV2Config(
        vocab_size=128100, max_position_embeddings=512, relative_attention=True, position_buckets=256,
        max_relative_positions=-1, share_att_key=True, pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm",
        position_biased_input=False, type_vocab_size=0, layer_norm_eps=1e-7, hidden_act="gelu", pad_token_id=0,
        id2label=dict(enumerate(BIO_LABELS)), label2id={l: i for i, l in enumerate(BIO_LABELS)}, **size)
    torch.manual_seed(0)
    model = DebertaV2ForTokenClassification(cfg).eval()
    model.save_pretrained(out, safe_serialization=True)
    return model


def torch_rate(model, device, dtype, batch, length, iters, warmup):
    m = model.to(device=device, dtype=DTYPES[dtype])
    g = torch.Generator().manual_seed(batch * 1000 + length)
    ids = torch.randint(5, m.config.vocab_size, (batch, length), generator=g).to(device)
    mask = torch.ones_like(ids)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        for _ in range(warmup):
            m(input_ids=ids, attention_mask=mask).logits.float().cpu()
        sync()
        t0 = time.perf_counter()
        for _ in range(iters):
            m(input_ids=ids, attention_mask=mask).logits.float().cpu()
        sync()
        secs = time.perf_counter() - t0
    return batch * length * iters / secs


def cli_bench(cli, mdir, device, dtype, batch, length, iters, warmup, extra=()):
    try:
        out = subprocess.run([cli, "bench", "--model", mdir, "--device", device, "--dtype", dtype, "--batch",
                              str(batch), "--len", str(length), "--iters", str(iters), "--warmup", str(warmup),
                              *extra], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return None, "timed out after 300 s"
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"
    return json.loads(out.stdout.strip().splitlines()[-1]), None


def cli_rate(cli, mdir, device, dtype, batch, length, iters, warmup):
    res, err = cli_bench(cli, mdir, device, dtype, batch, length, iters, warmup)
    return (res["tokens_per_s"], None) if res else (None, err)


def profiles(model, cli, mdir, device, dtypes, batch=32, length=256, iters=5):
    """Where one pass's time goes, in both engines."""
    from torch.profiler import ProfilerActivity, profile
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for dtype in dtypes:
        res, err = cli_bench(cli, mdir, device, dtype, batch, length, iters, 2, ("--profile",))
        if err:
            print(f"profile {dtype}: biomed-ner failed: {err}", flush=True)
        else:
            stages = sorted(res["profile_ms"].items(), key=lambda kv: -kv[1])
            print(f"profile {dtype} {batch}x{length} biomed-ner: {res['ms_per_batch']:.2f} ms/pass unprofiled; "
                  f"stages (ms/pass, device synchronized after each): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in stages), flush=True)
        m = model.to(device=device, dtype=DTYPES[dtype])
        ids = torch.randint(5, m.config.vocab_size, (batch, length)).to(device)
        mask = torch.ones_like(ids)
        with torch.inference_mode():
            for _ in range(2):
                m(input_ids=ids, attention_mask=mask).logits.float().cpu()
            sync()
            with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
                for _ in range(iters):
                    m(input_ids=ids, attention_mask=mask).logits.float().cpu()
                sync()
        print(f"profile {dtype} {batch}x{length} pytorch ({'CUDA' if cuda else 'CPU'} time over {iters} passes):",
              flush=True)
        print(prof.key_averages().table(sort_by="cuda_time_total" if cuda else "cpu_time_total", row_limit=14, max_name_column_width=60),
              flush=True)


def entities(cli, mdir, device, dtype, texts, extra=()):
    """The CLI's entities (type, start, end) for each line of `texts` (JSON lines), or None if it failed."""
    out = subprocess.run([cli, "--model", mdir, "--device", device, "--dtype", dtype, "--batch-size", "32", *extra],
                         input=texts, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"{cli} --device {device} --dtype {dtype} failed: {out.stderr.strip()}", flush=True)
        return None
    return [[(e["entity_group"], e["start"], e["end"]) for e in json.loads(l)] for l in out.stdout.splitlines()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--tokenizer", default=os.path.join(HERE, "..", "data", "deberta-v3-tokenizer"))
    ap.add_argument("--texts")
    ap.add_argument("--agree-model", action="append", default=[], help="a trained model folder (repeatable)")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--profile-dtypes", help="dtypes to profile (default: --dtypes)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtypes", default="f32,f16,bf16")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--lens", default="64,256,512")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--small", action="store_true", help="a 2-layer model, to test this script")
    a = ap.parse_args()
    card = torch.cuda.get_device_name(0) if a.device.startswith("cuda") else "CPU"
    print(f"card: {card}; torch {torch.__version__}; cli {a.cli}", flush=True)
    work = tempfile.mkdtemp(prefix="biomed-gpu-bench-")
    try:
        mdir = os.path.join(work, "model")
        model = make_model(mdir, a.small)
        shutil.copy(os.path.join(a.tokenizer, "tokenizer.json"), mdir)
        if a.profile:
            profiles(model, a.cli, mdir, a.device, (a.profile_dtypes or a.dtypes).split(","),
                     *((2, 64, 2) if a.small else ()))
        print(f"{'dtype':5} {'batch':>5} {'len':>4} {'pytorch tok/s':>14} {'biomed-ner tok/s':>17} {'ratio':>6}", flush=True)
        rows = []
        for dtype in a.dtypes.split(","):
            for batch in map(int, a.batches.split(",")):
                for length in map(int, a.lens.split(",")):
                    iters = max(5, a.iters * 32 // (batch * max(1, length // 64)))
                    pt = torch_rate(model, a.device, dtype, batch, length, iters, a.warmup)
                    ours, err = cli_rate(a.cli, mdir, a.device, dtype, batch, length, iters, a.warmup)
                    ratio = f"{ours / pt:6.2f}" if ours else "  -"
                    print(f"{dtype:5} {batch:5d} {length:4d} {pt:14.0f} {ours or 0:17.0f} {ratio}"
                          + (f"   ({err})" if err else ""), flush=True)
                    rows.append(dict(dtype=dtype, batch=batch, len=length, pytorch=pt, ours=ours))
        print(json.dumps({"card": card, "rows": rows}))
        if a.texts:
            texts = open(a.texts, encoding="utf-8").read()
            for name, md in [("random base-shaped model", mdir)] + [(m, m) for m in a.agree_model]:
                ref = entities(a.cli, md, "cpu", "f32", texts)
                if ref is None:
                    continue
                n_ents = sum(map(len, ref))
                for dtype in ["f32"] + [d for d in a.dtypes.split(",") if d != "f32"]:
                    got = entities(a.cli, md, a.device, dtype, texts)
                    if got is None:
                        continue
                    same = sum(x == y for x, y in zip(ref, got))
                    print(f"entities, {name}, {a.device} {dtype} vs cpu f32: {same}/{len(ref)} texts identical "
                          f"({100 * same / len(ref):.2f}%; {n_ents} entities on cpu f32)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
