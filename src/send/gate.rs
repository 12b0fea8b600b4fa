//! The send gate: nothing wrong reaches recipients.
//!
//! Every way a campaign goes out passes here. `campaigns create` and
//! `campaigns schedule` run the preflight ([`preflight`]) on the issue
//! revision the campaign would send, as the campaign sends it (its sender,
//! the tracking settings, the current templates and config). A start
//! (`campaigns start`, `send`, and the worker when a scheduled campaign is
//! due, since templates or config may have changed) runs it again, then
//! freezes the recipients and renders every one's message once without
//! sending ([`RenderCheck`]), before the start commits.
//!
//! - Preflight failures refuse (create, schedule) or block the campaign
//!   (a start), listing each failure with its file, line and column.
//! - An operator may override the failures of one revision with a reason
//!   (`--override-check "REASON"`); the override, its reason and actor go
//!   into the campaign's history. It covers the failures it was given for:
//!   a new revision, or a failure that appears later (a template or the
//!   config changed), is checked again. Failures that make the issue
//!   impossible to render (`front-matter`, `merge-tag`, `template`) cannot
//!   be overridden.
//! - A recipient whose message cannot be rendered blocks the campaign with
//!   the recipients and the template line, before anyone receives anything.
//!   No override covers that: fix the template or the contact.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;

use super::schedule;
use crate::compose::preflight::{self, Finding, Report, Severity};
use crate::compose::{CompiledIssue, LinkTokens, Recipient, Tracking};
use crate::config::{Config, Newsletter};
use crate::domain::approval::NotApproved;
use crate::domain::segment::Segment;
use crate::domain::{Actor, CampaignState};
use crate::store::campaigns::{Campaign, CheckOverride, Claimed, FrozenCheck, Started};
use crate::store::Store;

/// Preflight rules whose failures make the issue impossible to render, so
/// no override can cover them.
const FATAL_RULES: &[&str] = &["front-matter", "merge-tag", "template"];

/// Recipients named per distinct rendering error in a blocked campaign's
/// reason.
const NAMED_RECIPIENTS: usize = 10;

/// Who a campaign is sent as: what the preflight compiles with.
#[derive(Debug, Clone)]
pub struct Sender {
    pub from_name: String,
    pub from_address: String,
    pub reply_to: String,
}

impl Sender {
    pub fn of(c: &Campaign) -> Sender {
        Sender {
            from_name: c.from_name.clone(),
            from_address: c.from_address.clone(),
            reply_to: c.reply_to.clone(),
        }
    }

    /// The newsletter settings with this sender.
    pub fn newsletter(&self, config: &Config) -> Newsletter {
        let mut n = config.newsletter.clone();
        n.from_name = self.from_name.clone();
        n.from_address = self.from_address.clone();
        n.reply_to = self.reply_to.clone();
        n
    }
}

/// The tracking settings campaigns are compiled with.
pub fn tracking(config: &Config) -> Tracking {
    Tracking {
        opens: config.web.track_opens,
        clicks: config.web.track_clicks,
    }
}

/// The preflight of one issue revision, as a campaign would send it.
#[derive(Debug, Clone)]
pub struct Preflight {
    pub number: i64,
    pub revision: i64,
    pub report: Report,
}

/// A refusal by the preflight: the failures no override covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub number: i64,
    pub revision: i64,
    /// The failures not covered, each with its place.
    pub failures: Vec<Finding>,
    /// Whether `--override-check` could let them pass.
    pub overridable: bool,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "issue {} revision {} fails its preflight check ({} failure(s)):",
            self.number,
            self.revision,
            self.failures.len()
        )?;
        for x in &self.failures {
            writeln!(f, "  {x}")?;
        }
        if self.overridable {
            write!(
                f,
                "fix the issue and import it again, or send it as it is with --override-check \"REASON\""
            )
        } else {
            write!(
                f,
                "fix the issue (or the templates) and import it again; these failures cannot be overridden"
            )
        }
    }
}

