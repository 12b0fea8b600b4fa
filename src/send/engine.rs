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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
use crate::domain::{CampaignState, DeliveryStatus, OrgKind};
use crate::store::campaigns::{Campaign, Claimed, Counts, Outcome};
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
        let campaign = store.campaign_or_err(id).await?;
        let compiled = Arc::new(compile_for(&store, config, &campaign).await?);
        let store_for_intake = store.clone();
        let deliverer = Arc::new(Deliverer {
            sending: config.sending.clone(),
            transport,
            identity,
            compiled,
            campaign_id: campaign.id,
        });
        Ok(Engine {
            store,
            deliverer,
            campaign,
            worker: worker.to_string(),
            recent: VecDeque::new(),
            intake: Intake::from_config(store_for_intake, config)?,
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
    pub async fn run(
        &mut self,
        stop: &AtomicBool,
        mut progress: impl FnMut(&Counts),
    ) -> Result<RunEnd> {
        let id = self.campaign.id;
        // Rejections a crashed run committed but did not record yet.
        self.intake.record_rejections(id).await?;
        let concurrency = self.deliverer.transport.concurrency().max(1);
        let batch = (self.deliverer.sending.batch_size as usize).max(1);
        // Claimed, not yet started.
        let mut queue: VecDeque<Claimed> = VecDeque::new();
        let mut tasks: JoinSet<Outcome> = JoinSet::new();
        // Finished, not yet recorded.
        let mut done: Vec<Outcome> = Vec::new();
        let mut claiming: Option<JoinHandle<Result<Claim>>> = None;
        let mut recording: Option<JoinHandle<Result<Recorded>>> = None;
        let mut recording_len = 0usize;
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
                if !drained && claiming.is_none() && queue.len() < batch.div_ceil(2) {
                    claiming = Some(tokio::spawn(claim_next(
                        self.store.clone(),
                        id,
                        self.worker.clone(),
                        self.deliverer.sending.lease_secs,
                        batch,
                    )));
                }
            }
            // A record is one write transaction: gather a quarter batch, or
            // whatever there is once nothing else is coming or the oldest
            // outcome has waited long enough (progress stays current).
            let flowing = end.is_none() && !(tasks.is_empty() && queue.is_empty());
            let record_now = done.len() >= batch.div_ceil(4)
                || !flowing
                || oldest_done.is_some_and(|t| t.elapsed() >= RECORD_AFTER);
            if recording.is_none() && !done.is_empty() && record_now {
                oldest_done = None;
                let outcomes = std::mem::take(&mut done);
                recording_len = outcomes.len();
                let count = last_report.map_or(true, |t| t.elapsed() >= report_every);
                if count {
                    last_report = Some(Instant::now());
                }
                recording = Some(tokio::spawn(record(
                    self.store.clone(),
                    id,
                    self.worker.clone(),
                    outcomes,
                    count,
                )));
            }
            if tasks.is_empty() && claiming.is_none() && recording.is_none() {
                if let Some(end) = end {
                    let unsent: Vec<i64> = queue.drain(..).map(|c| c.id).collect();
                    self.store.release(&self.worker, &unsent).await?;
                    return Ok(end);
                }
                if drained && queue.is_empty() {
                    if self.store.finish_if_done(id, &self.worker).await? {
                        progress(&self.store.delivery_counts(id).await?);
                        return Ok(RunEnd::Finished);
                    }
                    let now_ms = Utc::now().timestamp_millis();
                    let next = self.store.next_due(id).await?.unwrap_or(now_ms + 1000);
                    return Ok(RunEnd::Idle(next.max(now_ms + 50)));
                }
            }
            tokio::select! {
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    done.push(joined_or_unwind(joined));
                    oldest_done.get_or_insert_with(Instant::now);
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(
                        oldest_done.unwrap_or_else(Instant::now) + RECORD_AFTER,
                    )), if recording.is_none() && !done.is_empty() => {}
                claimed = async { claiming.as_mut().expect("guarded").await }, if claiming.is_some() => {
                    claiming = None;
                    match joined_or_unwind(claimed)? {
                        Claim::NotRunning(state) => {
                            end.get_or_insert(RunEnd::NotRunning(state));
                        }
                        Claim::Claimed(c) if c.is_empty() => drained = true,
                        Claim::Claimed(c) => queue.extend(c),
                    }
                }
                recorded = async { recording.as_mut().expect("guarded").await }, if recording.is_some() => {
                    recording = None;
                    recording_len = 0;
                    let recorded = joined_or_unwind(recorded)?;
                    super::report::recorded(id, &recorded.outcomes);
                    if recorded.outcomes.iter().any(is_rejection) {
                        self.intake.record_rejections(id).await?;
                    }
                    if let Some((counts, took)) = &recorded.counts {
                        progress(counts);
                        report_every = Duration::from_secs(1).max(*took * REPORT_SHARE);
                    }
                    if let Some(reason) = self.error_rate_trip(&recorded.outcomes) {
                        self.store
                            .move_campaign(
                                id,
                                &[CampaignState::Running],
                                CampaignState::Paused,
                                &self.worker,
                                &reason,
                            )
                            .await?;
                        super::report::paused_by_worker(id, &reason);
                        end = Some(RunEnd::NotRunning(CampaignState::Paused));
                    }
                }
            }
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

/// What a claim found.
enum Claim {
    /// The campaign is no longer running: claim nothing.
    NotRunning(CampaignState),
    /// The deliveries claimed; none when nothing is due.
    Claimed(Vec<Claimed>),
}

/// Checks that the campaign still runs, then claims up to `limit` due
/// deliveries for `worker` under a lease of `lease_secs`.
async fn claim_next(
    store: Store,
    id: i64,
    worker: String,
    lease_secs: u64,
    limit: usize,
) -> Result<Claim> {
    let state = store.campaign_or_err(id).await?.state()?;
    if state != CampaignState::Running {
        return Ok(Claim::NotRunning(state));
    }
    let now_ms = Utc::now().timestamp_millis();
    let lease_until = now_ms + (lease_secs.max(1) * 1000) as i64;
    let claimed = store
        .claim(id, &worker, now_ms, lease_until, limit as i64)
        .await?;
    Ok(Claim::Claimed(claimed))
}

/// Outcomes recorded, with the campaign's counts after them when asked
/// and how long counting took.
struct Recorded {
    outcomes: Vec<Outcome>,
    counts: Option<(Counts, Duration)>,
}

/// Records outcomes in one transaction; counts the campaign's deliveries
/// afterwards when `count` is set.
async fn record(
    store: Store,
    id: i64,
    worker: String,
    outcomes: Vec<Outcome>,
    count: bool,
) -> Result<Recorded> {
    store.complete(&worker, &outcomes).await?;
    let counts = if count {
        let started = Instant::now();
        let counts = store.delivery_counts(id).await?;
        Some((counts, started.elapsed()))
    } else {
        None
    };
    Ok(Recorded { outcomes, counts })
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

/// What one delivery needs: the compiled issue, the identity that signs
/// and makes the envelope, the transport and the retry settings.
struct Deliverer {
    sending: Sending,
    transport: Arc<Transport>,
    identity: Arc<Identity>,
    compiled: Arc<CompiledIssue>,
    campaign_id: i64,
}

impl Deliverer {
    /// Renders, signs and sends one message; never fails (a failure is an
    /// outcome).
    async fn deliver(&self, c: Claimed) -> Outcome {
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
                return out;
            }
        };
        let mail_from = match self.identity.envelope_from(self.campaign_id, c.contact_id) {
            Ok(f) => f,
            Err(e) => {
                out.status = DeliveryStatus::Failed;
                out.reply = format!("not sent: envelope sender: {e:#}");
                return out;
            }
        };
        let result = self
            .transport
            .send(Outgoing {
                campaign: self.campaign_id,
                delivery: c.id,
                mail_from: &mail_from,
                rcpt_to: &c.email,
                bytes: &bytes,
            })
            .await;
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
                out.status = DeliveryStatus::Retry;
                out.due_ms = Some(until_ms);
                out.uncounted = 1;
                out.reply = "waiting: the hourly or daily sending ceiling is reached".into();
            }
        }
        out
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
        let r = Recipient {
            email: c.email.clone(),
            name: c.name.clone(),
            title: c.title.clone(),
            organisation: c.org_name.clone().unwrap_or_default(),
            kind: c.org_kind.as_deref().and_then(|k| OrgKind::parse(k).ok()),
            country: c.org_country.clone().unwrap_or_default(),
            city: c.org_city.clone().unwrap_or_default(),
            timezone: c.org_timezone.clone().unwrap_or_default(),
            tokens,
        };
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

