//! The model process's inference: loading the configured model, taking the queue in batches,
//! and running them on the model's threads (or, for queue workers, on threads of their own).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Job, Loaded, ModelState, Service, BATCH_CHARS, IDLE_AFTER};
use crate::failure::{panic_message, Failure};
use crate::load;
use crate::model_path::server_model_folder;
use crate::pool::{inference_pool, PoolRole};
use crate::protocol::{Response, ServiceConfig, WireEntity};

/// Whether a model loaded with `old` must be loaded again for `new`.
pub(super) fn needs_reload(old: &ServiceConfig, new: &ServiceConfig) -> bool {
    old.spec != new.spec || old.model_path != new.model_path
}

impl Service {
    pub(super) fn infer_loop(&self) {
        loop {
            let (config, generation) = self.config.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let reload =
                self.state_for.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_none_or(|old| needs_reload(old, &config));
            if reload {
                *self.state.write().unwrap_or_else(|e| e.into_inner()) = ModelState::Loading;
                let state = match load(&config) {
                    Ok(l) => {
                        log!("model \"{}\" loaded on {} in {:.2} s", l.pipeline.origin, l.device_name, l.pipeline.load_seconds);
                        warm_up(&l);
                        ModelState::Ready(Arc::new(l))
                    }
                    Err(f) => {
                        log!("cannot load model \"{}\": {}", config.spec.model, f.message);
                        self.set_last_error(&f);
                        ModelState::Failed(f)
                    }
                };
                *self.state.write().unwrap_or_else(|e| e.into_inner()) = state;
                *self.state_for.lock().unwrap_or_else(|e| e.into_inner()) = Some(config.clone());
            }
            if let Some(batch) = self.next_batch(&config, generation, false) {
                self.serve(batch, &config, None);
                *self.last_batch.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            }
        }
    }

