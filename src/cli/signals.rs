//! SIGTERM and SIGINT for the long-running commands (`serve`, `worker`,
//! `bounces poll`, `issues preview --serve`). Both are caught from the moment [`StopSignals::install`]
//! returns, so a command installs them before it announces that it is ready:
//! a signal that arrives before its handler is installed ends the process
//! with no shutdown at all.

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGTERM and SIGINT, caught from installation on.
pub struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    /// Installs the handlers now.
    pub fn install() -> Result<Self> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// Waits for the next SIGTERM or SIGINT.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
    }
}
