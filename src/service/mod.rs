//! The shared inference service: one model per server, batching the calls of every session.
//!
//! When biomed_ner is in `shared_preload_libraries`, a background worker (the supervisor,
//! [`supervisor`]) holds a Unix socket in the data directory and runs the model in processes
//! of its own ([`biomed_ner_host::server`]), which never call PostgreSQL, so that their crash restarts only
//! them, never the cluster. Backends send their notes over the socket ([`client`]) as
//! [`protocol`] messages; the service merges the requests of all sessions into batches and
//! answers each.
//!
//! Which calls go there is `biomed_ner.execution`: `backend` (the model in each backend, as
//! without preloading), `service`, or `auto` (the default: the service when preloaded). The
//! service runs the model of the server's configuration (`biomed_ner.model`, `device`,
//! `dtype`, `threads`, `batch_size`, `max_memory` as set in `postgresql.conf` or by `ALTER
//! SYSTEM`); a session whose `biomed_ner.model`, `device` or `dtype` differ from it is served
//! in its own backend under `auto`, and refused under `service`. Per-call options
//! (`aggregation`, `max_length`, `stride`) follow each session's settings.
//!
//! This file is the module's one entry point: registration ([`init`]), a call sent to the
//! service ([`annotate`]; whether a call goes there is [`crate::route`]'s choice) and the
//! service's state ([`status`], [`serving_model`]).

mod client;
mod supervisor;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use biomed_ner_host::protocol::{self, Request, Response, ServiceConfig};
use biomed_ner_host::{Failure, ModelSpec, Named};
use biomed_ner_engine::Entity;
use pgrx::bgworkers::{BackgroundWorkerBuilder, BgWorkerStartTime};
use pgrx::{pg_sys, PgSqlErrorCode};

use crate::error::{raise, raise_failure};
use crate::gucs::{self, ExecutionSetting};

/// The service's socket, relative to the data directory (every backend's working directory).
/// The data directory is the server's user's alone, so only the server's processes can
/// connect; `pg_stat_tmp` is left out of base backups.
pub const SOCKET: &str = "pg_stat_tmp/biomed_ner.sock";

/// Whether the library was preloaded, so that the service runs. Set in the postmaster, and
/// inherited by every backend it forks.
static PRELOADED: AtomicBool = AtomicBool::new(false);

/// Registers the supervisor when the library is being preloaded; does nothing otherwise.
pub fn init() {
    // Safety: a flag PostgreSQL sets while it loads shared_preload_libraries.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    PRELOADED.store(true, Ordering::Relaxed);
    BackgroundWorkerBuilder::new("biomed_ner inference service")
        .set_type("biomed_ner service")
        .set_library("biomed_ner")
        .set_function("biomed_ner_service_main")
        .enable_shmem_access(None)
        .set_start_time(BgWorkerStartTime::PostmasterStart)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// Whether the library was preloaded, so that the service runs.
pub fn preloaded() -> bool {
    PRELOADED.load(Ordering::Relaxed)
}

/// The service's part of the configuration, read in the supervisor (where every setting has
/// the server's value: it belongs to no session, role or database).
fn service_config() -> ServiceConfig {
    ServiceConfig {
        spec: gucs::spec(),
        model_path: gucs::model_path(),
        batch_size: gucs::batch_size(),
        max_pass_bytes: gucs::max_memory_bytes(),
        batch_wait_ms: gucs::batch_wait_ms(),
        workers: gucs::workers(),
        queue_nice: gucs::queue_nice(),
    }
}

/// Under `service`, the refusal of a session that asks for another model than the service's.
fn other_model(service: &ModelSpec, function: &'static str) -> ! {
    let session = gucs::spec();
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!(
            "the inference service runs model \"{}\" ({}, {}), but this session asks for \"{}\" ({}, {})",
            service.model,
            service.device.name(),
            service.precision.name(),
            session.model,
            session.device.name(),
            session.precision.name()
        ),
        "RESET biomed_ner.model, biomed_ner.device and biomed_ner.dtype to use the service's model, \
         or SET biomed_ner.execution = 'auto' (or 'backend') to run this model in this session.",
        function,
    )
}

