//! The queue's background workers: a launcher, started with the server, that keeps one queue
//! worker running in each database of `biomed_ner.queue_databases` (re-read at reload), and the
//! queue workers, which drain every watched table of their database batch by batch.
//!
//! A queue worker's inference is background work, at `biomed_ner.queue_nice`: in the inference
//! service it goes to the threads kept for it, without the service this worker's own threads
//! run at that priority. It runs each batch in its own transaction as the bootstrap superuser;
//! the batch function checks, at every batch, that the role that created the watch may still
//! read the table and write its jsonb column. Between batches it waits `biomed_ner.queue_pause_ms`
//! (throttling a backfill on a busy server); with nothing queued it sleeps on its latch.
//! `pg_stat_activity` shows it (`backend_type` `biomed_ner queue`) and the table it works on.
//!
//! A table's batch that fails as a whole (its owner's policy or trigger raises, a column was
//! renamed, the model cannot load) is that table's `last_error`, and the worker leaves that table
//! alone for [`FAILED_TABLE_PAUSE`] while it goes on with the others: the batch function records
//! such errors itself, and whatever escapes it (a cancel, an assertion, a batch that runs over
//! `biomed_ner.queue_batch_timeout`) is caught here, its transaction aborted and the error
//! recorded the same way, so that no table's owner can stop or hold the queue of the others.
//! The worker's own queries run with `search_path` `pg_catalog, pg_temp` whatever the database's
//! settings (the database's owner must not be able to slip a function of theirs into a query the
//! worker runs as a superuser). The worker takes SIGTERM as a backend does (`die`): it ends at its
//! next check for interrupts (between batches, and during inference, which checks them between
//! passes), with exit code 1, so that the postmaster starts it again after 5 s unless the server
//! is shutting down (`pg_terminate_backend` on it, say). One worker per database works at a time:
//! a second (started by a restarted launcher) waits while an older one is alive.
//!
//! It also keeps the queue's clock (`biomed_ner_clock`, for the status view's oldest pending
//! age): at every round it reads the cluster's next transaction id and the time, and writes the
//! reading of the idle round before when a round finds work (so a row that arrived while it slept
//! is dated to within one nap), a reading a second at most while rounds find work, and one a
//! minute otherwise while its database has watches; an idle server is not written to more often
//! than that. Once a minute while idle (first at its first idle round) it checks the next
//! thousand held entries (`biomed_ner_held`) and deletes those whose row was deleted since.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, DynamicBackgroundWorker, SignalWakeFlags};
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

use crate::gucs;
use crate::spi_read::{read_one, read_two};

/// How long an idle queue worker sleeps before it looks at the queue again.
const NAPTIME: Duration = Duration::from_millis(250);
/// How long it sleeps in a database without the extension.
const NO_EXTENSION_NAPTIME: Duration = Duration::from_secs(1);
/// How often it writes a reading of the clock when no round finds work.
const CLOCK_IDLE_TICK: Duration = Duration::from_secs(60);
/// How often at most while rounds find work.
const CLOCK_BUSY_TICK: Duration = Duration::from_secs(1);

/// How long a table whose batch failed as a whole is left alone before the next try: at least
/// this, and ten times as long as the failed batch took (a batch that ran for its whole timeout
/// leaves its table alone for ten timeouts, so that one table's slow failures take at most a
/// tenth of the worker's time), at most [`FAILED_TABLE_MAX_PAUSE`].
const FAILED_TABLE_PAUSE: Duration = Duration::from_secs(10);
const FAILED_TABLE_MAX_PAUSE: Duration = Duration::from_secs(3600);

/// How many held entries an idle round checks for rows deleted or written again, and how often.
const PRUNE_SLICE: i32 = 1000;
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// A reading of the clock: the cluster's next transaction id (xid8, as text) and the time.
type Reading = (String, pgrx::datum::TimestampWithTimeZone);

