//! The model process's state, for `biomed_ner_service()` and `biomed_ner_info()`.

use std::sync::atomic::Ordering;

use super::infer::needs_reload;
use super::{ModelState, Service};
use crate::failure::Failure;
use crate::load::model_facts;
use crate::spec::Named;

impl Service {
    /// Keeps `failure` as the last error, with the words a role that may not read server files
    /// sees instead.
    pub(super) fn set_last_error(&self, failure: &Failure) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(failure.message.clone());
        *self.last_error_redacted.lock().unwrap_or_else(|e| e.into_inner()) = failure.redacted.as_ref().map(|(m, _)| m.clone());
    }

    pub(super) fn status(&self) -> serde_json::Value {
        let config = self.config();
        let mut status = serde_json::Map::new();
        let stale = self.state_for.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_none_or(|old| needs_reload(old, &config));
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let (name, loaded, failure) = match &*state {
            _ if stale => ("loading", None, None),
            ModelState::Loading => ("loading", None, None),
            ModelState::Ready(l) => ("ready", Some(l.clone()), None),
            ModelState::Failed(f) => ("failed", None, Some(f.clone())),
        };
        drop(state);
        status.insert("state".into(), name.into());
        if let Some(f) = failure {
            status.insert("failure".into(), serde_json::to_value(f).unwrap_or_default());
        }
        status.insert("execution".into(), "service".into());
        if let Some(l) = &loaded {
            status.extend(model_facts(&l.pipeline));
            status.insert("device".into(), l.device_name.into());
        } else {
            status.insert("model".into(), config.spec.model.clone().into());
            status.insert("device".into(), config.spec.device.name().into());
        }
        let s = &self.stats;
        let batches = s.batches.load(Ordering::Relaxed);
        let batched = s.batched_notes.load(Ordering::Relaxed);
        let queued = self.queue.lock().unwrap_or_else(|e| e.into_inner()).len();
        let json = serde_json::json!({
            "model_setting": config.spec.model,
            "device_setting": config.spec.device.name(),
            "dtype_setting": config.spec.precision.name(),
            "pid": std::process::id(),
            "supervisor_pid": self.meta.supervisor_pid,
            "worker": self.meta.worker,
            "workers": config.workers,
            "threads": config.spec.threads,
            "batch_size": config.batch_size,
            "batch_wait_ms": config.batch_wait_ms,
            "queue_nice": config.queue_nice,
            "started_at": self.started_at,
            "uptime_seconds": (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            "connections": s.connections.load(Ordering::Relaxed),
            "queue_depth": queued,
            "requests": s.requests.load(Ordering::Relaxed),
            "notes_annotated": s.notes.load(Ordering::Relaxed),
            "background_notes": s.background_notes.load(Ordering::Relaxed),
            "batches": batches,
            "mean_batch_notes": if batches == 0 { 0.0 } else { (batched as f64 / batches as f64 * 100.0).round() / 100.0 },
            "abandoned": s.abandoned.load(Ordering::Relaxed),
            "failures": s.failures.load(Ordering::Relaxed),
            "restarts": self.meta.restarts,
            "last_error": *self.last_error.lock().unwrap_or_else(|e| e.into_inner()),
            "last_error_redacted": *self.last_error_redacted.lock().unwrap_or_else(|e| e.into_inner()),
        });
        if let serde_json::Value::Object(m) = json {
            status.extend(m);
        }
        serde_json::Value::Object(status)
    }

}
