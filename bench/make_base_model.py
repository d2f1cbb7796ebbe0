#!/usr/bin/env python3
"""Writes a random-weight DeBERTa-v3-base-shaped token classifier (12 layers, hidden 768,
vocab 128100, the 83 MACCROBAT BIO labels, the real DeBERTa-v3 tokenizer) and a text set for
benchmarks and the base-sized parity check, outside the repo.

    python3 bench/make_base_model.py OUT_DIR [--tokenizer data/deberta-v3-tokenizer]
           [--maccrobat data/maccrobat] [--arch deberta|bert|distilbert|roberta|xlm-roberta|electra]

With --arch, the model is the base size of that family instead (BERT/RoBERTa/XLM-R/ELECTRA-base:
12 layers, hidden 768; DistilBERT: 6 layers), with a tokenizer of its kind: WordPiece (30,522
pieces, lowercased; BERT, DistilBERT, ELECTRA) or byte-level BPE (50,265; RoBERTa) trained here on
the MACCROBAT training reports, or for XLM-R the real DeBERTa-v3 SentencePiece model converted the
way transformers converts XLM-R's (fairseq ids: <s>, <pad>, </s>, <unk> first). Their tokenizers
read 512 tokens at most (the pipeline's stride windows need that).

OUT_DIR/model: the model folder. OUT_DIR/sentences.jsonl: 240 short clinical sentences from
MACCROBAT (about 26 tokens each, special tokens included: OUT_DIR/tokens_per_note). OUT_DIR/parity.jsonl: a few hundred sentences plus Unicode
edge cases and long texts.
"""
import argparse
import json
import os
import random
import re
import sys

import torch
from transformers import (
    AutoTokenizer, BertConfig, BertForTokenClassification, DebertaV2Config, DebertaV2ForTokenClassification,
    DistilBertConfig, DistilBertForTokenClassification, ElectraConfig, ElectraForTokenClassification,
    RobertaConfig, RobertaForTokenClassification, XLMRobertaConfig, XLMRobertaForTokenClassification,
    XLMRobertaTokenizerFast,
)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
from make_fixtures import BIO_LABELS  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

EDGE_CASES = [
    "Emoji 😷 fever 🤒 and cough for 3 days.", "Combining marks: cafe\u0301 nai\u0308ve.",
    "CJK 患者发热三天 and Arabic المريض يعاني من الحمى.", "Zero\u200bwidth\u200bspace and NBSP\u00a0here.",
    "The ﬁrst ﬂuid test showed ﬁbrosis.", "Full-width digits ０１２３ mg.", "Tabs\tand\r\nCRLF\nbreaks.",
    "  padded with spaces  ", "x", "...!?", "Pneumonoultramicroscopicsilicovolcanoconiosis was suspected.",
    "Hemoglobin 9.8 g/dL; WBC 12,400/mm3; CRP 45 mg/L.", "", "\u00a0", "🫀🫁🧠",
]


def sentences(maccrobat, split="train"):
    ids = [l.split("\t")[0] for l in open(os.path.join(maccrobat, "SPLIT.tsv")).read().splitlines()[1:]
           if l.split("\t")[1] == split]
    out = []
    for i in ids:
        text = open(os.path.join(maccrobat, i + ".txt"), encoding="utf-8").read()
        out += [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if 40 <= len(s.strip()) <= 400]
    return out


