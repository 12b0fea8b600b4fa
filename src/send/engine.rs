//! Runs a campaign as a pipeline: claim batches ahead, render and send
//! each message in a task of its own, record outcomes as they come.
//!
//! Invariants (see ARCHITECTURE.md):
//! - a claim is committed before any SMTP conversation, and outcomes are
//!   committed after; no transaction is open while talking SMTP;
//! - a crash at any moment loses no recipient: unfinished claims come back
//!   when their lease expires. Only messages that were in flight (sent but
//!   not yet recorded) can go out twice, at most `batch_size` per worker:
//!   no message starts while `batch_size` are sent or in flight but not
//!   recorded;
//! - suppression is checked in the claim transaction, just before sending;
//! - 4xx replies and network failures retry with exponential backoff and
//!   jitter up to `max_attempts`, then fail; 5xx fail at once and become
//!   bounce events;
//! - a sustained share of permanent failures pauses the campaign and says
//!   why; an unreachable relay only stalls it (messages wait for retry).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use tokio::task::{JoinHandle, JoinSet};

use super::identity::Identity;
use super::schedule;
use super::transport::{Failure, Outgoing, Transport};
use crate::bounce::intake::Intake;
use crate::compose::{CompiledIssue, Issue, Recipient, Tracking};
use crate::config::{Config, Sending};
use crate::domain::{Actor, CampaignState, DeliveryStatus};
use crate::store::campaigns::{Campaign, Claimed, Counts, Outcome};
use crate::store::retry::DbRetry;
use crate::store::Store;

/// The longest a finished message waits for its outcome to be recorded
/// when fewer than a quarter batch have finished.
const RECORD_AFTER: Duration = Duration::from_millis(200);

/// Progress counts wait at least this many times as long as the last
/// count took, so counting a large campaign stays a small share of the
/// database's work.
const REPORT_SHARE: u32 = 50;

/// Why [`Engine::run`] returned.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// Every delivery is done; the campaign is finished.
    Finished,
    /// The campaign is not running (paused, cancelled, or never started).
    NotRunning(CampaignState),
    /// Nothing is claimable before this time (Unix ms): retries or local-time
    /// slots are due later.
    Idle(i64),
    /// The stop flag was raised.
    Stopped,
}

/// Sends one campaign's messages; several engines (workers) may run the
/// same campaign at once.
pub struct Engine {
    store: Store,
    /// Renders, signs and sends one message; shared by a batch's tasks.
    /// Also holds the sending settings and the transport the engine reads.
    deliverer: Arc<Deliverer>,
    campaign: Campaign,
    worker: String,
    /// Recent outcomes: true for a permanent failure.
    recent: VecDeque<bool>,
    /// Records SMTP-time rejections as bounce events, with their actions.
    intake: Intake,
    /// Retries store calls while the database is away.
    db: DbRetry,
    /// How long the campaign may wait for an unreachable relay (ms).
    relay_outage_ms: i64,
    /// Whether the campaign waits for the relay, as last seen.
    waiting: bool,
    /// `sending.poll_secs` in ms: the longest an idle run waits.
    poll_ms: i64,
}

/// A permanent SMTP-time rejection (5xx) in a batch's outcomes.
fn is_rejection(o: &Outcome) -> bool {
    o.status == DeliveryStatus::Failed && o.code.as_deref().is_some_and(|c| c.starts_with('5'))
}

