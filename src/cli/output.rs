//! Shared output helpers: JSON printing, plain aligned tables, progress bars
//! that appear only on a terminal, and `config show`.

use std::io::IsTerminal;

use anyhow::Result;
use serde::Serialize;

use crate::config::Loaded;

pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows as left-aligned columns; cells longer than 40 characters are cut.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    const MAX: usize = 40;
    let cut = |s: &str| -> String {
        if s.chars().count() > MAX {
            let mut t: String = s.chars().take(MAX - 1).collect();
            t.push('…');
            t
        } else {
            s.to_string()
        }
    };
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cut(c)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// A progress bar on stderr when it is a terminal; `None` otherwise.
pub fn progress(len: Option<u64>, what: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n).with_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        ),
        None => indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{msg} {pos} rows {per_sec}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(what.to_string());
    Some(bar)
}

pub fn print_config(loaded: &Loaded, json: bool) -> Result<()> {
    // Secrets are shown only as set or not.
    let value = loaded.config.redacted()?;
    if json {
        print_json(&serde_json::json!({
            "file": loaded.file.as_ref().map(|f| f.display().to_string()),
            "env_overrides": loaded.env_overrides,
            "database_url": crate::store::redact_url(&loaded.config.database_url()),
            "config": value,
        }))
    } else {
        match &loaded.file {
            Some(f) => println!("# file: {}", f.display()),
            None => println!("# file: none (built-in defaults)"),
        }
        for v in &loaded.env_overrides {
            println!("# overridden by environment: {v}");
        }
        println!(
            "# database: {}",
            crate::store::redact_url(&loaded.config.database_url())
        );
        print!("{}", toml::to_string_pretty(&value)?);
        Ok(())
    }
}
