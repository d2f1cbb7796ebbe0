//! Property tests of the pipeline on hostile text: random Unicode, combining-mark floods,
//! control characters, very long words and texts over the window size. Whatever the text, the
//! engine must not panic, and every entity must lie inside the text on character boundaries,
//! with `word == text[start..end]` (in characters), in order of their start. Entities may
//! overlap where the tokenizer gives tokens overlapping characters (a character its normalizer
//! expands, such as `ñ`, or `¨` which becomes a space and a combining mark): there the Hugging
//! Face pipeline, and so this engine, returns overlapping entities too. DeBERTa's fixture model
//! (SentencePiece) is checked in every way; the other architectures' (WordPiece, byte-level BPE,
//! Unigram) in one.

use std::path::PathBuf;
use std::sync::OnceLock;

use biomed_ner_engine::assertion::{assert_json, assert_spans};
use biomed_ner_engine::{Aggregation, Device, Options, Pipeline, Precision};
use proptest::prelude::*;
use serde_json::json;

mod common;
use common::text;

fn fixture(name: &str) -> Pipeline {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models").join(name);
    Pipeline::load(&dir, Precision::F32, &Device::Cpu).unwrap()
}

fn pipeline() -> &'static Pipeline {
    static P: OnceLock<Pipeline> = OnceLock::new();
    P.get_or_init(|| fixture("v3_base_like"))
}

/// The fixture models of the other architectures, one per kind of tokenizer: WordPiece
/// (lowercasing, accent stripping; and cased from vocab.txt), byte-level BPE, Unigram.
fn other_architectures() -> &'static [Pipeline] {
    static P: OnceLock<Vec<Pipeline>> = OnceLock::new();
    P.get_or_init(|| ["bert_wordpiece", "bert_vocab_txt", "roberta_bpe", "xlmr_unigram"].map(fixture).into())
}

fn check(text: &str, opts: &Options) -> Result<(), TestCaseError> {
    check_with(pipeline(), text, opts)
}

fn check_with(p: &Pipeline, text: &str, opts: &Options) -> Result<(), TestCaseError> {
    let chars: Vec<char> = text.chars().collect();
    let out = p.annotate(&[text], opts, &mut || Ok(())).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut previous_start = 0;
    for e in &out[0] {
        prop_assert!(e.start < e.end && e.end <= chars.len(), "span {}..{} outside {} chars", e.start, e.end, chars.len());
        let slice: String = chars[e.start..e.end].iter().collect();
        prop_assert_eq!(&slice, &e.word);
        prop_assert!(e.start >= previous_start, "entities out of order at {}", e.start);
        prop_assert!(e.score.is_finite() && (0.0..=1.0001).contains(&e.score));
        previous_start = e.start;
    }
    Ok(())
}

proptest! {
    // A fixed seed keeps CI reproducible; another seed here explores other texts.
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20_261_201),
        ..ProptestConfig::default()
    })]

    #[test]
    fn overlapping_token_offsets_from_the_normalizer(t in Just("A¨:".to_string())) {
        // Found by this test: NFKC turns ¨ into a space and a combining mark, and the two
        // tokens of "¨:" overlap; entities follow them, in order of their start.
        check(&t, &Options { aggregation: Aggregation::First, max_length: 24, stride: 6, ..Options::default() })?;
    }

    #[test]
    fn entities_stay_inside_the_text_in_one_window(t in text()) {
        check(&t, &Options { max_length: 100_000, ..Options::default() })?;
    }

    #[test]
    fn entities_stay_inside_the_text_across_small_windows(t in text(), agg in 0..4usize) {
        let aggregation = [Aggregation::Simple, Aggregation::First, Aggregation::Average, Aggregation::Max][agg];
        check(&t, &Options { aggregation, max_length: 24, stride: 6, batch_size: 3, ..Options::default() })?;
    }

    #[test]
    fn every_tokenizer_kind_keeps_entities_inside_the_text(t in text(), m in 0..4usize, agg in 0..4usize, small in any::<bool>()) {
        // Their models read at most 1,024 tokens (1,022 for RoBERTa and XLM-R): longer texts go in
        // windows either way.
        let aggregation = [Aggregation::Simple, Aggregation::First, Aggregation::Average, Aggregation::Max][agg];
        let (max_length, stride) = if small { (24, 6) } else { (100_000, 128) };
        check_with(&other_architectures()[m], &t, &Options { aggregation, max_length, stride, batch_size: 3, ..Options::default() })?;
    }

    #[test]
    fn tokens_stay_inside_the_text_without_aggregation(t in text()) {
        let chars: Vec<char> = t.chars().collect();
        let opts = Options { aggregation: Aggregation::None, max_length: 40, stride: 10, ..Options::default() };
        let out = pipeline().annotate(&[&t], &opts, &mut || Ok(())).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for e in &out[0] {
            prop_assert!(e.start <= e.end && e.end <= chars.len());
            let slice: String = chars[e.start..e.end].iter().collect();
            prop_assert_eq!(&slice, &e.word);
        }
    }

    #[test]
    fn assertion_gives_one_status_per_entity_and_never_panics(t in text(), spans in entity_spans()) {
        // Any spans: overlapping, unsorted, empty, reversed, past the end of the text.
        let spans: Vec<(usize, usize, Option<&str>)> = spans.iter().map(|(s, e, g)| (*s, *e, g.map(|g| GROUPS[g]))).collect();
        let out = assert_spans(&t, &spans);
        prop_assert_eq!(out.len(), spans.len());
        prop_assert_eq!(&out, &assert_spans(&t, &spans), "the same input, another answer");
        let length = t.chars().count();
        let entities: Vec<serde_json::Value> = spans.iter().map(|&(s, e, g)| json!({"start": s, "end": e, "entity_group": g})).collect();
        match assert_json(&t, &json!(entities)) {
            Ok(v) => {
                let v = v.as_array().expect("an array").clone();
                prop_assert_eq!(v.len(), spans.len());
                for (i, o) in v.iter().enumerate() {
                    prop_assert!(spans[i].0 <= spans[i].1 && spans[i].1 <= length, "accepted {:?}", spans[i]);
                    prop_assert_eq!(o["assertion"].as_str(), Some(out[i].as_str()));
                }
            }
            Err(e) => prop_assert!(spans.iter().any(|&(s, e, _)| s > e || e > length), "refused valid spans: {}", e),
        }
    }
}

/// Types the spans may carry: asserted ones, one that is not, token labels, unknown, none.
const GROUPS: [&str; 6] = ["Sign_symptom", "Diagnostic_procedure", "Age", "B-Disease_disorder", "Medication", "Nonsense"];

fn entity_spans() -> impl Strategy<Value = Vec<(usize, usize, Option<usize>)>> {
    prop::collection::vec((0..400usize, 0..40usize, any::<bool>(), prop::option::of(0..GROUPS.len())), 0..24)
        .prop_map(|v| v.into_iter().map(|(s, len, reversed, g)| if reversed && len > 30 { (s + len, s, g) } else { (s, s + len, g) }).collect())
}
