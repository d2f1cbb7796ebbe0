//! The token-classification pipeline: text → tokens (code-point offsets) → windows → batched
//! forward passes → per-token scores → entities.

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use candle_nn::VarBuilder;
use tokenizers::{ModelWrapper, Tokenizer};

use crate::aggregate::{aggregate, softmax_in_place, Aggregation, Entity, TokenScores};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::arch::TokenClassifier;
use crate::model_dir::{ModelFiles, TokenizerFile};
use crate::windows::{owners, pack, windows};
use crate::Precision;

/// Run-time options; none of them needs a model reload.
#[derive(Debug, Clone)]
pub struct Options {
    pub aggregation: Aggregation,
    /// Tokens per window, special tokens included.
    pub max_length: usize,
    /// Tokens shared by consecutive windows.
    pub stride: usize,
    /// Windows per forward pass.
    pub batch_size: usize,
    /// Padded tokens (`longest * windows`) per forward pass.
    pub max_batch_tokens: usize,
    /// Estimated bytes one forward pass may allocate for its activations
    /// ([`TokenClassifier::pass_bytes`]); 0 for no limit. Batches over it are cut into
    /// smaller ones; a single window over it is refused with [`Error::ResourceLimit`].
    pub max_pass_bytes: usize,
    pub ignore_labels: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            aggregation: Aggregation::Simple,
            max_length: 512,
            stride: 128,
            batch_size: 8,
            max_batch_tokens: 16384,
            max_pass_bytes: 0,
            ignore_labels: vec!["O".into()],
        }
    }
}

/// How the pipeline decides that a token continues the previous word (transformers'
/// `gather_pre_entities`).
#[derive(Debug, Clone)]
enum SubwordRule {
    /// The tokenizer marks continuations (WordPiece `##`, some BPEs): a token is a subword
    /// when its text differs in length from its input slice.
    Prefix,
    /// SentencePiece and other tokenizers: a token is a subword unless it starts the text or
    /// a space precedes or starts it.
    Heuristic,
}

/// A loaded model with its tokenizer.
pub struct Pipeline {
    pub model: Box<dyn TokenClassifier>,
    tokenizer: Tokenizer,
    /// Template tokens before and after a single sequence ([CLS] … [SEP]).
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    unk_id: Option<u32>,
    subword: SubwordRule,
    /// Where the model came from: its folder, or `bundled:NAME`.
    pub origin: String,
    pub load_seconds: f64,
}

/// One text's tokens after encoding.
struct Encoded {
    chars: Vec<char>,
    /// Content tokens (template tokens removed).
    ids: Vec<u32>,
    offsets: Vec<(usize, usize)>,
    special: Vec<bool>,
    tokens: Vec<String>,
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

impl Pipeline {
    /// Loads the model folder at `path` in `precision` on `device`.
    pub fn load(path: &Path, precision: Precision, device: &Device) -> Result<Self> {
        let t0 = Instant::now();
        let files = ModelFiles::locate(path)?;
        let cfg = Config::from_file(&files.config)?;
        let tokenizer = match &files.tokenizer {
            TokenizerFile::Json(p) => {
                Tokenizer::from_file(p).map_err(|e| Error::BadFile { path: p.clone(), reason: e.to_string() })?
            }
            TokenizerFile::VocabTxt { vocab, settings } => crate::wordpiece::from_vocab_txt(vocab, settings.as_deref())?,
            TokenizerFile::SentencePiece { model, family } => crate::sentencepiece::from_sentencepiece(model, *family)?,
        };
        let vb = files.var_builder(precision.load_dtype(device), device)?;
        Self::from_parts(cfg, tokenizer, vb, files.dir.display().to_string(), precision, t0)
    }

    /// Loads a model held in memory: `config.json` text, `tokenizer.json` bytes and
    /// safetensors bytes. `origin` names it in [`Pipeline::origin`].
    pub fn from_memory(
        config: &str,
        tokenizer: &[u8],
        safetensors: &[u8],
        origin: &str,
        precision: Precision,
        device: &Device,
    ) -> Result<Self> {
        let t0 = Instant::now();
        let cfg = Config::from_json(config)?;
        let tokenizer = Tokenizer::from_bytes(tokenizer)
            .map_err(|e| Error::BadFile { path: format!("{origin}/tokenizer.json").into(), reason: e.to_string() })?;
        let vb = VarBuilder::from_slice_safetensors(safetensors, precision.load_dtype(device), device)
            .map_err(|e| Error::BadFile { path: format!("{origin}/model.safetensors").into(), reason: e.to_string() })?;
        Self::from_parts(cfg, tokenizer, vb, origin.to_string(), precision, t0)
    }

