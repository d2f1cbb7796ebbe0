//! The function of the watch's trigger: a row whose text changes is pending again.
//!
//! `BEFORE UPDATE OF text ... WHEN (OLD.text IS DISTINCT FROM NEW.text AND NEW.jsonb IS NOT
//! NULL)`: it sets the jsonb column of the new row version to NULL, so the version that carries
//! the new text is the pending one; no other row is written. Inserts need no trigger: a new
//! row with a NULL jsonb column is pending as it is.

use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode, WhoAllocated};

use crate::error::raise;

const FUNCTION: &str = "_biomed_ner_invalidate";

fn misuse(message: String) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
        message,
        "This trigger is made by biomed_ner_watch; biomed_ner_unwatch the table and watch it again.",
        FUNCTION,
    )
}

/// The watch's trigger; its one argument names the jsonb column.
#[pg_trigger]
fn _biomed_ner_invalidate<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, impl WhoAllocated>>, PgHeapTupleError> {
    if !matches!(trigger.level(), PgTriggerLevel::Row)
        || !matches!(trigger.when(), Ok(PgTriggerWhen::Before))
        || !matches!(trigger.op(), Ok(PgTriggerOperation::Update))
    {
        misuse(format!("{FUNCTION} must be a BEFORE UPDATE ... FOR EACH ROW trigger"));
    }
    let column = trigger.extra_args().unwrap_or_default().into_iter().next().unwrap_or_default();
    // Its argument must name a live jsonb column of the table (a trigger made by hand may name
    // anything, a dropped column's placeholder name included).
    let relation = trigger.relation().unwrap_or_else(|e| misuse(format!("{FUNCTION} fired without its table: {e}")));
    let is_jsonb_column = relation
        .tuple_desc()
        .iter()
        .any(|a| !a.is_dropped() && a.name() == column && a.type_oid().value() == pg_sys::JSONBOID);
    if !is_jsonb_column {
        misuse(format!("{FUNCTION}'s argument \"{column}\" is not a jsonb column of table \"{}\"", relation.name()));
    }
    let Some(new) = trigger.new() else { misuse(format!("{FUNCTION} fired without a new row")) };
    let mut new = new.into_owned();
    new.set_by_name(&column, Option::<JsonB>::None)
        .unwrap_or_else(|e| misuse(format!("cannot clear column \"{column}\" of a watched table: {e}")));
    Ok(Some(new))
}
