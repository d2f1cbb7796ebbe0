//! `biomed_ner_assert(note, entities)`: the clinical assertion of entities that are already
//! known (stored results, another NER system's output). Runs with the caller's rights, reads no
//! table and loads no model.
//!
//! The entities are read as the text jsonb writes, and only their `start`, `end` and
//! `entity_group` (or `entity`) are parsed; every object comes back as it was written, with
//! `"assertion"` added as its last key (replacing one it had), so no number is rounded and no
//! other value is read.

use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::encoding::{DbJsonbText, JsonbArg, Note, Utf8Note};
use crate::error::raise;

const FUNCTION: &str = "biomed_ner_assert";

/// A value longer than this is shown cut in an error message.
const SHOWN: usize = 40;

/// Most entities one call asserts. The assertion of a note's entities runs as one step that does
/// not answer a cancel (about 60 microseconds an entity at worst, in text dense with triggers),
/// so a call is bounded to a few seconds; a note has far fewer entities (about one per 20
/// characters in MACCROBAT).
pub(crate) const MAX_ENTITIES: usize = 100_000;

/// `entities` of `note` (a jsonb array of objects with integer `start` and `end`, character
/// offsets into the note, and optionally `entity_group`), each with `"assertion"` added:
/// `present`, `absent` (negated) or `possible` (uncertain). Any other keys are kept, so stored
/// results of biomed_ner or of another NER system can be asserted without running NER again.
/// No model is loaded. Notes longer than `biomed_ner.max_chars` raise 54000, as in biomed_ner.
#[pg_extern(stable, parallel_safe, strict)]
fn biomed_ner_assert(note: Note, entities: JsonbArg) -> DbJsonbText {
    let note = note.to_utf8(FUNCTION);
    crate::route::check_length(&note.text, FUNCTION);
    let json = Note(entities.0).to_utf8_as("the entities' text", FUNCTION);
    match assert_entities(&note, &json.text) {
        Ok(out) => DbJsonbText(out),
        Err(why) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            why,
            "Pass a jsonb array of objects with integer \"start\" and \"end\" character offsets into the note (0 <= start <= end <= length), as biomed_ner returns them.",
            FUNCTION,
        ),
    }
}

/// The keys of an entity that assertion and `biomed_ner_html` read, as jsonb wrote them.
#[derive(Deserialize)]
pub(crate) struct Keys<'a> {
    #[serde(borrow, default)]
    pub start: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub end: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub entity_group: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub entity: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub score: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub assertion: Option<&'a RawValue>,
}

/// The objects of `json`, a jsonb array of entities, as jsonb wrote them; more than
/// [`MAX_ENTITIES`] raise 54000 (naming `function` and what it `does` with them).
pub(crate) fn entity_list<'a>(json: &'a str, function: &'static str, does: &str) -> Result<Vec<&'a RawValue>, String> {
    let list: Vec<&RawValue> = serde_json::from_str(json).map_err(|e| match json.trim_start().as_bytes().first() {
        Some(b'[') => format!("entities cannot be read: {e}"),
        _ => format!("entities must be a JSON array, not {}", kind(json)),
    })?;
    if list.len() > MAX_ENTITIES {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("{} entities exceed the {MAX_ENTITIES} that one call of {function} {does}", list.len()),
            "Pass the entities of one note at a time, or split the note.",
            function,
        );
    }
    Ok(list)
}

