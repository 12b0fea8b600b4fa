//! `serve` and `worker` as services: how they stop.
//!
//! A stop comes from SIGTERM or SIGINT (systemd, an upgrade, Ctrl-C), from
//! the database's schema becoming newer than this binary knows (a newer
//! whatsup on another host upgraded it: this one must not write rows in
//! the old shape), or from the worker ending on an error. Then nothing new
//! starts; requests and messages in flight finish and their outcomes are
//! recorded, for at most `general.stop_timeout_secs`. Whatever is still in
//! flight after that is left under its lease and is claimed again once the
//! lease expires (`sending.lease_secs`). A second signal exits at once.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use super::signals::StopSignals;
use crate::config::Config;
use crate::store::Store;

/// Exit code when the schema is newer than this binary knows (EX_CONFIG):
/// the systemd units do not restart on it.
pub const EXIT_SCHEMA: u8 = 78;

/// Why a service is stopping.
#[derive(Debug)]
pub enum StopReason {
    Signal,
    /// The schema was upgraded by a newer whatsup; the message says so.
    NewerSchema(String),
    /// The work ended by itself (with its result).
    Ended(Result<()>),
}

/// Waits for a signal, a newer schema (checked every `sending.poll_secs`),
/// or the end of `work`.
pub async fn wait_for_stop<F>(
    signals: &mut StopSignals,
    store: &Store,
    config: &Config,
    work: &mut std::pin::Pin<&mut F>,
) -> StopReason
where
    F: Future<Output = Result<()>>,
{
    let url = config.database_url();
    let every = Duration::from_secs(config.sending.poll_secs.clamp(1, 60));
    let watch = async {
        loop {
            tokio::time::sleep(every).await;
            match store.schema_status().await {
                Ok(s) if s.is_newer() => {
                    return s.refusal(&url).unwrap_or_default();
                }
                Ok(_) => {}
                // A database that is down is the worker's to report.
                Err(e) => tracing::debug!("schema check: {e:#}"),
            }
        }
    };
    tokio::select! {
        _ = signals.recv() => StopReason::Signal,
        refusal = watch => StopReason::NewerSchema(refusal),
        result = work.as_mut() => StopReason::Ended(result),
    }
}

/// Lets `finishing` complete within the stop timeout; a second signal ends
/// the wait at once. Returns the exit code and says what happened in the
/// log (a JSON line with `--log-format json`).
pub async fn drain(
    name: &str,
    config: &Config,
    signals: &mut StopSignals,
    finishing: impl Future<Output = Result<()>>,
) -> Result<ExitCode> {
    let grace = Duration::from_secs(config.general.stop_timeout_secs);
    tokio::select! {
        done = tokio::time::timeout(grace, finishing) => match done {
            Ok(Ok(())) => {
                tracing::info!(
                    event = "service.stopped",
                    service = name,
                    "{name}: stopped; every message in flight was recorded"
                );
                Ok(ExitCode::SUCCESS)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                tracing::warn!(
                    event = "service.stop_timeout",
                    service = name,
                    "{name}: stop timeout ({} s) reached with work still in flight: exiting; \
                     those messages stay claimed and are sent or retried after their lease \
                     (sending.lease_secs = {} s)",
                    grace.as_secs(),
                    config.sending.lease_secs
                );
                Ok(ExitCode::from(1))
            }
        },
        _ = signals.recv() => {
            tracing::warn!(
                event = "service.killed",
                service = name,
                "{name}: second signal: exiting at once; messages in flight stay claimed until \
                 their lease expires"
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// What to print when a stop begins.
pub fn announce(name: &str, config: &Config, reason: &StopReason) {
    let why = match reason {
        StopReason::Signal => "stop signal".to_string(),
        StopReason::NewerSchema(msg) => msg.clone(),
        StopReason::Ended(Ok(())) => "finished".to_string(),
        StopReason::Ended(Err(e)) => format!("error: {e:#}"),
    };
    tracing::info!(
        event = "service.stopping",
        service = name,
        reason = why.as_str(),
        "{name}: stopping ({why}); finishing what is in flight, at most {} s",
        config.general.stop_timeout_secs
    );
}

/// The exit code for a stop that drained: the schema refusal keeps its
/// own code.
pub fn exit_code(reason: &StopReason, drained: ExitCode) -> ExitCode {
    match reason {
        StopReason::NewerSchema(_) => ExitCode::from(EXIT_SCHEMA),
        _ => drained,
    }
}
