//! Classification rate over the bounce corpus: reads every
//! `tests/data/bounces/*.eml` once, then classifies the whole corpus
//! repeatedly for about five seconds and prints messages per second.
//!
//! The baseline, measured in the same run over the same messages, is
//! mail-parser's `MessageParser::parse` alone: the MIME parse that the
//! classifier starts with. The ratio says what the classification costs on
//! top of one parse.
//!
//! Run in release: `cargo run --release --example bounce_bench`.

use std::time::{Duration, Instant};

/// Runs `f` over the whole corpus until `for_secs` have passed; returns
/// (messages handled, seconds, how many times `f` returned true).
fn repeat(corpus: &[Vec<u8>], for_secs: u64, f: impl Fn(&[u8]) -> bool) -> (u64, f64, u64) {
    let start = Instant::now();
    let (mut messages, mut hits) = (0u64, 0u64);
    while start.elapsed() < Duration::from_secs(for_secs) {
        for raw in corpus {
            hits += u64::from(f(std::hint::black_box(raw)));
            messages += 1;
        }
    }
    (messages, start.elapsed().as_secs_f64(), hits)
}

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
    let mb_per_s = |messages: u64, secs: f64| {
        (bytes as f64 * messages as f64 / corpus.len() as f64) / secs / 1e6
    };

    let (base_n, base_secs, parsed) = repeat(&corpus, 5, |raw| {
        mail_parser::MessageParser::default().parse(raw).is_some()
    });
    let (n, secs, bounces) = repeat(&corpus, 5, |raw| {
        whatsup::bounce::classify(raw).is_ok_and(|c| c.is_bounce)
    });
    let (base_rate, rate) = (base_n as f64 / base_secs, n as f64 / secs);
    println!("{} corpus messages, {bytes} bytes", corpus.len());
    println!(
        "classify (whatsup):         {n:>8} in {secs:.2} s: {rate:>8.0} messages/s, {:.1} MB/s ({bounces} bounces)",
        mb_per_s(n, secs)
    );
    println!(
        "parse only (mail-parser):   {base_n:>8} in {base_secs:.2} s: {base_rate:>8.0} messages/s, {:.1} MB/s ({parsed} parsed)",
        mb_per_s(base_n, base_secs)
    );
    println!("classify / parse-only rate: {:.2}", rate / base_rate);
}
