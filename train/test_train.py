#!/usr/bin/env python3
"""Tests of the training recipe's data handling (labels, piece splitting, the consistency loss).

    python3 train/test_train.py

Needs what train.py needs (torch, transformers 4.57.x, tokenizers) and the MACCROBAT folder
(data/maccrobat, or MACCROBAT=DIR); a few seconds on a CPU.
"""
import os
import random
import sys
import unittest

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train as T  # noqa: E402

ROOT = os.environ.get("MACCROBAT", os.path.join(HERE, "..", "data", "maccrobat"))


class Recipe(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        ids = T.read_split(ROOT, "train")[:20]
        cls.docs = [T.read_doc(ROOT, d) for d in ids]
        cls.tok = T.make_tokenizer([t for t, _ in cls.docs], 2000)
        cls.pieces = T.Pieces(cls.tok)

    def encode(self, text, spans):
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], T.token_labels(text, spans, enc["offset_mapping"]), enc["offset_mapping"]

    def test_labels_are_bio_and_cover_every_span(self):
        for text, spans in self.docs:
            ids, labs, offs = self.encode(text, spans)
            names = [T.BIO_LABELS[l] for l in labs]
            for k, n in enumerate(names):
                if n.startswith("I-") and self.tok.convert_ids_to_tokens(ids[k]) != "▁":
                    prev = next(names[j] for j in range(k - 1, -1, -1)
                                if self.tok.convert_ids_to_tokens(ids[j]) != "▁")
                    self.assertEqual(prev[2:], n[2:], (text[offs[k][0]:offs[k][1]], names[k - 3:k + 1]))
            # Every kept span starts exactly one entity (a B-): at its first character, or, where the
            # annotation starts inside a token (a corpus quirk, e.g. "l|ong-term"), at the first
            # token that starts inside it.
            firsts = []
            for s, e in offs:
                while s < e and text[s].isspace():
                    s += 1
                if s < e:
                    firsts.append(s)
            expect = sorted(min(f for f in firsts if s <= f < e) for s, e, _ in spans
                            if any(s <= f < e for f in firsts))
            bs = []
            for k, n in enumerate(names):
                if n.startswith("B-"):
                    s = offs[k][0]
                    while text[s].isspace():
                        s += 1
                    bs.append(s)
            self.assertEqual(sorted(bs), expect)

    def test_overlapping_spans_keep_the_outermost(self):
        text = "severe chest pain today"
        path = os.path.join(HERE, "_t.ann")
        try:
            with open(path.replace(".ann", ".txt"), "w") as f:
                f.write(text)
            with open(path, "w") as f:
                f.write("T1\tSign_symptom 7 17\tchest pain\nT2\tBiological_structure 7 12\tchest\n"
                        "T3\tSeverity 0 6\tsevere\nT4\tDate 18 23;18 23\ttoday\n")
            _, spans = T.read_doc(HERE, "_t")
        finally:
            for p in (path, path.replace(".ann", ".txt")):
                if os.path.exists(p):
                    os.remove(p)
        self.assertEqual(spans, [(0, 6, "Severity"), (7, 17, "Sign_symptom"), (18, 23, "Date")])

    def test_split_spells_the_same_text_with_consistent_labels(self):
        text, spans = self.docs[0]
        ids, labs, _ = self.encode(text, spans)
        ids2, labs2 = self.pieces.split(ids, labs, 1.0, random.Random(3))
        self.assertGreater(len(ids2), len(ids))
        toks, toks2 = self.tok.convert_ids_to_tokens(ids), self.tok.convert_ids_to_tokens(ids2)
        self.assertEqual("".join(toks2), "".join(toks))

        def entities(pieces, labels):
            ends = [0]
            for p in pieces:
                ends.append(ends[-1] + len(p))
            return {(ends[a], ends[b + 1], ty) for a, b, ty in T.spans_from_tags(labels)}
        self.assertEqual(entities(toks2, labs2), entities(toks, labs))
        self.assertEqual(self.pieces.split(ids, labs, 0.0, random.Random(3)), (ids, labs))

    def test_continues_marks_word_pieces_only(self):
        ids = self.tok("A 48-year-old woman, hypertensive.", add_special_tokens=True)["input_ids"]
        toks = self.tok.convert_ids_to_tokens(ids)
        cont = self.pieces.continues(torch.tensor([ids]))[0].tolist()
        for k, (t, c) in enumerate(zip(toks, cont)):
            prev = toks[k - 1] if k else None
            expect = (k > 0 and not t.startswith("▁") and t not in ("-", ",", ".", "[CLS]", "[SEP]")
                      and prev not in ("-", ",", ".", "[CLS]", "▁"))
            self.assertEqual(c, expect, (toks, k))

    def test_consistency_loss(self):
        cont = torch.tensor([[False, True, True, False]])
        same = torch.zeros(1, 4, len(T.BIO_LABELS))
        same[0, :, 5] = 3.0  # B-X everywhere
        self.assertAlmostEqual(T.type_consistency(same, cont).item(), 0.0, places=6)
        # B-X then I-X is the same type: no loss.
        bi = same.clone()
        bi[0, 1:, 5], bi[0, 1:, 6] = 0.0, 3.0
        self.assertAlmostEqual(T.type_consistency(bi, cont).item(), 0.0, places=5)
        # A type change inside a word costs, and the gradient pulls the two together.
        flip = same.clone().requires_grad_(True)
        with torch.no_grad():
            flip[0, 2, 5], flip[0, 2, 9] = 0.0, 3.0
        loss = T.type_consistency(flip, cont)
        self.assertGreater(loss.item(), 0.1)
        loss.backward()
        self.assertGreater(flip.grad[0, 2, 9].item(), 0.0)  # gradient descent lowers the odd type's logit
        self.assertEqual(T.type_consistency(same, torch.zeros(1, 4, dtype=torch.bool)).item(), 0.0)

    def test_windows_cover_everything(self):
        for n in (1, 254, 255, 1000):
            ws = T.windows(n, 254, 63)
            self.assertEqual(ws[0][0], 0)
            self.assertEqual(ws[-1][1], n)
            for (a, b), (c, d) in zip(ws, ws[1:]):
                self.assertLess(c, b)
            self.assertTrue(all(b - a <= 254 for a, b in ws))


if __name__ == "__main__":
    unittest.main()
