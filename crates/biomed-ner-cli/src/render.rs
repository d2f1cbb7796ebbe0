//! `biomed-ner render`: JSON lines `{"text": ...}`, optionally with `"entities"` already found,
//! as one self-contained HTML page on stdout (`biomed_ner_engine::html::page`). The model is loaded
//! only when some line has no `"entities"`, and runs on those lines alone.

use std::io::{BufRead, Write};

use biomed_ner_engine::html;
use serde_json::Value;

use crate::args::Args;

struct Note {
    line: usize,
    text: String,
    entities: Option<Value>,
}

fn read(input: impl BufRead) -> Result<Vec<Note>, String> {
    let mut notes = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", i + 1))?;
        let Some((text, v)) = crate::text_line(i + 1, &line)? else { continue };
        let entities = match v.get("entities") {
            None | Some(Value::Null) => None,
            Some(e) => {
                html::marks(&text, e).map_err(|why| format!("line {}: {why}", i + 1))?;
                Some(e.clone())
            }
        };
        notes.push(Note { line: i + 1, text, entities });
    }
    Ok(notes)
}

/// Finds the entities of the notes without any, in chunks of a few batches (the progress bar
/// moves at each chunk).
fn annotate(args: &Args, notes: &mut [Note]) -> Result<(), String> {
    let mut missing: Vec<&mut Note> = notes.iter_mut().filter(|n| n.entities.is_none()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let p = crate::load(args)?;
    let bar = crate::progress::notes(args.progress, Some(missing.len() as u64));
    for chunk in missing.chunks_mut(args.options.batch_size * 4) {
        let texts: Vec<&str> = chunk.iter().map(|n| n.text.as_str()).collect();
        let found = p.annotate(&texts, &args.options, &mut || Ok(())).map_err(|e| e.to_string())?;
        for (note, entities) in chunk.iter_mut().zip(found) {
            let list = if args.assertion {
                biomed_ner_engine::assertion::entities_json(&note.text, &entities)
            } else {
                entities.iter().map(|e| e.to_json()).collect()
            };
            note.entities = Some(Value::Array(list));
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    Ok(())
}

pub fn run(args: &Args) -> Result<(), String> {
    let mut notes = read(std::io::stdin().lock())?;
    let given: Vec<bool> = notes.iter().map(|n| n.entities.is_some()).collect();
    annotate(args, &mut notes)?;
    if args.assertion {
        for (note, _) in notes.iter_mut().zip(given).filter(|(_, given)| *given) {
            let entities = note.entities.as_ref().expect("given");
            let asserted = biomed_ner_engine::assertion::assert_json(&note.text, entities).map_err(|e| format!("line {}: {e}", note.line))?;
            note.entities = Some(asserted);
        }
    }
    let empty = Value::Array(Vec::new());
    let pairs: Vec<(&str, &Value)> = notes.iter().map(|n| (n.text.as_str(), n.entities.as_ref().unwrap_or(&empty))).collect();
    let page = html::page(&pairs)?;
    let mut out = std::io::stdout().lock();
    out.write_all(page.as_bytes()).and_then(|()| out.flush()).map_err(|e| e.to_string())
}
