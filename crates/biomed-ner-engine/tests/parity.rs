//! Parity with transformers 4.57's token-classification pipeline on the random models and
//! texts of `tests/fixtures` (made by `tests/fixtures/make_fixtures.py` for DeBERTa and
//! `tests/fixtures/make_arch_fixtures.py` for the other architectures).

use std::path::PathBuf;

use biomed_ner_engine::{Aggregation, Device, Entity, Options, Pipeline, Precision};
use serde_json::Value;

const MODELS: [&str; 11] = [
    "v3_base_like",
    "unshared_nobuckets",
    "c2p_small_buckets",
    // BERT with a lowercasing, accent-stripping WordPiece tokenizer.json
    "bert_wordpiece",
    // BERT (tanh GELU) with a cased WordPiece given only as vocab.txt + tokenizer_config.json
    "bert_vocab_txt",
    "distilbert",
    // byte-level BPE
    "roberta_bpe",
    // SentencePiece-style Unigram
    "xlmr_unigram",
    // embeddings narrower than the layers
    "electra",
    // no tokenizer.json: DeBERTa-v3's spm.model and XLM-R's sentencepiece.bpe.model, converted
    // to a fast tokenizer on load (tests/fixtures/make_spm_fixtures.py)
    "deberta_spm",
    "xlmr_spm",
];

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn load(name: &str, dtype: Precision) -> Pipeline {
    Pipeline::load(&fixtures().join("models").join(name), dtype, &Device::Cpu).unwrap()
}

fn cases(name: &str) -> Vec<Value> {
    let path = fixtures().join("expected").join(format!("{name}.json"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["cases"].as_array().unwrap().clone()
}

/// One pass over the whole text, as the pipeline does when the tokenizer does not truncate.
fn one_pass(aggregation: Aggregation) -> Options {
    Options { aggregation, max_length: 100_000, ..Options::default() }
}

/// The pipeline's entity after the engine's documented departures: `start` skips leading
/// whitespace, `word` is `text[start..end]`, whitespace-only entities are dropped.
fn expected_entities(text: &str, hf: &Value) -> Vec<(String, usize, usize, String, f64)> {
    let chars: Vec<char> = text.chars().collect();
    hf.as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let group = e.get("entity_group").or_else(|| e.get("entity")).unwrap().as_str().unwrap().to_string();
            let (start, end) = (e["start"].as_u64().unwrap() as usize, e["end"].as_u64().unwrap() as usize);
            let start = (start..end).find(|&i| !chars[i].is_whitespace())?;
            Some((group, start, end, chars[start..end].iter().collect(), e["score"].as_f64().unwrap()))
        })
        .collect()
}

fn ours(text: &str, es: &[Entity]) -> Vec<(String, usize, usize, String, f64)> {
    let chars: Vec<char> = text.chars().collect();
    es.iter()
        .map(|e| {
            let slice: String = chars[e.start..e.end].iter().collect();
            assert_eq!(slice, e.word, "word must be the input slice");
            (e.group.clone(), e.start, e.end, e.word.clone(), e.score as f64)
        })
        .collect()
}

/// The share of entities (type and span) that two runs over the same texts have in common,
/// over the larger count of each text.
fn entity_agreement(a: &[Vec<Entity>], b: &[Vec<Entity>]) -> f64 {
    let key = |e: &Entity| (e.group.clone(), e.start, e.end);
    let (mut shared, mut total) = (0usize, 0usize);
    for (a, b) in a.iter().zip(b) {
        let b: std::collections::HashSet<_> = b.iter().map(key).collect();
        shared += a.iter().filter(|e| b.contains(&key(e))).count();
        total += a.len().max(b.len());
    }
    shared as f64 / total as f64
}

#[test]
fn logits_match_transformers_in_f32() {
    for name in MODELS {
        let p = load(name, Precision::F32);
        for case in cases(name) {
            let ids: Vec<u32> = case["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            let expected: Vec<f32> = case["logits"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
                .collect();
            let got = p.model.forward(&[&ids]).unwrap().remove(0);
            assert_eq!(got.len(), expected.len());
            let worst = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-4, "{name}: logits differ by {worst} on {:?}", case["text"]);
        }
    }
}

#[test]
fn entities_match_the_pipeline_for_every_strategy() {
    for name in MODELS {
        let p = load(name, Precision::F32);
        let cases = cases(name);
        for strategy in Aggregation::NAMES {
            let agg: Aggregation = strategy.parse().unwrap();
            let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
            let got = p.annotate(&texts, &one_pass(agg), &mut || Ok(())).unwrap();
            for (case, got) in cases.iter().zip(&got) {
                let text = case["text"].as_str().unwrap();
                let want = expected_entities(text, &case["entities"][strategy]);
                let got = ours(text, got);
                assert_eq!(got.len(), want.len(), "{name}/{strategy}: count differs on {text:?}");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!((&g.0, g.1, g.2, &g.3), (&w.0, w.1, w.2, &w.3), "{name}/{strategy} on {text:?}");
                    // Logits agree to 1e-4, which moves a probability by at most ~5e-5.
                    assert!((g.4 - w.4).abs() < 1e-4, "{name}/{strategy}: score {} vs {}", g.4, w.4);
                }
            }
        }
    }
}

