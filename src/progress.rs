//! Progress of long runs: the view `biomed_ner_progress`.
//!
//! Every backend has one slot in a table in shared memory, indexed by its process number, that
//! only it writes: what it runs (`biomed_ner_bulk`, a queue worker's batch, a session's
//! `biomed_ner_queue_drain`), for which role and table, rows done and the total where known, and
//! when it began. Rows done are written once per batch (an atomic store in this memory), never
//! to a table. The reader (`_biomed_ner_progress`, under the view) copies each slot under its
//! sequence counter, so it never sees half of a write, and shows the details of a run only to
//! the role it runs for, to members of that role and to `pg_read_all_stats` (as PostgreSQL's
//! own `pg_stat_progress_*` views do); others see the process, database, role and command.
//!
//! Where the table lives: on PostgreSQL 17 and later in a named dynamic shared memory segment
//! that the first backend to need it makes (no preloading needed); on 15 and 16 in the main
//! shared memory, reserved when the library is in `shared_preload_libraries`: without it,
//! nothing is recorded there and the view says how to enable it.
//!
//! A slot is cleared when its run ends, when its transaction or the subtransaction it began in
//! ends, and when the backend exits. A backend shows one run: a run begun inside another (a bulk
//! whose query runs a bulk, a trigger that runs one during a drain) is part of the outer run's
//! work and is neither shown nor counted apart.
//!
//! Rights: everything here runs as the caller (the view and its function are for PUBLIC); a run
//! is recorded under the role it runs for (the caller of `biomed_ner_bulk` and of
//! `biomed_ner_queue_drain`, the watch's owner for the queue worker's batches).

use std::ffi::c_void;
use std::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

use crate::encoding::DbText;
use crate::error::raise;

/// What a slot's backend runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum Command {
    Bulk = 1,
    QueueBatch = 2,
    QueueDrain = 3,
}

impl Command {
    fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Bulk),
            2 => Some(Self::QueueBatch),
            3 => Some(Self::QueueDrain),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Bulk => "biomed_ner_bulk",
            Self::QueueBatch => "queue batch",
            Self::QueueDrain => "biomed_ner_queue_drain",
        }
    }

    /// Whether its rows are counted where notes are annotated (a queue batch annotates them in
    /// one call the extension's SQL makes) rather than by the run itself (bulk).
    fn counts_annotated(self) -> bool {
        matches!(self, Self::QueueBatch | Self::QueueDrain)
    }
}

/// One backend's slot. `seq` is odd while its owner writes it.
#[repr(C)]
struct Slot {
    seq: AtomicU32,
    pid: AtomicI32,
    command: AtomicU32,
    datid: AtomicU32,
    role: AtomicU32,
    relid: AtomicU32,
    estimated: AtomicU32,
    _pad: u32,
    done: AtomicI64,
    /// -1: not known.
    total: AtomicI64,
    started: AtomicI64,
}

#[repr(C)]
struct Table {
    slots: u32,
    _pad: u32,
}

const NAME: &std::ffi::CStr = c"biomed_ner progress";

fn table_size(slots: usize) -> usize {
    std::mem::size_of::<Table>() + slots * std::mem::size_of::<Slot>()
}

/// This process's mapping of the table; null until attached (or, on 15 and 16, without
/// preloading).
static TABLE: AtomicPtr<Table> = AtomicPtr::new(std::ptr::null_mut());

/// Zeroes a new table of `slots` slots at `at`.
///
/// # Safety
/// `at` points to `table_size(slots)` writable bytes, aligned for `Table`.
unsafe fn init_table(at: *mut c_void, slots: usize) {
    // Safety: the caller's promise.
    unsafe {
        std::ptr::write_bytes(at as *mut u8, 0, table_size(slots));
        (*(at as *mut Table)).slots = slots as u32;
    }
}

fn max_backends() -> usize {
    // Safety: a value PostgreSQL sets before any backend runs.
    unsafe { pg_sys::MaxBackends.max(0) as usize }
}

