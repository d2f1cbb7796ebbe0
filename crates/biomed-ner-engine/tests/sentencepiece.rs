//! Folders with a SentencePiece model and no tokenizer.json: the tokenizer the engine builds
//! from `spm.model` / `sentencepiece.bpe.model` gives the ids, type ids and character offsets of
//! the fast tokenizer transformers 4.57 converts from the same files, on every MACCROBAT report,
//! the fixture texts and generated hostile text: for the real DeBERTa-v3 tokenizer
//! (data/deberta-v3-tokenizer, which ships both files) and for the fixtures of
//! tests/fixtures/make_spm_fixtures.py (DeBERTa-v3 with NFKC and a user-defined piece, DeBERTa-v2
//! lowercasing with punctuation split and no character map, XLM-R). Corrupt model files are
//! errors, never a crash.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use biomed_ner_engine::model_dir::{ModelFiles, TokenizerFile};
use biomed_ner_engine::sentencepiece::proto::{Message, ModelProto};
use biomed_ner_engine::sentencepiece::{from_sentencepiece, Family};
use proptest::prelude::*;
use tokenizers::Tokenizer;

mod common;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// (name, the engine's tokenizer from the SentencePiece model, transformers' conversion).
fn pairs() -> &'static [(&'static str, Tokenizer, Tokenizer)] {
    static P: OnceLock<Vec<(&str, Tokenizer, Tokenizer)>> = OnceLock::new();
    P.get_or_init(|| {
        let r = root();
        let fx = r.join("tests/fixtures");
        [
            ("deberta-v3", r.join("data/deberta-v3-tokenizer/spm.model"), r.join("data/deberta-v3-tokenizer/tokenizer.json")),
            ("deberta_spm", fx.join("models/deberta_spm/spm.model"), fx.join("expected/deberta_spm.tokenizer.json")),
            (
                "deberta_v2_lower_punct",
                fx.join("tokenizers/deberta_v2_lower_punct/spm.model"),
                fx.join("expected/deberta_v2_lower_punct.tokenizer.json"),
            ),
            ("xlmr_spm", fx.join("models/xlmr_spm/sentencepiece.bpe.model"), fx.join("expected/xlmr_spm.tokenizer.json")),
        ]
        .into_iter()
        .map(|(name, model, json)| {
            let family = if model.ends_with("spm.model") { Family::DebertaV2 } else { Family::XlmRoberta };
            let ours = from_sentencepiece(&model, family).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, ours, Tokenizer::from_file(&json).unwrap())
        })
        .collect()
    })
}

fn same(name: &str, ours: &Tokenizer, theirs: &Tokenizer, text: &str) -> Result<(), String> {
    let a = ours.encode(text, true).map_err(|e| e.to_string())?;
    let b = theirs.encode(text, true).map_err(|e| e.to_string())?;
    if a.get_ids() != b.get_ids() || a.get_offsets() != b.get_offsets() || a.get_type_ids() != b.get_type_ids() {
        let at = (0..a.len().min(b.len()))
            .find(|&i| a.get_ids()[i] != b.get_ids()[i] || a.get_offsets()[i] != b.get_offsets()[i])
            .unwrap_or(a.len().min(b.len()));
        return Err(format!(
            "{name}: {:?} differ at token {at}: ours {:?} {:?}, transformers' {:?} {:?}",
            text.chars().take(80).collect::<String>(),
            a.get_tokens().get(at),
            a.get_offsets().get(at),
            b.get_tokens().get(at),
            b.get_offsets().get(at)
        ));
    }
    Ok(())
}

fn maccrobat_texts() -> Vec<String> {
    let dir = root().join("data/maccrobat");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 190, "MACCROBAT reports in {}", dir.display());
    files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
}

