//! Group commit for unsubscribes and their undo.
//!
//! With `synchronous = full`, every SQLite commit waits for an fsync, so one
//! transaction per request caps a server at a few hundred unsubscribes a
//! second. Instead, each request puts its change on a channel and waits. One
//! task takes whatever has queued up (at most `web.commit_batch`), applies
//! it in one transaction with [`Store::apply_web_changes`], commits, and only
//! then answers each request. While one batch is being committed the next
//! one queues, so the batch size grows with the load and the number of
//! fsyncs stays small. No reply is sent before its change is durable; if the
//! commit fails, every request of the batch gets the error.

use anyhow::{anyhow, Result};
use tokio::sync::{mpsc, oneshot};

use crate::store::web::{WebChange, WebOutcome};
use crate::store::Store;

struct Job {
    change: WebChange,
    reply: oneshot::Sender<Result<WebOutcome, String>>,
}

/// The handle requests use to submit a change.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

/// Batches committed and changes applied, for /metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub batches: std::sync::atomic::AtomicU64,
    pub changes: std::sync::atomic::AtomicU64,
}

pub static STATS: WriterStats = WriterStats {
    batches: std::sync::atomic::AtomicU64::new(0),
    changes: std::sync::atomic::AtomicU64::new(0),
};

impl Writer {
    /// Starts the committing task on the current runtime.
    pub fn spawn(store: Store, max_batch: usize) -> Writer {
        let (tx, rx) = mpsc::channel::<Job>(max_batch.max(1) * 8);
        tokio::spawn(run(store, rx, max_batch.max(1)));
        Writer { tx }
    }

    /// Submits one change and waits until it is committed.
    pub async fn apply(&self, change: WebChange) -> Result<WebOutcome> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { change, reply })
            .await
            .map_err(|_| anyhow!("the commit task has stopped"))?;
        rx.await
            .map_err(|_| anyhow!("the commit task dropped the request"))?
            .map_err(|e| anyhow!(e))
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Job>, max_batch: usize) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    loop {
        jobs.clear();
        if rx.recv_many(&mut jobs, max_batch).await == 0 {
            return; // every sender is gone
        }
        let changes: Vec<WebChange> = jobs.iter().map(|j| j.change).collect();
        let result = store.apply_web_changes(&changes).await;
        STATS.batches.fetch_add(1, Relaxed);
        STATS.changes.fetch_add(changes.len() as u64, Relaxed);
        match result {
            Ok(outcomes) => {
                for (job, outcome) in jobs.drain(..).zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::error!(batch = changes.len(), "committing web changes: {msg}");
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(msg.clone()));
                }
            }
        }
    }
}