/// Starts a draft or scheduled campaign now: checks that its issue compiles,
/// freezes the recipients and moves it to running. Returns the number of
/// recipients, or `None` if another worker started it first.
pub async fn start(store: &Store, config: &Config, id: i64, actor: &str) -> Result<Option<i64>> {
    let c = store.campaign_or_err(id).await?;
    let state = c.state()?;
    if !matches!(state, CampaignState::Draft | CampaignState::Scheduled) {
        bail!("campaign {id} is {state}; only a draft or scheduled campaign can start");
    }
    let number = u32::try_from(c.issue_number).context("issue number")?;
    let rev = store.issue_revision(number, None).await?;
    let mut frozen = c.clone();
    frozen.issue_revision = Some(rev.revision);
    // Any template or front-matter error stops the start, never a send.
    compile_for(store, config, &frozen).await?;
    let segment = if c.segment.trim().is_empty() {
        None
    } else {
        Some(
            crate::domain::segment::Segment::parse(&c.segment)
                .map_err(|e| anyhow!("campaign {id}: {}", e.with_text(&c.segment)))?,
        )
    };
    let default_tz: chrono_tz::Tz = config
        .newsletter
        .timezone
        .parse()
        .map_err(|_| anyhow!("newsletter.timezone is not an IANA zone"))?;
    let now_ms = Utc::now().timestamp_millis();
    let due = match (c.schedule_mode.as_str(), &c.local_date, &c.local_time) {
        ("local", Some(d), Some(t)) => {
            let (d, t) = schedule::check_local(d, t)?;
            let zones = store.organisation_zones().await?;
            schedule::local_due_times(d, t, &zones, default_tz)
        }
        _ => [(String::new(), now_ms)].into_iter().collect(),
    };
    let started = store
        .start_campaign(id, rev.revision, segment.as_ref(), &due, actor)
        .await?;
    if let Some(n) = started {
        super::report::started(id, n);
    }
    Ok(started)
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
