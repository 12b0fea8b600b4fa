//! The quarantine: where a message the intake cannot read (empty, not a
//! message, larger than `bounces.max_message_bytes`) is set aside, so that
//! whatever delivered it (an MTA pipe, a mailbox poll) can go on.
//!
//! Each message becomes `<UTC time>-<sha256 prefix>.eml` (at most
//! `max_message_bytes` of it) with `<same name>.error.txt` beside it saying
//! why and where it came from. The directory is `bounces.quarantine_dir`,
//! else `<data_dir>/bounces/quarantine`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::config::Config;

/// The quarantine directory: `bounces.quarantine_dir`, else
/// `<data_dir>/bounces/quarantine`.
pub fn quarantine_dir(config: &Config) -> PathBuf {
    if config.bounces.quarantine_dir.as_os_str().is_empty() {
        config.general.data_dir.join("bounces").join("quarantine")
    } else {
        config.bounces.quarantine_dir.clone()
    }
}

/// Writes `raw` (at most `max_message_bytes` of it) and the error beside it;
/// returns the message file's path. Blocking file I/O: from async code, call
/// it on a blocking thread.
pub fn quarantine(config: &Config, raw: &[u8], error: &str) -> Result<PathBuf> {
    let dir = quarantine_dir(config);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the quarantine directory {}", dir.display()))?;
    let digest = Sha256::digest(raw);
    let name = format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S"),
        digest[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let max = usize::try_from(config.bounces.max_message_bytes).unwrap_or(usize::MAX);
    let path = dir.join(format!("{name}.eml"));
    std::fs::write(&path, &raw[..raw.len().min(max)])
        .with_context(|| format!("writing {}", path.display()))?;
    let error_path = dir.join(format!("{name}.error.txt"));
    std::fs::write(&error_path, format!("{error}\n"))
        .with_context(|| format!("writing {}", error_path.display()))?;
    Ok(path)
}