#[test]
fn none_strategy_serialises_like_the_pipeline() {
    let p = load("v3_base_like", Precision::F32);
    let out = p.annotate(&["Biopsy confirmed SCC."], &one_pass(Aggregation::None), &mut || Ok(())).unwrap();
    let j = out[0][0].to_json();
    assert!(j.get("entity").is_some() && j.get("index").is_some() && j.get("entity_group").is_none());
    let out = p.annotate(&["Biopsy confirmed SCC."], &Options::default(), &mut || Ok(())).unwrap();
    let j = out[0][0].to_json();
    let keys: Vec<&str> = j.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(keys, ["entity_group", "score", "word", "start", "end"]);
}

#[test]
fn batching_does_not_change_results() {
    // Padded batches of different lengths (on the CPU the projections see only the real rows),
    // in f32 and int8 (every row quantised on its own).
    for precision in [Precision::F32, Precision::Int8] {
        let p = load("v3_base_like", precision);
        let cases = cases("v3_base_like");
        let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
        let together = p.annotate(&texts, &Options { batch_size: 8, ..Options::default() }, &mut || Ok(())).unwrap();
        for (text, t) in texts.iter().zip(&together) {
            let alone = p.annotate(&[text], &Options { batch_size: 1, ..Options::default() }, &mut || Ok(())).unwrap();
            assert_eq!(t.len(), alone[0].len(), "{precision:?} {text:?}");
            for (a, b) in t.iter().zip(&alone[0]) {
                assert_eq!((&a.group, a.start, a.end), (&b.group, b.start, b.end));
                assert!((a.score - b.score).abs() < 1e-5);
            }
        }
    }
}

#[test]
fn long_texts_in_windows_lose_and_double_nothing() {
    let p = load("v3_base_like", Precision::F32);
    let cases = cases("v3_base_like");
    let long: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).filter(|t| t.len() > 1500).collect();
    assert!(!long.is_empty());
    for text in long {
        let whole = p.annotate(&[text], &one_pass(Aggregation::Simple), &mut || Ok(())).unwrap().remove(0);
        let windowed = p
            .annotate(&[text], &Options { max_length: 64, stride: 16, ..Options::default() }, &mut || Ok(()))
            .unwrap()
            .remove(0);
        // Entities stay ordered and disjoint (no doubles at window borders) ...
        for pair in windowed.windows(2) {
            assert!(pair[0].start <= pair[1].start && pair[0].end <= pair[1].start + (pair[1].end - pair[1].start));
        }
        // ... and cover the text as the single pass does, up to the context a window lacks.
        let covered = |es: &[Entity]| es.iter().map(|e| e.end - e.start).sum::<usize>() as f64;
        let ratio = covered(&windowed) / covered(&whole);
        assert!((0.8..1.25).contains(&ratio), "coverage ratio {ratio}");
        // Windows at least as long as the text give exactly the single pass.
        let big = p
            .annotate(&[text], &Options { max_length: 2048, stride: 128, ..Options::default() }, &mut || Ok(()))
            .unwrap()
            .remove(0);
        assert_eq!(big, whole);
    }
}

#[test]
fn cancellation_stops_between_batches() {
    let p = load("v3_base_like", Precision::F32);
    let texts = vec!["Fever and cough."; 20];
    let mut calls = 0;
    let r = p.annotate(&texts, &Options { batch_size: 2, ..Options::default() }, &mut || {
        calls += 1;
        if calls == 23 {
            Err(biomed_ner_engine::Error::Cancelled)
        } else {
            Ok(())
        }
    });
    assert!(matches!(r, Err(biomed_ner_engine::Error::Cancelled)));
    // Checked for each of the 20 texts encoded, then before each batch and each of the
    // model's 2 layers: the 23rd check is the first batch's second layer.
    assert_eq!(calls, 23);
}

