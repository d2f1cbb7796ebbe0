//! `biomed_ner_annotate(text_column, jsonb_column)`: a row trigger that fills a jsonb column
//! with the entities of a text column.

use pgrx::prelude::*;
use pgrx::{PgSqlErrorCode, WhoAllocated};

use crate::encoding::Note;
use crate::error::raise;

const FUNCTION: &str = "biomed_ner_annotate";

fn bad_usage(message: String, hint: &str) -> ! {
    raise(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, message, hint, FUNCTION)
}

/// Checks that `column` exists in the trigger's table with one of `types`.
fn check_column(trigger: &PgTrigger, column: &str, types: &[pg_sys::Oid], what: &str) {
    let rel = trigger.relation().unwrap_or_else(|e| bad_usage(format!("{e}"), "Use it as a row trigger."));
    let desc = rel.tuple_desc();
    let found = desc.iter().find(|a| !a.is_dropped() && a.name() == column);
    match found {
        None => bad_usage(
            format!("column \"{column}\" of biomed_ner_annotate does not exist in table \"{}\"", rel.name()),
            "Pass the names of an existing text column and jsonb column: biomed_ner_annotate('body', 'entities').",
        ),
        Some(a) if !types.contains(&a.type_oid().value()) => bad_usage(
            format!("column \"{column}\" of table \"{}\" is not {what}", rel.name()),
            "biomed_ner_annotate reads a text (or varchar) column and writes a jsonb column.",
        ),
        Some(_) => {}
    }
}

/// Fills `jsonb_column` with `biomed_ner(text_column)` on INSERT and UPDATE (NULL text gives
/// NULL). Use it as a BEFORE INSERT OR UPDATE ... FOR EACH ROW trigger.
#[pg_trigger]
fn biomed_ner_annotate<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, impl WhoAllocated>>, PgHeapTupleError> {
    let usage = "CREATE TRIGGER t BEFORE INSERT OR UPDATE ON notes FOR EACH ROW EXECUTE FUNCTION biomed_ner_annotate('body', 'entities')";
    if !matches!(trigger.level(), PgTriggerLevel::Row) || !matches!(trigger.when(), Ok(PgTriggerWhen::Before)) {
        bad_usage("biomed_ner_annotate must be a BEFORE ... FOR EACH ROW trigger".into(), usage);
    }
    let args = trigger.extra_args().unwrap_or_default();
    if args.len() != 2 {
        bad_usage(format!("biomed_ner_annotate takes 2 arguments (text column, jsonb column), got {}", args.len()), usage);
    }
    let (text_col, json_col) = (&args[0], &args[1]);
    check_column(trigger, text_col, &[pg_sys::TEXTOID, pg_sys::VARCHAROID, pg_sys::BPCHAROID], "of type text or varchar");
    check_column(trigger, json_col, &[pg_sys::JSONBOID], "of type jsonb");
    let Some(new) = trigger.new() else {
        bad_usage("biomed_ner_annotate works on INSERT and UPDATE only".into(), usage)
    };
    let mut new = new.into_owned();
    let text: Option<Note> = new.get_by_name(text_col).unwrap_or_else(|e| bad_usage(e.to_string(), usage));
    let entities = crate::route::annotate_nullable(&[text], FUNCTION).remove(0);
    new.set_by_name(json_col, entities).unwrap_or_else(|e| bad_usage(e.to_string(), usage));
    Ok(Some(new))
}