def other_arch(arch, tokenizer_dir, corpus):
    """The tokenizer and random model of a base-sized `arch` other than DeBERTa."""
    from make_arch_fixtures import byte_level_bpe, wordpiece

    labels = dict(id2label=dict(enumerate(BIO_LABELS)), label2id={l: i for i, l in enumerate(BIO_LABELS)})
    base = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
    if arch in ("bert", "distilbert", "electra"):
        inputs = ("input_ids", "attention_mask") if arch == "distilbert" else ("input_ids", "token_type_ids", "attention_mask")
        tok, _ = wordpiece(lowercase=True, inputs=inputs, corpus=corpus, size=30522)
    elif arch == "roberta":
        tok = byte_level_bpe(corpus=corpus, size=50265)
    else:
        tok = XLMRobertaTokenizerFast(vocab_file=os.path.join(tokenizer_dir, "spm.model"))
    tok.model_max_length = 512
    n = len(tok)
    if arch == "bert":
        model = BertForTokenClassification(BertConfig(vocab_size=n, max_position_embeddings=512, **base, **labels))
    elif arch == "electra":
        model = ElectraForTokenClassification(ElectraConfig(vocab_size=n, embedding_size=768, max_position_embeddings=512, **base, **labels))
    elif arch == "distilbert":
        model = DistilBertForTokenClassification(DistilBertConfig(vocab_size=n, dim=768, n_layers=6, n_heads=12, hidden_dim=3072, **labels))
    else:
        cls, cfg = (RobertaForTokenClassification, RobertaConfig) if arch == "roberta" else (XLMRobertaForTokenClassification, XLMRobertaConfig)
        model = cls(cfg(vocab_size=n, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, bos_token_id=0,
                        eos_token_id=2, layer_norm_eps=1e-5, **base, **labels))
    return tok, model.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="deberta", choices=["deberta", "bert", "distilbert", "roberta", "xlm-roberta", "electra"])
    ap.add_argument("out")
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "data", "deberta-v3-tokenizer"))
    ap.add_argument("--maccrobat", default=os.path.join(ROOT, "data", "maccrobat"))
    a = ap.parse_args()
    mdir = os.path.join(a.out, "model")
    os.makedirs(mdir, exist_ok=True)
    torch.manual_seed(0)
    if a.arch != "deberta":
        tok, model = other_arch(a.arch, a.tokenizer, sentences(a.maccrobat))
        model.save_pretrained(mdir, safe_serialization=True)
        tok.save_pretrained(mdir)
        write_texts(a, tok)
        return
    tok = AutoTokenizer.from_pretrained(a.tokenizer)
    cfg = DebertaV2Config(
        vocab_size=128100, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, max_position_embeddings=512, relative_attention=True,
        position_buckets=256, max_relative_positions=-1, share_att_key=True, pos_att_type=["p2c", "c2p"],
        norm_rel_ebd="layer_norm", position_biased_input=False, type_vocab_size=0, layer_norm_eps=1e-7,
        hidden_act="gelu", pad_token_id=0,
        id2label=dict(enumerate(BIO_LABELS)), label2id={l: i for i, l in enumerate(BIO_LABELS)},
    )
    torch.manual_seed(0)
    model = DebertaV2ForTokenClassification(cfg).eval()
    model.save_pretrained(mdir, safe_serialization=True)
    tok.save_pretrained(mdir)
    write_texts(a, tok)


def write_texts(a, tok):
    mdir = os.path.join(a.out, "model")
    rng = random.Random(0)
    sents = sentences(a.maccrobat)
    rng.shuffle(sents)
    # 240 short sentences of about 27 tokens for throughput.
    short = [s for s in sents if 20 <= len(tok(s)["input_ids"]) <= 34][:240]
    with open(os.path.join(a.out, "sentences.jsonl"), "w", encoding="utf-8") as f:
        for s in short:
            f.write(json.dumps({"text": s}, ensure_ascii=False) + "\n")
    dev = sentences(a.maccrobat, "dev")
    rng.shuffle(dev)
    long_texts = [" ".join(dev[i:i + 40]) for i in range(0, 120, 40)]
    with open(os.path.join(a.out, "parity.jsonl"), "w", encoding="utf-8") as f:
        for s in dev[:300] + EDGE_CASES + long_texts:
            f.write(json.dumps({"text": s}, ensure_ascii=False) + "\n")
    n = sum(len(tok(s)["input_ids"]) for s in short)
    with open(os.path.join(a.out, "tokens_per_note"), "w") as f:
        f.write(f"{n / len(short):.2f}\n")
    print(f"model in {mdir}; {len(short)} sentences, {n / len(short):.1f} tokens each on average")


if __name__ == "__main__":
    main()
