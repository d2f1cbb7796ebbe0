//! Watched tables: annotation after the insert, not during it.
//!
//! `biomed_ner_watch(table, text_column, jsonb_column)` adds a light trigger that records the
//! key of each inserted row, and of each row whose text changes, in a queue table
//! (`biomed_ner_queue`: durable and transactional), and can queue the rows whose jsonb column is
//! NULL (backfill). The queue is drained in batches by `_biomed_ner_drain` (`queue.sql`): it
//! locks a batch of queued rows, annotates their current text in one batched call (the shared
//! inference service when there is one), writes the jsonb column and removes the entries, all in
//! one transaction, so a crash at any point loses nothing and never leaves a row marked done
//! without its entities. A queue worker per database of `biomed_ner.queue_databases`
//! ([`worker`]) drains every watched table when the library is preloaded;
//! `biomed_ner_queue_drain(table)` drains one from any session, with or without it.
//!
//! This file is the module's one entry point: the SQL objects and [`init`]; the trigger's
//! function is in [`enqueue`].

mod as_owner;
mod enqueue;
mod worker;

pgrx::extension_sql_file!("queue.sql", name = "queue", finalize);

/// Registers the queue launcher when the library is being preloaded; does nothing otherwise.
pub fn init() {
    // Safety: a flag PostgreSQL sets while it loads shared_preload_libraries.
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        worker::register_launcher();
    }
}