#[cfg(any(feature = "pg15", feature = "pg16"))]
mod main_memory {
    use super::*;

    static mut PREV_REQUEST: pg_sys::shmem_request_hook_type = None;
    static mut PREV_STARTUP: pg_sys::shmem_startup_hook_type = None;

    /// Reserves the table when the library is preloaded (called from `_PG_init`).
    pub fn init() {
        // Safety: hooks set while the postmaster loads the library, the previous ones kept and called.
        unsafe {
            if !pg_sys::process_shared_preload_libraries_in_progress {
                return;
            }
            PREV_REQUEST = pg_sys::shmem_request_hook;
            pg_sys::shmem_request_hook = Some(request);
            PREV_STARTUP = pg_sys::shmem_startup_hook;
            pg_sys::shmem_startup_hook = Some(startup);
        }
    }

    #[pg_guard]
    unsafe extern "C-unwind" fn request() {
        // Safety: runs in the postmaster when shared memory may be requested.
        unsafe {
            if let Some(prev) = PREV_REQUEST {
                prev();
            }
            pg_sys::RequestAddinShmemSpace(table_size(max_backends()));
        }
    }

    #[pg_guard]
    unsafe extern "C-unwind" fn startup() {
        // Safety: runs in the postmaster (on Linux, the only process that makes shared memory),
        // after the space was reserved by `request`; children inherit the mapping.
        unsafe {
            if let Some(prev) = PREV_STARTUP {
                prev();
            }
            let slots = max_backends();
            let mut found = false;
            let at = pg_sys::ShmemInitStruct(NAME.as_ptr(), table_size(slots), &mut found);
            if !found {
                init_table(at, slots);
            }
            TABLE.store(at as *mut Table, Ordering::Release);
        }
    }

    pub fn attach() -> Option<&'static Table> {
        // Safety: set once in the postmaster before any backend starts; lives as long as the server.
        unsafe { TABLE.load(Ordering::Acquire).as_ref() }
    }

    pub fn my_index() -> Option<usize> {
        // Safety: the backend's id, set when it joined the database (1-based; 0 when it has none).
        let id = unsafe { pg_sys::MyBackendId };
        (id >= 1).then(|| id as usize - 1)
    }

    pub const HOW_TO_ENABLE: &str = "Add biomed_ner to shared_preload_libraries and restart the server (PostgreSQL 17 and later need no preloading for this view).";
}

#[cfg(not(any(feature = "pg15", feature = "pg16")))]
mod main_memory {
    use super::*;

    pub fn init() {}

    #[pg_guard]
    unsafe extern "C-unwind" fn init_segment(at: *mut c_void) {
        // Safety: GetNamedDSMSegment gives `table_size(max_backends())` bytes, maximally aligned.
        unsafe { init_table(at, max_backends()) }
    }

    /// The named segment, made by the first backend that needs it.
    pub fn attach() -> Option<&'static Table> {
        let known = TABLE.load(Ordering::Acquire);
        if !known.is_null() {
            // Safety: the segment stays mapped for the life of this process.
            return unsafe { known.as_ref() };
        }
        let mut found = false;
        // Safety: a backend (or a background worker with shared memory) asks for the segment;
        // PostgreSQL pins it and its mapping for the life of the process.
        let at = unsafe { pg_sys::GetNamedDSMSegment(NAME.as_ptr(), table_size(max_backends()), Some(init_segment), &mut found) };
        TABLE.store(at as *mut Table, Ordering::Release);
        // Safety: as above.
        unsafe { (at as *mut Table).as_ref() }
    }

    pub fn my_index() -> Option<usize> {
        // Safety: the backend's process number, set at its start (-1 before that).
        let n = unsafe { pg_sys::MyProcNumber };
        (n >= 0).then_some(n as usize)
    }

    pub const HOW_TO_ENABLE: &str = "";
}

pub use main_memory::init;

impl Table {
    fn slot(&self, i: usize) -> Option<&Slot> {
        if i >= self.slots as usize {
            return None;
        }
        // Safety: the table was made with `slots` slots right after its header.
        unsafe { Some(&*((self as *const Table).add(1) as *const Slot).add(i)) }
    }
}