/// What an override records of a failure (stable for one revision).
fn fingerprint(f: &Finding) -> String {
    format!("{} {}:{}:{}", f.rule, f.file, f.line, f.column)
}

impl Preflight {
    fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Failure)
    }

    /// The failures `o` does not cover.
    pub fn uncovered(&self, o: Option<&CheckOverride>) -> Vec<Finding> {
        self.failures()
            .filter(|f| {
                FATAL_RULES.contains(&f.rule)
                    || !o.is_some_and(|o| {
                        o.revision == self.revision && o.findings.contains(&fingerprint(f))
                    })
            })
            .cloned()
            .collect()
    }

    /// The override `reason` would record: every failure of this revision.
    pub fn override_with(&self, reason: &str) -> CheckOverride {
        CheckOverride {
            revision: self.revision,
            reason: reason.trim().to_string(),
            findings: self.failures().map(fingerprint).collect(),
        }
    }

    /// The refusal for `failures`, if any.
    pub fn refusal(&self, failures: Vec<Finding>) -> Option<Refusal> {
        if failures.is_empty() {
            return None;
        }
        Some(Refusal {
            number: self.number,
            revision: self.revision,
            overridable: !failures.iter().any(|f| FATAL_RULES.contains(&f.rule)),
            failures,
        })
    }

    pub fn warnings(&self) -> usize {
        self.report.warnings()
    }
}

/// Runs the preflight on issue `number`'s revision `revision` (the latest
/// when `None`), compiled as `sender` would send it.
pub async fn preflight(
    store: &Store,
    config: &Config,
    number: i64,
    revision: Option<i64>,
    sender: &Sender,
) -> Result<Preflight> {
    let n = u32::try_from(number).context("issue number")?;
    let rev = store.issue_revision(n, revision).await?;
    let name = format!("issue {n} revision {}", rev.revision);
    let context = context(store, config).await?;
    let report =
        preflight::check_source_with(&name, &rev.source, &sender.newsletter(config), &context);
    Ok(Preflight {
        number,
        revision: rev.revision,
        report,
    })
}

/// What the preflight knows when it checks as campaigns send: the
/// tracking settings and the media library.
pub async fn context(store: &Store, config: &Config) -> Result<preflight::Context> {
    Ok(preflight::Context {
        tracking: tracking(config),
        library: media_library(store).await?,
    })
}

/// The file names (`HASH.EXT`) in the media library, for the preflight's
/// image rule.
pub async fn media_library(store: &Store) -> Result<std::collections::HashSet<String>> {
    Ok(store
        .list_media(i64::MAX, 0)
        .await?
        .iter()
        .map(|m| m.file_name())
        .collect())
}

/// The preflight of a campaign's issue with its override applied: the
/// refusal, if any failure is left, and the override that was recorded now.
pub async fn check_campaign(
    store: &Store,
    config: &Config,
    c: &Campaign,
    actor: &Actor,
    override_reason: Option<&str>,
) -> Result<(Preflight, Option<Refusal>)> {
    let p = preflight(store, config, c.issue_number, None, &Sender::of(c)).await?;
    let mut recorded = c.override_for(p.revision);
    if let Some(reason) = override_reason {
        let o = p.override_with(reason);
        if !o.findings.is_empty() && recorded.as_ref() != Some(&o) {
            store.record_override(c.id, &o, actor).await?;
            recorded = Some(o);
        }
    }
    let refusal = p.refusal(p.uncovered(recorded.as_ref()));
    Ok((p, refusal))
}

/// What a start did.
#[derive(Debug, Clone, PartialEq)]
pub enum StartOutcome {
    /// Running: the recipients frozen, and how long rendering every one's
    /// message took (from the first frozen page to the last rendered one).
    Started { recipients: i64, render_secs: f64 },
    /// Not started: the campaign is in this state (not draft, scheduled or
    /// blocked).
    NotStartable(CampaignState),
    /// Someone else started, scheduled or cancelled it meanwhile.
    Lost,
    /// Blocked by the gate, with the reasons (and the preflight's refusal
    /// when that was the cause); nothing was frozen or sent.
    Blocked {
        reason: String,
        refusal: Option<Refusal>,
    },
}

