#!/usr/bin/env python3
"""Trains biomed_ner's bundled default model: a compact DeBERTa-v3 token classifier, from
scratch, on the MACCROBAT `train` split; picks the epoch with the best strict F1 on `dev`.
The `test` split is never read here (score it with `biomed-ner eval`).

    python3 train/train.py [--maccrobat data/maccrobat] [--out models/maccrobat-small]

Labels: BIO over the 41 MACCROBAT entity types (83 labels with O).
- Overlapping spans: the outermost wins. Spans are taken longest first (ties: earlier start,
  then type name), and a span that overlaps a kept one is dropped.
- Discontinuous spans (`T1<TAB>Type 10 15;20 25`): the extent from the first fragment's start
  to the last fragment's end, the same rule `biomed-ner eval` scores by.
- A token belongs to an entity when its first non-space character lies inside it; a token
  that is only the SentencePiece space marker takes the label of the token after it when that
  token continues the same entity (I-), else O.

Steps: (1) a Unigram + Metaspace tokenizer (DeBERTa-v3's kind) trained on the train texts;
(2) masked-language pre-training on the train texts; (3) token-classification fine-tuning on
windows of the train documents, with mention replacement, input masking, label smoothing, pieces
cut at random into two vocabulary pieces, and a loss that keeps the entity type the same across the
pieces of a word (the last two because the pipeline's `simple` aggregation cuts a word wherever its
pieces' types differ; see train/SEARCH.md, round 4). Deterministic: fixed seeds, one thread count,
CPU. Tests of the data handling: `python3 train/test_train.py`.
"""
import argparse
import json
import math
import os
import random
import sys
import time
import unicodedata

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (DebertaV2Config, DebertaV2ForMaskedLM, DebertaV2ForTokenClassification,
                          PreTrainedTokenizerFast)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
from make_fixtures import BIO_LABELS, MACCROBAT_TYPES  # noqa: E402

LABEL_ID = {l: i for i, l in enumerate(BIO_LABELS)}


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


def read_split(root, split):
    rows = open(os.path.join(root, "SPLIT.tsv"), encoding="utf-8").read().splitlines()[1:]
    return sorted(r.split("\t")[0] for r in rows if r.split("\t")[1] == split)


def read_doc(root, doc_id):
    text = open(os.path.join(root, doc_id + ".txt"), encoding="utf-8").read()
    spans = []
    for line in open(os.path.join(root, doc_id + ".ann"), encoding="utf-8").read().splitlines():
        if not line.startswith("T"):
            continue
        ty, ranges = line.split("\t")[1].split(" ", 1)
        if ty not in MACCROBAT_TYPES:
            continue
        frags = [tuple(map(int, f.split())) for f in ranges.split(";")]
        s, e = min(f[0] for f in frags), max(f[1] for f in frags)
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            spans.append((s, e, ty))
    # Outermost first; drop anything overlapping what is kept.
    spans.sort(key=lambda x: (-(x[1] - x[0]), x[0], x[2]))
    kept = []
    for s, e, ty in spans:
        if all(e <= ks or s >= ke for ks, ke, _ in kept):
            kept.append((s, e, ty))
    return text, sorted(kept)


def make_tokenizer(texts, vocab_size, punct_split=True):
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.Strip(), normalizers.NFKC()])
    meta = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    # Punctuation as pieces of its own: entity edges in MACCROBAT fall next to commas, brackets
    # and hyphens ("pain," / "(CT)" / "48-year-old"), and a piece that straddles an edge makes the
    # exact span unreachable (5% of dev spans with whitespace-only splitting, 0.1% with this).
    tok.pre_tokenizer = (pre_tokenizers.Sequence([meta, pre_tokenizers.Punctuation("isolated")])
                         if punct_split else meta)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, unk_token="[UNK]",
                                      special_tokens=["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"])
    lines = [l for t in texts for l in t.splitlines() if l.strip()]
    tok.train_from_iterator(lines, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", bos_token="[CLS]", eos_token="[SEP]",
                                   model_max_length=512)