fn my_slot() -> Option<&'static Slot> {
    main_memory::attach()?.slot(main_memory::my_index()?)
}

impl Slot {
    /// Writes the slot's fields; only its own backend calls this.
    fn write(&self, f: impl FnOnce(&Slot)) {
        self.seq.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::Release);
        f(self);
        self.seq.fetch_add(1, Ordering::Release);
    }
}

/// The run this backend records now: its number and command (0: none), and the subtransaction it
/// began in.
static ACTIVE: AtomicU64 = AtomicU64::new(0);
static ACTIVE_COMMAND: AtomicU32 = AtomicU32::new(0);
static ACTIVE_SUBXACT: AtomicU32 = AtomicU32::new(0);
static NEXT: AtomicU64 = AtomicU64::new(1);
static CALLBACKS: AtomicBool = AtomicBool::new(false);

/// Runs begun while another was recorded (a bulk whose query, or a trigger in a drain, runs
/// another): not recorded, and the notes they annotate are not counted to the outer run.
static NESTED: AtomicU32 = AtomicU32::new(0);

/// A recorded run `id` (`outer` 0), or one nested in the recorded run `outer`; the recorded run ends
/// (its slot cleared) when dropped, if it is still the one recorded.
pub struct Run {
    id: u64,
    outer: u64,
}

