//! `biomed-ner bench`: times the model's forward pass alone (no tokenizing, no aggregation) on
//! fixed pseudo-random token ids, for side-by-side comparisons with PyTorch (bench/gpu_bench.py).

use std::collections::BTreeMap;
use std::time::Instant;

use biomed_ner_engine::{Pipeline, Stage};

pub struct BenchArgs {
    pub batch: usize,
    pub len: usize,
    pub iters: usize,
    pub warmup: usize,
    /// Also time each [`Stage`], synchronizing the device after each.
    pub profile: bool,
}

/// Token ids the same for every run: a linear congruential sequence over the vocabulary,
/// avoiding the first ids (special tokens in DeBERTa-v3 vocabularies).
fn ids(vocab: usize, batch: usize, len: usize) -> Vec<Vec<u32>> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..batch)
        .map(|_| {
            (0..len)
                .map(|_| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    (5 + (x >> 33) as usize % (vocab - 5)) as u32
                })
                .collect()
        })
        .collect()
}

pub fn run(p: &Pipeline, device: &str, b: &BenchArgs) -> Result<(), String> {
    let vocab = p.model.config().vocab_size;
    let seqs = ids(vocab, b.batch, b.len);
    let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
    let forward = || p.model.forward(&refs).map_err(|e| e.to_string());
    for _ in 0..b.warmup {
        forward()?;
    }
    // forward() copies the logits to the host, which waits for the device: each pass is whole.
    let t0 = Instant::now();
    for _ in 0..b.iters {
        forward()?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let tokens = (b.batch * b.len * b.iters) as f64;
    let profile = if b.profile { Some(profile(p, &refs, b.iters)?) } else { None };
    let mut out = serde_json::json!({
        "engine": "biomed-ner",
        "device": device,
        "architecture": p.model.config().arch.model_type(),
        "dtype": p.model.precision().name(),
        "batch": b.batch,
        "len": b.len,
        "iters": b.iters,
        "ms_per_batch": 1e3 * secs / b.iters as f64,
        "tokens_per_s": tokens / secs,
    });
    if let Some(profile) = profile {
        out["profile_ms"] = serde_json::json!(profile);
    }
    println!("{out}");
    Ok(())
}

/// Milliseconds per pass spent in each stage (summed over layers), waiting for the device at
/// every stage boundary so that each kernel's time lands on its own stage.
fn profile(p: &Pipeline, seqs: &[&[u32]], iters: usize) -> Result<BTreeMap<String, f64>, String> {
    let device = p.model.device().clone();
    let mut total: BTreeMap<Stage, f64> = BTreeMap::new();
    for _ in 0..iters {
        device.synchronize().map_err(|e| e.to_string())?;
        let mut last = Instant::now();
        p.model
            .forward_marked(seqs, &mut |stage| {
                device.synchronize()?;
                let now = Instant::now();
                *total.entry(stage).or_default() += (now - last).as_secs_f64();
                last = now;
                Ok(())
            })
            .map_err(|e| e.to_string())?;
    }
    Ok(total.into_iter().map(|(s, t)| (format!("{s:?}"), 1e3 * t / iters as f64)).collect())
}