/// Starts a draft, scheduled or blocked campaign now through the gate:
/// its two-person approval (an error carrying [`NotApproved`] when it
/// lacks one, the campaign left as it is), the preflight on the latest revision (with the override recorded for
/// it, or given now), then the recipients frozen and every message
/// rendered once before the start commits. A refusal leaves the campaign
/// `blocked` with the reasons.
pub async fn start(
    store: &Store,
    config: &Config,
    id: i64,
    actor: &Actor,
    override_reason: Option<&str>,
) -> Result<StartOutcome> {
    let c = store.campaign_or_err(id).await?;
    let state = c.state()?;
    let startable = [
        CampaignState::Draft,
        CampaignState::Scheduled,
        CampaignState::Blocked,
    ];
    if !startable.contains(&state) {
        return Ok(StartOutcome::NotStartable(state));
    }
    // Two-person approval of exactly what would be sent now: without it
    // the campaign stays as it is (an error carrying [`NotApproved`]).
    let (approval, _) = store
        .approval_status(&c, config.newsletter.require_approval)
        .await?;
    NotApproved::check(id, &approval)?;
    let (p, refusal) = check_campaign(store, config, &c, actor, override_reason).await?;
    if let Some(r) = refusal {
        return block(store, &c, &startable, actor, r.to_string(), Some(r)).await;
    }
    let segment = if c.segment.trim().is_empty() {
        None
    } else {
        match Segment::parse(&c.segment) {
            Ok(s) => Some(s),
            Err(e) => {
                let reason = format!("the segment does not parse: {}", e.render(&c.segment));
                return block(store, &c, &startable, actor, reason, None).await;
            }
        }
    };
    let due = due_times(store, config, &c).await?;
    let mut frozen = c.clone();
    frozen.issue_revision = Some(p.revision);
    let compiled = Arc::new(super::engine::compile_for(store, config, &frozen).await?);
    let mut check = RenderCheck::new(compiled, id);
    let started = store
        .start_campaign(id, p.revision, segment.as_ref(), &due, actor, &mut check)
        .await?;
    Ok(match started {
        Started::Running(n) => {
            let render_secs = check.elapsed_secs();
            tracing::info!(
                campaign = id,
                recipients = n,
                "every message rendered in {render_secs:.2} s"
            );
            StartOutcome::Started {
                recipients: n,
                render_secs,
            }
        }
        Started::Blocked(reason) => StartOutcome::Blocked {
            reason,
            refusal: None,
        },
        Started::NotStartable => StartOutcome::Lost,
    })
}

async fn block(
    store: &Store,
    c: &Campaign,
    from: &[CampaignState],
    actor: &Actor,
    reason: String,
    refusal: Option<Refusal>,
) -> Result<StartOutcome> {
    if store
        .move_campaign(c.id, from, CampaignState::Blocked, actor, &reason)
        .await?
    {
        Ok(StartOutcome::Blocked { reason, refusal })
    } else {
        Ok(StartOutcome::Lost)
    }
}

/// Each time zone's due time for the campaign's schedule (Unix ms; the key
/// "" is the default).
async fn due_times(store: &Store, config: &Config, c: &Campaign) -> Result<HashMap<String, i64>> {
    let now_ms = Utc::now().timestamp_millis();
    Ok(
        match (c.schedule_mode.as_str(), &c.local_date, &c.local_time) {
            ("local", Some(d), Some(t)) => {
                let default_tz: chrono_tz::Tz = config
                    .newsletter
                    .timezone
                    .parse()
                    .map_err(|_| anyhow!("newsletter.timezone is not an IANA zone"))?;
                let (d, t) = schedule::check_local(d, t)?;
                let zones = store.organisation_zones().await?;
                schedule::local_due_times(d, t, &zones, default_tz)
            }
            _ => [(String::new(), now_ms)].into_iter().collect(),
        },
    )
}

/// One page's rendering result.
#[derive(Default)]
struct PageResult {
    rendered: usize,
    /// error text → recipients (the first few) and how many.
    failures: BTreeMap<String, (Vec<String>, usize)>,
}

