//! The worker loop (`whatsup worker`) and the foreground send (`whatsup
//! send`).
//!
//! A worker starts scheduled campaigns whose time has come through the send
//! gate, which checks the issue again and renders every recipient before
//! anything is sent (only one worker wins each start: it is a conditional
//! state change; a refusal leaves the campaign `blocked`), and sends every
//! running campaign's due deliveries. Any number of workers, on one host or
//! many, can share a PostgreSQL database: claims never overlap and the
//! hourly and daily ceilings are reserved in the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use chrono::Utc;

use super::engine::{self, Engine, RunEnd};
use super::gate::{self, StartOutcome};
use super::identity::Identity;
use super::transport::Transport;
use super::{build_transport, worker_id};
use crate::config::Config;
use crate::domain::approval::NotApproved;
use crate::domain::{Actor, CampaignState};
use crate::store::campaigns::Counts;
use crate::store::retry::DbRetry;
use crate::store::Store;

/// Shared pieces of a worker process.
pub struct Worker {
    pub store: Store,
    pub config: Config,
    pub id: String,
    identity: Arc<Identity>,
    transports: HashMap<String, Arc<Transport>>,
    engines: HashMap<i64, Engine>,
    /// Due campaigns still waiting for their approval, warned about once.
    unapproved: std::collections::HashSet<i64>,
}

impl Worker {
    pub fn new(store: Store, config: Config) -> Result<Worker> {
        let identity = Arc::new(Identity::from_config(&config)?);
        Ok(Worker {
            store,
            config,
            id: worker_id(),
            identity,
            transports: HashMap::new(),
            engines: HashMap::new(),
            unapproved: std::collections::HashSet::new(),
        })
    }

    fn transport(&mut self, name: &str) -> Result<Arc<Transport>> {
        if let Some(t) = self.transports.get(name) {
            return Ok(t.clone());
        }
        let t = build_transport(&self.config, &self.store, name)?;
        self.transports.insert(name.to_string(), t.clone());
        Ok(t)
    }

    async fn engine(&mut self, id: i64) -> Result<&mut Engine> {
        if !self.engines.contains_key(&id) {
            let c = self.store.campaign_or_err(id).await?;
            let transport = self.transport(&c.transport)?;
            let e = Engine::new(
                self.store.clone(),
                &self.config,
                transport,
                self.identity.clone(),
                id,
                &self.id,
            )
            .await?;
            self.engines.insert(id, e);
        }
        Ok(self.engines.get_mut(&id).expect("inserted above"))
    }

    /// Runs campaign `id` until it finishes, stops running, or `stop` is
    /// raised; waits through idle periods (retries, local-time slots).
    pub async fn send_campaign(
        &mut self,
        id: i64,
        stop: &AtomicBool,
        mut progress: impl FnMut(&Counts),
    ) -> Result<RunEnd> {
        loop {
            let end = self.engine(id).await?.run(stop, &mut progress).await?;
            match end {
                RunEnd::Idle(until) => engine::sleep_until(until, stop).await,
                other => {
                    self.engines.remove(&id);
                    return Ok(other);
                }
            }
        }
    }

    /// The worker loop: start due campaigns, send running ones, sleep
    /// until the next due time or `poll_secs`. The loop outlives the
    /// database: while it is away, store calls are retried (for
    /// `database.retry_secs`), and a pass that fails even so is logged and
    /// tried again after the poll interval.
    pub async fn run(&mut self, stop: &AtomicBool) -> Result<()> {
        let poll_ms = (self.config.sending.poll_secs.max(1) * 1000) as i64;
        tracing::info!(worker = %self.id, "worker started");
        while !stop.load(Ordering::SeqCst) {
            let wake = match self.pass(stop).await {
                Ok(wake) => wake,
                Err(e) => {
                    tracing::error!(worker = %self.id, "{e:#}; trying again in {} s", poll_ms / 1000);
                    Utc::now().timestamp_millis() + poll_ms
                }
            };
            engine::sleep_until(wake, stop).await;
        }
        tracing::info!(worker = %self.id, "worker stopped");
        Ok(())
    }

    /// One pass of the loop; returns when to look again (Unix ms).
    async fn pass(&mut self, stop: &AtomicBool) -> Result<i64> {
        let poll_ms = (self.config.sending.poll_secs.max(1) * 1000) as i64;
        let db = DbRetry::new(self.config.database.retry_secs);
        let store = self.store.clone();
        let now = Utc::now().timestamp_millis();
        let due = db
            .run("looking for scheduled campaigns", || {
                store.due_campaigns(now)
            })
            .await?;
        let me = Actor::system(&self.id);
        for id in due {
            // The gate runs again: templates or config may have changed
            // since the campaign was scheduled.
            match gate::start(&self.store, &self.config, id, &me, None).await {
                Ok(StartOutcome::Started { recipients, .. }) => {
                    tracing::info!(campaign = id, recipients, "campaign started")
                }
                Ok(StartOutcome::Blocked { reason, .. }) => {
                    tracing::error!(campaign = id, "blocked, nothing sent: {reason}")
                }
                Ok(StartOutcome::Lost | StartOutcome::NotStartable(_)) => {}
                // It stays scheduled and starts once approved.
                Err(e) if e.downcast_ref::<NotApproved>().is_some() => {
                    if self.unapproved.insert(id) {
                        tracing::warn!(campaign = id, "not started: {e:#}");
                    }
                }
                Err(e) => {
                    let reason = format!("could not start: {e:#}");
                    tracing::error!(campaign = id, "{reason}");
                    self.pause(id, CampaignState::Scheduled, &reason).await?;
                }
            }
        }
        let mut wake = now + poll_ms;
        let running = db
            .run("looking for running campaigns", || {
                store.running_campaigns()
            })
            .await?;
        for id in running {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let result = match self.engine(id).await {
                Ok(e) => e.run(stop, |_| {}).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(RunEnd::Idle(t)) => wake = wake.min(t),
                Ok(_) => {
                    self.engines.remove(&id);
                }
                Err(e) => {
                    self.engines.remove(&id);
                    let reason = format!("worker error: {e:#}");
                    tracing::error!(campaign = id, "{reason}");
                    self.pause(id, CampaignState::Running, &reason).await?;
                }
            }
        }
        Ok(wake)
    }

    /// Pauses campaign `id` if it is still in state `from`, with the reason.
    async fn pause(&self, id: i64, from: CampaignState, reason: &str) -> Result<bool> {
        let db = DbRetry::new(self.config.database.retry_secs);
        let from = [from];
        let me = Actor::system(&self.id);
        db.run("pausing the campaign", || {
            self.store
                .move_campaign(id, &from, CampaignState::Paused, &me, reason)
        })
        .await
    }
}