#[test]
fn every_maccrobat_report_and_fixture_text_tokenizes_as_transformers_converts_it() {
    let mut texts = maccrobat_texts();
    // Every report's lines and sentences alone too: texts that start and end elsewhere.
    let pieces: Vec<String> = texts.iter().flat_map(|t| t.split(['\n', '.']).map(str::to_string).collect::<Vec<_>>()).collect();
    texts.extend(pieces);
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("tests/fixtures/expected/deberta_spm.json")).unwrap()).unwrap();
    texts.extend(fixture["cases"].as_array().unwrap().iter().map(|c| c["text"].as_str().unwrap().to_string()));
    texts.extend(["mg/dL", "5 mg/dL.", "[MASK] [CLS] <mask> <s>x</s> [UNK]", "  a  b  ", "", "ＡＢＣ ①②", "x\u{3000}y"].map(String::from));
    for (name, ours, theirs) in pairs() {
        for t in &texts {
            same(name, ours, theirs, t).unwrap();
        }
        eprintln!("{name}: {} texts identical", texts.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20_261_205),
        ..ProptestConfig::default()
    })]

    #[test]
    fn hostile_text_tokenizes_as_transformers_converts_it(t in common::text()) {
        for (name, ours, theirs) in pairs() {
            same(name, ours, theirs, &t).map_err(TestCaseError::fail)?;
        }
    }
}