def token_labels(text, spans, offsets):
    """BIO label id per token (see the module doc for the rules)."""
    owner = [None] * len(text)
    for i, (s, e, _) in enumerate(spans):
        for c in range(s, e):
            owner[c] = i
    firsts = []
    for s, e in offsets:
        while s < e and text[s].isspace():
            s += 1
        firsts.append(s if s < e else None)
    labels = [0] * len(offsets)
    prev = None
    for i, f in enumerate(firsts):
        if f is None:
            continue
        ent = owner[f]
        if ent is None:
            prev = None
            continue
        ty = spans[ent][2]
        labels[i] = LABEL_ID[("I-" if prev == ent else "B-") + ty]
        prev = ent
    # Space-marker tokens: continue an entity when the next real token does.
    for i, f in enumerate(firsts):
        if f is None and i + 1 < len(firsts) and BIO_LABELS[labels[i + 1]].startswith("I-"):
            labels[i] = labels[i + 1]
    return labels


def mention_table(docs):
    """Surface strings of the kept spans of each type (one line each), for mention replacement."""
    table = {}
    for text, spans in docs:
        for s, e, ty in spans:
            if "\n" not in text[s:e]:
                table.setdefault(ty, []).append(text[s:e])
    return {ty: sorted(v) for ty, v in table.items()}


def replace_mentions(doc, table, prob, rng):
    """A copy of the document where each entity is, with probability `prob`, replaced by another
    mention of the same type from the train split (labelwise mention replacement)."""
    text, spans = doc
    if prob <= 0:
        return doc
    out, new_spans, pos = [], [], 0
    for s, e, ty in spans:
        out.append(text[pos:s])
        start = sum(len(x) for x in out)
        word = text[s:e]
        if rng.random() < prob and table.get(ty):
            word = rng.choice(table[ty])
        out.append(word)
        new_spans.append((start, start + len(word), ty))
        pos = e
    out.append(text[pos:])
    return "".join(out), new_spans


def windows(n, size, stride):
    if n <= size:
        return [(0, n)]
    out, s = [], 0
    while s + size < n:
        out.append((s, s + size))
        s += size - stride
    out.append((n - size, n))
    return out


class Pieces:
    """What the fine-tuning extras need to know about each vocabulary piece: where it can be cut
    in two pieces that are both in the vocabulary (for piece splitting), and whether it continues
    the word of the piece before it (for the consistency loss)."""

    def __init__(self, tok):
        vocab = tok.get_vocab()
        special = set(tok.all_special_ids)
        self.cuts = {}
        self.punct = set()
        self.marked = set()
        for piece, i in vocab.items():
            if i in special:
                continue
            if piece.startswith("▁"):
                self.marked.add(i)
            if all(unicodedata.category(c)[0] in "PS" for c in piece.lstrip("▁")):
                self.punct.add(i)  # the bare marker "▁" counts here too: it ends no word
            cuts = [(vocab[piece[:k]], vocab[piece[k:]]) for k in range(1, len(piece))
                    if piece[:k] in vocab and piece[k:] in vocab and piece[:k] != "▁"
                    and vocab[piece[:k]] not in special and vocab[piece[k:]] not in special]
            if cuts:
                self.cuts[i] = cuts
        self.special = special

    def split(self, ids, labs, prob, rng):
        """Subword regularisation: each piece that can be cut is, with probability `prob`, replaced
        by two vocabulary pieces that spell it; the second takes I- of the first one's type."""
        if prob <= 0:
            return ids, labs
        out_ids, out_labs = [], []
        for i, l in zip(ids, labs):
            cuts = self.cuts.get(i)
            if cuts and rng.random() < prob:
                a, b = rng.choice(cuts)
                name = BIO_LABELS[l]
                out_ids += [a, b]
                out_labs += [l, 0 if name == "O" else LABEL_ID["I-" + name[2:]]]
            else:
                out_ids.append(i)
                out_labs.append(l)
        return out_ids, out_labs

    def continues(self, ids):
        """[batch, len] bool: the token continues the word of the token before it (no space marker,
        neither of the two is punctuation or special)."""
        rows = []
        for row in ids.tolist():
            rows.append([k > 0 and t not in self.marked and t not in self.punct and t not in self.special
                         and row[k - 1] not in self.punct and row[k - 1] not in self.special
                         for k, t in enumerate(row)])
        return torch.tensor(rows, dtype=torch.bool)


