//! biomed_ner: biomedical named-entity recognition inside PostgreSQL.
//!
//! A thin SQL layer over the `biomed-ner-engine` engine and the model host (`biomed_ner_host`, which
//! has no PostgreSQL in it): settings (`gucs`), who may load what (`access`), text in the
//! database's encoding (`encoding`), where a call runs (`route`): in the backend's own model
//! (`backend`) or in the shared inference service (`service`); watched tables and their queue
//! (`queue`), SQL functions (`api`, `html`), the trigger (`trigger`), progress of long runs (`progress`)
//! and error mapping (`error`).

use pgrx::prelude::*;

mod access;
mod api;
mod assertion;
mod background;
mod backend;
mod encoding;
mod error;
mod gucs;
mod html;
mod progress;
mod queue;
mod route;
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
