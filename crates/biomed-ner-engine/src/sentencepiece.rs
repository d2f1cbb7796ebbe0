//! The tokenizer of a checkpoint that ships a SentencePiece model and no `tokenizer.json`
//! (DeBERTa-v2/v3's `spm.model`, XLM-RoBERTa's `sentencepiece.bpe.model`): the fast tokenizer
//! transformers 4.57 builds from the slow one's files (`DebertaV2Converter`,
//! `XLMRobertaConverter`), built the same way here.
//!
//! - Model: SentencePiece's Unigram pieces and scores. XLM-R renumbers them the fairseq way
//!   (`<s> <pad> </s> <unk>`, the pieces from the fourth on, `<mask>` last).
//! - Normaliser: the model's own precompiled character map (its NFKC or other rule), whitespace
//!   stripped and runs of spaces folded (DeBERTa: `do_lower_case` first, then strip both ends;
//!   XLM-R: strip the right end, runs of spaces become `▁`).
//! - Pre-tokeniser: Metaspace (`▁`, prepended to every word); DeBERTa-v2's `split_by_punct`
//!   isolates punctuation first.
//! - Added tokens: the model's control pieces (special) and user-defined pieces (not special),
//!   then `tokenizer_config.json`'s `added_tokens_decoder` with its flags, or, in older folders,
//!   `added_tokens.json` and `special_tokens_map.json`; every id must be the one the file says.
//! - Post-processor: `[CLS] $A [SEP]` (DeBERTa) or `<s> $A </s>` (XLM-R).
//!
//! SentencePiece's BPE models (model type 2) are refused: neither family ships them. Byte
//! fallback is not used, as transformers' conversion does not use it (DeBERTa-v3's model asks
//! for it): a character outside the vocabulary is the unknown token, not its bytes. The protobuf is decoded by prost from the few fields of SentencePiece's
//! `sentencepiece_model.proto` used here ([`proto`]): fields it does not declare are skipped, as
//! transformers' own copy of the schema skips them (microsoft/deberta-v3-base's `spm.model`
//! carries a trainer field that newer schemas declare with another type). The character map,
//! which the tokenizers crate reads without bounds checks, is checked here first, so that a
//! corrupt file is an error and not a crash.

use std::collections::BTreeMap;
use std::path::Path;

use prost::Message;
use serde::Deserialize;
use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::{Lowercase, NormalizerWrapper, Precompiled, Replace, Sequence, Strip};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::punctuation::Punctuation;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::error::{Error, Result};

/// Which converter a SentencePiece model file calls for (by its file name, as transformers'
/// tokenizer classes name them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `spm.model`: DeBERTa-v2 and v3.
    DebertaV2,
    /// `sentencepiece.bpe.model`: XLM-RoBERTa.
    XlmRoberta,
}