    fn from_parts(
        cfg: Config,
        mut tokenizer: Tokenizer,
        vb: VarBuilder,
        origin: String,
        precision: Precision,
        t0: Instant,
    ) -> Result<Self> {
        // The pipeline never truncates or pads inside the tokenizer; windows do that.
        tokenizer.with_truncation(None).map_err(tok_err)?;
        tokenizer.with_padding(None);
        let vocab = tokenizer.get_vocab_size(true);
        if vocab > cfg.vocab_size {
            return Err(Error::Unsupported(format!(
                "tokenizer has {vocab} tokens but the model's vocab_size is {}",
                cfg.vocab_size
            )));
        }
        let (prefix, suffix) = template(&tokenizer)?;
        let unk_id = ["[UNK]", "<unk>"].iter().find_map(|t| tokenizer.token_to_id(t));
        let subword = match tokenizer.get_model() {
            ModelWrapper::WordPiece(wp) if !wp.continuing_subword_prefix.is_empty() => SubwordRule::Prefix,
            ModelWrapper::BPE(bpe) if bpe.continuing_subword_prefix.as_deref().is_some_and(|p| !p.is_empty()) => {
                SubwordRule::Prefix
            }
            _ => SubwordRule::Heuristic,
        };
        let model = crate::arch::load(vb, &cfg, precision)?;
        Ok(Self {
            model,
            tokenizer,
            prefix,
            suffix,
            unk_id,
            subword,
            origin,
            load_seconds: t0.elapsed().as_secs_f64(),
        })
    }

    pub fn labels(&self) -> &[String] {
        &self.model.config().labels
    }

    fn encode(&self, text: &str) -> Result<Encoded> {
        let enc = self.tokenizer.encode_char_offsets(text, true).map_err(tok_err)?;
        let n = enc.get_ids().len();
        let (p, s) = (self.prefix.len(), self.suffix.len());
        let body = if n >= p + s { p..n - s } else { 0..0 };
        Ok(Encoded {
            chars: text.chars().collect(),
            ids: enc.get_ids()[body.clone()].to_vec(),
            offsets: enc.get_offsets()[body.clone()].to_vec(),
            special: enc.get_special_tokens_mask()[body.clone()].iter().map(|&m| m != 0).collect(),
            tokens: enc.get_tokens()[body].to_vec(),
        })
    }

    fn is_subword(&self, e: &Encoded, i: usize) -> bool {
        if Some(e.ids[i]) == self.unk_id {
            return false;
        }
        let (start, end) = e.offsets[i];
        match self.subword {
            SubwordRule::Prefix => e.tokens[i].chars().count() != end - start,
            // `start > 0 and " " not in sentence[start - 1 : start + 1]`
            SubwordRule::Heuristic => start > 0 && e.chars[start - 1] != ' ' && e.chars.get(start) != Some(&' '),
        }
    }

