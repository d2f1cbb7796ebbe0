//! Command-line arguments.

use std::path::PathBuf;

use biomed_ner_engine::{Options, Precision};

pub const USAGE: &str = "\
usage: biomed-ner [OPTIONS] [--assertion] < texts.jsonl > entities.jsonl
       biomed-ner assert < texts-with-entities.jsonl > entities.jsonl
       biomed-ner render [OPTIONS] [--assertion] < texts.jsonl > page.html
       biomed-ner eval [OPTIONS] [--assertion] --brat DIR [--split-file SPLIT.tsv --split test]
       biomed-ner --version
       biomed-ner bench [OPTIONS] [--batch N --len N --iters N --warmup N]

Reads JSON lines {\"text\": \"...\"} and writes, per line and in order, a JSON array of
entities {\"entity_group\", \"score\", \"word\", \"start\", \"end\"} with code-point offsets.

options:
  --model DIR          model folder in Hugging Face layout, or a hub cache snapshot: a
                       DeBERTa-v2/v3, BERT, DistilBERT, RoBERTa, XLM-RoBERTa or ELECTRA
                       token classifier (default: the bundled MACCROBAT model)
  --aggregation S      none | simple (default) | first | average | max
  --max-length N       tokens per window, special tokens included (default 512)
  --stride N           tokens shared by consecutive windows (default 128)
  --batch-size N       windows per forward pass (default 8)
  --max-batch-tokens N padded tokens per forward pass (default 16384)
  --threads N          CPU threads (default: RAYON_NUM_THREADS, else all cores)
  --dtype T            f32 (default) | f16 | bf16 | int8 (CPU)
  --device D           cpu (default) | cuda | cuda:N | auto
  --stats              print load and annotation seconds to stderr as JSON
  --progress           show the progress bar on stderr even where it is not a terminal (as
                       plain lines); by default it shows only on a terminal
  --quiet              no progress bar (the later of --progress and --quiet counts)
  --assertion          add \"assertion\": \"present\" | \"absent\" | \"possible\" to each entity
                       (with eval: score the assertion of the corpus's events instead)
  --version            print the version and the int8 kernel this CPU uses as JSON
                       ({\"version\", \"cpu_kernels\": amx | avx512-vnni | avx2 | portable})
assert: reads JSON lines {\"text\": ..., \"entities\": [{\"start\", \"end\", \"entity_group\"?...}]}
  and writes each line's entities with \"assertion\" added (no model is loaded)
render: reads JSON lines {\"text\": ...} with or without \"entities\" and writes one HTML page
  (inline CSS and JavaScript, nothing fetched) with each entity highlighted, a legend with
  the count of each type and a checkbox to hide or show it, and an index of many notes; the
  model runs only on lines without \"entities\"; with --assertion, absent entities are struck
  through and possible ones underlined (given entities get their assertion too). Of
  overlapping entities, the first (the longer at the same start) is shown
eval options:
  --brat DIR           folder of brat .txt/.ann pairs
  --split-file F       tab-separated doc_id, split; with --split, score only that split
  --split NAME         e.g. test
bench options (times the forward pass on fixed token ids, prints one JSON line):
  --batch N            sequences per pass (default 8)
  --len N              tokens per sequence (default 256)
  --iters N            timed passes (default 10)
  --warmup N           untimed passes first (default 2)
  --profile            also time each stage of the pass, waiting for the device after each
                       (slower than the plain timing; adds \"profile_ms\" to the JSON line)";

#[cfg_attr(feature = "bundled-model", allow(dead_code))]
pub const NO_MODEL: &str = "no model given: pass --model DIR, a folder with config.json, a tokenizer (tokenizer.json, vocab.txt, spm.model or sentencepiece.bpe.model) \
and model.safetensors or pytorch_model.bin (for example one made by \
`huggingface-cli download venkatd/BIOMed_NER --local-dir DIR`)";

pub struct EvalArgs {
    pub brat: PathBuf,
    /// Score the assertion of events (present, absent, possible) instead of the entities.
    pub assertion: bool,
    pub split_file: Option<PathBuf>,
    pub split: Option<String>,
}

pub enum Command {
    Annotate,
    /// Read texts with their entities and add each entity's assertion.
    Assert,
    /// Read texts, with or without entities, and write an HTML page of them.
    Render,
    Eval(EvalArgs),
    Bench(crate::bench::BenchArgs),
    Help,
    Version,
}

pub struct Args {
    pub command: Command,
    pub model: Option<PathBuf>,
    pub options: Options,
    pub threads: Option<usize>,
    pub dtype: Precision,
    pub device: String,
    /// Print load and annotation times to stderr as JSON.
    pub stats: bool,
    /// Add each entity's assertion (present, absent, possible).
    pub assertion: bool,
    /// When to show the progress bar on stderr.
    pub progress: crate::progress::Mode,
}

fn number(flag: &str, v: &str, min: usize) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("{flag} wants an integer of at least {min}, got \"{v}\"")),
    }
}

pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        command: Command::Annotate,
        model: None,
        options: Options::default(),
        threads: None,
        dtype: Precision::F32,
        device: "cpu".into(),
        stats: false,
        assertion: false,
        progress: crate::progress::Mode::Auto,
    };
    let (mut brat, mut split_file, mut split) = (None, None, None);
    let mut eval = false;
    let mut bench: Option<crate::bench::BenchArgs> = None;
    let mut first = true;
    while let Some(flag) = it.next() {
        if first && flag == "eval" {
            eval = true;
            first = false;
            continue;
        }
        if first && (flag == "assert" || flag == "render") {
            args.command = if flag == "assert" { Command::Assert } else { Command::Render };
            first = false;
            continue;
        }
        if first && flag == "bench" {
            bench = Some(crate::bench::BenchArgs { batch: 8, len: 256, iters: 10, warmup: 2, profile: false });
            first = false;
            continue;
        }
        first = false;
        if flag == "-h" || flag == "--help" {
            args.command = Command::Help;
            return Ok(args);
        }
        if flag == "-V" || flag == "--version" {
            args.command = Command::Version;
            return Ok(args);
        }
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let o = &mut args.options;
        match flag.as_str() {
            "--model" => args.model = Some(PathBuf::from(value()?)),
            "--aggregation" => o.aggregation = value()?.parse().map_err(|e: biomed_ner_engine::Error| e.to_string())?,
            "--max-length" => o.max_length = number(&flag, &value()?, 3)?,
            "--stride" => o.stride = number(&flag, &value()?, 0)?,
            "--batch-size" => o.batch_size = number(&flag, &value()?, 1)?,
            "--max-batch-tokens" => o.max_batch_tokens = number(&flag, &value()?, 1)?,
            "--threads" => args.threads = Some(number(&flag, &value()?, 1)?),
            "--dtype" => args.dtype = biomed_ner_engine::parse_dtype(&value()?).map_err(|e| e.to_string())?,
            "--device" => args.device = value()?,
            "--stats" => args.stats = true,
            "--assertion" => args.assertion = true,
            "--progress" => args.progress = crate::progress::Mode::Always,
            "--quiet" => args.progress = crate::progress::Mode::Never,
            "--brat" if eval => brat = Some(PathBuf::from(value()?)),
            "--split-file" if eval => split_file = Some(PathBuf::from(value()?)),
            "--split" if eval => split = Some(value()?),
            "--batch" if bench.is_some() => bench.as_mut().unwrap().batch = number(&flag, &value()?, 1)?,
            "--len" if bench.is_some() => bench.as_mut().unwrap().len = number(&flag, &value()?, 1)?,
            "--iters" if bench.is_some() => bench.as_mut().unwrap().iters = number(&flag, &value()?, 1)?,
            "--warmup" if bench.is_some() => bench.as_mut().unwrap().warmup = number(&flag, &value()?, 0)?,
            "--profile" if bench.is_some() => bench.as_mut().unwrap().profile = true,
            other => return Err(format!("unknown argument \"{other}\"")),
        }
    }
    if let Some(b) = bench {
        args.command = Command::Bench(b);
    }
    if eval {
        let brat = brat.ok_or("eval needs --brat DIR")?;
        if split.is_some() != split_file.is_some() {
            return Err("--split and --split-file go together".into());
        }
        args.command = Command::Eval(EvalArgs { brat, assertion: args.assertion, split_file, split });
    }
    Ok(args)
}
