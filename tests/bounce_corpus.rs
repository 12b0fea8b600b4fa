//! The bounce corpus: every `tests/data/bounces/*.eml` is classified and
//! compared with its `.expected.json`, field by field. The samples and their
//! origins are described in `tests/data/bounces/README.md`.
//!
//! After a deliberate change of the classifier, `WHATSUP_BLESS=1 cargo test
//! --test bounce_corpus` rewrites the expected files; review the diff before
//! committing it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use whatsup::bounce::classify;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bounces")
}

fn samples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("the corpus directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
}

fn expected_path(sample: &Path) -> PathBuf {
    sample.with_extension("expected.json")
}

fn classified(sample: &Path) -> Value {
    let bytes = std::fs::read(sample).expect("a sample");
    let c = classify(&bytes).unwrap_or_else(|e| panic!("{}: {e}", sample.display()));
    serde_json::to_value(c).expect("serialisable")
}

#[test]
fn every_sample_in_the_corpus_classifies_as_its_expected_json_says() {
    let bless = std::env::var_os("WHATSUP_BLESS").is_some();
    let samples = samples();
    assert!(
        samples.len() >= 25,
        "the corpus has only {} samples",
        samples.len()
    );
    let mut failures = Vec::new();
    for sample in &samples {
        let got = classified(sample);
        let path = expected_path(sample);
        if bless {
            let text = serde_json::to_string_pretty(&got).expect("json") + "\n";
            std::fs::write(&path, text).expect("writing the expected file");
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with WHATSUP_BLESS=1 to create it)",
                path.display()
            )
        });
        let want: Value = serde_json::from_str(&text).expect("valid expected JSON");
        if got != want {
            failures.push(format!(
                "{}:\n  got:  {}\n  want: {}",
                sample.display(),
                serde_json::to_string(&got).expect("json"),
                serde_json::to_string(&want).expect("json")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} samples differ:\n{}",
        failures.len(),
        samples.len(),
        failures.join("\n")
    );
}

#[test]
fn the_corpus_covers_every_format_producer_and_kind() {
    let all: Vec<Value> = samples().iter().map(|s| classified(s)).collect();
    let seen = |key: &str| -> Vec<String> {
        all.iter()
            .filter_map(|c| c[key].as_str().map(str::to_string))
            .collect()
    };
    let formats = seen("format");
    for f in ["dsn", "global_dsn", "arf", "text", "auto_reply", "none"] {
        assert!(formats.iter().any(|x| x == f), "no sample has format {f}");
    }
    let producers = seen("producer");
    for p in [
        "postfix",
        "exim",
        "sendmail",
        "qmail",
        "exchange",
        "gmail",
        "yahoo",
        "amazon_ses",
    ] {
        assert!(producers.iter().any(|x| x == p), "no sample is from {p}");
    }
    let kinds: Vec<String> = all
        .iter()
        .flat_map(|c| c["recipients"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["kind"].as_str().map(str::to_string))
        .collect();
    for k in ["hard", "soft", "complaint", "delay", "auto_reply"] {
        assert!(
            kinds.iter().any(|x| x == k),
            "no sample has a {k} recipient"
        );
    }
}

#[test]
fn the_classify_command_prints_one_json_line_per_file_with_the_library_result() {
    let files = [
        "postfix_user_unknown.eml",
        "arf_abuse.eml",
        "not_a_bounce_reply.eml",
    ];
    let paths: Vec<PathBuf> = files.iter().map(|f| corpus_dir().join(f)).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_whatsup"))
        .args(["bounces", "classify", "--json"])
        .args(&paths)
        .output()
        .expect("running whatsup");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), files.len());
    for (line, path) in lines.iter().zip(&paths) {
        assert_eq!(
            line["file"].as_str(),
            Some(path.to_str().expect("utf-8 path"))
        );
        let mut want = classified(path);
        want["file"] = line["file"].clone();
        assert_eq!(line, &want);
    }
    assert_eq!(lines[0]["recipients"][0]["kind"], "hard");
    assert_eq!(lines[1]["recipients"][0]["kind"], "complaint");
    assert_eq!(lines[2]["is_bounce"], false);
}

#[test]
fn the_classify_command_exits_1_for_an_unreadable_file_and_still_prints_the_others() {
    let good = corpus_dir().join("qmail_no_mailbox.eml");
    let out = Command::new(env!("CARGO_BIN_EXE_whatsup"))
        .args(["bounces", "classify", "--json"])
        .arg(&good)
        .arg(corpus_dir().join("no-such-file.eml"))
        .output()
        .expect("running whatsup");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["is_bounce"], true);
    assert!(lines[1]["error"]
        .as_str()
        .is_some_and(|e| e.starts_with("cannot read")));
}

#[test]
fn the_classify_command_without_json_prints_a_table_row_per_recipient() {
    let out = Command::new(env!("CARGO_BIN_EXE_whatsup"))
        .args(["bounces", "classify"])
        .arg(corpus_dir().join("exim_user_unknown.eml"))
        .output()
        .expect("running whatsup");
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let mut lines = stdout.lines();
    assert!(lines
        .next()
        .is_some_and(|h| h.starts_with("FILE") && h.contains("REASON")));
    let row = lines.next().expect("a row");
    assert!(
        row.contains("m.rossi@example.org") && row.contains("hard") && row.contains("user_unknown"),
        "{row}"
    );
}
