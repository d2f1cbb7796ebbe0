//! The SQL functions of biomed_ner.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use pgrx::prelude::*;
use pgrx::spi::Spi;
use pgrx::PgSqlErrorCode;

use crate::{backend, route};
use crate::encoding::{DbJsonb, DbText, Note};
use crate::error::raise;
use crate::gucs;

/// Entities of one note as jsonb, in the shape of the Hugging Face token-classification
/// pipeline: `[{"entity_group", "score", "word", "start", "end"}, ...]`, offsets in
/// characters. NULL gives NULL, `''` gives `[]`.
#[pg_extern(stable, parallel_safe, strict, name = "biomed_ner")]
fn biomed_ner(note: Note) -> DbJsonb {
    route::annotate_nullable(&[Some(note)], "biomed_ner").remove(0).expect("a text gives entities")
}

/// Entities of many notes in one batched call: one jsonb per element, in order; NULL
/// elements give NULL.
#[pg_extern(stable, parallel_safe, strict, name = "biomed_ner")]
fn biomed_ner_array(notes: Array<Note>) -> Vec<Option<DbJsonb>> {
    let items: Vec<Option<Note>> = notes.iter().collect();
    route::annotate_nullable(&items, "biomed_ner")
}

/// One row per entity of a note, for LATERAL joins and materialized views. `start_pos` and
/// `end_pos` are 0-based character offsets, `end_pos` exclusive:
/// `substr(note, start_pos + 1, end_pos - start_pos) = word`. `assertion` is `present`,
/// `absent` or `possible` with `biomed_ner.assertion` on, NULL otherwise.
#[pg_extern(stable, parallel_safe, strict)]
fn biomed_ner_entities(
    note: Note,
) -> TableIterator<
    'static,
    (
        name!(entity_group, DbText),
        name!(word, DbText),
        name!(start_pos, i32),
        name!(end_pos, i32),
        name!(score, f32),
        name!(assertion, Option<DbText>),
    ),
> {
    let annotated = route::annotate_notes(&[Some(note)], "biomed_ner_entities").remove(0).expect("a text gives entities");
    let assertions = annotated.assertions.into_iter().flatten().map(|a| Some(DbText(a.as_str().into()))).chain(std::iter::repeat_with(|| None));
    TableIterator::new(
        annotated
            .entities
            .into_iter()
            .zip(assertions)
            .map(|(e, a)| (DbText(e.group), DbText(e.word), e.start as i32, e.end as i32, e.score, a)),
    )
}

/// Annotates every row of `query` (its first column an integer id, its second the text) in
/// batches of `batch_rows` rows, streaming: only one batch is held at a time.
#[pg_extern(volatile, parallel_unsafe)]
fn biomed_ner_bulk(
    query: Note,
    batch_rows: default!(i32, 64),
) -> TableIterator<'static, (name!(id, Option<i64>), name!(entities, Option<DbJsonb>))> {
    // SPI takes the query in the server encoding; Rust strings are UTF-8, so a query holds
    // only ASCII in other encodings (its rows' text may hold anything).
    let query = match std::str::from_utf8(query.0) {
        Ok(q) if crate::encoding::database_is_utf8() || q.is_ascii() => q,
        _ => raise(
            PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
            "the query of biomed_ner_bulk must be ASCII in a database whose encoding is not UTF8",
            "Move non-ASCII constants out of the query: select from a view or a temporary table instead.",
            "biomed_ner_bulk",
        ),
    };
    if batch_rows < 1 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("batch_rows must be at least 1, got {batch_rows}"),
            "Pass a positive number of rows per batch, for example 64.",
            "biomed_ner_bulk",
        );
    }
    let query = query.trim().trim_end_matches(';');
    let wrapped = format!("SELECT q.__biomed_id, q.__biomed_text::text FROM ({query}) AS q(__biomed_id, __biomed_text)");
    // Errors of the query itself keep their SQLSTATE; a query with fewer than two columns gets
    // a message that says what biomed_ner_bulk expects.
    let cursor = pgrx::PgTryBuilder::new(|| Spi::connect(|client| client.open_cursor(wrapped.as_str(), &[]).detach_into_name()))
        .catch_when(PgSqlErrorCode::ERRCODE_INVALID_COLUMN_REFERENCE, |_| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "the query of biomed_ner_bulk must return at least two columns",
                "Return an integer id and the text as the first two columns, e.g. 'SELECT id, body FROM notes'.",
                "biomed_ner_bulk",
            )
        })
        .execute();
    // Progress (the view biomed_ner_progress): rows done of the planner's estimate of the query's rows.
    let estimate = planned_rows(&cursor);
    // Safety: reads the caller's role.
    let caller = unsafe { pg_sys::GetUserId() };
    let progress = crate::progress::begin(crate::progress::Command::Bulk, caller, pg_sys::InvalidOid, estimate, true);
    TableIterator::new(Bulk { cursor: Some(cursor), batch_rows: batch_rows as i64, buffer: VecDeque::new(), done: 0, progress })
}

