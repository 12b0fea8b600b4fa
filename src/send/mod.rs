//! Sending: campaigns through the delivery queue to SMTP or the outbox.
//!
//! - [`schedule`]: when messages are due (an instant, or a local time in
//!   each recipient's zone) and the retry backoff;
//! - [`transport`]: SMTP servers (pool, limits, failover) and the outbox;
//! - [`smtp`]: one mail transaction on a connection (pipelining, dot-stuffing);
//! - [`identity`]: tokens, VERP and DKIM for each message;
//! - [`engine`]: claim → render → send → complete;
//! - [`gate`]: the send gate: the preflight on the exact revision, the
//!   override, and every recipient rendered once before a start commits;
//! - [`worker`]: the loop behind `whatsup worker` and `whatsup send`.
//!
//! The queue itself (claims, leases, outcomes, ceilings) is SQL and lives in
//! `store::campaigns`.

pub mod engine;
pub mod gate;
pub mod identity;
pub mod schedule;
pub mod smtp;
pub mod transport;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;

use crate::config::Config;
use crate::store::Store;
use transport::{Outbox, SmtpPool, Transport};

/// The outbox directory: `sending.outbox_dir`, or `<data_dir>/outbox`.
pub fn outbox_dir(config: &Config) -> PathBuf {
    if config.sending.outbox_dir.as_os_str().is_empty() {
        config.general.data_dir.join("outbox")
    } else {
        config.sending.outbox_dir.clone()
    }
}

/// Builds the named transport (`smtp` or `outbox`).
pub fn build_transport(config: &Config, store: &Store, name: &str) -> Result<Arc<Transport>> {
    Ok(Arc::new(match name {
        "smtp" => Transport::Smtp(SmtpPool::new(&config.smtp.servers(), store.clone())?),
        _ => Transport::Outbox(Outbox::new(outbox_dir(config))),
    }))
}

/// A name for this worker process: host, process id and a random suffix.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let nonce = std::collections::hash_map::RandomState::new();
    let n = std::hash::BuildHasher::hash_one(&nonce, std::process::id());
    format!("{host}:{}:{:04x}", std::process::id(), n & 0xffff)
}