def type_consistency(logits, cont):
    """Mean symmetric KL divergence between the entity-type distributions (B- and I- of a type
    summed, O on its own) of each word-continuing token and the token before it."""
    if not cont.any():
        return logits.new_zeros(())
    logp = torch.log_softmax(logits.float(), -1)
    lt = torch.cat([logp[..., :1], torch.logsumexp(torch.stack([logp[..., 1::2], logp[..., 2::2]], -1), -1)], -1)
    cur, prev = lt[:, 1:][cont[:, 1:]], lt[:, :-1][cont[:, 1:]]
    return ((cur.exp() - prev.exp()) * (cur - prev)).sum(-1).mean()


def encode_docs(tok, docs, size, stride, pieces=None, split=0.0, rng=None):
    """(input_ids, labels) windows of at most size+2 tokens; with `split`, pieces cut at random
    first (see `Pieces.split`)."""
    cls, sep = tok.cls_token_id, tok.sep_token_id
    items = []
    for text, spans in docs:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, labs = enc["input_ids"], token_labels(text, spans, enc["offset_mapping"])
        if split > 0:
            ids, labs = pieces.split(ids, labs, split, rng)
        for a, b in windows(len(ids), size, stride):
            items.append(([cls] + ids[a:b] + [sep], [-100] + labs[a:b] + [-100]))
    return items


def batches(items, bs, rng, shuffle):
    order = list(range(len(items)))
    if shuffle:
        rng.shuffle(order)
    for i in range(0, len(order), bs):
        chunk = [items[j] for j in order[i:i + bs]]
        n = max(len(c[0]) for c in chunk)
        ids = torch.zeros(len(chunk), n, dtype=torch.long)
        lab = torch.full((len(chunk), n), -100, dtype=torch.long)
        mask = torch.zeros(len(chunk), n, dtype=torch.long)
        for k, (x, y) in enumerate(chunk):
            ids[k, :len(x)] = torch.tensor(x)
            lab[k, :len(y)] = torch.tensor(y)
            mask[k, :len(x)] = 1
        yield ids, lab, mask


def spans_from_tags(tags):
    """Entities from per-token label ids, grouped as the pipeline's `simple` strategy does."""
    out, cur = [], None
    for i, t in enumerate(tags):
        name = BIO_LABELS[t]
        bi, ty = (name[0], name[2:]) if name != "O" else ("I", "O")
        if cur and ty == cur[2] and bi != "B":
            cur[1] = i
            continue
        if cur and cur[2] != "O":
            out.append(tuple(cur))
        cur = [i, i, ty]
    if cur and cur[2] != "O":
        out.append(tuple(cur))
    return out


