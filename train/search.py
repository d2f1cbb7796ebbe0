#!/usr/bin/env python3
"""Runs train/train.py over a set of named configurations in parallel (on a GPU where there is
one) and prints their dev strict F1, to choose the recipe's defaults. Chooses on `dev` only.

    python3 train/search.py --maccrobat DIR --out /tmp/search [--device cuda] [--jobs 16] [NAME ...]
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# Each entry: extra train.py flags over BASE, which pins the settings of the first recipe (hidden 256,
# no augmentation) so that the table below means what it meant when it was run; the recipe's
# present defaults are r2-h384-ep20.
BASE = ["--hidden", "256", "--layers", "4", "--heads", "4", "--dropout", "0.1", "--lr", "5e-4",
        "--augment", "0", "--word-mask", "0", "--label-smoothing", "0", "--mlm-epochs", "10",
        "--epochs", "30", "--patience", "8"]
COMBO = ["--augment", "0.3", "--word-mask", "0.1", "--label-smoothing", "0.1", "--dropout", "0.2"]
CONFIGS = {
    # Round 1 (one variable at a time, then combined).
    "no-punct": ["--no-punct-split"],
    "base": [],
    "augment": ["--augment", "0.3"],
    "mask-ls": ["--word-mask", "0.1", "--label-smoothing", "0.1"],
    "dropout": ["--dropout", "0.2"],
    "mlm30": ["--mlm-epochs", "30"],
    "combo": COMBO,
    "combo-s2": COMBO + ["--seed", "2"],
    "combo-mlm30": COMBO + ["--mlm-epochs", "30"],
    "combo-aug5": COMBO[:1] + ["0.5"] + COMBO[2:],
    "combo-h384": COMBO + ["--hidden", "384", "--layers", "6", "--heads", "6"],
    "combo-h192": COMBO + ["--hidden", "192", "--layers", "4", "--heads", "3"],
    "combo-v4k": COMBO + ["--vocab", "4000"],
    "combo-v16k": COMBO + ["--vocab", "16000"],
    "combo-lr1e3": COMBO + ["--lr", "1e-3"],
    "combo-ep60": COMBO + ["--epochs", "60", "--patience", "15"],
    # Round 2: around combo-lr1e3, sizes that fit 60 minutes on two CPU cores.
    "r2-s2": COMBO + ["--lr", "1e-3", "--seed", "2"],
    "r2-h320": COMBO + ["--lr", "1e-3", "--hidden", "320", "--heads", "5"],
    "r2-h320-s2": COMBO + ["--lr", "1e-3", "--hidden", "320", "--heads", "5", "--seed", "2"],
    "r2-l6": COMBO + ["--lr", "1e-3", "--layers", "6"],
    "r2-l6-s2": COMBO + ["--lr", "1e-3", "--layers", "6", "--seed", "2"],
    "r2-h384-ep20": COMBO + ["--lr", "1e-3", "--hidden", "384", "--heads", "6", "--epochs", "20"],
    "r2-h384l6": COMBO + ["--hidden", "384", "--layers", "6", "--heads", "6"],
    "r2-ep20": COMBO + ["--lr", "1e-3", "--epochs", "20"],
    "r2-lr2e3": COMBO + ["--lr", "2e-3"],
    "r2-wm2": ["--augment", "0.3", "--word-mask", "0.2", "--label-smoothing", "0.1", "--dropout", "0.2", "--lr", "1e-3"],
    "r2-aug5": ["--augment", "0.5", "--word-mask", "0.1", "--label-smoothing", "0.1", "--dropout", "0.2", "--lr", "1e-3"],
    "r2-b8": COMBO + ["--lr", "1e-3", "--batch", "8"],
    "r2-mlm5-ep40": COMBO + ["--lr", "1e-3", "--mlm-epochs", "5", "--epochs", "40"],
    "r2-drop3": ["--augment", "0.3", "--word-mask", "0.1", "--label-smoothing", "0.1", "--dropout", "0.3", "--lr", "1e-3"],
    "r2-h320l5": COMBO + ["--lr", "1e-3", "--hidden", "320", "--heads", "5", "--layers", "5"],
    "r2-win126": COMBO + ["--lr", "1e-3", "--window", "126"],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maccrobat", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=420)
    ap.add_argument("names", nargs="*")
    args = ap.parse_args()
    names = args.names or list(CONFIGS)
    os.makedirs(args.out, exist_ok=True)
    running, done = [], []
    queue = list(names)
    t0 = time.time()
    while queue or running:
        while queue and len(running) < args.jobs:
            name = queue.pop(0)
            out = os.path.join(args.out, name)
            cmd = [sys.executable, os.path.join(HERE, "train.py"), "--maccrobat", args.maccrobat, "--out", out,
                   "--device", args.device, "--threads", "1"] + BASE + CONFIGS[name]
            log = open(os.path.join(args.out, name + ".log"), "w")
            running.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), time.time()))
        time.sleep(2)
        for item in list(running):
            name, proc, started = item
            if proc.poll() is not None or time.time() - started > args.timeout:
                if proc.poll() is None:
                    proc.kill()
                running.remove(item)
                done.append(name)
    rows = []
    for name in names:
        curve = []
        for line in open(os.path.join(args.out, name + ".log")):
            if "dev strict F1" in line:
                curve.append(float(line.split()[-1]))
        finished = os.path.exists(os.path.join(args.out, name, "training.json"))
        best = max(curve) if curve else -1.0
        rows.append((best, name, curve.index(best) + 1 if curve else 0, len(curve), finished, curve))
    print(f"{'config':14} {'best':>6} {'at':>3} {'done':>4}   ({time.time() - t0:.0f} s in all)")
    for best, name, at, n, finished, curve in sorted(rows, reverse=True):
        mark = "" if finished else " (cut off)"
        print(f"{name:14} {best:6.4f} {at:3d} {n:4d}{mark}  {' '.join(CONFIGS[name])}")
        print(" " * 15, " ".join(f"{f:.3f}" for f in curve))

if __name__ == "__main__":
    main()
