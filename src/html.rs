//! `biomed_ner_html(note [, entities])`: one note as an HTML fragment with its entities
//! highlighted (the engine's `html::fragment`: a `<div>` with its own `<style>`, one `<mark>` per
//! entity holding exactly the note's slice, a legend), for dashboards and admin tools that show
//! HTML. Runs with the caller's rights and reads no table; without entities it annotates the note
//! as `biomed_ner` does (with `"assertion"` where `biomed_ner.assertion` is on).
//!
//! Given entities are read as jsonb wrote them: only `start`, `end`, `entity_group` (or
//! `entity`), `score` and `assertion` are parsed, offsets checked in the database's characters.

use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::assertion::{entity_list, entity_spans, same_kind};
use crate::encoding::{DbText, JsonbArg, Note, Utf8Note};
use crate::error::raise;

const FUNCTION: &str = "biomed_ner_html";

/// `note` as an HTML fragment with its entities (found by the model) highlighted: each entity a
/// `<mark>` with `data-entity-group`, `data-start`, `data-end` (code points) and, with
/// `biomed_ner.assertion` on, `data-assertion`; the text HTML-escaped.
#[pg_extern(stable, parallel_safe, strict, name = "biomed_ner_html")]
fn biomed_ner_html(note: Note) -> DbText {
    let annotated = crate::route::annotate_notes(&[Some(note)], FUNCTION).remove(0).expect("a text gives entities");
    let utf8 = note.to_utf8(FUNCTION);
    let entities = annotated.entities.iter().enumerate().map(|(i, e)| {
        let mut o = Map::new();
        o.insert("entity_group".into(), e.group.clone().into());
        o.insert("score".into(), e.score.into());
        o.insert("start".into(), utf8.code_point(e.start).into());
        o.insert("end".into(), utf8.code_point(e.end).into());
        if let Some(a) = &annotated.assertions {
            o.insert("assertion".into(), a[i].as_str().into());
        }
        Value::Object(o)
    });
    render(&utf8.text, &Value::Array(entities.collect()))
}

/// `note` as an HTML fragment with the given `entities` highlighted (a jsonb array of objects
/// with integer `start` and `end`, character offsets into the note, and `entity_group`; `score`
/// and `assertion` are shown where present), as biomed_ner and biomed_ner_assert return them.
#[pg_extern(stable, parallel_safe, strict, name = "biomed_ner_html")]
fn biomed_ner_html_given(note: Note, entities: JsonbArg) -> DbText {
    let utf8 = note.to_utf8(FUNCTION);
    crate::route::check_length(&utf8.text, FUNCTION);
    let json = Note(entities.0).to_utf8_as("the entities' text", FUNCTION);
    match given(&utf8, &json.text) {
        Ok(entities) => render(&utf8.text, &entities),
        Err(why) => bad_entities(why),
    }
}

fn bad_entities(why: String) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        why,
        "Pass a jsonb array of objects with integer \"start\" and \"end\" character offsets into the note (0 <= start <= end <= length) and a string \"entity_group\", as biomed_ner returns them.",
        FUNCTION,
    )
}

/// Most bytes of HTML one call writes (54000 beyond): far more than any page shows, and small
/// enough that writing it takes well under a second, which does not check for a cancel.
const MAX_HTML: usize = 256 << 20;

/// An upper bound of the fragment's length, before it is written: every byte of text escaped
/// to at most 6 bytes (`&quot;`), each entity's type three times (attribute, title, legend) and
/// its assertion twice, with their markup.
fn html_bound(text: &str, entities: &Value) -> usize {
    let shown = |v: Option<&Value>| v.and_then(|v| v.as_str()).map_or(0, str::len);
    let marks: usize = entities.as_array().map_or(0, |list| {
        list.iter()
            .map(|e| 400 + 18 * shown(e.get("entity_group")).max(shown(e.get("entity"))) + 12 * shown(e.get("assertion")))
            .sum()
    });
    biomed_ner_engine::html::style().len() + 200 + 6 * text.len() + marks
}

fn render(text: &str, entities: &Value) -> DbText {
    let bound = html_bound(text, entities);
    if bound > MAX_HTML {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("the HTML of this note could take {} MB, over the {} MB that one call of biomed_ner_html writes", bound >> 20, MAX_HTML >> 20),
            "Show a shorter note or fewer entities; long type names and assertions count several times.",
            FUNCTION,
        );
    }
    match biomed_ner_engine::html::fragment(text, entities) {
        Ok(html) => DbText(html),
        Err(why) => bad_entities(why),
    }
}

/// The entities of `json` with code-point offsets and the keys the fragment shows; a value
/// whose kind is wrong keeps its kind (for the fragment's message) but not its content.
fn given(note: &Utf8Note, json: &str) -> Result<Value, String> {
    let list = entity_list(json, FUNCTION, "shows")?;
    let mut out = Vec::with_capacity(list.len());
    for (keys, start, end) in entity_spans(&list, note)? {
        let mut o = Map::new();
        o.insert("start".into(), start.into());
        o.insert("end".into(), end.into());
        let value = |raw: &RawValue| same_kind(raw.get());
        if let Some(g) = keys.entity_group {
            o.insert("entity_group".into(), value(g));
        }
        if let Some(g) = keys.entity {
            o.insert("entity".into(), value(g));
        }
        if let Some(a) = keys.assertion {
            o.insert("assertion".into(), value(a));
        }
        if let Some(s) = keys.score {
            // A number jsonb holds but f64 cannot (1e309) is shown as no score.
            let score = match s.get().as_bytes().first() {
                Some(b'-' | b'0'..=b'9') => serde_json::from_str::<f64>(s.get()).map(Value::from).unwrap_or(Value::Null),
                _ => value(s),
            };
            o.insert("score".into(), score);
        }
        out.push(Value::Object(o));
    }
    Ok(Value::Array(out))
}
