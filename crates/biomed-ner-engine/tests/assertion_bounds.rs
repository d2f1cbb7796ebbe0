//! Clinical assertion's memory and work bounds on large, hostile notes: the most memory held
//! at once while asserting stays under 20 bytes per byte of the note, and the time stays
//! linear (a quadratic pass over 10 MB would take hours). The allocator of this test binary
//! counts the bytes held and their peak.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use biomed_ner_engine::assertion::{assert_spans, Assertion};

struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let held = HELD.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(held, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The statuses, the most bytes held beyond what was held before, and the time taken.
fn measure(text: &str, spans: &[(usize, usize, Option<&str>)]) -> (Vec<Assertion>, usize, Duration) {
    // The rules and the learned weights are read once per process, before measuring.
    assert_spans("No fever.", &[(3, 8, Some("Sign_symptom"))]);
    let before = HELD.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let t = Instant::now();
    let out = assert_spans(text, spans);
    let elapsed = t.elapsed();
    let peak = PEAK.load(Ordering::Relaxed) - before;
    eprintln!("{} bytes, {} spans: {:.1} bytes held per byte at most, {elapsed:?}", text.len(), spans.len(), peak as f64 / text.len() as f64);
    (out, peak, elapsed)
}

// One test, so that no other test's allocations count in the peak.
#[test]
fn large_notes_take_memory_linear_with_a_small_factor_and_finish() {
    let commas = ",".repeat(10_000_000);
    let (out, peak, took) = measure(&commas, &[(0, 1, None), (5_000_000, 5_000_010, Some("Sign_symptom")), (9_999_999, 10_000_000, None)]);
    assert_eq!(out.len(), 3);
    assert!(peak < 20 * commas.len(), "{peak} bytes held for a note of {} bytes", commas.len());
    assert!(took < Duration::from_secs(60), "{took:?}");

    // 10 MB of sentences, 100,000 entities: "fever" after "denied" in every sentence, and
    // "cough" after "but" (the scope ends there).
    let sentence = "Patient denied fever and nausea at the visit, but cough came back ago. Seen again by the team later on the ward today. ";
    let repeats = 10_000_000 / sentence.len();
    let text = sentence.repeat(repeats);
    let per = sentence.chars().count();
    let (fever, cough) = (sentence.find("fever").unwrap(), sentence.find("cough").unwrap());
    let spans: Vec<(usize, usize, Option<&str>)> = (0..100_000)
        .map(|i| {
            let base = (i / 2) * per * (repeats / 50_000);
            if i % 2 == 0 { (base + fever, base + fever + 5, Some("Sign_symptom")) } else { (base + cough, base + cough + 5, Some("Sign_symptom")) }
        })
        .collect();
    let (out, peak, took) = measure(&text, &spans);
    assert_eq!(out.len(), 100_000);
    assert!(out.iter().step_by(2).all(|&a| a == Assertion::Absent), "a denied fever is absent");
    assert!(out.iter().skip(1).step_by(2).all(|&a| a == Assertion::Present), "a cough after \"but\" is present");
    assert!(peak < 20 * text.len(), "{peak} bytes held for a note of {} bytes", text.len());
    assert!(took < Duration::from_secs(60), "{took:?}");
}