impl Run {
    /// Adds `rows` to the rows done of this run, if it is the one recorded.
    pub fn advance(&self, rows: usize) {
        if self.outer == 0 && ACTIVE.load(Ordering::Relaxed) == self.id {
            advance(rows);
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let active = ACTIVE.load(Ordering::Relaxed);
        if self.outer == 0 && active == self.id {
            clear();
        } else if self.outer != 0 && active == self.outer {
            NESTED.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn clear() {
    ACTIVE.store(0, Ordering::Relaxed);
    ACTIVE_COMMAND.store(0, Ordering::Relaxed);
    NESTED.store(0, Ordering::Relaxed);
    if let Some(slot) = known_slot() {
        slot.write(|s| {
            s.command.store(0, Ordering::Relaxed);
            s.pid.store(0, Ordering::Relaxed);
        });
    }
}

/// This backend's slot once a run has used it (the callbacks must not attach).
static MY_SLOT: AtomicPtr<Slot> = AtomicPtr::new(std::ptr::null_mut());

fn known_slot() -> Option<&'static Slot> {
    // Safety: a slot of the table, which stays mapped for the life of the process.
    unsafe { MY_SLOT.load(Ordering::Relaxed).as_ref() }
}

#[pg_guard]
unsafe extern "C-unwind" fn at_xact_end(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    use pg_sys::XactEvent as E;
    if ACTIVE.load(Ordering::Relaxed) != 0
        && [E::XACT_EVENT_COMMIT, E::XACT_EVENT_ABORT, E::XACT_EVENT_PREPARE, E::XACT_EVENT_PARALLEL_COMMIT, E::XACT_EVENT_PARALLEL_ABORT]
            .contains(&event)
    {
        clear();
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn at_subxact_end(
    event: pg_sys::SubXactEvent::Type,
    sub: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB && ACTIVE.load(Ordering::Relaxed) != 0 && ACTIVE_SUBXACT.load(Ordering::Relaxed) == sub {
        clear();
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn at_exit(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    if ACTIVE.load(Ordering::Relaxed) != 0 {
        clear();
    }
}

/// Records that this backend begins `command` for `role` (on table `relid`, or none), with
/// `total` rows where known (`estimated`: the planner's estimate). `None` where there is no
/// table to record in (15 and 16 without preloading).
pub fn begin(command: Command, role: pg_sys::Oid, relid: pg_sys::Oid, total: Option<i64>, estimated: bool) -> Option<Run> {
    // One run per backend is shown: the outermost.
    let active = ACTIVE.load(Ordering::Relaxed);
    if active != 0 {
        NESTED.fetch_add(1, Ordering::Relaxed);
        return Some(Run { id: 0, outer: active });
    }
    let slot = known_slot().or_else(|| {
        let slot = my_slot()?;
        MY_SLOT.store(slot as *const Slot as *mut Slot, Ordering::Relaxed);
        Some(slot)
    })?;
    if !CALLBACKS.swap(true, Ordering::Relaxed) {
        // Safety: callbacks that only store to this backend's slot; registered once.
        unsafe {
            pg_sys::RegisterXactCallback(Some(at_xact_end), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(at_subxact_end), std::ptr::null_mut());
            pg_sys::before_shmem_exit(Some(at_exit), pg_sys::Datum::from(0usize));
        }
    }
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    // Safety: reads of the backend's own state.
    let (pid, datid, started, sub) =
        unsafe { (pg_sys::MyProcPid, pg_sys::MyDatabaseId, pg_sys::GetCurrentTimestamp(), pg_sys::GetCurrentSubTransactionId()) };
    slot.write(|s| {
        s.pid.store(pid, Ordering::Relaxed);
        s.command.store(command as u32, Ordering::Relaxed);
        s.datid.store(datid.to_u32(), Ordering::Relaxed);
        s.role.store(role.to_u32(), Ordering::Relaxed);
        s.relid.store(relid.to_u32(), Ordering::Relaxed);
        s.estimated.store(estimated as u32, Ordering::Relaxed);
        s.done.store(0, Ordering::Relaxed);
        s.total.store(total.unwrap_or(-1), Ordering::Relaxed);
        s.started.store(started, Ordering::Relaxed);
    });
    ACTIVE.store(id, Ordering::Relaxed);
    ACTIVE_COMMAND.store(command as u32, Ordering::Relaxed);
    ACTIVE_SUBXACT.store(sub, Ordering::Relaxed);
    Some(Run { id, outer: 0 })
}

/// Adds `rows` to the rows done of this backend's run.
fn advance(rows: usize) {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return;
    }
    if let Some(slot) = known_slot() {
        slot.done.fetch_add(rows as i64, Ordering::Relaxed);
    }
}

/// Where notes are annotated: `notes` about to be (`finished` false), then done (`finished`
/// true). Counts them for the runs whose rows are the notes of such calls (the queue's).
pub fn annotating(notes: usize, finished: bool) {
    let Some(command) = Command::from_u32(ACTIVE_COMMAND.load(Ordering::Relaxed)) else { return };
    if !command.counts_annotated() || NESTED.load(Ordering::Relaxed) != 0 {
        return;
    }
    if finished {
        advance(notes);
    } else if command == Command::QueueBatch {
        // A batch's rows are known when its one call begins.
        if let Some(slot) = known_slot() {
            let total = slot.total.load(Ordering::Relaxed).max(0);
            slot.total.store(total + notes as i64, Ordering::Relaxed);
        }
    }
}

/// A copy of one slot, read under its sequence counter; `None` for an empty slot.
struct Seen {
    pid: i32,
    command: Command,
    datid: u32,
    role: u32,
    relid: u32,
    estimated: bool,
    done: i64,
    total: i64,
    started: i64,
}

fn read(slot: &Slot) -> Option<Seen> {
    for _ in 0..1000 {
        let before = slot.seq.load(Ordering::Acquire);
        if before % 2 == 1 {
            std::hint::spin_loop();
            continue;
        }
        let seen = (
            slot.pid.load(Ordering::Relaxed),
            slot.command.load(Ordering::Relaxed),
            slot.datid.load(Ordering::Relaxed),
            slot.role.load(Ordering::Relaxed),
            slot.relid.load(Ordering::Relaxed),
            slot.estimated.load(Ordering::Relaxed),
            slot.done.load(Ordering::Relaxed),
            slot.total.load(Ordering::Relaxed),
            slot.started.load(Ordering::Relaxed),
        );
        fence(Ordering::Acquire);
        if slot.seq.load(Ordering::Relaxed) != before {
            continue;
        }
        let (pid, command, datid, role, relid, estimated, done, total, started) = seen;
        return Some(Seen { pid, command: Command::from_u32(command)?, datid, role, relid, estimated: estimated != 0, done, total, started })
            .filter(|s| s.pid != 0);
    }
    None
}

/// The runs recorded now, one row per backend; the view `biomed_ner_progress` is built on it.
/// Details (table, rows, start) are NULL for runs of roles whose statistics the caller may not
/// read.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile, parallel_restricted)]
fn _biomed_ner_progress() -> TableIterator<
    'static,
    (
        name!(pid, i32),
        name!(datid, pg_sys::Oid),
        name!(userid, pg_sys::Oid),
        name!(command, DbText),
        name!(relid, Option<pg_sys::Oid>),
        name!(rows_done, Option<i64>),
        name!(rows_total, Option<i64>),
        name!(total_is_estimate, Option<bool>),
        name!(started, Option<TimestampWithTimeZone>),
    ),
> {
    let Some(table) = main_memory::attach() else {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "biomed_ner_progress needs biomed_ner in shared_preload_libraries on this PostgreSQL version",
            main_memory::HOW_TO_ENABLE,
            "biomed_ner_progress",
        )
    };
    // Safety: reads the caller's role.
    let viewer = unsafe { pg_sys::GetUserId() };
    let all_stats = crate::access::may_read_all_stats();
    let mut rows = Vec::new();
    for i in 0..table.slots as usize {
        let Some(seen) = table.slot(i).and_then(read) else { continue };
        let role = pg_sys::Oid::from(seen.role);
        // Safety: a catalog lookup of role membership, in a transaction.
        let visible = all_stats || unsafe { pg_sys::has_privs_of_role(viewer, role) };
        let details = visible.then(|| {
            let total = (seen.total >= 0).then_some(seen.total);
            let relid = (seen.relid != 0).then(|| pg_sys::Oid::from(seen.relid));
            (relid, seen.done, total, total.map(|_| seen.estimated), TimestampWithTimeZone::try_from(seen.started).ok())
        });
        rows.push((
            seen.pid,
            pg_sys::Oid::from(seen.datid),
            role,
            DbText(seen.command.as_str().into()),
            details.as_ref().and_then(|d| d.0),
            details.as_ref().map(|d| d.1),
            details.as_ref().and_then(|d| d.2),
            details.as_ref().and_then(|d| d.3),
            details.and_then(|d| d.4),
        ));
    }
    TableIterator::new(rows)
}

pgrx::extension_sql!(
    r#"
-- Every running biomed_ner_bulk, queue batch and biomed_ner_queue_drain (src/progress.rs).
CREATE VIEW biomed_ner_progress AS
SELECT p.pid, d.datname, r.rolname AS usename, p.command, p.relid::pg_catalog.regclass AS relation,
       p.rows_done, p.rows_total, p.total_is_estimate, p.started,
       pg_catalog.round((p.rows_done / NULLIF(extract(epoch FROM pg_catalog.clock_timestamp() - p.started), 0))::numeric, 1)
           AS notes_per_second,
       CASE WHEN p.rows_done > 0 AND p.rows_total > p.rows_done
            THEN (pg_catalog.clock_timestamp() - p.started) * ((p.rows_total - p.rows_done)::float8 / p.rows_done) END AS time_left,
       CASE WHEN p.rows_done > 0 AND p.rows_total > p.rows_done
            THEN pg_catalog.clock_timestamp() + (pg_catalog.clock_timestamp() - p.started) * ((p.rows_total - p.rows_done)::float8 / p.rows_done) END AS eta
FROM @extschema@._biomed_ner_progress() p
LEFT JOIN pg_catalog.pg_database d ON d.oid = p.datid
LEFT JOIN pg_catalog.pg_roles r ON r.oid = p.userid;
GRANT SELECT ON biomed_ner_progress TO PUBLIC;
"#,
    name = "progress_view",
    requires = [_biomed_ner_progress],
);
