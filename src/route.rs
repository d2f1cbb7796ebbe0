//! Where a call runs: decided once per call, here. A call runs in the shared inference service
//! ([`crate::service`]) when `biomed_ner.execution` and the session's options allow it, and in
//! this backend ([`crate::backend`]) otherwise, or when the service answers that it runs
//! another model. Also the notes' side of a call: their lengths, NULL and empty notes, the
//! database's characters and the assertion of each entity.

use biomed_ner_engine::assertion::Assertion;
use biomed_ner_engine::Entity;
use pgrx::PgSqlErrorCode;

use crate::encoding::{DbJsonb, Note, Utf8Note};
use crate::error::raise;
use crate::gucs::{self, ExecutionSetting};
use crate::{backend, service};

/// The longest window the service runs for a session.
const SERVICE_MAX_LENGTH: usize = 512;

/// Why this session's per-call options would make it take more than its share of the service,
/// or `None`. The service's time is every session's: a request's cost must follow its text, not
/// options its caller chose. Consecutive windows share `stride` tokens, so a note needs about
/// tokens / (max_length - stride) windows: a stride near max_length multiplies them (509 of 512:
/// about 500 times), and each window costs more the longer it is. So the service takes windows
/// of at most [`SERVICE_MAX_LENGTH`] tokens that overlap by at most half (at most about twice the
/// windows of no overlap); other calls run in the session's own backend (under `auto`) or are
/// refused (under `service`).
fn unfair_options() -> Option<String> {
    let (max_length, stride) = (gucs::max_length(), gucs::stride());
    if max_length > SERVICE_MAX_LENGTH {
        Some(format!("biomed_ner.max_length is {max_length}, over the {SERVICE_MAX_LENGTH} tokens the inference service runs"))
    } else if stride * 2 > max_length {
        Some(format!("biomed_ner.stride is {stride}, over half of biomed_ner.max_length ({max_length})"))
    } else {
        None
    }
}

/// Whether this session's calls go to the service; raises when `execution` is `service` and
/// there is none, or when its options would take more than its share ([`unfair_options`]).
fn use_service(function: &'static str) -> bool {
    let preloaded = service::preloaded();
    let unfair = if preloaded { unfair_options() } else { None };
    match gucs::execution() {
        ExecutionSetting::Backend => false,
        ExecutionSetting::Auto => preloaded && unfair.is_none(),
        ExecutionSetting::Service if preloaded => match unfair {
            None => true,
            Some(why) => raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("{why}, which the shared inference service does not serve"),
                format!(
                    "The service shares its time among sessions: keep biomed_ner.max_length at most {SERVICE_MAX_LENGTH} and \
                     biomed_ner.stride at most half of it, or SET biomed_ner.execution = 'auto' (or 'backend') to run \
                     these options in this session."
                ),
                function,
            ),
        },
        ExecutionSetting::Service => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "biomed_ner.execution is service, but the inference service is not running",
            "Add biomed_ner to shared_preload_libraries and restart the server, or SET biomed_ner.execution = 'auto'.",
            function,
        ),
    }
}

/// Raises 54000 for a note longer than `biomed_ner.max_chars`.
pub fn check_length(text: &str, function: &'static str) {
    let max_chars = gucs::max_chars();
    // Bytes bound characters from above: count only when the bytes exceed the limit.
    if text.len() > max_chars {
        let n = text.chars().count();
        if n > max_chars {
            raise(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!("note of {n} characters exceeds biomed_ner.max_chars ({max_chars})"),
                "Raise biomed_ner.max_chars, or split the note.",
                function,
            );
        }
    }
}

/// Entities of each text, in order, from the service or this backend.
pub fn annotate(texts: &[&str], function: &'static str) -> Vec<Vec<Entity>> {
    for t in texts {
        check_length(t, function);
    }
    if use_service(function) {
        if let Some(out) = service::annotate(texts, function) {
            return out;
        }
    }
    backend::annotate(texts, function)
}

/// What `biomed_ner_info()` reports when this session's calls go to the service: the
/// service's status, which has the model's facts once it is loaded. `None` when they run in
/// the backend.
pub fn serving_model(function: &'static str) -> Option<serde_json::Map<String, serde_json::Value>> {
    if !use_service(function) {
        return None;
    }
    service::serving_model(function)
}

/// A note's entities in the database's characters, each with its assertion where
/// `biomed_ner.assertion` is on.
pub struct Annotated {
    pub entities: Vec<Entity>,
    pub assertions: Option<Vec<Assertion>>,
}

impl Annotated {
    /// The entities in the pipeline's JSON shape, `"assertion"` last where it was asked for.
    pub fn to_jsonb(&self) -> DbJsonb {
        let json = self.entities.iter().enumerate().map(|(i, e)| {
            let mut v = e.to_json();
            if let (Some(a), Some(o)) = (&self.assertions, v.as_object_mut()) {
                o.insert("assertion".into(), a[i].as_str().into());
            }
            v
        });
        DbJsonb(serde_json::Value::Array(json.collect()))
    }
}

/// Entities of each possibly-NULL note, in the database's characters: NULL gives `None`, `''`
/// gives no entities, the others are converted to UTF-8 and annotated in one batched call.
/// Assertion, when on, runs here in the caller's backend on the code-point spans (also when the
/// service found the entities).
pub fn annotate_notes(items: &[Option<Note>], function: &'static str) -> Vec<Option<Annotated>> {
    let notes: Vec<Option<Utf8Note>> = items.iter().map(|n| n.map(|n| n.to_utf8(function))).collect();
    let texts: Vec<&str> = notes.iter().flatten().map(|n| n.text.as_ref()).filter(|t| !t.is_empty()).collect();
    crate::progress::annotating(items.len(), false);
    let mut results = if texts.is_empty() { Vec::new() } else { annotate(&texts, function) }.into_iter();
    crate::progress::annotating(items.len(), true);
    let assertion = gucs::assertion();
    // A cancel that came after the engine's last check is answered before the results are
    // converted and written.
    pgrx::check_for_interrupts!();
    notes
        .iter()
        .map(|note| {
            let note = note.as_ref()?;
            if note.text.is_empty() {
                return Some(Annotated { entities: Vec::new(), assertions: assertion.then(Vec::new) });
            }
            let entities = results.next().expect("one result per non-empty text");
            let assertions = assertion.then(|| {
                let spans: Vec<_> = entities.iter().map(|e| (e.start, e.end, Some(e.group.as_str()))).collect();
                biomed_ner_engine::assertion::assert_spans(&note.text, &spans)
            });
            Some(Annotated { entities: note.in_database_chars(entities), assertions })
        })
        .collect()
}

/// [`annotate_notes`] as jsonb in the pipeline's shape.
pub fn annotate_nullable(items: &[Option<Note>], function: &'static str) -> Vec<Option<DbJsonb>> {
    annotate_notes(items, function).into_iter().map(|r| r.map(|a| a.to_jsonb())).collect()
}
