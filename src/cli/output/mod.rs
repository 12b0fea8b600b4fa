//! Shared output helpers: JSON printing, times in the office's zone
//! (`time.rs`), tables aligned by display width (`table.rs`), progress
//! bars that appear only on a terminal (`progress.rs`), and `config`.
//!
//! The display settings of a run (`--utc`, `--wide`, the zone, the width
//! of the terminal) are set once by [`init`] before a command runs.

mod progress;
mod table;
mod time;

use std::process::ExitCode;
use std::sync::OnceLock;

use anyhow::Result;
use serde::Serialize;

use crate::config::{Config, Loaded};

pub use progress::{progress, rate, send_bar};
pub use table::{print_table, print_table_wide};
pub use time::{
    clock, date, header, parse_since, rfc3339_ms, when, when_ms, when_secs, Clock, LogClock,
};

/// How this run shows things to people.
#[derive(Debug, Clone)]
pub struct Settings {
    pub clock: Clock,
    /// `--wide`: every column, nothing shortened.
    pub wide: bool,
    /// Columns of the terminal on stdout; `None` when it is not one.
    pub stdout_width: Option<usize>,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Sets the display settings of this run, from the configuration and the
/// global flags (the first call wins).
pub fn init(config: &Config, utc: bool, wide: bool) {
    let _ = SETTINGS.set(settings_for(config, utc, wide));
}

fn settings_for(config: &Config, utc: bool, wide: bool) -> Settings {
    Settings {
        clock: Clock {
            // Config::load has checked that it parses.
            tz: config
                .general
                .timezone
                .parse()
                .unwrap_or(chrono_tz::Asia::Tokyo),
            utc,
        },
        wide,
        stdout_width: console::Term::stdout()
            .size_checked()
            .map(|(_, cols)| cols as usize),
    }
}

/// This run's display settings (the defaults if [`init`] was not called).
pub fn settings() -> &'static Settings {
    SETTINGS.get_or_init(|| settings_for(&Config::default(), false, false))
}

pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `whatsup config`: the effective configuration with secrets redacted;
/// with `check`, only the verdict (exit 1 when a `WHATSUP_*` variable is
/// no setting).
pub fn print_config(loaded: &Loaded, json: bool, check: bool) -> Result<ExitCode> {
    let code = if check && !loaded.unknown_env.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    if check {
        if json {
            print_json(&serde_json::json!({
                "ok": loaded.unknown_env.is_empty(),
                "file": loaded.file.as_ref().map(|f| f.display().to_string()),
                "env_overrides": loaded.env_overrides,
                "unknown_env": loaded.unknown_env,
            }))?;
        } else if loaded.unknown_env.is_empty() {
            println!(
                "configuration OK ({}; {} settings from the environment)",
                loaded
                    .file
                    .as_ref()
                    .map(|f| format!("file {}", f.display()))
                    .unwrap_or_else(|| "built-in defaults".into()),
                loaded.env_overrides.len()
            );
        } else {
            for v in &loaded.unknown_env {
                eprintln!("error: {v}");
            }
        }
        return Ok(code);
    }
    // Secrets are shown only as set or not.
    let value = loaded.config.redacted()?;
    if json {
        print_json(&serde_json::json!({
            "file": loaded.file.as_ref().map(|f| f.display().to_string()),
            "env_overrides": loaded.env_overrides,
            "unknown_env": loaded.unknown_env,
            "database_url": crate::store::redact_url(&loaded.config.database_url()),
            "config": value,
        }))?;
    } else {
        match &loaded.file {
            Some(f) => println!("# file: {}", f.display()),
            None => println!("# file: none (built-in defaults)"),
        }
        for v in &loaded.env_overrides {
            println!("# overridden by environment: {v}");
        }
        for v in &loaded.unknown_env {
            println!("# warning: {v}");
        }
        println!(
            "# database: {}",
            crate::store::redact_url(&loaded.config.database_url())
        );
        print!("{}", toml::to_string_pretty(&value)?);
    }
    Ok(code)
}