#[test]
fn a_folder_without_tokenizer_json_uses_its_sentencepiece_model() {
    let fx = root().join("tests/fixtures/models");
    let files = ModelFiles::locate(&fx.join("deberta_spm")).unwrap();
    assert!(matches!(files.tokenizer, TokenizerFile::SentencePiece { family: Family::DebertaV2, .. }));
    let files = ModelFiles::locate(&fx.join("xlmr_spm")).unwrap();
    assert!(matches!(files.tokenizer, TokenizerFile::SentencePiece { family: Family::XlmRoberta, .. }));
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("biomed-ner-engine-spm-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn real_model() -> ModelProto {
    let bytes = std::fs::read(root().join("tests/fixtures/models/deberta_spm/spm.model")).unwrap();
    ModelProto::decode(bytes.as_slice()).unwrap()
}

/// Loads `bytes` as an spm.model; what it gives must be an error or a tokenizer that encodes.
fn load_bytes(dir: &Path, bytes: &[u8]) -> Result<Tokenizer, String> {
    let path = dir.join("spm.model");
    std::fs::write(&path, bytes).unwrap();
    let got = std::panic::catch_unwind(|| from_sentencepiece(&path, Family::DebertaV2));
    match got {
        Err(_) => panic!("loading {} bytes panicked", bytes.len()),
        Ok(Err(e)) => {
            let e = e.to_string();
            assert!(e.contains("spm.model"), "the error names the file: {e}");
            Err(e)
        }
        Ok(Ok(t)) => {
            for text in ["Fever 38.5 °C, ＣＲＰ ①.", "café naïve 患者 😷", "\u{1}\u{7f}\u{feff}"] {
                let r = std::panic::catch_unwind(|| t.encode(text, true).map(|e| e.len()));
                assert!(r.is_ok(), "encoding {text:?} panicked");
            }
            Ok(t)
        }
    }
}

#[test]
fn corrupt_model_files_are_errors_not_crashes() {
    let dir = scratch("corrupt");
    let good = real_model().encode_to_vec();
    assert!(load_bytes(&dir, &good).is_ok());
    // Truncated, empty, not a protobuf.
    for cut in [0, 1, 7, good.len() / 3, good.len() / 2, good.len() - 1] {
        let e = load_bytes(&dir, &good[..cut]);
        assert!(cut == 0 || e.is_err(), "{cut} bytes loaded");
    }
    assert!(load_bytes(&dir, b"").unwrap_err().contains("pieces"));
    assert!(load_bytes(&dir, &[0xff; 4096]).unwrap_err().contains("not a SentencePiece model"));
    // An empty vocabulary; a BPE model.
    let mut m = real_model();
    m.pieces.clear();
    assert!(load_bytes(&dir, &m.encode_to_vec()).unwrap_err().contains("0 pieces"));
    let mut m = real_model();
    m.trainer_spec.as_mut().unwrap().model_type = Some(2);
    assert!(load_bytes(&dir, &m.encode_to_vec()).unwrap_err().contains("Unigram"));
    // An unknown id outside the vocabulary; a piece with no score.
    let mut m = real_model();
    m.trainer_spec.as_mut().unwrap().unk_id = Some(1 << 30);
    assert!(load_bytes(&dir, &m.encode_to_vec()).unwrap_err().contains("unknown piece"));
    let mut m = real_model();
    m.pieces[10].score = Some(f32::NAN);
    assert!(load_bytes(&dir, &m.encode_to_vec()).unwrap_err().contains("piece 10"));
    // A piece that is not UTF-8: protobuf strings must be.
    let mut bytes = good.clone();
    let piece = "\u{2581}the".as_bytes();
    let at = bytes.windows(piece.len()).position(|w| w == piece).expect("a common piece");
    bytes[at + 3] = 0xff;
    assert!(load_bytes(&dir, &bytes).unwrap_err().contains("not a SentencePiece model"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupt_character_maps_are_errors_not_crashes() {
    let dir = scratch("charsmap");
    let map = real_model().normalizer_spec.unwrap().precompiled_charsmap.unwrap();
    let with_map = |map: Vec<u8>| {
        let mut m = real_model();
        m.normalizer_spec.as_mut().unwrap().precompiled_charsmap = Some(map);
        m.encode_to_vec()
    };
    // A header that claims more trie than there is (the reader would reserve gigabytes for it).
    let mut huge = map.clone();
    huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(load_bytes(&dir, &with_map(huge)).unwrap_err().contains("character map"));
    assert!(load_bytes(&dir, &with_map(vec![1, 2])).unwrap_err().contains("character map"));
    // Random damage to the trie and the replacement text: an error or a working tokenizer.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut refused, mut loaded) = (0, 0);
    for _ in 0..300 {
        let mut bad = map.clone();
        for _ in 0..1 + next() % 8 {
            let i = 4 + (next() as usize) % (bad.len() - 4);
            bad[i] = next() as u8;
        }
        match load_bytes(&dir, &with_map(bad)) {
            Ok(_) => loaded += 1,
            Err(_) => refused += 1,
        }
    }
    eprintln!("damaged character maps: {refused} refused, {loaded} loaded and encoded without a crash");
    assert!(refused > 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn added_tokens_at_other_ids_than_listed_are_refused() {
    let dir = scratch("ids");
    let src = root().join("tests/fixtures/models/deberta_spm");
    for f in ["spm.model", "special_tokens_map.json", "added_tokens.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let config = std::fs::read_to_string(src.join("tokenizer_config.json")).unwrap().replace("\"900\"", "\"905\"");
    std::fs::write(dir.join("tokenizer_config.json"), config).unwrap();
    let e = from_sentencepiece(&dir.join("spm.model"), Family::DebertaV2).unwrap_err().to_string();
    assert!(e.contains("[MASK]") && e.contains("905"), "{e}");
    // Without added_tokens_decoder (a folder saved by an older transformers), added_tokens.json
    // gives the id.
    std::fs::write(dir.join("tokenizer_config.json"), r#"{"do_lower_case": false}"#).unwrap();
    let t = from_sentencepiece(&dir.join("spm.model"), Family::DebertaV2).unwrap();
    assert_eq!(t.token_to_id("[MASK]"), Some(900));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_built_tokenizer_is_the_one_transformers_converts() {
    // Every part, serialised: model, normaliser, pre-tokeniser, post-processor, decoder and the
    // added tokens with their flags.
    for (name, ours, theirs) in pairs() {
        let a: serde_json::Value = serde_json::from_str(&ours.to_string(false).unwrap()).unwrap();
        let b: serde_json::Value = serde_json::from_str(&theirs.to_string(false).unwrap()).unwrap();
        for (key, want) in b.as_object().unwrap() {
            assert!(a[key] == *want, "{name}: {key} differs");
        }
    }
}