/// Renders every frozen recipient's message once, without sending, on all
/// cores: a page at a time in the blocking pool, at most one page per core
/// in flight, so memory holds a few pages of rows and no messages.
pub struct RenderCheck {
    compiled: Arc<CompiledIssue>,
    campaign: i64,
    /// One fixed Date for every message: only the content matters here.
    at: DateTime<Utc>,
    in_flight: VecDeque<JoinHandle<PageResult>>,
    limit: usize,
    total: PageResult,
    /// When the first page arrived, and when the last was rendered.
    began: Option<Instant>,
    ended: Option<Instant>,
}

impl RenderCheck {
    pub fn new(compiled: Arc<CompiledIssue>, campaign: i64) -> RenderCheck {
        RenderCheck {
            compiled,
            campaign,
            at: Utc::now(),
            in_flight: VecDeque::new(),
            limit: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            total: PageResult::default(),
            began: None,
            ended: None,
        }
    }

    /// Seconds from the first frozen page to the verdict.
    pub fn elapsed_secs(&self) -> f64 {
        match (self.began, self.ended) {
            (Some(b), Some(e)) => (e - b).as_secs_f64(),
            _ => 0.0,
        }
    }

    async fn join_oldest(&mut self) -> Result<()> {
        if let Some(h) = self.in_flight.pop_front() {
            let page = h.await.map_err(|e| anyhow!("rendering check: {e}"))?;
            self.total.rendered += page.rendered;
            for (error, (who, n)) in page.failures {
                let entry = self.total.failures.entry(error).or_default();
                entry.1 += n;
                for w in who {
                    if entry.0.len() < NAMED_RECIPIENTS {
                        entry.0.push(w);
                    }
                }
            }
        }
        Ok(())
    }

    /// How many recipients were rendered, and the blocking reason if any.
    pub fn summary(&self) -> (usize, Option<String>) {
        let t = &self.total;
        if t.failures.is_empty() {
            return (t.rendered, None);
        }
        let failed: usize = t.failures.values().map(|(_, n)| n).sum();
        let mut reason = format!(
            "{failed} of {} recipients' messages cannot be rendered; nothing was sent:",
            t.rendered
        );
        for (error, (who, n)) in &t.failures {
            reason.push_str(&format!("\n  {error}\n    {}", who.join(", ")));
            if *n > who.len() {
                reason.push_str(&format!(" and {} more", n - who.len()));
            }
        }
        (t.rendered, Some(reason))
    }
}

fn render_page(
    compiled: &CompiledIssue,
    campaign: i64,
    at: DateTime<Utc>,
    rows: &[Claimed],
) -> PageResult {
    let mut out = PageResult {
        rendered: rows.len(),
        ..PageResult::default()
    };
    let tokens = LinkTokens::same(campaign, "render-check");
    for row in rows {
        let r = Recipient::from_claimed(row, tokens.clone());
        if let Err(e) = compiled.render_for_at(&r, at) {
            let entry = out.failures.entry(e.to_string()).or_default();
            entry.1 += 1;
            if entry.0.len() < NAMED_RECIPIENTS {
                entry.0.push(row.email.clone());
            }
        }
    }
    out
}

impl FrozenCheck for RenderCheck {
    async fn page(&mut self, rows: Vec<Claimed>) -> Result<()> {
        self.began.get_or_insert_with(Instant::now);
        while self.in_flight.len() >= self.limit {
            self.join_oldest().await?;
        }
        let compiled = Arc::clone(&self.compiled);
        let (campaign, at) = (self.campaign, self.at);
        self.in_flight
            .push_back(tokio::task::spawn_blocking(move || {
                render_page(&compiled, campaign, at, &rows)
            }));
        Ok(())
    }

    async fn verdict(&mut self) -> Result<Option<String>> {
        while !self.in_flight.is_empty() {
            self.join_oldest().await?;
        }
        self.ended = Some(Instant::now());
        Ok(self.summary().1)
    }
}
