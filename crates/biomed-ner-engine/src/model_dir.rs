//! Finding the files of a model in Hugging Face layout: a plain folder, or a hub cache
//! (`models--ORG--NAME`, whose `refs/main` names the snapshot) or one of its snapshots.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::error::{Error, Result};

/// The files of one model.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub tokenizer: TokenizerFile,
    pub weights: Weights,
}

/// Where the tokenizer comes from.
#[derive(Debug, Clone)]
pub enum TokenizerFile {
    /// `tokenizer.json`: any fast tokenizer.
    Json(PathBuf),
    /// `vocab.txt`, and `tokenizer_config.json` where there is one: an older BERT-style
    /// checkpoint's WordPiece vocabulary ([`crate::wordpiece`]).
    VocabTxt { vocab: PathBuf, settings: Option<PathBuf> },
    /// `spm.model` (DeBERTa-v2/v3) or `sentencepiece.bpe.model` (XLM-RoBERTa), with the slow
    /// tokenizer's settings beside it ([`crate::sentencepiece`]).
    SentencePiece { model: PathBuf, family: crate::sentencepiece::Family },
}

/// The tokenizer files a folder is searched for, in order.
pub const TOKENIZER_FILES: &str = "tokenizer.json, vocab.txt, spm.model or sentencepiece.bpe.model";

#[derive(Debug, Clone)]
pub enum Weights {
    Safetensors(PathBuf),
    PytorchBin(PathBuf),
}

impl ModelFiles {
    /// Resolves `path`: a model folder, a snapshot folder, or a `models--ORG--NAME` cache
    /// folder (its `refs/main` snapshot, or its only snapshot).
    pub fn locate(path: &Path) -> Result<Self> {
        // Errors other than "not found" (permission denied, a loop of links) say what they are.
        let unreadable = |p: &Path, e: std::io::Error| Error::BadFile { path: p.to_path_buf(), reason: e.to_string() };
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::BadFile { path: path.to_path_buf(), reason: "not a folder".into() });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::ModelNotFound { path: path.to_path_buf() });
            }
            Err(e) => return Err(unreadable(path, e)),
        }
        let exists = |p: &Path| p.try_exists().map_err(|e| unreadable(p, e));
        // A folder the server may not list hides its files: say so rather than "has no ...".
        std::fs::read_dir(path).map_err(|e| unreadable(path, e))?;
        let dir = if exists(&path.join("config.json"))? { path.to_path_buf() } else { snapshot_of(path)? };
        let need = |name: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            match std::fs::metadata(&p) {
                Ok(m) if m.is_file() => Ok(p),
                Ok(_) => Err(Error::MissingFile { file: name.to_string(), dir: dir.clone() }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(Error::MissingFile { file: name.to_string(), dir: dir.clone() })
                }
                Err(e) => Err(unreadable(&p, e)),
            }
        };
        let config = need("config.json")?;
        let optional = |name: &str| match need(name) {
            Ok(p) => Ok(Some(p)),
            Err(Error::MissingFile { .. }) => Ok(None),
            Err(e) => Err(e),
        };
        // tokenizer.json first, then what transformers converts from: vocab.txt (WordPiece),
        // then a SentencePiece model.
        let tokenizer = if let Some(p) = optional("tokenizer.json")? {
            TokenizerFile::Json(p)
        } else if let Some(vocab) = optional("vocab.txt")? {
            TokenizerFile::VocabTxt { vocab, settings: optional("tokenizer_config.json")? }
        } else {
            let mut found = None;
            for (name, family) in crate::sentencepiece::Family::FILES {
                if let Some(model) = optional(name)? {
                    found = Some(TokenizerFile::SentencePiece { model, family });
                    break;
                }
            }
            found.ok_or_else(|| Error::MissingFile { file: TOKENIZER_FILES.into(), dir: dir.clone() })?
        };
        // Either weights file; a file that is there but unreadable says so.
        let weights = match need("model.safetensors").map(Weights::Safetensors) {
            Err(Error::MissingFile { .. }) => match need("pytorch_model.bin").map(Weights::PytorchBin) {
                Err(Error::MissingFile { .. }) => {
                    return Err(Error::MissingFile {
                        file: "model.safetensors or pytorch_model.bin".into(),
                        dir: dir.clone(),
                    })
                }
                other => other?,
            },
            other => other?,
        };
        Ok(Self { dir, config, tokenizer, weights })
    }

    /// A variable builder over the weights, converting to `dtype` on `device`. Safetensors
    /// are memory-mapped.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> Result<VarBuilder<'static>> {
        match &self.weights {
            Weights::Safetensors(p) => {
                // Safety: the mapped file must not change while the model is loaded, the usual
                // contract of memory-mapped weights.
                unsafe { VarBuilder::from_mmaped_safetensors(&[p], dtype, device) }
                    .map_err(|e| Error::BadFile { path: p.clone(), reason: e.to_string() })
            }
            Weights::PytorchBin(p) => {
                // candle's pickle reader recurses over the objects it builds: bound them first.
                crate::pickle_guard::check_pth(p)?;
                VarBuilder::from_pth(p, dtype, device)
                    .map_err(|e| Error::BadFile { path: p.clone(), reason: e.to_string() })
            }
        }
    }
}