/// Compiles a campaign's issue revision with the campaign's sender identity.
pub async fn compile_for(store: &Store, config: &Config, c: &Campaign) -> Result<CompiledIssue> {
    let number = u32::try_from(c.issue_number).context("issue number")?;
    let rev = store
        .issue_revision(number, c.issue_revision)
        .await
        .with_context(|| format!("campaign {}: issue {number}", c.id))?;
    let issue = Issue::parse(
        &format!("issue {number} revision {}", rev.revision),
        &rev.source,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let mut newsletter = config.newsletter.clone();
    newsletter.from_name = c.from_name.clone();
    newsletter.from_address = c.from_address.clone();
    newsletter.reply_to = c.reply_to.clone();
    let tracking = Tracking {
        opens: config.web.track_opens,
        clicks: config.web.track_clicks,
    };
    CompiledIssue::compile_tracked(issue, &newsletter, tracking).map_err(|e| anyhow!("{e}"))
}

/// How long a campaign waits for an unreachable relay before it pauses:
/// `sending.relay_outage_secs`, or the length of the retry schedule.
pub fn relay_outage_ms(sending: &Sending) -> i64 {
    if sending.relay_outage_secs > 0 {
        return (sending.relay_outage_secs as i64).saturating_mul(1000);
    }
    (1..i64::from(sending.max_attempts))
        .map(|a| {
            let exp = a.clamp(1, 30) as u32 - 1;
            (sending.retry_base_secs.max(1) as i64)
                .saturating_mul(1i64 << exp.min(20))
                .min(sending.retry_max_secs.max(1) as i64)
        })
        .sum::<i64>()
        .max(1)
        .saturating_mul(1000)
}

impl Engine {
    /// Prepares to send campaign `id`: compiles its issue once.
    pub async fn new(
        store: Store,
        config: &Config,
        transport: Arc<Transport>,
        identity: Arc<Identity>,
        id: i64,
        worker: &str,
    ) -> Result<Engine> {
        let db = DbRetry::new(config.database.retry_secs);
        let campaign = db
            .run("reading the campaign", || store.campaign_or_err(id))
            .await?;
        let compiled = Arc::new(
            db.run("compiling the campaign's issue", || {
                compile_for(&store, config, &campaign)
            })
            .await?,
        );
        let store_for_intake = store.clone();
        let lease_ms = (config.sending.lease_secs.max(1) * 1000) as i64;
        let deliverer = Arc::new(Deliverer {
            sending: config.sending.clone(),
            transport,
            identity,
            compiled,
            campaign_id: campaign.id,
            held: Held::new(lease_ms),
        });
        Ok(Engine {
            store,
            deliverer,
            waiting: campaign.waiting_since_ms.is_some(),
            campaign,
            worker: worker.to_string(),
            recent: VecDeque::new(),
            intake: Intake::from_config(store_for_intake, config)?,
            db,
            relay_outage_ms: relay_outage_ms(&config.sending),
            poll_ms: (config.sending.poll_secs.max(1) * 1000) as i64,
        })
    }

    pub fn campaign(&self) -> &Campaign {
        &self.campaign
    }

    /// Sends until the campaign is finished, not running, idle, or `stop`
    /// is raised; `progress` is called with the counts at most once a
    /// second, and at the end.
    ///
    /// The work is a pipeline, so that the SMTP connections never wait for
    /// the database: up to the transport's concurrency of messages are in
    /// flight, each in a task of its own (rendering, signing and the SMTP
    /// encoding of different messages run on all the runtime's threads);
    /// the next batch is claimed while the current one is sent; and
    /// outcomes are recorded while later messages go out, a quarter batch
    /// per transaction (fewer once nothing more is coming, or when the
    /// oldest has waited [`RECORD_AFTER`]).
    /// Messages sent but not yet recorded never exceed `batch_size`, which
    /// keeps the bound on duplicates after a crash.
    ///
    /// While it holds claims, the engine renews their lease every third of
    /// `lease_secs` (the heartbeat), and a message goes out only while its
    /// claim is safely this worker's (see [`Held`]): however slowly a batch
    /// drains, no other worker takes it over, and a claim that was taken
    /// over (its lease ran out while the database was away) is never sent.
    pub async fn run(
        &mut self,
        stop: &AtomicBool,
        mut progress: impl FnMut(&Counts),
    ) -> Result<RunEnd> {
        let id = self.campaign.id;
        let (store, worker) = (self.store.clone(), self.worker.clone());
        // Claims an earlier run of ours left behind (it ended in an error).
        let orphans = self
            .db
            .run("putting back this worker's unfinished claims", || {
                store.reclaim_own(id, &worker)
            })
            .await?;
        if orphans > 0 {
            tracing::warn!(
                campaign = id,
                "{orphans} deliveries this worker had claimed are queued again"
            );
        }
        // Rejections a crashed run committed but did not record yet.
        self.record_rejections().await?;
        let concurrency = self.deliverer.transport.concurrency().max(1);
        let batch = (self.deliverer.sending.batch_size as usize).max(1);
        let deliverer = Arc::clone(&self.deliverer);
        let held = &deliverer.held;
        let renew_every = Duration::from_millis((held.lease_ms / 3).max(100) as u64);
        // Claimed, not yet started.
        let mut queue: VecDeque<Claimed> = VecDeque::new();
        let mut tasks: JoinSet<Delivered> = JoinSet::new();
        // Finished, not yet recorded.
        let mut done: Vec<Delivered> = Vec::new();
        let mut claiming: Option<JoinHandle<Result<Claim>>> = None;
        let mut recording: Option<JoinHandle<Result<Recorded>>> = None;
        let mut recording_len = 0usize;
        let mut renewing: Option<JoinHandle<Result<Renewed>>> = None;
        let mut last_renewal = Instant::now();
        // Why the run ends, once known: nothing more starts, what is in
        // flight finishes and is recorded, the queue is given back.
        let mut end: Option<RunEnd> = None;
        // A claim found nothing due.
        let mut drained = false;
        // Counting is a scan of the campaign's deliveries: report progress
        // at most once a second, and spend at most 1/REPORT_SHARE of the
        // time counting (a million deliveries take a while to count).
        let mut last_report: Option<Instant> = None;
        let mut report_every = Duration::from_secs(1);
        // When the oldest outcome in `done` finished.
        let mut oldest_done: Option<Instant> = None;
        loop {
            if end.is_none() && stop.load(Ordering::SeqCst) {
                end = Some(RunEnd::Stopped);
            }
            if end.is_none() {
                while tasks.len() < concurrency && tasks.len() + done.len() + recording_len < batch
                {
                    let Some(c) = queue.pop_front() else { break };
                    let deliverer = Arc::clone(&self.deliverer);
                    tasks.spawn(async move { deliverer.deliver(c).await });
                }
            }
            // The heartbeat: claims, renewals and records take turns, so
            // that a renewal's answer tells exactly which claims were lost.
            let renew_due = last_renewal.elapsed() >= renew_every && !held.is_empty();
            let quiet = claiming.is_none() && recording.is_none() && renewing.is_none();
            if renew_due && quiet {
                last_renewal = Instant::now();
                renewing = Some(tokio::spawn(renew(
                    self.store.clone(),
                    self.worker.clone(),
                    held.ids(),
                    held.lease_ms,
                    self.db,
                )));
            }
            if end.is_none()
                && !drained
                && claiming.is_none()
                && renewing.is_none()
                && queue.len() < batch.div_ceil(2)
            {
                claiming = Some(tokio::spawn(claim_next(
                    self.store.clone(),
                    id,
                    self.worker.clone(),
                    held.lease_ms,
                    batch,
                    self.db,
                )));
            }
            // A record is one write transaction: gather a quarter batch, or
            // whatever there is once nothing else is coming or the oldest
            // outcome has waited long enough (progress stays current).
            let flowing = end.is_none() && !(tasks.is_empty() && queue.is_empty());
            let record_now = done.len() >= batch.div_ceil(4)
                || !flowing
                || oldest_done.is_some_and(|t| t.elapsed() >= RECORD_AFTER);
            if recording.is_none() && renewing.is_none() && !done.is_empty() && record_now {
                oldest_done = None;
                let delivered = std::mem::take(&mut done);
                recording_len = delivered.len();
                let count = last_report.map_or(true, |t| t.elapsed() >= report_every);
                if count {
                    last_report = Some(Instant::now());
                }
                recording = Some(tokio::spawn(record(
                    self.store.clone(),
                    id,
                    self.worker.clone(),
                    delivered,
                    count,
                    self.db,
                )));
            }
            if tasks.is_empty() && claiming.is_none() && recording.is_none() && renewing.is_none() {
                if let Some(end) = end {
                    let unsent: Vec<i64> = queue.drain(..).map(|c| c.id).collect();
                    let (store, worker) = (&self.store, &self.worker);
                    self.db
                        .run("giving back unsent claims", || {
                            store.release(worker, &unsent)
                        })
                        .await?;
                    held.forget(&unsent);
                    return Ok(end);
                }
                if drained && queue.is_empty() {
                    return self.finish_or_idle(&mut progress).await;
                }
            }
            let next_renewal = tokio::time::Instant::from_std(last_renewal + renew_every);
            tokio::select! {
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    done.push(joined_or_unwind(joined));
                    oldest_done.get_or_insert_with(Instant::now);
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(
                        oldest_done.unwrap_or_else(Instant::now) + RECORD_AFTER,
                    )), if recording.is_none() && !done.is_empty() => {}
                _ = tokio::time::sleep_until(next_renewal), if renewing.is_none() && !held.is_empty() => {}
                claimed = async { claiming.as_mut().expect("guarded").await }, if claiming.is_some() => {
                    claiming = None;
                    match joined_or_unwind(claimed)? {
                        Claim::NotRunning(state) => {
                            end.get_or_insert(RunEnd::NotRunning(state));
                        }
                        Claim::Claimed { rows, waiting, .. } if rows.is_empty() => {
                            self.waiting = waiting;
                            drained = true;
                        }
                        Claim::Claimed { rows, lease_until_ms, waiting } => {
                            self.waiting = waiting;
                            held.claimed(rows.iter().map(|c| c.id), lease_until_ms);
                            queue.extend(rows);
                        }
                    }
                }
                renewed = async { renewing.as_mut().expect("guarded").await }, if renewing.is_some() => {
                    renewing = None;
                    let renewed = joined_or_unwind(renewed)?;
                    let lost = held.renewed(&renewed.asked, &renewed.kept, renewed.lease_until_ms);
                    if !lost.is_empty() {
                        let lost: std::collections::HashSet<i64> = lost.into_iter().collect();
                        queue.retain(|c| !lost.contains(&c.id));
                        tracing::warn!(
                            campaign = id,
                            "{} claims were taken over by another worker after their lease ran out; \
                             this worker does not send them",
                            lost.len()
                        );
                    }
                }
                recorded = async { recording.as_mut().expect("guarded").await }, if recording.is_some() => {
                    recording = None;
                    recording_len = 0;
                    let recorded = joined_or_unwind(recorded)?;
                    held.forget(&recorded.ids);
                    if let Some((counts, took)) = &recorded.counts {
                        progress(counts);
                        report_every = Duration::from_secs(1).max(*took * REPORT_SHARE);
                    }
                    if let Some(reason) = self.after_record(&recorded).await? {
                        let (store, me) = (&self.store, Actor::system(&self.worker));
                        self.db
                            .run("pausing the campaign", || {
                                store.move_campaign(
                                    id,
                                    &[CampaignState::Running],
                                    CampaignState::Paused,
                                    &me,
                                    &reason,
                                )
                            })
                            .await?;
                        tracing::warn!(campaign = id, "paused: {reason}");
                        end = Some(RunEnd::NotRunning(CampaignState::Paused));
                    }
                }
            }
        }
    }

    /// Once nothing is due: finishes the campaign if every delivery is
    /// done, or says when something is due next.
    async fn finish_or_idle(&mut self, progress: &mut impl FnMut(&Counts)) -> Result<RunEnd> {
        let (id, store, worker) = (self.campaign.id, &self.store, &self.worker);
        // This worker holds nothing now; a row still claimed in its name is
        // one whose claim committed while its answer was lost (the
        // connection broke): it is queued again at once.
        let orphans = self
            .db
            .run("putting back this worker's unfinished claims", || {
                store.reclaim_own(id, worker)
            })
            .await?;
        if orphans > 0 {
            tracing::warn!(
                campaign = id,
                "{orphans} deliveries claimed while the database connection broke are queued again"
            );
            return Ok(RunEnd::Idle(Utc::now().timestamp_millis()));
        }
        if self
            .db
            .run("finishing the campaign", || {
                store.finish_if_done(id, worker)
            })
            .await?
        {
            progress(
                &self
                    .db
                    .run("counting deliveries", || store.delivery_counts(id))
                    .await?,
            );
            return Ok(RunEnd::Finished);
        }
        let now_ms = Utc::now().timestamp_millis();
        let next = self
            .db
            .run("finding the next due delivery", || store.next_due(id))
            .await?
            .unwrap_or(now_ms + 1000);
        // Another worker's claims keep the campaign open until they are
        // recorded, long before their lease would expire: look again
        // after the poll interval at the latest.
        Ok(RunEnd::Idle(next.clamp(now_ms + 50, now_ms + self.poll_ms)))
    }

    async fn record_rejections(&self) -> Result<usize> {
        let id = self.campaign.id;
        self.db
            .run("recording SMTP rejections as bounces", || {
                self.intake.record_rejections(id)
            })
            .await
    }

    /// What recorded outcomes mean for the campaign: bounces to record,
    /// the relay's state, the share of permanent failures. Returns a reason
    /// to pause it, if there is one.
    async fn after_record(&mut self, recorded: &Recorded) -> Result<Option<String>> {
        if recorded.outcomes.iter().any(is_rejection) {
            self.record_rejections().await?;
        }
        if let Some(reason) = self.relay_state(&recorded.relay).await? {
            return Ok(Some(reason));
        }
        Ok(self.error_rate_trip(&recorded.outcomes))
    }

    /// Notes whether the campaign waits for its relay; returns a reason to
    /// pause once it has waited longer than `relay_outage_secs`.
    async fn relay_state(&mut self, relay: &Relay) -> Result<Option<String>> {
        let (id, store) = (self.campaign.id, &self.store);
        match relay {
            Relay::Down(reason) => {
                let now_ms = Utc::now().timestamp_millis();
                let since = self
                    .db
                    .run("noting that the relay is unreachable", || {
                        store.set_waiting(id, now_ms, reason)
                    })
                    .await?;
                if !self.waiting {
                    tracing::warn!(campaign = id, "waiting for relay: {reason}");
                    self.waiting = true;
                }
                match since {
                    Some(since) if now_ms - since > self.relay_outage_ms => Ok(Some(format!(
                        "waited {} for the relay, which cannot be reached ({reason}); \
                         nobody's attempts were used up: resume the campaign once the relay is back",
                        minutes(now_ms - since)
                    ))),
                    _ => Ok(None),
                }
            }
            Relay::Up if self.waiting => {
                self.db
                    .run("noting that the relay answers", || store.clear_waiting(id))
                    .await?;
                tracing::info!(campaign = id, "the relay answers again; sending goes on");
                self.waiting = false;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Records outcomes in the recent window; a reason to pause when the
    /// share of permanent failures reaches the configured rate.
    fn error_rate_trip(&mut self, outcomes: &[Outcome]) -> Option<String> {
        let sending = &self.deliverer.sending;
        let window = sending.pause_error_window.max(1) as usize;
        let rate = sending.pause_error_rate;
        if rate <= 0.0 {
            return None;
        }
        for o in outcomes.iter().filter(|o| o.uncounted == 0) {
            self.recent.push_back(is_rejection(o));
            if self.recent.len() > window {
                self.recent.pop_front();
            }
        }
        let failures = self.recent.iter().filter(|f| **f).count();
        let n = self.recent.len();
        if n >= window.min(20) && failures as f64 >= rate * n as f64 {
            let share = 100.0 * failures as f64 / n as f64;
            self.recent.clear();
            return Some(format!(
                "{failures} of the last {n} messages were rejected permanently ({share:.0}%, limit {:.0}%); check the list and the relay, then resume",
                rate * 100.0
            ));
        }
        None
    }
}

/// A duration in ms as "N min" or "N s".
fn minutes(ms: i64) -> String {
    if ms >= 120_000 {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} s", ms / 1000)
    }
}

/// The claims an engine holds, and until when each one is safely its own
/// (Unix ms): the lease it last wrote, less a margin of a quarter lease for
/// clocks that differ between hosts. A message is handed to a server only
/// while [`Held::holds`] says so; a claim the database no longer shows as
/// this worker's (a renewal did not return it) is forgotten.
pub struct Held {
    lease_ms: i64,
    rows: Mutex<HashMap<i64, i64>>,
}

impl Held {
    fn new(lease_ms: i64) -> Held {
        Held {
            lease_ms,
            rows: Mutex::new(HashMap::new()),
        }
    }

    fn margin_ms(&self) -> i64 {
        self.lease_ms / 4
    }

    /// Whether the claim on delivery `id` is safely this worker's now.
    pub fn holds(&self, id: i64) -> bool {
        let now_ms = Utc::now().timestamp_millis();
        self.rows
            .lock()
            .unwrap()
            .get(&id)
            .is_some_and(|until| now_ms + self.margin_ms() < *until)
    }

    fn is_empty(&self) -> bool {
        self.rows.lock().unwrap().is_empty()
    }

    fn ids(&self) -> Vec<i64> {
        self.rows.lock().unwrap().keys().copied().collect()
    }

    fn claimed(&self, ids: impl Iterator<Item = i64>, until_ms: i64) {
        let mut rows = self.rows.lock().unwrap();
        for id in ids {
            rows.insert(id, until_ms);
        }
    }

    /// Applies a renewal: the claims in `kept` are held until `until_ms`;
    /// those `asked` for but not kept were lost and are forgotten (and
    /// returned), unless they were forgotten meanwhile.
    fn renewed(&self, asked: &[i64], kept: &[i64], until_ms: i64) -> Vec<i64> {
        let kept: std::collections::HashSet<i64> = kept.iter().copied().collect();
        let mut rows = self.rows.lock().unwrap();
        let mut lost = Vec::new();
        for id in asked {
            if kept.contains(id) {
                if let Some(u) = rows.get_mut(id) {
                    *u = until_ms;
                }
            } else if rows.remove(id).is_some() {
                lost.push(*id);
            }
        }
        lost
    }

    fn forget(&self, ids: &[i64]) {
        let mut rows = self.rows.lock().unwrap();
        for id in ids {
            rows.remove(id);
        }
    }
}

/// What a claim found.
enum Claim {
    /// The campaign is no longer running: claim nothing.
    NotRunning(CampaignState),
    /// The deliveries claimed (none when nothing is due), the lease they
    /// were claimed under, and whether the campaign waits for its relay.
    Claimed {
        rows: Vec<Claimed>,
        lease_until_ms: i64,
        waiting: bool,
    },
}

/// Checks that the campaign still runs, then claims up to `limit` due
/// deliveries for `worker` under a lease of `lease_ms`.
async fn claim_next(
    store: Store,
    id: i64,
    worker: String,
    lease_ms: i64,
    limit: usize,
    db: DbRetry,
) -> Result<Claim> {
    let c = db
        .run("reading the campaign", || store.campaign_or_err(id))
        .await?;
    let state = c.state()?;
    if state != CampaignState::Running {
        return Ok(Claim::NotRunning(state));
    }
    let now_ms = Utc::now().timestamp_millis();
    let lease_until_ms = now_ms + lease_ms.max(1000);
    let rows = db
        .run("claiming deliveries", || {
            store.claim(id, &worker, now_ms, lease_until_ms, limit as i64)
        })
        .await?;
    Ok(Claim::Claimed {
        rows,
        lease_until_ms,
        waiting: c.waiting_since_ms.is_some(),
    })
}

/// The answer to a renewal: the claims asked for, those still held, and
/// their new lease.
struct Renewed {
    asked: Vec<i64>,
    kept: Vec<i64>,
    lease_until_ms: i64,
}

/// Renews the lease of the claims `ids` (the heartbeat).
async fn renew(
    store: Store,
    worker: String,
    ids: Vec<i64>,
    lease_ms: i64,
    db: DbRetry,
) -> Result<Renewed> {
    let lease_until_ms = Utc::now().timestamp_millis() + lease_ms.max(1000);
    let kept = db
        .run("renewing the lease of claimed deliveries", || {
            store.renew_claims(&worker, &ids, lease_until_ms)
        })
        .await?;
    Ok(Renewed {
        asked: ids,
        kept,
        lease_until_ms,
    })
}

/// What the relay's answers in a record said.
#[derive(Debug, Clone, PartialEq)]
enum Relay {
    /// No message met a server.
    Unknown,
    /// A server answered (accepted or refused a message).
    Up,
    /// No server could be reached: the last error.
    Down(String),
}

/// Outcomes recorded, the deliveries recorded or given back, what the
/// relay said, and the campaign's counts after them when asked (with how
/// long counting took).
struct Recorded {
    outcomes: Vec<Outcome>,
    ids: Vec<i64>,
    relay: Relay,
    counts: Option<(Counts, Duration)>,
}

/// Records outcomes in one transaction, gives back the claims that were
/// not sent because they were no longer safely held; counts the
/// campaign's deliveries afterwards when `count` is set.
async fn record(
    store: Store,
    id: i64,
    worker: String,
    delivered: Vec<Delivered>,
    count: bool,
    db: DbRetry,
) -> Result<Recorded> {
    let ids: Vec<i64> = delivered.iter().map(|d| d.id).collect();
    let mut relay = Relay::Unknown;
    let mut outcomes = Vec::with_capacity(delivered.len());
    let mut unsent = Vec::new();
    for d in delivered {
        match d.relay {
            Relay::Up => relay = Relay::Up,
            Relay::Down(reason) if relay != Relay::Up => relay = Relay::Down(reason),
            _ => {}
        }
        match d.outcome {
            Some(o) => outcomes.push(o),
            None => unsent.push(d.id),
        }
    }
    db.run("recording outcomes", || store.complete(&worker, &outcomes))
        .await?;
    if !unsent.is_empty() {
        tracing::warn!(
            campaign = id,
            "{} claims were not safely this worker's when their message was ready; \
             given back unsent",
            unsent.len()
        );
        db.run("giving back unsent claims", || {
            store.release(&worker, &unsent)
        })
        .await?;
    }
    let counts = if count {
        let started = Instant::now();
        let counts = db
            .run("counting deliveries", || store.delivery_counts(id))
            .await?;
        Some((counts, started.elapsed()))
    } else {
        None
    };
    Ok(Recorded {
        outcomes,
        ids,
        relay,
        counts,
    })
}

/// A finished task's value. A panic in a task is a bug: it ends the run as
/// it would have without the task (claims come back when their lease
/// expires).
fn joined_or_unwind<T>(joined: Result<T, tokio::task::JoinError>) -> T {
    match joined {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("a send task was cancelled: {e}"),
    }
}

/// One delivery's result: its outcome to record (`None`: not sent because
/// the claim was no longer safely held; the claim is given back), and
/// what it said about the relay.
struct Delivered {
    id: i64,
    outcome: Option<Outcome>,
    relay: Relay,
}

/// What one delivery needs: the compiled issue, the identity that signs
/// and makes the envelope, the transport and the retry settings.
struct Deliverer {
    sending: Sending,
    transport: Arc<Transport>,
    identity: Arc<Identity>,
    compiled: Arc<CompiledIssue>,
    campaign_id: i64,
    /// The claims the engine holds.
    held: Held,
}

impl Deliverer {
    /// Renders, signs and sends one message; never fails (a failure is an
    /// outcome).
    async fn deliver(&self, c: Claimed) -> Delivered {
        let id = c.id;
        let mut relay = Relay::Unknown;
        let outcome = self.attempt(c, &mut relay).await;
        Delivered { id, outcome, relay }
    }

    /// The outcome of one delivery, `None` if its claim was no longer safely
    /// held; notes in `relay` whether a server answered.
    async fn attempt(&self, c: Claimed, relay: &mut Relay) -> Option<Outcome> {
        let mut out = Outcome {
            delivery_id: c.id,
            status: DeliveryStatus::Sent,
            due_ms: None,
            code: None,
            reply: String::new(),
            message_id: None,
            server: None,
            uncounted: 0,
        };
        let bytes = match self.render(&c) {
            Ok((mid, bytes)) => {
                out.message_id = Some(mid);
                bytes
            }
            Err(e) => {
                out.status = DeliveryStatus::Failed;
                out.reply = format!("not sent: {e:#}");
                return Some(out);
            }
        };
        let mail_from = match self.identity.envelope_from(self.campaign_id, c.contact_id) {
            Ok(f) => f,
            Err(e) => {
                out.status = DeliveryStatus::Failed;
                out.reply = format!("not sent: envelope sender: {e:#}");
                return Some(out);
            }
        };
        let held = || self.held.holds(c.id);
        let result = self
            .transport
            .send_held(
                Outgoing {
                    campaign: self.campaign_id,
                    delivery: c.id,
                    mail_from: &mail_from,
                    rcpt_to: &c.email,
                    bytes: &bytes,
                },
                &held,
            )
            .await;
        let reached = matches!(
            result,
            Ok(_)
                | Err(Failure::Permanent { .. }
                    | Failure::Transient { .. }
                    | Failure::Network { .. })
        );
        if reached {
            *relay = Relay::Up;
        }
        match result {
            Ok(a) => {
                out.server = Some(a.server);
                out.reply = a.reply;
            }
            Err(Failure::Permanent { server, code, text }) => {
                out.status = DeliveryStatus::Failed;
                out.server = Some(server);
                out.code = Some(code).filter(|c| !c.is_empty());
                out.reply = text;
            }
            Err(Failure::Transient { server, code, text }) => {
                out.server = Some(server);
                out.code = Some(code).filter(|c| !c.is_empty());
                out.reply = text;
                self.retry_or_fail(&c, &mut out);
            }
            Err(Failure::Network { server, text }) => {
                out.server = Some(server);
                out.reply = text;
                self.retry_or_fail(&c, &mut out);
            }
            Err(Failure::Ceiling { until_ms }) => {
                self.not_attempted(&mut out, until_ms);
                out.reply = "waiting: the hourly or daily sending ceiling is reached".into();
            }
            Err(Failure::Unreachable {
                server,
                text,
                until_ms,
            }) => {
                self.not_attempted(&mut out, until_ms);
                out.reply = format!("waiting for relay: {server}: {text}");
                out.server = Some(server.clone());
                *relay = Relay::Down(format!("{server}: {text}"));
            }
            Err(Failure::Deferred { text, until_ms }) => {
                self.not_attempted(&mut out, until_ms);
                out.reply = format!("waiting: {text}");
            }
            Err(Failure::NotHeld) => return None,
        }
        Some(out)
    }

    /// A message that was not handed to any server: it waits until
    /// `until_ms` and its attempt is given back.
    fn not_attempted(&self, out: &mut Outcome, until_ms: i64) {
        out.status = DeliveryStatus::Retry;
        out.due_ms = Some(until_ms);
        out.uncounted = 1;
    }

    fn retry_or_fail(&self, c: &Claimed, out: &mut Outcome) {
        if c.attempts >= i64::from(self.sending.max_attempts) {
            out.status = DeliveryStatus::Failed;
            out.reply = format!("gave up after {} attempts: {}", c.attempts, out.reply);
        } else {
            out.status = DeliveryStatus::Retry;
            let seed =
                (c.id as u64) ^ ((c.attempts as u64) << 40) ^ Utc::now().timestamp_micros() as u64;
            out.due_ms = Some(
                Utc::now().timestamp_millis()
                    + schedule::backoff_ms(
                        c.attempts,
                        self.sending.retry_base_secs,
                        self.sending.retry_max_secs,
                        seed,
                    ),
            );
        }
    }

    /// The message bytes for one recipient and its Message-ID.
    fn render(&self, c: &Claimed) -> Result<(String, Vec<u8>)> {
        let tokens = self.identity.link_tokens(self.campaign_id, c.contact_id);
        let r = Recipient::from_claimed(c, tokens);
        let msg = self
            .compiled
            .render_for(&r)
            .map_err(|e| anyhow!("rendering: {e}"))?;
        let mut bytes = Vec::with_capacity(msg.bytes.len() + 512);
        bytes.extend_from_slice(
            format!(
                "X-Whatsup-Campaign: {}\r\nX-Whatsup-Delivery: {}\r\n",
                self.campaign_id,
                self.identity
                    .delivery_header(self.campaign_id, c.contact_id)
            )
            .as_bytes(),
        );
        if !self.sending.feedback_id.is_empty() {
            bytes.extend_from_slice(
                format!(
                    "Feedback-ID: {}:{}\r\n",
                    self.campaign_id, self.sending.feedback_id
                )
                .as_bytes(),
            );
        }
        bytes.extend_from_slice(&msg.bytes);
        let bytes = self.identity.sign(bytes)?;
        Ok((msg.message_id, bytes))
    }
}

/// Starts a draft, scheduled or blocked campaign now through the send gate
/// ([`super::gate::start`]): returns the number of recipients, or `None` if
/// another worker started it first; a campaign the gate blocks is an error
/// with the reasons.
pub async fn start(store: &Store, config: &Config, id: i64, actor: &Actor) -> Result<Option<i64>> {
    match super::gate::start(store, config, id, actor, None).await? {
        super::gate::StartOutcome::Started { recipients, .. } => Ok(Some(recipients)),
        super::gate::StartOutcome::Lost => Ok(None),
        super::gate::StartOutcome::NotStartable(state) => {
            bail!("campaign {id} is {state}; only a draft, scheduled or blocked campaign can start")
        }
        super::gate::StartOutcome::Blocked { reason, .. } => {
            bail!("campaign {id} is blocked: {reason}")
        }
    }
}

/// Waits until `until_ms` or the stop flag, whichever is first, checking
/// the flag every 100 ms.
pub async fn sleep_until(until_ms: i64, stop: &AtomicBool) {
    loop {
        let left = until_ms - Utc::now().timestamp_millis();
        if left <= 0 || stop.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(left.clamp(1, 100) as u64)).await;
    }
}