#[test]
fn half_precision_agrees_with_f32() {
    // f16 keeps 11 significant bits and bf16 8: each layer's rounding moves logits by about
    // 1e-3 (f16) and 1e-2 (bf16) of their scale, which changes an argmax only where two labels
    // are that close. Random models have such near-ties on every few hundred tokens, so here
    // we ask for entity-level agreement (same type and span) over ~3,000 tokens; the
    // base-sized check in bench/ compares texts. int8 rounds each projection's inputs and
    // weights to 8 bits (relative logit error about 0.2 here, 96% of entities kept); on a
    // trained model it keeps far more (the bundled model's test below, and bench/).
    for (dtype, tol, min_agreement) in [(Precision::F16, 0.05f32, 0.99), (Precision::BF16, 0.25f32, 0.95), (Precision::Int8, 0.3f32, 0.94)] {
        let p32 = load("v3_base_like", Precision::F32);
        let ph = load("v3_base_like", dtype);
        let cases = cases("v3_base_like");
        let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
        let mut worst = 0f32;
        for text in &texts {
            let ids: Vec<u32> = cases.iter().find(|c| c["text"] == *text).unwrap()["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let a = p32.model.forward(&[&ids]).unwrap().remove(0);
            let b = ph.model.forward(&[&ids]).unwrap().remove(0);
            let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
            worst = worst.max(a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max) / scale);
        }
        assert!(worst < tol, "{dtype:?}: relative logit error {worst}");
        let e32 = p32.annotate(&texts, &Options::default(), &mut || Ok(())).unwrap();
        let eh = ph.annotate(&texts, &Options::default(), &mut || Ok(())).unwrap();
        let agreement = entity_agreement(&e32, &eh);
        eprintln!("{dtype:?}: relative logit error {worst:.4}, entity agreement {agreement:.4}");
        assert!(agreement >= min_agreement, "{dtype:?}: entity agreement {agreement}");
    }
}

/// int8 on a trained model: the bundled MACCROBAT model keeps at least 99% of its f32 entities
/// on the parity texts (measured 99.5% over 318 texts with bench/dtype_agreement.py).
#[cfg(feature = "bundled-model")]
#[test]
fn int8_keeps_the_bundled_models_entities() {
    let p32 = biomed_ner_engine::bundled::load(Precision::F32, &Device::Cpu).unwrap();
    let p8 = biomed_ner_engine::bundled::load(Precision::Int8, &Device::Cpu).unwrap();
    let cases = cases("v3_base_like");
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    let e32 = p32.annotate(&texts, &Options::default(), &mut || Ok(())).unwrap();
    let e8 = p8.annotate(&texts, &Options::default(), &mut || Ok(())).unwrap();
    let key = |e: &Entity| (e.group.clone(), e.start, e.end);
    let (mut kept, mut total) = (0usize, 0usize);
    for (a, b) in e32.iter().zip(&e8) {
        let b: std::collections::HashSet<_> = b.iter().map(key).collect();
        kept += a.iter().filter(|e| b.contains(&key(e))).count();
        total += a.len();
    }
    let share = kept as f64 / total as f64;
    eprintln!("int8 keeps {kept} of {total} f32 entities ({share:.4}) over {} texts", texts.len());
    assert!(total > 100 && share >= 0.98, "int8 kept {kept} of {total}");
}