def dev_f1(model, tok, docs, size):
    """Strict F1 (type and trimmed character span) on whole documents."""
    model.eval()
    tp = npred = ngold = 0
    with torch.no_grad():
        for text, spans in docs:
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            ids, offs = enc["input_ids"], enc["offset_mapping"]
            tags = [0] * len(ids)
            for a, b in windows(len(ids), size, size // 4):
                x = torch.tensor([[tok.cls_token_id] + ids[a:b] + [tok.sep_token_id]], device=model.device)
                pred = model(input_ids=x).logits[0, 1:-1].argmax(-1).tolist()
                for k, p in enumerate(pred):
                    tags[a + k] = p
            pred = set()
            for s, e, ty in spans_from_tags(tags):
                cs, ce = offs[s][0], offs[e][1]
                while cs < ce and text[cs].isspace():
                    cs += 1
                if cs < ce:
                    pred.add((cs, ce, ty))
            gold = set(spans)
            tp += len(pred & gold)
            npred += len(pred)
            ngold += len(gold)
    model.train()
    p = tp / max(npred, 1)
    r = tp / max(ngold, 1)
    return 2 * p * r / max(p + r, 1e-9)


def config(args, vocab):
    return dict(vocab_size=vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                num_attention_heads=args.heads, intermediate_size=args.hidden * 4, max_position_embeddings=512,
                relative_attention=True, position_buckets=64, max_relative_positions=512, share_att_key=True,
                pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm", position_biased_input=False,
                type_vocab_size=0, layer_norm_eps=1e-7, hidden_act="gelu", pad_token_id=0,
                hidden_dropout_prob=args.dropout, attention_probs_dropout_prob=args.dropout)


def schedule(opt, total, warmup, lr):
    def f(step):
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))
    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def pretrain(args, tok, texts, rng, dev):
    cfg = DebertaV2Config(**config(args, len(tok)))
    model = DebertaV2ForMaskedLM(cfg).to(dev)
    items = []
    for t in texts:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        for a, b in windows(len(ids), args.window, 0):
            items.append(([tok.cls_token_id] + ids[a:b] + [tok.sep_token_id], None))
    opt = torch.optim.AdamW(model.parameters(), lr=args.mlm_lr, weight_decay=0.01)
    steps = args.mlm_epochs * math.ceil(len(items) / args.batch)
    sched = schedule(opt, steps, steps // 10, args.mlm_lr)
    special = {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id}
    step = 0
    for ep in range(args.mlm_epochs):
        total = 0.0
        for ids, _, mask in batches([(x, x) for x, _ in items], args.batch, rng, True):
            labels = ids.clone()
            prob = torch.rand(ids.shape, generator=torch.Generator().manual_seed(step))
            can = mask.bool() & ~torch.isin(ids, torch.tensor(sorted(special)))
            chosen = (prob < 0.15) & can
            labels[~chosen] = -100
            inp = ids.clone()
            r = torch.rand(ids.shape, generator=torch.Generator().manual_seed(step + 10**6))
            inp[chosen & (r < 0.8)] = tok.mask_token_id
            rand_tok = torch.randint(5, len(tok), ids.shape, generator=torch.Generator().manual_seed(step + 2 * 10**6))
            swap = chosen & (r >= 0.8) & (r < 0.9)
            inp[swap] = rand_tok[swap]
            loss = model(input_ids=inp.to(dev), attention_mask=mask.to(dev), labels=labels.to(dev)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(); sched.step(); opt.zero_grad()
            total += loss.item(); step += 1
        log(f"mlm epoch {ep + 1}/{args.mlm_epochs} loss {total / max(1, math.ceil(len(items) / args.batch)):.3f}")
    return model.deberta.state_dict()


PRETRAIN_ARGS = ("vocab", "punct_split", "hidden", "layers", "heads", "dropout", "window", "batch",
                 "mlm_epochs", "mlm_lr", "threads", "device", "seed")


def cached_encoder(args, rng):
    """The encoder (and the random state after pre-training) from --encoder-cache, when it was
    made with the same pre-training arguments; else None."""
    path = os.path.join(args.encoder_cache, "encoder.pt")
    if not os.path.exists(path):
        return None
    saved = torch.load(path, weights_only=False)
    want = {k: getattr(args, k) for k in PRETRAIN_ARGS}
    if saved["args"] != want:
        log(f"{path} was made with other pre-training arguments: pre-training again")
        return None
    rng.setstate(saved["rng"])
    log(f"pre-trained encoder from {path}")
    return saved["encoder"]


def save_encoder(args, encoder, rng):
    os.makedirs(args.encoder_cache, exist_ok=True)
    torch.save({"args": {k: getattr(args, k) for k in PRETRAIN_ARGS}, "encoder": encoder, "rng": rng.getstate()},
               os.path.join(args.encoder_cache, "encoder.pt"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maccrobat", default=os.path.join(HERE, "..", "data", "maccrobat"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "models", "maccrobat-small"))
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--no-punct-split", dest="punct_split", action="store_false",
                    help="split only at whitespace (DeBERTa-v3's own pre-tokenizer)")
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--window", type=int, default=254)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--mlm-epochs", type=int, default=10)
    ap.add_argument("--mlm-lr", type=float, default=5e-4)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--patience", type=int, default=0, help="stop after this many epochs without a better dev F1 (0: never)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--average", type=int, default=0,
                    help="also try the mean of the weights of the last N epochs; kept if its dev F1 is better (0: off)")
    ap.add_argument("--augment", type=float, default=0.3,
                    help="per-epoch probability of replacing each training entity by another mention of its type")
    ap.add_argument("--word-mask", type=float, default=0.1, help="probability of masking an input token while fine-tuning")
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--split-pieces", type=float, default=0.1,
                    help="per-epoch probability of cutting each training piece into two vocabulary pieces (subword regularisation)")
    ap.add_argument("--consistency", type=float, default=1.0,
                    help="weight of a loss that keeps the entity type the same across the pieces of a word")
    ap.add_argument("--encoder-cache", default=None,
                    help="folder to keep the pre-trained encoder in (reused by runs with the same pre-training arguments; for experiments)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (a GPU is optional and not needed)")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    rng = random.Random(args.seed)
    t0 = time.time()
    train = [read_doc(args.maccrobat, d) for d in read_split(args.maccrobat, "train")]
    dev_docs = [read_doc(args.maccrobat, d) for d in read_split(args.maccrobat, "dev")]
    tok = make_tokenizer([t for t, _ in train], args.vocab, args.punct_split)
    log(f"tokenizer: {len(tok)} pieces; {len(train)} train and {len(dev_docs)} dev documents")
    encoder = None
    if args.mlm_epochs > 0:
        encoder = cached_encoder(args, rng) if args.encoder_cache else None
        if encoder is None:
            encoder = pretrain(args, tok, [t for t, _ in train], rng, dev)
            if args.encoder_cache:
                save_encoder(args, encoder, rng)
    cfg = DebertaV2Config(**config(args, len(tok)), id2label=dict(enumerate(BIO_LABELS)), label2id=LABEL_ID)
    torch.manual_seed(args.seed)
    model = DebertaV2ForTokenClassification(cfg)
    if encoder is not None:
        model.deberta.load_state_dict(encoder)
    model.to(dev)
    table = mention_table(train)
    pieces = Pieces(tok)
    items = encode_docs(tok, train, args.window, args.window // 4)
    log(f"{len(items)} training windows")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * math.ceil(len(items) / args.batch)
    sched = schedule(opt, steps, steps // 10, args.lr)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=args.label_smoothing)
    special = torch.tensor([tok.cls_token_id, tok.sep_token_id, tok.pad_token_id])
    best, best_epoch = -1.0, -1
    avg, averaged, avg_f1 = None, 0, None
    os.makedirs(args.out, exist_ok=True)
    for ep in range(args.epochs):
        if args.augment > 0 or args.split_pieces > 0:
            items = encode_docs(tok, [replace_mentions(d, table, args.augment, rng) for d in train],
                                args.window, args.window // 4, pieces, args.split_pieces, rng)
        total, n = 0.0, 0
        for ids, lab, mask in batches(items, args.batch, rng, True):
            cont = pieces.continues(ids) if args.consistency > 0 else None
            if args.word_mask > 0:
                drop = (torch.rand(ids.shape, generator=torch.Generator().manual_seed(10**7 + ep * 10**4 + n))
                        < args.word_mask) & ~torch.isin(ids, special)
                ids = ids.masked_fill(drop, tok.mask_token_id)
            logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), lab.to(dev).reshape(-1))
            if cont is not None:
                loss = loss + args.consistency * type_consistency(logits, cont.to(dev))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(); sched.step(); opt.zero_grad()
            total += loss.item(); n += 1
        if args.average and ep >= args.epochs - args.average:
            state = model.state_dict()
            if avg is None:
                avg = {k: v.detach().double().clone() for k, v in state.items() if v.is_floating_point()}
            else:
                for k in avg:
                    avg[k] += state[k].detach().double()
            averaged += 1
        f1 = dev_f1(model, tok, dev_docs, 510)
        log(f"epoch {ep + 1}/{args.epochs} loss {total / n:.4f} dev strict F1 {f1:.4f}")
        if f1 > best:
            best, best_epoch = f1, ep + 1
            model.save_pretrained(args.out, safe_serialization=True)
            tok.save_pretrained(args.out)
        elif args.patience and ep + 1 - best_epoch >= args.patience:
            log(f"no better dev F1 for {args.patience} epochs: stopping")
            break
    if avg is not None:
        # Weight averaging over the last epochs (the learning rate is decaying there); chosen on dev only.
        model.load_state_dict({k: (v / averaged).to(model.state_dict()[k].dtype) for k, v in avg.items()}, strict=False)
        avg_f1 = dev_f1(model, tok, dev_docs, 510)
        log(f"mean of the last {averaged} epochs: dev strict F1 {avg_f1:.4f} (best single epoch {best:.4f})")
        if avg_f1 > best:
            best, best_epoch = avg_f1, f"mean of {args.epochs - averaged + 1}-{args.epochs}"
            model.save_pretrained(args.out, safe_serialization=True)
            tok.save_pretrained(args.out)
    info = {"dev_strict_f1": round(best, 4), "epoch": best_epoch, "seconds": round(time.time() - t0),
            "args": vars(args) | {"maccrobat": "MACCROBAT (see SOURCE.md)", "out": None}}
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump(info, f, indent=1)
    log("done", json.dumps(info))


if __name__ == "__main__":
    main()