impl Family {
    /// The file name of each family's model, in the order a folder is searched.
    pub const FILES: [(&'static str, Family); 2] =
        [("spm.model", Family::DebertaV2), ("sentencepiece.bpe.model", Family::XlmRoberta)];
}

/// The fields of SentencePiece's `ModelProto` that the conversion reads, with their numbers in
/// `sentencepiece_model.proto`.
pub mod proto {
    pub use prost::Message;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(message, repeated, tag = "1")]
        pub pieces: Vec<SentencePiece>,
        #[prost(message, optional, tag = "2")]
        pub trainer_spec: Option<TrainerSpec>,
        #[prost(message, optional, tag = "3")]
        pub normalizer_spec: Option<NormalizerSpec>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SentencePiece {
        #[prost(string, optional, tag = "1")]
        pub piece: Option<String>,
        #[prost(float, optional, tag = "2")]
        pub score: Option<f32>,
        /// NORMAL = 1 (the default), UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5,
        /// BYTE = 6.
        #[prost(int32, optional, tag = "3")]
        pub r#type: Option<i32>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TrainerSpec {
        /// UNIGRAM = 1 (the default), BPE = 2, WORD = 3, CHAR = 4.
        #[prost(int32, optional, tag = "3")]
        pub model_type: Option<i32>,
        #[prost(int32, optional, tag = "40")]
        pub unk_id: Option<i32>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NormalizerSpec {
        #[prost(bytes = "vec", optional, tag = "2")]
        pub precompiled_charsmap: Option<Vec<u8>>,
    }
}

const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

/// Real SentencePiece models are a few MiB; anything near this is not one.
const MAX_MODEL_BYTES: u64 = 256 << 20;
const MAX_PIECES: usize = 4_000_000;

#[derive(Debug, Deserialize)]
struct AddedTokenEntry {
    content: String,
    #[serde(default)]
    lstrip: bool,
    #[serde(default)]
    rstrip: bool,
    #[serde(default)]
    single_word: bool,
    #[serde(default = "yes")]
    normalized: bool,
    #[serde(default)]
    special: bool,
}

/// A special token in `special_tokens_map.json` / `tokenizer_config.json`: its text, or an
/// added-token object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Special {
    Text(String),
    Object { content: String },
}

#[derive(Debug, Default, Deserialize)]
struct Settings {
    #[serde(default)]
    do_lower_case: bool,
    #[serde(default)]
    split_by_punct: bool,
    #[serde(default)]
    added_tokens_decoder: Option<BTreeMap<String, AddedTokenEntry>>,
}

fn yes() -> bool {
    true
}

fn bad(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::BadFile { path: path.to_path_buf(), reason: e.to_string() }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| bad(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(bad(path, e)),
    }
}

/// The tokenizer of the SentencePiece model `model` of `family`, with the slow tokenizer's
/// settings from the files beside it.
pub fn from_sentencepiece(model: &Path, family: Family) -> Result<Tokenizer> {
    let dir = model.parent().unwrap_or(Path::new("."));
    let size = std::fs::metadata(model).map_err(|e| bad(model, e))?.len();
    if size > MAX_MODEL_BYTES {
        return Err(bad(model, format!("{size} bytes is not a SentencePiece model (at most {MAX_MODEL_BYTES})")));
    }
    let bytes = std::fs::read(model).map_err(|e| bad(model, e))?;
    let spm = proto::ModelProto::decode(bytes.as_slice())
        .map_err(|e| bad(model, format!("not a SentencePiece model ({e})")))?;
    let trainer = spm.trainer_spec.as_ref();
    if trainer.map_or(1, |t| t.model_type.unwrap_or(1)) != 1 {
        return Err(bad(model, "only SentencePiece Unigram models are supported (this one is of another type)"));
    }
    let pieces = &spm.pieces;
    if pieces.len() < 4 || pieces.len() > MAX_PIECES {
        return Err(bad(model, format!("{} pieces is not a usable vocabulary", pieces.len())));
    }
    let piece = |i: usize| pieces[i].piece.clone().unwrap_or_default();
    let score = |i: usize| f64::from(pieces[i].score.unwrap_or(0.0));
    if let Some(i) = (0..pieces.len()).find(|&i| piece(i).is_empty() || !score(i).is_finite()) {
        return Err(bad(model, format!("piece {i} is empty or has no finite score")));
    }

    // The vocabulary and the unknown token's id, as each converter numbers them.
    let (vocab, unk_id): (Vec<(String, f64)>, usize) = match family {
        Family::DebertaV2 => {
            let unk = trainer.and_then(|t| t.unk_id).unwrap_or(0);
            let unk = usize::try_from(unk).ok().filter(|&u| u < pieces.len());
            let unk = unk.ok_or_else(|| bad(model, "the unknown piece's id is outside the vocabulary"))?;
            ((0..pieces.len()).map(|i| (piece(i), score(i))).collect(), unk)
        }
        Family::XlmRoberta => {
            let mut v: Vec<(String, f64)> =
                ["<s>", "<pad>", "</s>", "<unk>"].iter().map(|s| (s.to_string(), 0.0)).collect();
            v.extend((3..pieces.len()).map(|i| (piece(i), score(i))));
            v.push(("<mask>".into(), 0.0));
            (v, 3)
        }
    };
    let unigram = Unigram::from(vocab, Some(unk_id), false).map_err(|e| bad(model, e))?;

    let settings: Settings = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or_default();
    let charsmap = spm.normalizer_spec.as_ref().and_then(|n| n.precompiled_charsmap.clone()).unwrap_or_default();
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    let precompiled = if charsmap.is_empty() {
        None
    } else {
        check_charsmap(&charsmap).map_err(|e| bad(model, format!("its character map is corrupt ({e})")))?;
        Some(Precompiled::from(&charsmap).map_err(|e| bad(model, e))?.into())
    };
    let regex = |to: &str| {
        Replace::new(tokenizers::normalizers::replace::ReplacePattern::Regex(" {2,}".into()), to)
            .map(NormalizerWrapper::from)
            .map_err(|e| bad(model, e))
    };
    match family {
        Family::DebertaV2 => {
            if settings.do_lower_case {
                normalizers.push(Lowercase.into());
            }
            normalizers.push(Strip::new(true, true).into());
            normalizers.extend(precompiled);
            normalizers.push(regex(" ")?);
        }
        Family::XlmRoberta => {
            normalizers.extend(precompiled);
            normalizers.push(Strip::new(false, true).into());
            normalizers.push(regex("\u{2581}")?);
        }
    }

    let metaspace = Metaspace::new('\u{2581}', PrependScheme::Always, true);
    let mut pre: Vec<PreTokenizerWrapper> = Vec::new();
    if family == Family::DebertaV2 && settings.split_by_punct {
        pre.push(Punctuation::new(SplitDelimiterBehavior::Isolated).into());
    }
    pre.push(metaspace.clone().into());

    let mut tokenizer = Tokenizer::new(unigram);
    tokenizer
        .with_normalizer(Some(Sequence::new(normalizers)))
        .with_pre_tokenizer(Some(PreSequence::new(pre)))
        .with_decoder(Some(MetaspaceDecoder::new('\u{2581}', PrependScheme::Always, true)));
    if family == Family::XlmRoberta {
        // XLM-R's converter sets the Metaspace itself, not in a sequence.
        tokenizer.with_pre_tokenizer(Some(metaspace));
    }

    // The model's control and user-defined pieces, as the converter adds them.
    let spm_added: Vec<AddedToken> = (0..pieces.len())
        .filter_map(|i| match pieces[i].r#type {
            Some(CONTROL) => Some(AddedToken::from(piece(i), true).normalized(false)),
            Some(USER_DEFINED) => Some(AddedToken::from(piece(i), false).normalized(false)),
            _ => None,
        })
        .collect();
    tokenizer.add_tokens(&spm_added);
    // Then the slow tokenizer's own added tokens, each at the id its files give.
    let listed: Vec<(usize, AddedToken)> = match settings.added_tokens_decoder {
        Some(decoder) => decoder
            .into_iter()
            .map(|(id, t)| {
                let id = id.parse::<usize>().map_err(|_| bad(&dir.join("tokenizer_config.json"), format!("\"{id}\" is not a token id")))?;
                let token = AddedToken::from(t.content, t.special)
                    .lstrip(t.lstrip)
                    .rstrip(t.rstrip)
                    .single_word(t.single_word)
                    .normalized(t.normalized);
                Ok((id, token))
            })
            .collect::<Result<_>>()?,
        None => legacy_added_tokens(dir, family, pieces.len())?,
    };
    let mut listed = listed;
    listed.sort_by_key(|(id, _)| *id);
    for (id, token) in listed {
        let content = token.content.clone();
        if token.special {
            tokenizer.add_special_tokens(&[token]);
        } else {
            tokenizer.add_tokens(&[token]);
        }
        let got = tokenizer.token_to_id(&content).map(|g| g as usize);
        if got != Some(id) {
            return Err(bad(
                dir,
                format!("the added token \"{content}\" is listed with id {id}, but the vocabulary gives it {got:?}"),
            ));
        }
    }

