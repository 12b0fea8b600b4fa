//! Fuzz target for the bounce classifier: any bytes, as a message that came
//! back, must classify or be refused with an error, never panic, hang or
//! run out of memory, and whatever it returns must serialise (that is what
//! `bounces classify --json` prints).
//!
//! The classifier is compiled straight from `src/bounce/` (it needs only
//! mail-parser and serde); `--cfg fuzzing`, which cargo-fuzz sets, leaves
//! out the store-backed intake module. Run: `scripts/fuzz-bounces 60`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/bounce/mod.rs"]
mod bounce;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = bounce::classify(data) {
        check(&c);
        serde_json::to_string(&c).expect("a classification serialises");
    }
});

/// Properties every result keeps, whatever the input.
fn check(c: &bounce::Classification) {
    assert!(c.recipients.len() <= bounce::MAX_RECIPIENTS);
    for r in &c.recipients {
        let chars = r.diagnostic.as_ref().map_or(0, |d| d.chars().count());
        assert!(chars <= bounce::MAX_DIAGNOSTIC_CHARS + 1);
    }
}