fn snapshot_of(path: &Path) -> Result<PathBuf> {
    let snapshots = path.join("snapshots");
    if !snapshots.is_dir() {
        return Err(Error::MissingFile { file: "config.json".into(), dir: path.to_path_buf() });
    }
    if let Ok(rev) = std::fs::read_to_string(path.join("refs").join("main")) {
        // A revision is one folder name of snapshots/: never a path that leads elsewhere.
        let rev = Path::new(rev.trim());
        let one_name = matches!(rev.components().collect::<Vec<_>>()[..], [std::path::Component::Normal(_)]);
        let snap = snapshots.join(rev);
        if one_name && snap.join("config.json").exists() {
            return Ok(snap);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .map_err(|e| Error::BadFile { path: snapshots.clone(), reason: e.to_string() })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("config.json").exists())
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::MissingFile { file: "a snapshot with config.json".into(), dir: snapshots }),
        n => Err(Error::InvalidOption(format!(
            "\"{}\" holds {n} snapshots and no refs/main; name one snapshot folder",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"{}").unwrap();
    }

    #[test]
    fn errors_name_the_missing_file_and_folder() {
        let tmp = std::env::temp_dir().join(format!("biomed-ner-engine-md-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let e = ModelFiles::locate(&tmp).unwrap_err().to_string();
        assert!(e.contains("does not exist") && e.contains(tmp.to_str().unwrap()), "{e}");
        touch(&tmp.join("config.json"));
        let e = ModelFiles::locate(&tmp).unwrap_err().to_string();
        assert!(e.contains("tokenizer.json, vocab.txt, spm.model or sentencepiece.bpe.model"), "{e}");
        touch(&tmp.join("vocab.txt"));
        let e = ModelFiles::locate(&tmp).unwrap_err().to_string();
        assert!(e.contains("model.safetensors or pytorch_model.bin"), "{e}");
        touch(&tmp.join("model.safetensors"));
        assert!(matches!(ModelFiles::locate(&tmp).unwrap().tokenizer, TokenizerFile::VocabTxt { settings: None, .. }));
        std::fs::remove_file(tmp.join("model.safetensors")).unwrap();
        touch(&tmp.join("tokenizer.json"));
        let e = ModelFiles::locate(&tmp).unwrap_err().to_string();
        assert!(e.contains("model.safetensors or pytorch_model.bin"), "{e}");
        touch(&tmp.join("pytorch_model.bin"));
        let files = ModelFiles::locate(&tmp).unwrap();
        assert!(matches!(files.weights, Weights::PytorchBin(_)));
        assert!(matches!(files.tokenizer, TokenizerFile::Json(_)), "tokenizer.json comes before vocab.txt");
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn a_link_loop_is_not_reported_as_missing() {
        let tmp = std::env::temp_dir().join(format!("biomed-ner-engine-loop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        std::os::unix::fs::symlink(tmp.join("b"), tmp.join("a")).unwrap();
        std::os::unix::fs::symlink(tmp.join("a"), tmp.join("b")).unwrap();
        let e = ModelFiles::locate(&tmp.join("a")).unwrap_err().to_string();
        assert!(e.contains("symbolic links"), "{e}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn resolves_hub_cache_snapshots() {
        let tmp = std::env::temp_dir().join(format!("biomed-ner-engine-hub-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let snap = tmp.join("models--venkatd--BIOMed_NER/snapshots/abc123");
        for f in ["config.json", "tokenizer.json", "model.safetensors"] {
            touch(&snap.join(f));
        }
        let root = tmp.join("models--venkatd--BIOMed_NER");
        assert_eq!(ModelFiles::locate(&root).unwrap().dir, snap);
        std::fs::create_dir_all(root.join("snapshots/def456")).unwrap();
        touch(&root.join("snapshots/def456/config.json"));
        assert!(ModelFiles::locate(&root).is_err(), "two snapshots, no refs/main");
        std::fs::create_dir_all(root.join("refs")).unwrap();
        std::fs::write(root.join("refs/main"), "abc123\n").unwrap();
        assert_eq!(ModelFiles::locate(&root).unwrap().dir, snap);
        assert_eq!(ModelFiles::locate(&snap).unwrap().dir, snap);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