/// The planner's estimate of the rows of the query of the open cursor `name`.
fn planned_rows(name: &str) -> Option<i64> {
    let name = std::ffi::CString::new(name).ok()?;
    // Safety: the portal was opened by this statement and is alive; its statements are a List of
    // PlannedStmt (a cursor's query is one statement).
    unsafe {
        let portal = pg_sys::GetPortalByName(name.as_ptr());
        if portal.is_null() || (*portal).stmts.is_null() || (*(*portal).stmts).length < 1 {
            return None;
        }
        let stmt = (*(*(*portal).stmts).elements).ptr_value as *mut pg_sys::Node;
        if stmt.is_null() || (*stmt).type_ != pg_sys::NodeTag::T_PlannedStmt {
            return None;
        }
        let plan = (*(stmt as *mut pg_sys::PlannedStmt)).planTree;
        (!plan.is_null()).then(|| (*plan).plan_rows.max(0.0).min(i64::MAX as f64) as i64)
    }
}

struct Bulk {
    cursor: Option<String>,
    batch_rows: i64,
    buffer: VecDeque<(Option<i64>, Option<DbJsonb>)>,
    done: u64,
    /// This run in biomed_ner_progress; ends when the rows do.
    progress: Option<crate::progress::Run>,
}

const BULK: &str = "biomed_ner_bulk";

/// The id of a row: an integer column of any width, never a value rounded to one.
fn bulk_id(row: &pgrx::spi::SpiHeapTupleData, type_oid: pg_sys::Oid) -> Option<i64> {
    let id = match type_oid {
        pg_sys::INT8OID => row.get::<i64>(1),
        pg_sys::INT4OID => row.get::<i32>(1).map(|v| v.map(i64::from)),
        _ => row.get::<i16>(1).map(|v| v.map(i64::from)),
    };
    id.unwrap_or_else(|e| {
        raise(PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH, format!("id column: {e}"), "Return the row's integer id first.", BULK)
    })
}

impl Bulk {
    fn refill(&mut self) {
        let Some(name) = self.cursor.take() else { return };
        let rows: Vec<(Option<i64>, Option<Vec<u8>>)> = Spi::connect(|client| {
            let mut cursor = client.find_cursor(&name).unwrap_or_else(|_| {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_CURSOR_NAME,
                    "the cursor of biomed_ner_bulk was closed while it ran",
                    "Do not CLOSE ALL (or DISCARD ALL) in the middle of a statement that reads biomed_ner_bulk.",
                    BULK,
                )
            });
            let table = cursor.fetch(self.batch_rows).unwrap_or_else(|e| {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_CURSOR_STATE,
                    format!("cannot read the query's rows: {e}"),
                    "Run the query of biomed_ner_bulk alone to see whether it works.",
                    BULK,
                )
            });
            let id_type = table.column_type_oid(1).map(|o| o.value()).unwrap_or(pg_sys::InvalidOid);
            if !table.is_empty() && ![pg_sys::INT2OID, pg_sys::INT4OID, pg_sys::INT8OID].contains(&id_type) {
                raise(
                    PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                    "the first column of the query of biomed_ner_bulk must be an integer (smallint, integer or bigint)",
                    "Return the row's integer id first, e.g. 'SELECT id, body FROM notes'; cast other keys explicitly.",
                    BULK,
                );
            }
            let rows: Vec<_> = table
                .map(|row| {
                    let text = row.get::<Note>(2).unwrap_or_else(|e| {
                        raise(
                            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                            format!("text column: {e}"),
                            "Return the text as the second column.",
                            BULK,
                        )
                    });
                    (bulk_id(&row, id_type), text.map(|t| t.0.to_vec()))
                })
                .collect();
            if rows.len() as i64 == self.batch_rows {
                self.cursor = Some(cursor.detach_into_name());
            }
            rows
        });
        let texts: Vec<Option<Note>> = rows.iter().map(|(_, t)| t.as_deref().map(Note)).collect();
        let entities = route::annotate_nullable(&texts, BULK);
        self.buffer.extend(rows.iter().map(|(id, _)| *id).zip(entities));
        if let Some(run) = &self.progress {
            run.advance(rows.len());
        }
        let before = self.done;
        self.done += rows.len() as u64;
        if before / 10_000 != self.done / 10_000 {
            pgrx::notice!("biomed_ner_bulk: {} rows annotated", self.done);
        }
    }
}