pub fn register_launcher() {
    BackgroundWorkerBuilder::new("biomed_ner queue launcher")
        .set_type("biomed_ner queue launcher")
        .set_library("biomed_ner")
        .set_function("biomed_ner_queue_launcher_main")
        .enable_shmem_access(None)
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

fn start_worker(database: &str) -> Option<DynamicBackgroundWorker> {
    let started = BackgroundWorkerBuilder::new(&format!("biomed_ner queue worker for database {database}"))
        .set_type("biomed_ner queue")
        .set_library("biomed_ner")
        .set_function("biomed_ner_queue_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .set_extra(database)
        .load_dynamic();
    match started {
        Ok(w) => {
            pgrx::log!("biomed_ner queue: started the worker of database \"{database}\"");
            Some(w)
        }
        Err(_) => {
            pgrx::warning!("biomed_ner queue: cannot start a worker for database \"{database}\" (max_worker_processes?)");
            None
        }
    }
}

/// The launcher's entry point: one queue worker per listed database, adjusted at reload.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn biomed_ner_queue_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let mut workers: BTreeMap<String, Option<DynamicBackgroundWorker>> = BTreeMap::new();
    let mut wanted = gucs::queue_databases();
    loop {
        workers.retain(|db, w| {
            if wanted.contains(db) {
                return true;
            }
            if let Some(w) = w.take() {
                pgrx::log!("biomed_ner queue: stopping the worker of database \"{db}\"");
                let _ = w.terminate();
            }
            false
        });
        for db in &wanted {
            let entry = workers.entry(db.clone()).or_insert(None);
            if entry.is_none() {
                *entry = start_worker(db);
            }
        }
        if !BackgroundWorker::wait_latch(Some(Duration::from_secs(10))) {
            break;
        }
        if gucs::reload_on_sighup() {
            wanted = gucs::queue_databases();
        }
    }
}

fn report_activity(what: &str) {
    let text = CString::new(what).unwrap_or_default();
    // Safety: copies the string into this backend's activity slot.
    unsafe { pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_RUNNING, text.as_ptr()) };
}

fn report_idle() {
    // Safety: as above, with no text.
    unsafe { pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_IDLE, std::ptr::null()) };
}

/// SIGTERM as a backend takes it: `die` sets the interrupt flags (and the latch), and the next
/// check for interrupts ends the process with FATAL, exit code 1.
fn terminate_like_a_backend() {
    unsafe extern "C-unwind" {
        /// PostgreSQL's SIGTERM handler of a backend (tcop/postgres.c).
        #[link_name = "die"]
        fn postgres_die(signal: std::ffi::c_int);
    }
    // Safety: installs PostgreSQL's own handler for a backend's SIGTERM.
    unsafe {
        #[cfg(not(feature = "pg18"))]
        pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(postgres_die));
        #[cfg(feature = "pg18")]
        pg_sys::pqsignal_be(pg_sys::SIGTERM as i32, Some(postgres_die));
    }
}

/// Sleeps on the latch (not at all for a zero duration), then answers a pending SIGTERM or
/// cancel; false when the worker must stop. Reloads the settings at SIGHUP.
fn sleep(duration: Duration) -> bool {
    let alive = duration.is_zero() || BackgroundWorker::wait_latch(Some(duration));
    pgrx::check_for_interrupts!();
    if gucs::reload_on_sighup() {
        crate::background::set_background(gucs::queue_nice());
    }
    alive
}

// utils/timeout.h, which pgrx does not bind: the statement timeout of a backend (the same
// enumerator, 3, in PostgreSQL 15 to 18), armed around a queue batch.
const STATEMENT_TIMEOUT: std::ffi::c_int = 3;
unsafe extern "C-unwind" {
    fn enable_timeout_after(id: std::ffi::c_int, delay_ms: std::ffi::c_int);
    fn disable_timeout(id: std::ffi::c_int, keep_indicator: bool);
    fn get_timeout_indicator(id: std::ffi::c_int, reset_indicator: bool) -> bool;
    fn get_timeout_finish_time(id: std::ffi::c_int) -> pg_sys::TimestampTz;
}

/// Whether the batch's statement timeout has been reached: PostgreSQL's own clock against the
/// time it set for the timeout (a monotonic clock of ours could disagree by a step of the
/// system clock, and a cancel left from before this batch would be mistaken for it).
fn batch_timed_out() -> bool {
    // Safety: reads the timeout's finish time and the clock; no state changes.
    unsafe { pg_sys::GetCurrentTimestamp() >= get_timeout_finish_time(STATEMENT_TIMEOUT) }
}

/// The five characters of a SQLSTATE.
fn sqlstate(code: PgSqlErrorCode) -> String {
    let packed = code as i32;
    (0..5).map(|i| (((packed >> (6 * i)) & 0x3F) as u8 + b'0') as char).collect()
}

