//! The tokenizer of a checkpoint that ships only `vocab.txt` (older BERT-style models): a
//! WordPiece tokenizer built the way transformers 4.57 builds its fast tokenizer from the slow
//! one's files (`BertConverter`): BERT's normalizer with `do_lower_case`, `strip_accents` and
//! `tokenize_chinese_chars` from `tokenizer_config.json` (transformers' defaults where it is
//! absent or silent), BERT's pre-tokenizer, `##` continuations, at most 100 characters per word,
//! `[CLS] ... [SEP]` around each sequence, and the special tokens matched whole in the text.

use std::path::Path;

use serde::Deserialize;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};

/// A special token in `tokenizer_config.json`: its text, or an added-token object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Special {
    Text(String),
    Object { content: String },
}

impl Special {
    fn text(self) -> String {
        match self {
            Special::Text(s) | Special::Object { content: s } => s,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Settings {
    #[serde(default = "yes")]
    do_lower_case: bool,
    #[serde(default)]
    strip_accents: Option<bool>,
    #[serde(default = "yes")]
    tokenize_chinese_chars: bool,
    unk_token: Option<Special>,
    sep_token: Option<Special>,
    pad_token: Option<Special>,
    cls_token: Option<Special>,
    mask_token: Option<Special>,
}

fn yes() -> bool {
    true
}

fn bad(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::BadFile { path: path.to_path_buf(), reason: e.to_string() }
}

/// The tokenizer of `vocab` (one token per line, ids by line) with the settings of
/// `settings` (`tokenizer_config.json`), if any.
pub fn from_vocab_txt(vocab: &Path, settings: Option<&Path>) -> Result<Tokenizer> {
    let s: Settings = match settings {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| bad(p, e))?;
            serde_json::from_str(&text).map_err(|e| bad(p, e))?
        }
        None => serde_json::from_str("{}").expect("defaults"),
    };
    let name = |t: Option<Special>, default: &str| t.map_or_else(|| default.to_string(), Special::text);
    let (unk, sep, pad, cls, mask) = (
        name(s.unk_token, "[UNK]"),
        name(s.sep_token, "[SEP]"),
        name(s.pad_token, "[PAD]"),
        name(s.cls_token, "[CLS]"),
        name(s.mask_token, "[MASK]"),
    );
    let path = vocab.to_str().ok_or_else(|| bad(vocab, "the path is not UTF-8"))?;
    let words = WordPiece::read_file(path).map_err(|e| bad(vocab, e))?;
    let id = |t: &str| {
        words.get(t).copied().ok_or_else(|| bad(vocab, format!("the vocabulary has no \"{t}\" token")))
    };
    let (cls_id, sep_id) = (id(&cls)?, id(&sep)?);
    id(&unk)?;
    // Special tokens present in the vocabulary match whole and are not normalised.
    let specials: Vec<AddedToken> = [&unk, &sep, &pad, &cls, &mask]
        .into_iter()
        .filter(|t| id(t).is_ok())
        .map(|t| AddedToken::from(t.clone(), true))
        .collect();
    let model = WordPiece::builder()
        .vocab(words)
        .unk_token(unk.clone())
        .continuing_subword_prefix("##".into())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|e| bad(vocab, e))?;
    let template = TemplateProcessing::builder()
        .try_single(format!("{cls}:0 $A:0 {sep}:0"))
        .and_then(|b| b.try_pair(format!("{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1")))
        .map_err(|e| bad(vocab, e))?
        .special_tokens(vec![(cls.clone(), cls_id), (sep.clone(), sep_id)])
        .build()
        .map_err(|e| bad(vocab, e))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(true, s.tokenize_chinese_chars, s.strip_accents, s.do_lower_case)))
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(template))
        .with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
    tokenizer.add_special_tokens(&specials);
    Ok(tokenizer)
}