#[test]
fn pytorch_bin_weights_load_like_safetensors() {
    let st = load("v3_base_like", Precision::F32);
    let bin = Pipeline::load(&fixtures().join("models/v3_base_like_bin"), Precision::F32, &Device::Cpu).unwrap();
    for case in cases("v3_base_like").iter().take(5) {
        let ids: Vec<u32> = case["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(st.model.forward(&[&ids]).unwrap(), bin.model.forward(&[&ids]).unwrap());
    }
}

/// A new temporary model folder holding `files` of the v3_base_like fixture; the test writes
/// the rest and removes it.
fn scratch_model(test: &str, files: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("biomed-ner-engine-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let src = fixtures().join("models/v3_base_like");
    for f in files {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    dir
}

#[test]
fn a_tensor_of_the_wrong_shape_is_named() {
    let dir = scratch_model("shape", &["tokenizer.json", "model.safetensors"]);
    let src = fixtures().join("models/v3_base_like");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    cfg["intermediate_size"] = 100.into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let err = Pipeline::load(&dir, Precision::F32, &Device::Cpu).err().expect("shape mismatch").to_string();
    assert!(err.contains("deberta.encoder.layer.0.intermediate.dense.weight"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stride_must_leave_room_in_the_window() {
    let p = load("v3_base_like", Precision::F32);
    // 16 tokens minus [CLS] and [SEP] leave 14: a stride of 14 cannot advance.
    let opts = Options { max_length: 16, stride: 14, ..Options::default() };
    let err = p.annotate(&["fever"], &opts, &mut || Ok(())).unwrap_err().to_string();
    assert!(err.contains("stride 14 must be smaller than max_length 16 minus its 2 special tokens"), "{err}");
    assert!(p.annotate(&["fever"], &Options { stride: 13, ..opts }, &mut || Ok(())).is_ok());
}

#[test]
fn memory_budget_cuts_batches_and_refuses_windows_over_it() {
    let p = load("v3_base_like", Precision::F32);
    let cases = cases("v3_base_like");
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    let free = p.annotate(&texts, &Options::default(), &mut || Ok(())).unwrap();
    // A budget that holds one window of the longest length but not a batch of 8: batches are
    // cut, and the entities stay the same (scores within float32 rounding of another batching).
    let one = p.model.pass_bytes(1, 512);
    assert!(p.model.pass_bytes(8, 512) > one * 7, "the estimate grows with the batch");
    let cut = p.annotate(&texts, &Options { max_pass_bytes: one, ..Options::default() }, &mut || Ok(())).unwrap();
    for (a, b) in free.iter().zip(&cut) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!((&x.group, x.start, x.end), (&y.group, y.start, y.end));
            assert!((x.score - y.score).abs() < 1e-5);
        }
    }
    // A window that alone is over the budget is refused before any work.
    let long = "fever and cough ".repeat(400);
    let opts = Options { max_length: 4096, max_pass_bytes: 64 << 20, ..Options::default() };
    let err = p.annotate(&[long.as_str()], &opts, &mut || Ok(())).unwrap_err();
    assert!(matches!(err, biomed_ner_engine::Error::ResourceLimit(_)), "{err}");
    assert!(err.to_string().contains("over the budget of 64 MB"), "{err}");
}

/// A `pytorch_model.bin` (a zip with a stored `archive/data.pkl`) holding `pickle`.
fn write_pth(path: &std::path::Path, pickle: &[u8]) {
    // The smallest zip: one stored entry, its central directory and end record.
    fn crc32(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
            }
        }
        !c
    }
    let name = b"archive/data.pkl";
    let (crc, n) = (crc32(pickle), pickle.len() as u32);
    let mut z = Vec::new();
    z.extend(0x0403_4b50u32.to_le_bytes());
    z.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    z.extend(crc.to_le_bytes());
    z.extend(n.to_le_bytes());
    z.extend(n.to_le_bytes());
    z.extend((name.len() as u16).to_le_bytes());
    z.extend(0u16.to_le_bytes());
    z.extend(name);
    z.extend(pickle);
    let cd = z.len() as u32;
    z.extend(0x0201_4b50u32.to_le_bytes());
    z.extend([20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    z.extend(crc.to_le_bytes());
    z.extend(n.to_le_bytes());
    z.extend(n.to_le_bytes());
    z.extend((name.len() as u16).to_le_bytes());
    z.extend([0u8; 12]);
    z.extend(0u32.to_le_bytes());
    z.extend(name);
    let cd_len = z.len() as u32 - cd;
    z.extend(0x0605_4b50u32.to_le_bytes());
    z.extend([0, 0, 0, 0, 1, 0, 1, 0]);
    z.extend(cd_len.to_le_bytes());
    z.extend(cd.to_le_bytes());
    z.extend(0u16.to_le_bytes());
    std::fs::write(path, z).unwrap();
}

#[test]
fn a_hostile_pickle_is_refused_not_a_crash() {
    let dir = scratch_model("pickle", &["tokenizer.json", "config.json"]);
    // The reported crash (signal 11 in candle's reader): lists nested 100,000 deep, 200 KB.
    let mut p = vec![0x80, 2];
    p.extend(std::iter::repeat_n(b']', 100_000));
    p.extend(std::iter::repeat_n(b'a', 99_999));
    p.push(b'.');
    write_pth(&dir.join("pytorch_model.bin"), &p);
    let err = Pipeline::load(&dir, Precision::F32, &Device::Cpu).err().expect("refused").to_string();
    assert!(err.contains("nests deeper than 100"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_architecture_runs_in_every_precision() {
    // Every architecture's weights load and run in each precision, on DeBERTa's kernels. The
    // narrower dtypes round each layer's products (see above), and these small random models have
    // thin margins between labels: measured agreement with f32 over their 31 texts, f16
    // 0.990-1.000, bf16 0.950-0.999, int8 0.856-0.999 (RoBERTa's fixture lowest).
    for name in &MODELS[3..] {
        let texts: Vec<String> = cases(name).iter().map(|c| c["text"].as_str().unwrap().to_string()).collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let e32 = load(name, Precision::F32).annotate(&texts, &Options::default(), &mut || Ok(())).unwrap();
        for (dtype, min_agreement) in [(Precision::F16, 0.98), (Precision::BF16, 0.93), (Precision::Int8, 0.8)] {
            let got = load(name, dtype).annotate(&texts, &Options::default(), &mut || Ok(())).unwrap();
            let agreement = entity_agreement(&e32, &got);
            eprintln!("{name} {dtype:?}: entity agreement with f32 {agreement:.4}");
            assert!(agreement >= min_agreement, "{name} {dtype:?}: entity agreement {agreement}");
        }
    }
}
