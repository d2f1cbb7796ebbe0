//! Watched tables: annotation after the insert, not during it.
//!
//! `biomed_ner_watch(table, text_column, jsonb_column)` makes the table its own queue: a row is
//! pending while its jsonb column is NULL and its text is not. A partial index on the primary
//! key over exactly those rows finds them in key order; a trigger on UPDATE of the text column
//! sets the jsonb column of the new version to NULL ([`invalidate`]). So an insert writes nothing
//! more than it did (a second row per insert, the first design, cost a large share of the insert
//! rate; one more entry in a small partial index costs little: bench/results/README.md,
//! "Watched tables: why the table is its own queue"), the queue is as durable and
//! transactional as the table, and existing NULL rows are pending at once (backfill). The queue
//! is drained in batches by `_biomed_ner_drain` (`queue.sql`): it reads a batch of pending rows,
//! annotates their text in one batched call (the shared inference service when there is one) and
//! writes the jsonb column where the text is unchanged, all in one transaction, so a crash at any
//! point loses nothing and never leaves a row marked done without its entities. Rows that fail
//! are held (`biomed_ner_held`) in the version that failed, so that they do not come first in
//! every batch; their next write releases them. A queue worker per database of
//! `biomed_ner.queue_databases` ([`worker`]) drains every watched table when the library is
//! preloaded; `biomed_ner_queue_drain(table)` drains one from any session, with or without it.
//!
//! This file is the module's one entry point: the SQL objects and [`init`]; the trigger's
//! function is in [`invalidate`].

mod as_owner;
mod invalidate;
mod manage;
mod worker;

pgrx::extension_sql_file!("queue.sql", name = "queue", finalize);

/// Registers the queue launcher when the library is being preloaded; does nothing otherwise.
pub fn init() {
    // Safety: a flag PostgreSQL sets while it loads shared_preload_libraries.
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        worker::register_launcher();
    }
}