    /// Entities of each text, in order. `check` runs on the calling thread for every text
    /// encoded and aggregated, and before every batch and every layer of its forward pass; an
    /// error from it stops the run (cancellation).
    pub fn annotate(
        &self,
        texts: &[&str],
        opts: &Options,
        check: &mut dyn FnMut() -> Result<()>,
    ) -> Result<Vec<Vec<Entity>>> {
        let overhead = self.prefix.len() + self.suffix.len();
        let max_length = match self.model.config().max_input_tokens() {
            Some(m) => opts.max_length.min(m),
            None => opts.max_length,
        };
        if max_length <= overhead {
            return Err(Error::InvalidOption(format!(
                "max_length {} leaves no room beside {overhead} special tokens",
                opts.max_length
            )));
        }
        let content = max_length - overhead;
        // Checked once, before any work, with this tokenizer's real number of special tokens.
        if opts.stride >= content {
            return Err(Error::InvalidOption(format!(
                "stride {} must be smaller than max_length {} minus its {overhead} special tokens",
                opts.stride, opts.max_length
            )));
        }
        if opts.batch_size == 0 {
            return Err(Error::InvalidOption("batch_size must be at least 1".into()));
        }
        let encoded = texts
            .iter()
            .map(|t| {
                check()?;
                self.encode(t)
            })
            .collect::<Result<Vec<_>>>()?;
        // (text, window) for every window of every text.
        let mut wins = Vec::new();
        let mut owner = Vec::with_capacity(texts.len());
        for (ti, e) in encoded.iter().enumerate() {
            if e.ids.is_empty() {
                owner.push(Vec::new());
                continue;
            }
            let ws = windows(e.ids.len(), content, opts.stride)?;
            owner.push(owners(e.ids.len(), &ws).into_iter().map(|w| w + wins.len()).collect::<Vec<_>>());
            wins.extend(ws.into_iter().map(|w| (ti, w)));
        }
        let n_labels = self.labels().len();
        let mut scores: Vec<Vec<f32>> = encoded.iter().map(|e| vec![0f32; e.ids.len() * n_labels]).collect();
        let seqs: Vec<Vec<u32>> = wins
            .iter()
            .map(|(ti, w)| {
                let mut s = Vec::with_capacity(w.end - w.start + overhead);
                s.extend_from_slice(&self.prefix);
                s.extend_from_slice(&encoded[*ti].ids[w.start..w.end]);
                s.extend_from_slice(&self.suffix);
                s
            })
            .collect();
        let lens: Vec<usize> = seqs.iter().map(Vec::len).collect();
        let batches = pack(&lens, opts.batch_size, opts.max_batch_tokens);
        let batches = self.fit_budget(batches, &lens, opts.max_pass_bytes)?;
        for batch in batches {
            check()?;
            let inputs: Vec<&[u32]> = batch.iter().map(|&i| seqs[i].as_slice()).collect();
            let logits = self.model.forward_checked(&inputs, check)?;
            for (&wi, lg) in batch.iter().zip(logits) {
                let (ti, w) = wins[wi];
                for t in w.start..w.end {
                    if owner[ti][t] == wi {
                        let row = &lg[(t - w.start + self.prefix.len()) * n_labels..][..n_labels];
                        let dst = &mut scores[ti][t * n_labels..][..n_labels];
                        dst.copy_from_slice(row);
                        softmax_in_place(dst);
                    }
                }
            }
        }
        encoded
            .iter()
            .zip(&scores)
            .map(|(e, sc)| {
                check()?;
                let toks: Vec<TokenScores> = (0..e.ids.len())
                    .filter(|&i| !e.special[i])
                    .map(|i| TokenScores {
                        index: i + self.prefix.len(),
                        start: e.offsets[i].0,
                        end: e.offsets[i].1,
                        is_subword: self.is_subword(e, i),
                        scores: &sc[i * n_labels..][..n_labels],
                    })
                    .collect();
                Ok(aggregate(&e.chars, &toks, self.labels(), opts.aggregation, &opts.ignore_labels))
            })
            .collect()
    }
}

impl Pipeline {
    /// Cuts every batch whose forward pass would exceed `budget` bytes (0: no limit) into
    /// batches that fit, before any work; a window that does not fit alone is an error.
    fn fit_budget(&self, batches: Vec<Vec<usize>>, lens: &[usize], budget: usize) -> Result<Vec<Vec<usize>>> {
        if budget == 0 {
            return Ok(batches);
        }
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            let longest = batch.iter().map(|&i| lens[i]).max().unwrap_or(0);
            let one = self.model.pass_bytes(1, longest);
            if one > budget {
                return Err(Error::ResourceLimit(format!(
                    "a window of {longest} tokens needs about {} MB for its forward pass, over the budget of {} MB",
                    one.div_ceil(1 << 20),
                    budget >> 20
                )));
            }
            let fits = (1..=batch.len()).rev().find(|&b| self.model.pass_bytes(b, longest) <= budget).unwrap_or(1);
            out.extend(batch.chunks(fits).map(<[usize]>::to_vec));
        }
        Ok(out)
    }
}

/// The template tokens a single sequence gets before and after its own tokens.
fn template(tokenizer: &Tokenizer) -> Result<(Vec<u32>, Vec<u32>)> {
    let probe = "a";
    let plain = tokenizer.encode(probe, false).map_err(tok_err)?;
    let full = tokenizer.encode(probe, true).map_err(tok_err)?;
    let (p, f) = (plain.get_ids(), full.get_ids());
    let at = (0..=f.len().saturating_sub(p.len()))
        .find(|&i| f[i..].starts_with(p))
        .ok_or_else(|| Error::Tokenizer("cannot find the text inside the special-token template".into()))?;
    Ok((f[..at].to_vec(), f[at + p.len()..].to_vec()))
}