/// One batch of the table `relid`, in a transaction of its own, limited to
/// `biomed_ner.queue_batch_timeout`: the rows it took, or -1 when it failed as a whole. An error
/// that escapes the batch function (a cancel or an assertion raised by the table's own code, the
/// timeout) aborts the transaction, goes to the server log and becomes the table's `last_error`.
fn drain(schema: &str, relid: pg_sys::Oid, owner: pg_sys::Oid) -> i32 {
    let schema = spi::quote_identifier(schema);
    let batch = gucs::queue_batch_size() as i32;
    let timeout = gucs::queue_batch_timeout_ms();
    // Safety: the transaction calls a background worker makes, as BackgroundWorker::transaction
    // does; the timeout is PostgreSQL's statement timeout, armed and disarmed around the batch.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        if timeout > 0 {
            enable_timeout_after(STATEMENT_TIMEOUT, timeout);
        }
    }
    // The batch in biomed_ner_progress, for the watch's owner; cleared when its transaction ends.
    let progress = crate::progress::begin(crate::progress::Command::QueueBatch, owner, relid, None, false);
    let query = format!("SELECT {schema}._biomed_ner_drain($1, $2)");
    let outcome = PgTryBuilder::new(|| Ok(read_one::<i32>(&query, &[relid.into(), batch.into()]).unwrap_or(0)))
        .catch_others(|e| {
            Err(match e {
                CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) | CaughtError::RustPanic { ereport: r, .. } => {
                    let code = r.sql_error_code();
                    let timed_out = timeout > 0 && batch_timed_out();
                    if code == PgSqlErrorCode::ERRCODE_QUERY_CANCELED && timed_out {
                        format!("{}: the batch ran over biomed_ner.queue_batch_timeout ({timeout} ms): {}", sqlstate(code), r.message())
                    } else {
                        format!("{}: {}", sqlstate(code), r.message())
                    }
                }
            })
        })
        .execute();
    drop(progress);
    // Safety: disarms the timeout, then ends the transaction: committed, or aborted after an error.
    // A timeout that fired after the batch's last check for interrupts has left a cancel pending;
    // it was meant for this batch, which is over: dropped, as a backend drops a cancel that comes
    // between statements, so that it cancels neither the next table's batch nor the worker.
    unsafe {
        if timeout > 0 && get_timeout_indicator(STATEMENT_TIMEOUT, true) && outcome.is_ok() {
            pg_sys::QueryCancelPending = 0;
        }
        disable_timeout(STATEMENT_TIMEOUT, false);
        match &outcome {
            Ok(_) => {
                pg_sys::PopActiveSnapshot();
                pg_sys::CommitTransactionCommand();
            }
            Err(_) => pg_sys::AbortCurrentTransaction(),
        }
    }
    match outcome {
        Ok(done) => done,
        Err(message) => {
            pgrx::log!("biomed_ner queue: a batch of table {} failed: {message}", relid.to_u32());
            BackgroundWorker::transaction(|| {
                let _ = Spi::run_with_args(
                    &format!("UPDATE {schema}.biomed_ner_watches SET last_error = $2, last_error_at = pg_catalog.now() WHERE relid OPERATOR(pg_catalog.=) $1::pg_catalog.oid::pg_catalog.regclass"),
                    &[relid.into(), message.into()],
                );
            });
            -1
        }
    }
}

