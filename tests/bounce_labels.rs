//! The labelled bounce corpus (`tests/data/bounces/labels.tsv`): every row
//! is checked against the classifier (address, kind, reason), every sample
//! has a label, the real-MTA part covers every failure class from every MTA,
//! and a real Postfix on a private network generates its part afresh
//! (`scripts/mta_bounces.py`), which must classify as labelled.
//! `scripts/bench_bounces.py` prints the figures on the same table.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use whatsup::bounce::{classify, Classification, Kind};

/// One labelled row.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Label {
    address: String,
    kind: String,
    reason: String,
    hard_soft: String,
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bounces")
}

/// The rows of labels.tsv by file (relative to the corpus directory).
fn labels() -> BTreeMap<String, Vec<Label>> {
    let text = std::fs::read_to_string(corpus().join("labels.tsv")).expect("labels.tsv");
    let mut out: BTreeMap<String, Vec<Label>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') || line.starts_with("file\t") {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert!(cols.len() >= 5, "labels.tsv line {}: {line:?}", n + 1);
        let address = if cols[1] == "\"\"" { "" } else { cols[1] };
        out.entry(cols[0].to_string()).or_default().push(Label {
            address: address.to_string(),
            kind: cols[2].to_string(),
            reason: cols[3].to_string(),
            hard_soft: cols[4].to_string(),
        });
    }
    out
}

fn name<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .expect("serialisable")
        .as_str()
        .expect("a string")
        .to_string()
}

/// What the classifier makes of `path`, as label rows (failure kinds,
/// complaints, auto-replies and unknowns alike).
fn classified(path: &Path) -> Classification {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    classify(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The differences between the labels of one file and its classification.
fn differences(file: &str, want: &[Label], got: &Classification) -> Vec<String> {
    let mut out = Vec::new();
    let expects_none = want.iter().all(|l| l.address == "-");
    if expects_none {
        let failures: Vec<&str> = got
            .recipients
            .iter()
            .filter(|r| {
                matches!(
                    r.kind,
                    Kind::Hard | Kind::Soft | Kind::Delay | Kind::Complaint
                )
            })
            .map(|r| r.address.as_str())
            .collect();
        if got.is_bounce || !failures.is_empty() {
            out.push(format!("{file}: labelled as no failure, got {failures:?}"));
        }
        return out;
    }
    for l in want {
        match got.recipients.iter().find(|r| r.address == l.address) {
            None => out.push(format!("{file}: {:?} not found", l.address)),
            Some(r) => {
                let (kind, reason) = (name(r.kind), name(r.reason));
                if kind != l.kind || reason != l.reason {
                    out.push(format!(
                        "{file}: {:?} labelled {}/{}, got {kind}/{reason}",
                        l.address, l.kind, l.reason
                    ));
                }
                let hard_soft = match r.kind {
                    Kind::Hard => "hard",
                    Kind::Soft | Kind::Delay => "soft",
                    _ => "-",
                };
                if hard_soft != l.hard_soft {
                    out.push(format!(
                        "{file}: {:?} labelled {}, got {hard_soft}",
                        l.address, l.hard_soft
                    ));
                }
            }
        }
    }
    for r in &got.recipients {
        if !want.iter().any(|l| l.address == r.address) {
            out.push(format!("{file}: {:?} reported but not labelled", r.address));
        }
    }
    out
}

#[test]
fn every_labelled_row_of_the_corpus_is_what_the_classifier_reports() {
    let labels = labels();
    assert!(labels.len() >= 90, "only {} files labelled", labels.len());
    let mut failures = Vec::new();
    for (file, want) in &labels {
        let got = classified(&corpus().join(file));
        failures.extend(differences(file, want, &got));
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every `.eml` of the corpus and its two subdirectories, relative.
fn samples() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for dir in ["", "mta", "layouts"] {
        for entry in std::fs::read_dir(corpus().join(dir)).expect("a corpus directory") {
            let path = entry.expect("an entry").path();
            if path.extension().is_some_and(|e| e == "eml") {
                let file = path.file_name().unwrap().to_string_lossy().to_string();
                out.insert(if dir.is_empty() {
                    file
                } else {
                    format!("{dir}/{file}")
                });
            }
        }
    }
    out
}

#[test]
fn every_sample_of_the_corpus_has_a_label_and_every_label_a_sample() {
    let labelled: BTreeSet<String> = labels().into_keys().collect();
    let samples = samples();
    let unlabelled: Vec<&String> = samples.difference(&labelled).collect();
    let missing: Vec<&String> = labelled.difference(&samples).collect();
    assert!(
        unlabelled.is_empty(),
        "samples without a label: {unlabelled:?}"
    );
    assert!(missing.is_empty(), "labels without a sample: {missing:?}");
}

/// The failure classes `scripts/mta_bounces.py` makes every MTA produce.
const CASES: &[&str] = &[
    "user_unknown",
    "host_unknown",
    "null_mx",
    "mailbox_full",
    "message_too_large",
    "content_refused",
    "sender_rejected",
    "greylisted_expired",
    "relay_denied",
    "connection_refused",
    "dns_servfail",
    "two_recipients",
];

#[test]
fn the_real_mta_corpus_has_every_failure_class_from_postfix_exim_and_opensmtpd() {
    let samples = samples();
    for mta in ["postfix", "exim", "opensmtpd"] {
        for case in CASES {
            let file = format!("mta/{mta}_{case}.eml");
            assert!(samples.contains(&file), "{file} is missing");
            let head = std::fs::read_to_string(corpus().join(&file)).unwrap();
            assert!(
                head.starts_with("X-Corpus-Note: a real bounce"),
                "{file} does not say where it came from"
            );
        }
    }
}

/// Why this machine cannot run the generator, if it cannot.
fn generator_unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for a network namespace".into());
    }
    for (tool, package) in [
        ("/usr/sbin/postfix", "postfix"),
        ("/usr/sbin/dnsmasq", "dnsmasq-base"),
        ("/usr/bin/python3", "python3"),
    ] {
        if !Path::new(tool).exists() && which(tool).is_none() {
            return Some(format!("{tool} is missing (Debian package {package})"));
        }
    }
    if which("ip").is_none() {
        return Some("ip is missing (Debian package iproute2)".into());
    }
    None
}

fn which(tool: &str) -> Option<PathBuf> {
    let name = Path::new(tool).file_name()?.to_owned();
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(&name))
            .find(|p| p.exists())
    })
}

#[test]
fn bounces_a_real_postfix_generates_now_classify_as_the_labelled_ones() {
    if let Some(why) = generator_unavailable() {
        common::skip_or_fail(&format!("real-MTA bounce generation: {why}"));
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mta_bounces.py");
    let run = Command::new("python3")
        .arg(&script)
        .args(["--mta", "postfix", "--out"])
        .arg(out.path())
        .output()
        .expect("running scripts/mta_bounces.py");
    assert!(
        run.status.success(),
        "mta_bounces.py failed:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let labels = labels();
    let mut generated = BTreeSet::new();
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(out.path()).unwrap() {
        let path = entry.unwrap().path();
        let file = format!("mta/{}", path.file_name().unwrap().to_string_lossy());
        let want = labels
            .get(&file)
            .unwrap_or_else(|| panic!("{file} was generated but has no label"));
        failures.extend(differences(&file, want, &classified(&path)));
        generated.insert(file);
    }
    let expected: BTreeSet<String> = labels
        .keys()
        .filter(|f| f.starts_with("mta/postfix"))
        .cloned()
        .collect();
    assert_eq!(generated, expected, "the generated files");
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