/// `json` (an array of entity objects, offsets in the database's characters) with each object's
/// assertion added, as JSON text.
fn assert_entities(note: &Utf8Note, json: &str) -> Result<String, String> {
    let list = entity_list(json, FUNCTION, "asserts")?;
    let mut spans = Vec::with_capacity(list.len());
    for (keys, start, end) in entity_spans(&list, note)? {
        let mut span = serde_json::Map::new();
        span.insert("start".into(), start.into());
        span.insert("end".into(), end.into());
        if let Some(group) = keys.entity_group.or(keys.entity) {
            span.insert("entity_group".into(), same_kind(group.get()));
        }
        spans.push(Value::Object(span));
    }
    let asserted = biomed_ner_engine::assertion::assert_json(&note.text, &Value::Array(spans))?;
    let asserted = asserted.as_array().expect("assert_json gives an array");
    pgrx::check_for_interrupts!();
    let mut out = String::with_capacity(json.len() + list.len() * 24);
    out.push('[');
    for (i, (raw, done)) in list.iter().zip(asserted).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        // jsonb writes an object as `{...}`, and this one has at least start and end; jsonb
        // keeps the last of two equal keys, so an old "assertion" is replaced.
        let object = raw.get().trim_end();
        out.push_str(&object[..object.len() - 1]);
        out.push_str(", \"assertion\": \"");
        out.push_str(done["assertion"].as_str().expect("an assertion"));
        out.push_str("\"}");
    }
    out.push(']');
    Ok(out)
}

/// The keys and code-point spans of `list`'s entities on `note` ([`entity_span`]), answering a
/// cancel every 10,000.
pub(crate) fn entity_spans<'a>(list: &[&'a RawValue], note: &Utf8Note) -> Result<Vec<(Keys<'a>, usize, usize)>, String> {
    let length = note.db_chars();
    let mut spans = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        if i % 10_000 == 9_999 {
            pgrx::check_for_interrupts!();
        }
        spans.push(entity_span(i, raw, note, length)?);
    }
    Ok(spans)
}

/// Entity `i` of a note of `length` database characters: its keys, and its `start` and `end`
/// checked in database characters, then as code points of the note's UTF-8 text.
fn entity_span<'a>(i: usize, raw: &'a RawValue, note: &Utf8Note, length: usize) -> Result<(Keys<'a>, usize, usize), String> {
    let text = raw.get();
    if !text.starts_with('{') {
        return Err(format!("entity {i} must be an object, not {}", kind(text)));
    }
    let keys: Keys = serde_json::from_str(text).map_err(|e| format!("entity {i} cannot be read: {e}"))?;
    let mut offsets = [0; 2];
    for (k, (name, value)) in [("start", keys.start), ("end", keys.end)].into_iter().enumerate() {
        let value = value.ok_or_else(|| format!("entity {i} has no \"{name}\""))?;
        offsets[k] = offset(i, name, value.get(), length)?;
    }
    if offsets[0] > offsets[1] {
        return Err(format!("entity {i}: \"start\" {} is after \"end\" {}", offsets[0], offsets[1]));
    }
    Ok((keys, note.code_point(offsets[0]), note.code_point(offsets[1])))
}

/// An offset as jsonb wrote it: a non-negative integer not past the note's end.
fn offset(i: usize, name: &str, raw: &str, length: usize) -> Result<usize, String> {
    let past_end = |n: &str| format!("entity {i}: \"{name}\" {} is past the end of the text ({length} characters)", shown(n));
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        return raw.parse::<usize>().ok().filter(|&n| n <= length).ok_or_else(|| past_end(raw));
    }
    let what = if raw.starts_with(|c: char| c == '-' || c.is_ascii_digit()) || raw.starts_with('"') {
        shown(raw)
    } else {
        kind(raw).to_string()
    };
    Err(format!("entity {i}: \"{name}\" must be a non-negative integer, not {what}"))
}

/// A value of the same JSON kind as `raw`, for the engine's check of `entity_group`: the
/// string itself, else an empty stand-in (the message names only the kind).
pub(crate) fn same_kind(raw: &str) -> Value {
    match raw.as_bytes().first() {
        Some(b'"') => serde_json::from_str(raw).unwrap_or(Value::Null),
        Some(b'{') => Value::Object(serde_json::Map::new()),
        Some(b'[') => Value::Array(Vec::new()),
        Some(b't' | b'f') => Value::Bool(true),
        Some(b'n') => Value::Null,
        _ => Value::from(0),
    }
}

/// `raw`, cut to [`SHOWN`] characters.
fn shown(raw: &str) -> String {
    match raw.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}...", &raw[..at]),
        None => raw.to_string(),
    }
}

/// The kind of the JSON value that `raw` begins.
pub(crate) fn kind(raw: &str) -> &'static str {
    match raw.trim_start().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}
