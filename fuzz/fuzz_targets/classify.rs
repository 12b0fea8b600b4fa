//! Fuzz target for the bounce classifier: any bytes must give a result or a
//! `ClassifyError`, never a panic, and a result must serialise.
//!
//! Run with `cargo +nightly fuzz run classify -- -max_total_time=60`, seeded
//! from the corpus: `cargo +nightly fuzz run classify ../tests/data/bounces`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = whatsup::bounce::classify(data) {
        check(&c);
    }
});

/// Properties every result keeps, whatever the input.
fn check(c: &whatsup::bounce::Classification) {
    assert!(c.recipients.len() <= whatsup::bounce::MAX_RECIPIENTS);
    for r in &c.recipients {
        let chars = r.diagnostic.as_ref().map_or(0, |d| d.chars().count());
        assert!(chars <= whatsup::bounce::MAX_DIAGNOSTIC_CHARS + 1);
    }
}
