//! `whatsup bounces …`: for now `classify`, which reads message files and
//! prints what the bounce classifier makes of each. It is pure: no database,
//! no network.
//!
//! With `--json` the output is JSON lines: one compact object per file, in
//! the order given, `{file, is_bounce, format, producer, feedback_type,
//! recipients: [{address, original_recipient, kind, reason, status,
//! smtp_code, diagnostic, remote_mta}], envelope_to, original}`, or
//! `{file, error}` for a file that cannot be read or is not a message. JSON
//! lines stream, and `jq -s` turns them into an array. Without `--json` a
//! table has one row per recipient.
//!
//! The exit code is 0 if every file was read and classified, and 1 if any
//! file could not be read or is not a message; the other files are still
//! printed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::print_table;
use crate::bounce::{classify, Classification};

#[derive(Debug, Subcommand)]
pub enum BouncesCmd {
    /// Classify bounce, complaint and auto-reply messages (no database)
    Classify(ClassifyArgs),
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Raw message files (.eml)
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// One JSON object per file and line
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct FileResult<'a> {
    file: String,
    #[serde(flatten)]
    classification: &'a Classification,
}

#[derive(Serialize)]
struct FileError {
    file: String,
    error: String,
}

pub fn run(cmd: BouncesCmd) -> Result<ExitCode> {
    match cmd {
        BouncesCmd::Classify(args) => classify_files(&args),
    }
}

fn classify_files(args: &ClassifyArgs) -> Result<ExitCode> {
    let mut failed = false;
    let mut rows = Vec::new();
    for path in &args.files {
        let file = path.display().to_string();
        let outcome = std::fs::read(path)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|bytes| classify(&bytes).map_err(|e| e.to_string()));
        match outcome {
            Ok(c) => {
                if args.json {
                    let line = FileResult {
                        file,
                        classification: &c,
                    };
                    println!("{}", serde_json::to_string(&line)?);
                } else if c.recipients.is_empty() {
                    rows.push(vec![
                        file,
                        yes_no(c.is_bounce),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ]);
                } else {
                    for r in &c.recipients {
                        rows.push(vec![
                            file.clone(),
                            yes_no(c.is_bounce),
                            r.address.clone(),
                            json_word(&r.kind),
                            json_word(&r.reason),
                            r.status.clone().unwrap_or_default(),
                            r.diagnostic.clone().unwrap_or_default(),
                        ]);
                    }
                }
            }
            Err(error) => {
                failed = true;
                if args.json {
                    println!("{}", serde_json::to_string(&FileError { file, error })?);
                } else {
                    eprintln!("error: {file}: {error}");
                }
            }
        }
    }
    if !args.json && !rows.is_empty() {
        print_table(
            &[
                "FILE",
                "BOUNCE",
                "ADDRESS",
                "KIND",
                "REASON",
                "STATUS",
                "DIAGNOSTIC",
            ],
            &rows,
        );
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// The snake_case word serde gives an enum value.
fn json_word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