    let (cls, sep) = match family {
        Family::DebertaV2 => ("[CLS]", "[SEP]"),
        Family::XlmRoberta => ("<s>", "</s>"),
    };
    let id = |t: &str| tokenizer.token_to_id(t).ok_or_else(|| bad(model, format!("the vocabulary has no \"{t}\" token")));
    let (cls_id, sep_id) = (id(cls)?, id(sep)?);
    let pair = match family {
        Family::DebertaV2 => format!("{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1"),
        Family::XlmRoberta => format!("{cls} $A {sep} {sep} $B {sep}"),
    };
    let template = TemplateProcessing::builder()
        .try_single(format!("{cls}:0 $A:0 {sep}:0"))
        .and_then(|b| b.try_pair(pair))
        .map_err(|e| bad(model, e))?
        .special_tokens(vec![(cls.to_string(), cls_id), (sep.to_string(), sep_id)])
        .build()
        .map_err(|e| bad(model, e))?;
    tokenizer.with_post_processor(Some(template));
    Ok(tokenizer)
}

/// A folder saved before transformers wrote `added_tokens_decoder`: `added_tokens.json` gives the
/// added tokens' ids, `special_tokens_map.json` which of them (and of the pieces) are special.
fn legacy_added_tokens(dir: &Path, family: Family, pieces: usize) -> Result<Vec<(usize, AddedToken)>> {
    let added: BTreeMap<String, usize> = read_json(&dir.join("added_tokens.json"))?.unwrap_or_default();
    let map: BTreeMap<String, serde_json::Value> = read_json(&dir.join("special_tokens_map.json"))?.unwrap_or_default();
    let mut out: Vec<(usize, AddedToken)> = Vec::new();
    let mask = match family {
        Family::DebertaV2 => "[MASK]",
        Family::XlmRoberta => "<mask>",
    };
    let special_names: Vec<String> = map
        .values()
        .filter_map(|v| serde_json::from_value::<Special>(v.clone()).ok())
        .map(|s| match s {
            Special::Text(t) | Special::Object { content: t } => t,
        })
        .collect();
    for (content, id) in added {
        let special = special_names.contains(&content) || content == mask;
        out.push((id, AddedToken::from(content, special).normalized(!special)));
    }
    if family == Family::XlmRoberta && !out.iter().any(|(_, t)| t.content == mask) {
        out.push((pieces + 1, AddedToken::from(mask, true).lstrip(true).normalized(false)));
    }
    Ok(out)
}

