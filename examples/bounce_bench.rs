//! Classification rate over the bounce corpus: reads every
//! `tests/data/bounces/*.eml` once, then classifies the whole corpus
//! repeatedly for about five seconds and prints messages per second.
//!
//! Run in release: `cargo run --release --example bounce_bench`.

use std::time::{Duration, Instant};

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bounces");
    let mut corpus = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the corpus directory") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "eml") {
            corpus.push(std::fs::read(&path).expect("a corpus file"));
        }
    }
    let bytes: usize = corpus.iter().map(Vec::len).sum();
    let start = Instant::now();
    let mut messages = 0u64;
    let mut bounces = 0u64;
    while start.elapsed() < Duration::from_secs(5) {
        for raw in &corpus {
            if let Ok(c) = whatsup::bounce::classify(std::hint::black_box(raw)) {
                bounces += u64::from(c.is_bounce);
            }
            messages += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} corpus messages ({bytes} bytes); {messages} classified in {secs:.2} s: \
         {:.0} messages/s, {:.1} MB/s ({bounces} bounces)",
        corpus.len(),
        messages as f64 / secs,
        (bytes as f64 * messages as f64 / corpus.len() as f64) / secs / 1e6
    );
}
