//! `biomed-ner`: biomedical entities for JSON lines on stdin, one JSON array per line on
//! stdout; `biomed-ner render` for an HTML page of the notes with their entities highlighted;
//! `biomed-ner eval` for entity-level scores on a brat corpus; `biomed-ner bench` for the
//! forward pass's speed.

mod args;
mod assertion_eval;
mod bench;
mod eval;
mod progress;
mod render;

use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;

use biomed_ner_engine::{Options, Pipeline};

use args::{Args, Command};

fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("biomed-ner: {msg}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    // candle's matmul and rayon's pool both read these; set before either starts.
    biomed_ner_engine::set_cpu_threads(args.threads);
    // Long windows' buffers reused rather than mapped afresh at each operation.
    biomed_ner_engine::tune_allocator();
    let result = match &args.command {
        Command::Help => {
            println!("{}", args::USAGE);
            Ok(())
        }
        Command::Assert => assert_lines(),
        Command::Render => render::run(&args),
        Command::Version => {
            let v = serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "cpu_kernels": biomed_ner_engine::cpu_kernels()});
            println!("{v}");
            Ok(())
        }
        Command::Annotate => load(&args).and_then(|p| {
            let t0 = std::time::Instant::now();
            let n = annotate(&p, &args)?;
            if args.stats {
                let s = serde_json::json!({"load_seconds": p.load_seconds, "annotate_seconds": t0.elapsed().as_secs_f64(), "texts": n});
                eprintln!("{s}");
            }
            Ok(())
        }),
        Command::Eval(e) if e.assertion => load(&args).and_then(|p| assertion_eval::run(&p, &args.options, e, args.progress)),
        Command::Eval(e) => load(&args).and_then(|p| eval::run(&p, &args.options, e, args.progress)),
        Command::Bench(b) => load(&args).and_then(|p| bench::run(&p, &args.device, b)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("biomed-ner: {msg}");
            ExitCode::from(1)
        }
    }
}

pub fn load(args: &Args) -> Result<Pipeline, String> {
    let device = biomed_ner_engine::parse_device(&args.device).map_err(|e| e.to_string())?;
    match &args.model {
        Some(dir) => Pipeline::load(dir, args.dtype, &device).map_err(|e| e.to_string()),
        None => load_default(args.dtype, &device),
    }
}

#[cfg(feature = "bundled-model")]
fn load_default(dtype: biomed_ner_engine::Precision, device: &biomed_ner_engine::Device) -> Result<Pipeline, String> {
    biomed_ner_engine::bundled::load(dtype, device).map_err(|e| e.to_string())
}

#[cfg(not(feature = "bundled-model"))]
fn load_default(_: biomed_ner_engine::Precision, _: &biomed_ner_engine::Device) -> Result<Pipeline, String> {
    Err(args::NO_MODEL.to_string())
}

/// Line `n` (from 1) of `assert` and `render`: nothing for a blank line, else its text and
/// the whole object.
pub fn text_line(n: usize, line: &str) -> Result<Option<(String, serde_json::Value)>, String> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("line {n}: not JSON ({e})"))?;
    match v.get("text") {
        Some(serde_json::Value::String(t)) => Ok(Some((t.clone(), v))),
        _ => Err(format!("line {n}: no \"text\" string")),
    }
}

/// `biomed-ner assert`: each line's entities with their assertion added.
fn assert_lines() -> Result<(), String> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", i + 1))?;
        let Some((text, v)) = text_line(i + 1, &line)? else { continue };
        let entities = v.get("entities").ok_or_else(|| format!("line {}: no \"entities\"", i + 1))?;
        let asserted = biomed_ner_engine::assertion::assert_json(&text, entities).map_err(|e| format!("line {}: {e}", i + 1))?;
        serde_json::to_writer(&mut out, &asserted).map_err(|e| e.to_string())?;
        out.write_all(b"\n").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

/// Texts are annotated in chunks, so that batches fill up across lines while output still
/// streams.
fn annotate(p: &Pipeline, args: &Args) -> Result<usize, String> {
    let (opts, assertion): (&Options, bool) = (&args.options, args.assertion);
    let bar = progress::notes(args.progress, None);
    let mut count = 0;
    let chunk = (opts.batch_size * 16).max(64);
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut pending: Vec<String> = Vec::with_capacity(chunk);
    let flush = |pending: &mut Vec<String>, out: &mut BufWriter<_>| -> Result<(), String> {
        let texts: Vec<&str> = pending.iter().map(String::as_str).collect();
        let results = p.annotate(&texts, opts, &mut || Ok(())).map_err(|e| e.to_string())?;
        for (text, entities) in texts.iter().zip(results) {
            if assertion {
                serde_json::to_writer(&mut *out, &biomed_ner_engine::assertion::entities_json(text, &entities))
            } else {
                serde_json::to_writer(&mut *out, &entities)
            }
            .map_err(|e| e.to_string())?;
            out.write_all(b"\n").map_err(|e| e.to_string())?;
        }
        out.flush().map_err(|e| e.to_string())?;
        bar.inc(pending.len() as u64);
        pending.clear();
        Ok(())
    };
    for (i, line) in stdin.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", i + 1))?;
        match parse_line(&line) {
            Ok(text) => {
                pending.push(text);
                count += 1;
            }
            Err(why) => {
                flush(&mut pending, &mut out)?;
                return Err(format!("line {}: {why}", i + 1));
            }
        }
        if pending.len() >= chunk {
            flush(&mut pending, &mut out)?;
        }
    }
    flush(&mut pending, &mut out)?;
    bar.finish();
    Ok(count)
}

fn parse_line(line: &str) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    match v.get("text") {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err("\"text\" is not a string".into()),
        None => Err("expected an object with a \"text\" string".into()),
    }
}