impl Iterator for Bulk {
    type Item = (Option<i64>, Option<DbJsonb>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() {
            self.refill();
        }
        let row = self.buffer.pop_front();
        if row.is_none() {
            self.progress = None;
        }
        row
    }
}

/// What runs this session's calls: the model and where it came from, its architecture, labels, dtype,
/// device, threads, load time and the notes it has annotated, the int8 kernel this CPU uses
/// (`cpu_kernels`: `amx`, `avx512-vnni`, `avx2` or `portable`), and `execution` (`backend` or
/// `service`). In backend mode this loads the model if needed; in service mode it asks the
/// service.
#[pg_extern(volatile, parallel_safe)]
fn biomed_ner_info() -> DbJsonb {
    const INFO: &str = "biomed_ner_info";
    let o = backend::options();
    let mut info = match crate::route::serving_model(INFO) {
        Some(facts) => facts,
        None => {
            let m = backend::model(INFO);
            let mut facts = biomed_ner_host::load::model_facts(&m.pipeline);
            facts.insert("execution".into(), "backend".into());
            facts.insert("device".into(), m.device_name.into());
            facts.insert("threads".into(), gucs::threads().into());
            facts.insert("batch_size".into(), o.batch_size.into());
            facts.insert("notes_annotated".into(), m.calls.load(Ordering::Relaxed).into());
            facts
        }
    };
    hide_activity(&mut info);
    info.insert("max_memory_mb".into(), (gucs::max_memory_bytes() >> 20).into());
    info.insert("database_encoding".into(), crate::encoding::database_encoding().into());
    info.insert("aggregation".into(), o.aggregation.as_str().into());
    info.insert("max_length".into(), o.max_length.into());
    info.insert("stride".into(), o.stride.into());
    info.insert("version".into(), env!("CARGO_PKG_VERSION").into());
    info.insert("cpu_kernels".into(), biomed_ner_engine::cpu_kernels().into());
    DbJsonb(serde_json::Value::Object(info))
}

/// The shared inference service's state: `state` (`ready`, `loading`, `failed`, or `not
/// running` without preloading), its process, model, device, threads, uptime, queue depth, requests,
/// notes and batches served, mean batch size, restarts and last error.
#[pg_extern(volatile, parallel_safe)]
fn biomed_ner_service() -> DbJsonb {
    let mut status = crate::service::status("biomed_ner_service");
    if let Some(map) = status.as_object_mut() {
        hide_activity(map);
    }
    DbJsonb(status)
}

/// The shared service's counters of work done and queued, its connections and its last error
/// come from every role's calls: they are shown, as PostgreSQL shows other sessions' activity,
/// to members of `pg_read_all_stats` only (NULL for the others).
fn hide_activity(facts: &mut serde_json::Map<String, serde_json::Value>) {
    const COUNTERS: [&str; 10] = [
        "queue_depth",
        "requests",
        "notes_annotated",
        "background_notes",
        "batches",
        "mean_batch_notes",
        "abandoned",
        "connections",
        "failures",
        "last_error",
    ];
    if !crate::access::may_read_all_stats() && facts.get("execution").is_none_or(|e| e != "backend") {
        for key in COUNTERS {
            if let Some(v) = facts.get_mut(key) {
                *v = serde_json::Value::Null;
            }
        }
    }
}