/// Walks every path SentencePiece's normaliser can take through the character map's double
/// array, as `spm_precompiled` does, and checks that each index it would read is inside the
/// array and each replacement starts inside the replacement text on a character boundary.
fn check_charsmap(map: &[u8]) -> std::result::Result<(), String> {
    let len_bytes: [u8; 4] = map.get(..4).ok_or("shorter than its header")?.try_into().expect("4 bytes");
    let trie_bytes = u32::from_le_bytes(len_bytes) as usize;
    let body = &map[4..];
    if trie_bytes % 4 != 0 || trie_bytes > body.len() || trie_bytes == 0 {
        return Err(format!("a trie of {trie_bytes} bytes in {} bytes", body.len()));
    }
    let units: Vec<usize> =
        body[..trie_bytes].chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4")) as usize).collect();
    let text = std::str::from_utf8(&body[trie_bytes..]).map_err(|_| "its replacement text is not UTF-8")?;
    let offset = |u: usize| (u >> 10) << ((u & (1 << 9)) >> 6);
    let label = |u: usize| u & ((1usize << 31) | 0xFF);
    let has_leaf = |u: usize| (u >> 8) & 1 == 1;
    let value = |u: usize| u & ((1usize << 31) - 1);
    let mut seen = std::collections::HashSet::new();
    let mut todo = vec![offset(units[0])];
    while let Some(pos) = todo.pop() {
        if !seen.insert(pos) {
            continue;
        }
        for c in 1..=255usize {
            let at = pos ^ c;
            let unit = *units.get(at).ok_or("an index outside the trie")?;
            if label(unit) != c {
                continue;
            }
            let next = at ^ offset(unit);
            if has_leaf(unit) {
                let v = value(*units.get(next).ok_or("a leaf outside the trie")?);
                if v > text.len() || !text.is_char_boundary(v) {
                    return Err("a replacement outside its text".into());
                }
            }
            todo.push(next);
        }
    }
    Ok(())
}