/// The queue worker's entry point: drains the watched tables of its database.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn biomed_ner_queue_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP);
    terminate_like_a_backend();
    let database = BackgroundWorker::get_extra().to_string();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    // Its own queries name no schema but pg_catalog's: no setting of the database reaches them.
    BackgroundWorker::transaction(|| {
        let _ = read_one::<String>("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)", &[]);
    });
    // One worker per database: a second one waits while an older one is alive.
    loop {
        let alone: bool = BackgroundWorker::transaction(|| {
            read_one(
                "SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a, pg_catalog.pg_stat_activity me
                 WHERE me.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid() AND a.backend_type OPERATOR(pg_catalog.=) me.backend_type
                   AND a.datid OPERATOR(pg_catalog.=) me.datid AND a.pid OPERATOR(pg_catalog.<>) me.pid
                   AND (a.backend_start, a.pid) OPERATOR(pg_catalog.<) (me.backend_start, me.pid))",
                &[],
            )
            .unwrap_or(false)
        });
        if alone {
            break;
        }
        report_activity("biomed_ner queue: waiting for the other worker of this database to end");
        if !sleep(Duration::from_secs(1)) {
            return;
        }
    }
    // Its inference is background work: at biomed_ner.queue_nice, in the service or here.
    crate::background::set_background(gucs::queue_nice());
    let mut previous: Option<Reading> = None;
    let mut last_tick = std::time::Instant::now() - CLOCK_IDLE_TICK;
    let mut busy_before = false;
    // Where the walk through the held entries has got to (`_biomed_ner_prune_held`).
    let mut prune_after: Option<String> = None;
    let mut last_prune: Option<std::time::Instant> = None;
    // Tables whose last batch failed as a whole, and when they may be tried again.
    let mut failed: BTreeMap<u32, std::time::Instant> = BTreeMap::new();
    loop {
        report_idle();
        // The watched tables, the schema of the extension (None: not installed here), and a
        // reading of the clock.
        let (schema, tables, reading) = BackgroundWorker::transaction(|| {
            let reading: Option<Reading> = read_two("SELECT pg_snapshot_xmax(pg_current_snapshot())::text, clock_timestamp()")
                .and_then(|(x, t)| Some((x?, t?)));
            let schema: Option<String> = read_one(
                "SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'biomed_ner'",
                &[],
            );
            let Some(schema) = schema else { return (None, Vec::new(), reading) };
            // Every watch: the paused ones keep the clock going, the others are drained.
            let query = format!(
                "SELECT w.relid::oid, w.relid::text, w.paused, w.owner::oid FROM {}.biomed_ner_watches w ORDER BY w.relid",
                spi::quote_identifier(&schema)
            );
            let watches: Vec<(pg_sys::Oid, String, bool, pg_sys::Oid)> = Spi::connect(|client| {
                client
                    .select(&query, None, &[])
                    .map(|rows| {
                        rows.filter_map(|r| {
                            Some((
                                r.get::<pg_sys::Oid>(1).ok()??,
                                r.get::<String>(2).ok()??,
                                r.get::<bool>(3).ok()??,
                                r.get::<pg_sys::Oid>(4).ok()??,
                            ))
                        })
                        .collect()
                    })
                    .unwrap_or_default()
            });
            let reading = if watches.is_empty() { None } else { reading };
            let tables = watches.into_iter().filter(|(_, _, paused, _)| !paused).map(|(relid, name, _, owner)| (relid, name, owner)).collect();
            (Some(schema), tables, reading)
        });
        let Some(schema) = schema else {
            if !sleep(NO_EXTENSION_NAPTIME) {
                break;
            }
            continue;
        };
        let mut worked = false;
        failed.retain(|_, until| *until > std::time::Instant::now());
        for (relid, name, owner) in tables {
            if failed.contains_key(&relid.to_u32()) {
                continue;
            }
            report_activity(&format!("biomed_ner queue: annotating {name}"));
            let started = std::time::Instant::now();
            let done = drain(&schema, relid, owner);
            if done < 0 {
                // The batch failed as a whole: its error is the table's last_error.
                let pause = (started.elapsed() * 10).clamp(FAILED_TABLE_PAUSE, FAILED_TABLE_MAX_PAUSE);
                failed.insert(relid.to_u32(), std::time::Instant::now() + pause);
            }
            worked |= done > 0;
            if done > 0 && !sleep(Duration::from_millis(gucs::queue_pause_ms())) {
                return;
            }
        }
        // The clock: when a round finds work after an idle one, the idle round's reading (the
        // rows found arrived after it); while busy, this round's at most once a second; while
        // idle, one a minute.
        let mut ticks: Vec<Reading> = Vec::new();
        if worked && !busy_before {
            ticks.extend(previous.take());
        }
        if let Some(r) = &reading {
            if last_tick.elapsed() >= if worked { CLOCK_BUSY_TICK } else { CLOCK_IDLE_TICK } {
                ticks.push(r.clone());
            }
        }
        busy_before = worked;
        if !ticks.is_empty() {
            last_tick = std::time::Instant::now();
            BackgroundWorker::transaction(|| {
                for (xid, at) in &ticks {
                    let _ = Spi::run_with_args(
                        &format!("SELECT {}._biomed_ner_clock_tick($1::text::xid8, $2)", spi::quote_identifier(&schema)),
                        &[xid.clone().into(), (*at).into()],
                    );
                }
            });
        }
        // Idle: the next slice of the held entries, once a minute (and at the first idle round).
        if !worked && reading.is_some() && last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(std::time::Instant::now());
            report_activity("biomed_ner queue: pruning the held entries of deleted rows");
            prune_after = BackgroundWorker::transaction(|| {
                read_one(
                    &format!("SELECT {}._biomed_ner_prune_held($1, $2)", spi::quote_identifier(&schema)),
                    &[prune_after.clone().into(), PRUNE_SLICE.into()],
                )
            });
        }
        previous = reading;
        if !worked && !sleep(NAPTIME) {
            break;
        }
    }
}
