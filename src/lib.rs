//! biomed_ner: biomedical named-entity recognition inside PostgreSQL.
//!
//! A thin SQL layer over the `deberta-ner` engine: settings (`gucs`), who may load what
//! (`access`), text in the database's encoding (`encoding`), the backend's model and threads
//! (`backend`), the shared inference service (`service`), watched tables and their queue
//! (`queue`), SQL functions (`api`), the trigger (`trigger`), progress of long runs (`progress`) and error mapping (`error`).

use pgrx::prelude::*;

mod access;
mod api;
mod assertion;
mod backend;
mod encoding;
mod error;
mod gucs;
mod html;
mod progress;
mod queue;
mod service;
mod spi_read;
mod trigger;

pgrx::pg_module_magic!();

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    service::init();
    queue::init();
    progress::init();
    // Safety: called once while loading the library, with a static C string.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"biomed_ner".as_ptr()) };
}
