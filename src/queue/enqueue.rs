//! The function of the watch triggers: records the key of an inserted row, or of a row whose
//! text changed, in `biomed_ner_queue`.
//!
//! It runs for every insert into a watched table, so it is kept light: the key is read as text
//! from the new tuple, and one prepared INSERT (kept for the backend's life) adds it to the
//! queue. The insert runs as the extension's owner, the way PostgreSQL's own foreign-key
//! triggers act as the table's owner: writers of the table need no right on the queue, and the
//! function records rows of the table it fires on only.

use std::cell::RefCell;
use std::ffi::{CStr, CString};

use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use pgrx::{PgOid, PgSqlErrorCode};

use crate::error::raise;

const FUNCTION: &str = "_biomed_ner_enqueue";

thread_local! {
    /// The queue's INSERT, prepared on first use, and the extension's owner it runs as.
    static ENQUEUE: RefCell<Option<(OwnedPreparedStatement, pg_sys::Oid)>> = const { RefCell::new(None) };
}

fn prepare() -> (OwnedPreparedStatement, pg_sys::Oid) {
    Spi::connect(|client| {
        let found = client
            .select(
                "SELECT n.nspname::text, e.extowner FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                 WHERE e.extname = 'biomed_ner'",
                None,
                &[],
            )
            .ok()
            .and_then(|t| t.first().get_two::<String, pg_sys::Oid>().ok());
        let Some((Some(schema), Some(owner))) = found else {
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "the watch trigger fired, but extension biomed_ner is not installed in this database",
                "Drop the biomed_ner_watch_* triggers of this table, or CREATE EXTENSION biomed_ner.",
                FUNCTION,
            )
        };
        let query = format!(
            "INSERT INTO {}.biomed_ner_queue (relid, key) VALUES ($1, $2)
             ON CONFLICT (relid, key) DO UPDATE SET enqueued_at = excluded.enqueued_at",
            spi::quote_identifier(&schema)
        );
        let stmt = client
            .prepare_mut(query.as_str(), &[PgOid::from(pg_sys::OIDOID), PgOid::from(pg_sys::TEXTOID)])
            .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("cannot prepare the queue insert: {e}"), "This is a bug in biomed_ner.", FUNCTION))
            .keep();
        (stmt, owner)
    })
}

/// `AFTER INSERT` and `AFTER UPDATE OF text` row trigger added by `biomed_ner_watch`; its one
/// argument names the table's primary-key column.
#[pg_trigger]
fn _biomed_ner_enqueue<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    let data = trigger.trigger_data();
    let column = trigger.extra_args()?.into_iter().next().unwrap_or_default();
    let column = CString::new(column).unwrap_or_default();
    let tuple = if matches!(trigger.op()?, PgTriggerOperation::Update) { data.tg_newtuple } else { data.tg_trigtuple };
    // Safety: the trigger's relation, tuple and descriptor are valid while it runs; SPI_getvalue
    // returns a palloc'd string (or NULL for a NULL value).
    let key = unsafe {
        let desc = (*data.tg_relation).rd_att;
        let attnum = pg_sys::SPI_fnumber(desc, column.as_ptr());
        if attnum <= 0 {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!("the key column \"{}\" of a watched table does not exist", column.to_string_lossy()),
                "biomed_ner_unwatch the table and watch it again.",
                FUNCTION,
            );
        }
        let value = pg_sys::SPI_getvalue(tuple, desc, attnum);
        if value.is_null() {
            return Ok(None);
        }
        CStr::from_ptr(value).to_string_lossy().into_owned()
    };
    let relid = trigger.relid()?;
    ENQUEUE.with(|cell| {
        let mut cell = cell.borrow_mut();
        let (stmt, owner) = cell.get_or_insert_with(prepare);
        let (mut user, mut context) = (pg_sys::Oid::INVALID, 0);
        // Safety: switches the current user for this one insert, as PostgreSQL's RI triggers do;
        // an error on the way is undone by the (sub)transaction's abort.
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
            pg_sys::SetUserIdAndSecContext(*owner, context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
        }
        let done = Spi::connect_mut(|client| client.update(&*stmt, None, &[relid.into(), key.into()]).map(|_| ()));
        // Safety: restores what was saved above.
        unsafe { pg_sys::SetUserIdAndSecContext(user, context) };
        done.unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("cannot queue the row: {e}"), "This is a bug in biomed_ner.", FUNCTION));
    });
    Ok(None)
}