/// Entities of each text from the service, or `None` when this call runs in the backend after
/// all (under `auto`: the service runs another model, or a note is longer than a request). A large
/// call goes in requests of at most [`protocol::REQUEST_BYTES`] of text, one after the other, so
/// that the model process, which serves every session, never holds more than that of one
/// session's notes at once (results do not depend on how notes are batched).
pub fn annotate(texts: &[&str], function: &'static str) -> Option<Vec<Vec<Entity>>> {
    // A note longer than a request would hold the service for every session while it runs:
    // the call runs in this backend instead (under auto), or is refused (under service).
    if let Some(long) = texts.iter().map(|t| t.len()).max().filter(|n| *n > protocol::REQUEST_BYTES) {
        if gucs::execution() == ExecutionSetting::Auto {
            return None;
        }
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("a note of {long} bytes is longer than the {} bytes the shared inference service takes in one request", protocol::REQUEST_BYTES),
            "The service shares its time among sessions; SET biomed_ner.execution = 'auto' (or 'backend') to run long notes in this session.",
            function,
        );
    }
    let mut entities = Vec::with_capacity(texts.len());
    for piece in protocol::pieces(texts, protocol::REQUEST_BYTES) {
        // None: the service runs another model (it may have been reloaded between two
        // requests): the whole call runs in this backend.
        entities.extend(annotate_piece(piece, function)?);
    }
    Some(entities)
}

fn annotate_piece(texts: &[&str], function: &'static str) -> Option<Vec<Vec<Entity>>> {
    let request = Request::Annotate {
        model: gucs::spec(),
        options: gucs::call_options(),
        texts: texts.iter().map(|t| t.to_string()).collect(),
        background: crate::background::is_background(),
    };
    match client::call(&request, function) {
        Response::Entities { entities } => {
            if entities.len() != texts.len() {
                raise(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    format!("the inference service answered {} results for {} notes", entities.len(), texts.len()),
                    "This is a bug in biomed_ner; please report it.",
                    function,
                );
            }
            Some(protocol::entities_from_wire(entities))
        }
        Response::Failed { failure } => raise_failure(&failure, crate::access::may_see_file_details(), function),
        Response::OtherModel { .. } if gucs::execution() == ExecutionSetting::Auto => None,
        Response::OtherModel { service } => other_model(&service, function),
        Response::Status { .. } => raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "the inference service answered a status to a request for entities",
            "This is a bug in biomed_ner; please report it.",
            function,
        ),
    }
}

/// The service's state for `biomed_ner_service()`; `state` says `not running` without
/// preloading. A service that does not answer raises 58000, as a call would.
pub fn status(function: &'static str) -> serde_json::Value {
    if !preloaded() {
        return serde_json::json!({
            "state": "not running",
            "reason": "biomed_ner is not in shared_preload_libraries",
        });
    }
    match client::call(&Request::Status, function) {
        Response::Status { status } => redact(status, crate::access::may_see_file_details()),
        other => raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("the inference service answered {other:?} to a status request"),
            "This is a bug in biomed_ner; please report it.",
            function,
        ),
    }
}

/// The service's status as a role may see it: without `details` (a role that may not read
/// server files), a model's load error (`failure`, `last_error`) in the words that keep paths
/// and file content out, as `biomed_ner()` itself raises it.
fn redact(mut status: serde_json::Value, details: bool) -> serde_json::Value {
    let Some(map) = status.as_object_mut() else { return status };
    let redacted = map.remove("last_error_redacted").filter(|v| !v.is_null());
    if details {
        return status;
    }
    if let Some(r) = redacted {
        map.insert("last_error".into(), r);
    }
    if let Some(failure) = map.get_mut("failure").and_then(|f| f.as_object_mut()) {
        if let Some(serde_json::Value::Array(words)) = failure.remove("redacted") {
            if let [message, hint] = words.as_slice() {
                failure.insert("message".into(), message.clone());
                failure.insert("hint".into(), hint.clone());
            }
        }
    }
    status
}

/// What `biomed_ner_info()` reports when this session's calls go to the service: the
/// service's status, which has the model's facts once it is loaded. `None` when the service
/// runs another model and `execution` is `auto`.
pub fn serving_model(function: &'static str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let serde_json::Value::Object(status) = status(function) else { return None };
    let setting = |key: &str| status.get(key).and_then(|v| v.as_str()).unwrap_or_default();
    let service = ModelSpec {
        model: setting("model_setting").into(),
        device: Named::from_name(setting("device_setting")).unwrap_or_else(|e| bad_status(e, function)),
        precision: Named::from_name(setting("dtype_setting")).unwrap_or_else(|e| bad_status(e, function)),
        threads: 0,
    };
    if !service.same_model(&gucs::spec()) {
        if gucs::execution() == ExecutionSetting::Auto {
            return None;
        }
        other_model(&service, function);
    }
    if let Some(failure) = status.get("failure").and_then(|f| serde_json::from_value::<Failure>(f.clone()).ok()) {
        raise_failure(&failure, crate::access::may_see_file_details(), function);
    }
    Some(status)
}

fn bad_status(why: String, function: &'static str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("the inference service's status names no model this build runs: {why}"),
        "This is a bug in biomed_ner; please report it.",
        function,
    )
}