    /// Serves the queue workers' requests, batch by batch, with the model the inference thread
    /// loaded, on a pool of its own whose threads run at `queue_nice` (rebuilt when that or
    /// `threads` changes; a thread's priority cannot be raised again without a privilege).
    pub(super) fn background_loop(&self) {
        let mut pool: Option<(usize, i32, rayon::ThreadPool)> = None;
        loop {
            let (config, generation) = self.config.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let ready = matches!(*self.state.read().unwrap_or_else(|e| e.into_inner()), ModelState::Ready(_) | ModelState::Failed(_));
            if !ready {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            let Some(batch) = self.next_batch(&config, generation, true) else { continue };
            let threads = config.spec.threads;
            if !matches!(&pool, Some((t, n, _)) if *t == threads && *n == config.queue_nice) {
                let nice = config.queue_nice;
                match inference_pool(threads, PoolRole::ServiceBackground { nice }) {
                    Ok(p) => pool = Some((threads, nice, p)),
                    Err(failure) => {
                        for job in batch {
                            let _ = job.reply.send(Response::Failed { failure: failure.clone() });
                        }
                        continue;
                    }
                }
            }
            let texts: u64 = batch.iter().map(|j| j.texts.len() as u64).sum();
            self.serve(batch, &config, pool.as_ref().map(|(_, _, p)| p));
            self.stats.background_notes.fetch_add(texts, Ordering::Relaxed);
        }
    }

    /// Waits for requests of its kind (`background` or not), then (unless the service was idle,
    /// or the requests are background ones, which come in whole batches) for up to
    /// `batch_wait_ms` more while fewer than `batch_size` notes wait, and takes the oldest
    /// request with every other one of the same options (up to [`BATCH_CHARS`]). `None` when
    /// the configuration changed meanwhile.
    fn next_batch(&self, config: &ServiceConfig, generation: u64, background: bool) -> Option<Vec<Job>> {
        let changed = || self.config.lock().unwrap_or_else(|e| e.into_inner()).1 != generation;
        let mine = |j: &Job| j.background == background;
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            queue.retain(|j| !j.abandoned.load(Ordering::Relaxed));
            if changed() {
                return None;
            }
            if queue.iter().any(mine) {
                break;
            }
            queue = self.wake.wait_timeout(queue, Duration::from_secs(1)).unwrap_or_else(|e| e.into_inner()).0;
        }
        let idle = self.last_batch.lock().unwrap_or_else(|e| e.into_inner()).elapsed() > IDLE_AFTER;
        let wait = if idle || background { Duration::ZERO } else { Duration::from_millis(config.batch_wait_ms) };
        let deadline = Instant::now() + wait;
        loop {
            let waiting: usize = queue.iter().filter(|j| mine(j)).map(|j| j.texts.len()).sum();
            let now = Instant::now();
            if waiting >= config.batch_size || now >= deadline {
                break;
            }
            queue = self.wake.wait_timeout(queue, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        let key = queue.iter().find(|j| mine(j))?.key.clone();
        let mut batch = Vec::new();
        let mut chars = 0;
        let mut rest = VecDeque::with_capacity(queue.len());
        for job in queue.drain(..) {
            let size: usize = job.texts.iter().map(String::len).sum();
            if mine(&job) && job.key == key && (batch.is_empty() || chars + size <= BATCH_CHARS) {
                chars += size;
                batch.push(job);
            } else {
                rest.push_back(job);
            }
        }
        *queue = rest;
        Some(batch)
    }

    /// Runs a batch on the model's pool, or on `pool` (the background threads).
    fn serve(&self, batch: Vec<Job>, config: &ServiceConfig, pool: Option<&rayon::ThreadPool>) {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let loaded = match &*state {
            ModelState::Ready(l) => l.clone(),
            ModelState::Failed(f) => {
                for job in batch {
                    let _ = job.reply.send(Response::Failed { failure: f.clone() });
                }
                return;
            }
            ModelState::Loading => {
                // The model is being reloaded (a new configuration): serve it when it is back.
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                for job in batch.into_iter().rev() {
                    queue.push_front(job);
                }
                drop(queue);
                std::thread::sleep(Duration::from_millis(20));
                return;
            }
        };
        drop(state);
        let opts = batch[0].key.engine_options(config.batch_size, config.max_pass_bytes);
        let texts: Vec<&str> = batch.iter().flat_map(|j| j.texts.iter().map(String::as_str)).collect();
        let abandoned = || batch.iter().all(|j| j.abandoned.load(Ordering::Relaxed));
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            pool.unwrap_or(&loaded.pool).install(|| {
                let mut check = || if abandoned() { Err(biomed_ner_engine::Error::Cancelled) } else { Ok(()) };
                loaded.pipeline.annotate(&texts, &opts, &mut check)
            })
        }));
        let stats = &self.stats;
        match result {
            Ok(Ok(entities)) => {
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats.batched_notes.fetch_add(texts.len() as u64, Ordering::Relaxed);
                stats.notes.fetch_add(texts.len() as u64, Ordering::Relaxed);
                let mut entities = entities.into_iter();
                for job in batch {
                    let mine: Vec<Vec<WireEntity>> = entities
                        .by_ref()
                        .take(job.texts.len())
                        .map(|es| es.into_iter().map(WireEntity::from).collect())
                        .collect();
                    let _ = job.reply.send(Response::Entities { entities: mine });
                }
            }
            Ok(Err(biomed_ner_engine::Error::Cancelled)) => {}
            // One request's error must not fail the others batched with it: serve them alone.
            _ if batch.len() > 1 => {
                for job in batch {
                    self.serve(vec![job], config, pool);
                }
            }
            Ok(Err(e)) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                let failure = Failure::engine(&e);
                self.set_last_error(&failure);
                let _ = batch[0].reply.send(Response::Failed { failure });
            }
            Err(panic) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                let failure = Failure::internal(format!("biomed_ner failed: {}", panic_message(&*panic)));
                log!("{}", failure.message);
                self.set_last_error(&failure);
                let _ = batch[0].reply.send(Response::Failed { failure });
            }
        }
    }
}


/// One short note through the model, so that the first caller does not pay for the first
/// touch of the weights and the threads' start.
fn warm_up(loaded: &Loaded) {
    let opts = biomed_ner_engine::Options::default();
    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
        loaded.pool.install(|| loaded.pipeline.annotate(&["Fever and cough for three days."], &opts, &mut || Ok(())))
    }));
}

/// Loads the configured model with its own thread pool. The configuration is the server's,
/// so a folder is the administrator's choice; a name is looked up in `model_path`.
fn load(config: &ServiceConfig) -> Result<Loaded, Failure> {
    let spec = &config.spec;
    let pool = inference_pool(spec.threads, PoolRole::Service)?;
    let folder = server_model_folder(&spec.model, &config.model_path)?;
    let target = load::target(spec)?;
    let pipeline = std::panic::catch_unwind(AssertUnwindSafe(|| pool.install(|| load::pipeline(folder.as_deref(), &target))))
        .map_err(|panic| Failure::internal(format!("loading the model failed: {}", panic_message(&*panic))))?
        .map_err(|e| Failure::load(&e, &spec.model))?;
    Ok(Loaded { pipeline, device_name: target.device_name, pool })
}
