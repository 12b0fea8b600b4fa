//! Campaigns and the delivery queue.
//!
//! A campaign is an issue sent to a segment. When it starts, its recipients
//! are frozen into `deliveries`, one row per (campaign, contact), in the same
//! transaction that moves it to `running`. Workers then:
//!
//! 1. **claim** due rows in batches: one transaction turns them `sending`
//!    under a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so workers never
//!    claim the same row), returns them with the contact's current fields,
//!    and marks `skipped` any whose contact is no longer active;
//! 2. talk SMTP with no transaction open;
//! 3. **complete** the batch in one transaction: sent, retry (with the next
//!    due time), or failed, with the server's reply (a 5xx is then recorded
//!    as a bounce event by the bounce intake, from these rows: see
//!    `Intake::record_rejections`). A completion only applies to rows the worker
//!    still holds, so a worker whose lease expired cannot overwrite another's
//!    result.
//!
//! A row whose lease expires (its worker died) goes back to `retry` and is
//! claimed again; only such in-flight rows can ever be sent twice.
//!
//! Campaign state changes are conditional updates with a `campaign_events`
//! row in the same transaction, so two operators or workers racing on one
//! campaign cannot both win.

use std::collections::HashMap;

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::audit::record_audit;
use super::segment_sql;
use super::{begin_write, Dialect, Store, StoreError};
use crate::domain::segment::Segment;
use crate::domain::{Actor, CampaignState, DeliveryStatus};

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Campaign {
    pub id: i64,
    pub name: String,
    pub issue_number: i64,
    pub issue_revision: Option<i64>,
    pub segment: String,
    pub from_name: String,
    pub from_address: String,
    pub reply_to: String,
    pub transport: String,
    pub state: String,
    pub state_reason: String,
    pub schedule_mode: String,
    /// Unix ms: when an `at` campaign starts, or the earliest local slot.
    pub start_ms: Option<i64>,
    pub local_date: Option<String>,
    pub local_time: Option<String>,
    pub recipients: i64,
    /// Who created it: a principal (`user:ID`, or the CLI user), see
    /// [`Actor::principal`].
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The issue revision whose preflight failures an operator overrode.
    pub override_revision: Option<i64>,
    pub override_reason: String,
    pub override_actor: String,
    /// JSON array of the failures the override covers (see
    /// [`CheckOverride::findings`]).
    pub override_findings: String,
    /// Unix ms since when the campaign waits for an unreachable relay;
    /// `None` while the relay answers.
    pub waiting_since_ms: Option<i64>,
    /// The last connection error while waiting for the relay.
    pub waiting_reason: String,
}

impl Campaign {
    pub fn state(&self) -> Result<CampaignState> {
        Ok(CampaignState::parse(&self.state)?)
    }

    /// The override recorded for `revision`, if any.
    pub fn override_for(&self, revision: i64) -> Option<CheckOverride> {
        if self.override_revision != Some(revision) {
            return None;
        }
        Some(CheckOverride {
            revision,
            reason: self.override_reason.clone(),
            findings: serde_json::from_str(&self.override_findings).unwrap_or_default(),
        })
    }
}

/// An operator's decision to send an issue revision despite its preflight
/// failures (`--override-check "REASON"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckOverride {
    pub revision: i64,
    pub reason: String,
    /// The failures it covers, each `rule file:line:column`: a failure
    /// that appears later (a template or the config changed) is not covered.
    pub findings: Vec<String>,
}

/// What [`Store::start_campaign`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// The recipients are frozen and the campaign runs: this many.
    Running(i64),
    /// The campaign was not in a state that can start (someone else started
    /// or cancelled it first).
    NotStartable,
    /// The check refused: nothing was frozen, and the campaign is `blocked`
    /// with this reason.
    Blocked(String),
}

/// Sees every recipient of a starting campaign once, in pages, after they
/// are frozen and before the start commits (see [`Store::start_campaign`]).
pub trait FrozenCheck: Send {
    /// Takes one page of frozen recipients; may wait while earlier pages
    /// are still being checked.
    fn page(&mut self, rows: Vec<Claimed>) -> impl std::future::Future<Output = Result<()>> + Send;
    /// After the last page: `Some(reason)` blocks the campaign.
    fn verdict(&mut self) -> impl std::future::Future<Output = Result<Option<String>>> + Send;
}

/// Recipients per page handed to a [`FrozenCheck`].
pub const FROZEN_PAGE: usize = 2048;

/// What `create_campaign` needs.
#[derive(Debug, Clone)]
pub struct NewCampaign<'a> {
    pub name: &'a str,
    pub issue_number: i64,
    pub segment: &'a str,
    pub from_name: &'a str,
    pub from_address: &'a str,
    pub reply_to: &'a str,
    pub transport: &'a str,
    pub actor: &'a Actor,
}

/// A campaign's schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Everyone at this instant (Unix ms).
    At(i64),
    /// `time` (HH:MM) on `date` in each recipient's own zone; `earliest_ms`
    /// is the first instant any zone reaches it.
    Local {
        date: String,
        time: String,
        earliest_ms: i64,
    },
}

/// One entry of a campaign's state history.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct CampaignEvent {
    pub old_state: Option<String>,
    pub new_state: String,
    pub actor: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

/// Deliveries of a campaign by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub pending: i64,
    pub sending: i64,
    pub retry: i64,
    pub sent: i64,
    pub failed: i64,
    pub skipped: i64,
}

impl Counts {
    pub fn total(&self) -> i64 {
        self.pending + self.sending + self.retry + self.sent + self.failed + self.skipped
    }
    /// Rows that still need a worker.
    pub fn open(&self) -> i64 {
        self.pending + self.sending + self.retry
    }
    pub fn done(&self) -> i64 {
        self.sent + self.failed + self.skipped
    }
}

/// A claimed delivery with what rendering needs.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub contact_id: i64,
    pub email: String,
    pub attempts: i64,
    pub name: String,
    pub title: String,
    pub salutation: String,
    pub org_name: Option<String>,
    pub org_kind: Option<String>,
    pub org_country: Option<String>,
    pub org_city: Option<String>,
    pub org_timezone: Option<String>,
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub delivery_id: i64,
    pub status: DeliveryStatus,
    /// Next due time (Unix ms) for `retry`.
    pub due_ms: Option<i64>,
    /// SMTP reply code and enhanced status, e.g. "550 5.1.1".
    pub code: Option<String>,
    pub reply: String,
    pub message_id: Option<String>,
    pub server: Option<String>,
    /// 1 when the attempt never reached a server (it is not counted).
    pub uncounted: i64,
}

/// A delivery row as listed by `campaigns show`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub contact_id: i64,
    pub email: String,
    pub status: String,
    pub attempts: i64,
    pub due_ms: i64,
    pub server: Option<String>,
    pub last_code: Option<String>,
    pub last_reply: Option<String>,
    pub message_id: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// A recorded bounce event.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct BounceEvent {
    pub id: i64,
    pub contact_id: Option<i64>,
    pub campaign_id: Option<i64>,
    pub email: String,
    pub kind: String,
    pub reason: String,
    pub status: String,
    pub diagnostic: String,
    pub source: String,
    pub created_at: DateTime<Utc>,
}

const CAMPAIGN_SELECT: &str = "SELECT id, name, issue_number, issue_revision, segment, from_name, \
    from_address, reply_to, transport, state, state_reason, schedule_mode, start_ms, local_date, \
    local_time, recipients, created_by, created_at, updated_at, override_revision, \
    override_reason, override_actor, override_findings, waiting_since_ms, waiting_reason \
    FROM campaigns";

/// The fields of a delivery's recipient that rendering needs, from
/// `deliveries d`, `contacts c` and `organisations o`.
const RECIPIENT_FIELDS: &str = "d.id, d.contact_id, d.email, d.attempts, c.name, c.title, \
    c.salutation, o.name AS org_name, o.kind AS org_kind, o.country AS org_country, \
    o.city AS org_city, o.timezone AS org_timezone";

/// Moves campaign `$id` from one of `$from` to `$to` with its event, inside
/// the caller's transaction; evaluates to whether it moved.
///
/// The change itself is one conditional `UPDATE … WHERE state = $old
/// RETURNING`, so of two transactions racing on one campaign only one
/// moves it and writes an event: the other's update finds the state
/// changed and returns no row (on PostgreSQL the read also locks the row,
/// so the loser waits for the winner's commit instead of failing later).
macro_rules! move_state {
    ($tx:expr, $dialect:expr, $id:expr, $from:expr, $to:expr, $actor:expr, $reason:expr, $now:expr) => {{
        let from: &[CampaignState] = $from;
        let list = from
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let lock = match $dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        };
        let old: Option<String> = sqlx::query_scalar(&format!(
            "SELECT state FROM campaigns WHERE id = $1 AND state IN ({list}){lock}"
        ))
        .bind($id)
        .fetch_optional(&mut *$tx)
        .await?;
        let moved = match old {
            None => None,
            Some(old) => sqlx::query_scalar::<_, i64>(
                "UPDATE campaigns SET state = $1, state_reason = $2, updated_at = $3, \
                 waiting_since_ms = NULL, waiting_reason = '' WHERE id = $4 AND state = $5 \
                 RETURNING id",
            )
            .bind($to.as_str())
            .bind($reason)
            .bind($now)
            .bind($id)
            .bind(&old)
            .fetch_optional(&mut *$tx)
            .await?
            .map(|_| old),
        };
        match moved {
            None => false,
            Some(old) => {
                sqlx::query(
                    "INSERT INTO campaign_events (campaign_id, old_state, new_state, actor, reason, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind($id)
                .bind(old)
                .bind($to.as_str())
                .bind($actor)
                .bind($reason)
                .bind($now)
                .execute(&mut *$tx)
                .await?;
                true
            }
        }
    }};
}

impl Store {
    /// Creates a draft campaign and returns its id.
    pub async fn create_campaign(&self, c: &NewCampaign<'_>) -> Result<i64> {
        let now = Utc::now();
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO campaigns (name, issue_number, segment, from_name, from_address, \
                 reply_to, transport, state, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'draft', $8, $9, $9) RETURNING id",
            )
            .bind(c.name).bind(c.issue_number).bind(c.segment).bind(c.from_name)
            .bind(c.from_address).bind(c.reply_to).bind(c.transport).bind(c.actor.principal())
            .bind(now)
            .fetch_one(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO campaign_events (campaign_id, old_state, new_state, actor, reason, \
                 created_at) VALUES ($1, NULL, 'draft', $2, 'created', $3)",
            )
            .bind(id).bind(c.actor.label()).bind(now)
            .execute(&mut *tx).await?;
            record_audit!(&mut *tx, c.actor, "campaign.create", "campaign", id,
                serde_json::json!({"name": c.name, "issue_number": c.issue_number,
                    "segment": c.segment, "from_name": c.from_name, "from_address": c.from_address,
                    "reply_to": c.reply_to, "transport": c.transport}));
            tx.commit().await?;
            Ok(id)
        })
    }

    pub async fn campaign(&self, id: i64) -> Result<Option<Campaign>> {
        let sql = format!("{CAMPAIGN_SELECT} WHERE id = $1");
        Ok(
            on_pool!(self, p => sqlx::query_as::<_, Campaign>(&sql).bind(id).fetch_optional(p).await?),
        )
    }

    /// The campaign, or an error naming the id.
    pub async fn campaign_or_err(&self, id: i64) -> Result<Campaign> {
        self.campaign(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no campaign with id {id}")).into())
    }

    pub async fn campaigns(&self) -> Result<Vec<Campaign>> {
        let sql = format!("{CAMPAIGN_SELECT} ORDER BY id");
        Ok(on_pool!(self, p => sqlx::query_as::<_, Campaign>(&sql).fetch_all(p).await?))
    }

    pub async fn campaign_events(&self, id: i64) -> Result<Vec<CampaignEvent>> {
        let sql = "SELECT old_state, new_state, actor, reason, created_at FROM campaign_events \
                   WHERE campaign_id = $1 ORDER BY id";
        Ok(
            on_pool!(self, p => sqlx::query_as::<_, CampaignEvent>(sql).bind(id).fetch_all(p).await?),
        )
    }

    /// Moves a campaign to `to` if it is in one of `from`; returns whether it
    /// moved (false: it was in another state, e.g. someone else moved it).
    pub async fn move_campaign(
        &self,
        id: i64,
        from: &[CampaignState],
        to: CampaignState,
        actor: &Actor,
        reason: &str,
    ) -> Result<bool> {
        let now = Utc::now();
        let label = actor.label();
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let moved = move_state!(tx, self.dialect(), id, from, to, &label, reason, now);
            if moved {
                record_audit!(&mut *tx, actor, format!("campaign.{}", to.as_str()), "campaign", id,
                    serde_json::json!({"state": to.as_str(), "reason": reason}));
            }
            tx.commit().await?;
            Ok(moved)
        })
    }

    /// Changes a draft, scheduled or blocked campaign's name and segment (a new
    /// segment voids its approval: approvals name the segment they
    /// approved). Returns false when the campaign is in another state.
    pub async fn update_campaign(
        &self,
        id: i64,
        name: Option<&str>,
        segment: Option<&str>,
        actor: &Actor,
    ) -> Result<bool> {
        let Some(before) = self.campaign(id).await? else {
            return Err(StoreError::NotFound(format!("no campaign with id {id}")).into());
        };
        let now = Utc::now();
        let name = name.map(str::trim).unwrap_or(&before.name).to_string();
        let segment = segment
            .map(str::trim)
            .unwrap_or(&before.segment)
            .to_string();
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let n = sqlx::query(
                "UPDATE campaigns SET name = $1, segment = $2, updated_at = $3 WHERE id = $4 \
                 AND state IN ('draft', 'scheduled', 'blocked')",
            )
            .bind(&name).bind(&segment).bind(now).bind(id)
            .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Ok(false);
            }
            let mut changed = serde_json::Map::new();
            if name != before.name {
                changed.insert("name".into(), serde_json::json!([before.name, name]));
            }
            if segment != before.segment {
                changed.insert("segment".into(), serde_json::json!([before.segment, segment]));
            }
            record_audit!(&mut *tx, actor, "campaign.update", "campaign", id,
                serde_json::Value::Object(changed));
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Sets the schedule of a draft, scheduled or blocked campaign and marks
    /// it scheduled.
    pub async fn schedule_campaign(&self, id: i64, s: &Schedule, actor: &Actor) -> Result<bool> {
        let label = actor.label();
        let now = Utc::now();
        let (mode, start, date, time) = match s {
            Schedule::At(ms) => ("at", *ms, None, None),
            Schedule::Local {
                date,
                time,
                earliest_ms,
            } => (
                "local",
                *earliest_ms,
                Some(date.as_str()),
                Some(time.as_str()),
            ),
        };
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let moved = move_state!(
                tx, self.dialect(), id,
                &[CampaignState::Draft, CampaignState::Scheduled, CampaignState::Blocked],
                CampaignState::Scheduled, &label, "scheduled", now
            );
            if moved {
                sqlx::query(
                    "UPDATE campaigns SET schedule_mode = $1, start_ms = $2, local_date = $3, \
                     local_time = $4 WHERE id = $5",
                )
                .bind(mode).bind(start).bind(date).bind(time).bind(id)
                .execute(&mut *tx).await?;
                record_audit!(&mut *tx, actor, "campaign.schedule", "campaign", id,
                    serde_json::json!({"mode": mode, "start_ms": start, "local_date": date,
                                       "local_time": time}));
            }
            tx.commit().await?;
            Ok(moved)
        })
    }

    /// Starts a draft, scheduled or blocked campaign: freezes its recipients
    /// (the active contacts matching the segment) into the queue and moves
    /// it to running, in one transaction. `due` gives each time zone's due
    /// time (Unix ms; the key "" is the default).
    ///
    /// Before the transaction commits, `check` sees every frozen recipient
    /// (streamed in pages of [`FROZEN_PAGE`], with the fields rendering
    /// needs). If its verdict is a reason, the start is rolled back (nothing
    /// was ever claimable, so nobody received anything) and the campaign
    /// becomes `blocked` with that reason. A crash at any point leaves the
    /// campaign as it was.
    pub async fn start_campaign<C: FrozenCheck>(
        &self,
        id: i64,
        revision: i64,
        segment: Option<&Segment>,
        due: &HashMap<String, i64>,
        actor: &Actor,
        check: &mut C,
    ) -> Result<Started> {
        let now = Utc::now();
        let label = actor.label();
        let dialect = self.dialect();
        let default_due = *due
            .get("")
            .ok_or_else(|| anyhow!("start_campaign: no default due time"))?;
        let zones = serde_json::to_string(due)?;
        let filter = segment.map(|s| segment_sql::compile(s, dialect, 5));
        let zone_join = match dialect {
            Dialect::Sqlite => "LEFT JOIN json_each($4) AS z ON z.key = COALESCE(o.timezone, '')",
            Dialect::Postgres => {
                "LEFT JOIN jsonb_each_text($4::text::jsonb) AS z ON z.key = COALESCE(o.timezone, '')"
            }
        };
        let due_expr = match dialect {
            Dialect::Sqlite => "COALESCE(z.value, $2)",
            Dialect::Postgres => "COALESCE(z.value::bigint, $2)",
        };
        let sql = format!(
            "INSERT INTO deliveries (campaign_id, contact_id, email, status, due_ms, updated_at) \
             SELECT $1, c.id, c.email, 'pending', {due_expr}, $3 FROM contacts c \
             LEFT JOIN organisations o ON o.id = c.organisation_id {zone_join} \
             WHERE c.status = 'active' AND ({}) ORDER BY c.id",
            filter.as_ref().map(|f| f.sql.as_str()).unwrap_or("1 = 1")
        );
        let params = filter.map(|f| f.params).unwrap_or_default();
        let frozen_sql = format!(
            "SELECT {RECIPIENT_FIELDS} FROM deliveries d JOIN contacts c ON c.id = d.contact_id \
             LEFT JOIN organisations o ON o.id = c.organisation_id WHERE d.campaign_id = $1"
        );
        let startable = &[
            CampaignState::Draft,
            CampaignState::Scheduled,
            CampaignState::Blocked,
        ];
        let reason: String = on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(dialect)).await?;
            let moved = move_state!(
                tx, self.dialect(), id, startable, CampaignState::Running, &label, "started", now
            );
            if !moved {
                tx.rollback().await?;
                return Ok(Started::NotStartable);
            }
            let q = sqlx::query(&sql).bind(id).bind(default_due).bind(now).bind(&zones);
            let n = bind_params!(q, &params).execute(&mut *tx).await?.rows_affected() as i64;
            sqlx::query("UPDATE campaigns SET recipients = $1, issue_revision = $2 WHERE id = $3")
                .bind(n).bind(revision).bind(id)
                .execute(&mut *tx).await?;
            {
                use futures_util::TryStreamExt as _;
                let mut rows = sqlx::query_as::<_, Claimed>(&frozen_sql).bind(id).fetch(&mut *tx);
                let mut page = Vec::with_capacity(FROZEN_PAGE);
                while let Some(r) = rows.try_next().await? {
                    page.push(r);
                    if page.len() == FROZEN_PAGE {
                        check.page(std::mem::replace(&mut page, Vec::with_capacity(FROZEN_PAGE))).await?;
                    }
                }
                if !page.is_empty() {
                    check.page(page).await?;
                }
            }
            match check.verdict().await? {
                Some(reason) => {
                    tx.rollback().await?;
                    reason
                }
                None => {
                    record_audit!(&mut *tx, actor, "campaign.start", "campaign", id,
                        serde_json::json!({"recipients": n, "issue_revision": revision}));
                    tx.commit().await?;
                    if dialect == Dialect::Postgres {
                        // Thousands of rows just arrived: plan the sending
                        // queries with statistics that know it (ANALYZE
                        // samples at most 30,000 rows whatever the table's
                        // size).
                        sqlx::query("ANALYZE deliveries").execute(p).await?;
                    }
                    return Ok(Started::Running(n));
                }
            }
        });
        let blocked = self
            .move_campaign(id, startable, CampaignState::Blocked, actor, &reason)
            .await?;
        Ok(if blocked {
            Started::Blocked(reason)
        } else {
            Started::NotStartable
        })
    }

    /// Records an operator's override of the preflight for one issue
    /// revision, and a history entry with the reason and the actor.
    pub async fn record_override(&self, id: i64, o: &CheckOverride, actor: &Actor) -> Result<()> {
        let now = Utc::now();
        let label = actor.label();
        let findings = serde_json::to_string(&o.findings)?;
        let note = format!(
            "preflight overridden for issue revision {}: {}{}",
            o.revision,
            o.reason,
            if o.findings.is_empty() {
                String::new()
            } else {
                format!(" (covers: {})", o.findings.join("; "))
            }
        );
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let state: Option<String> = sqlx::query_scalar(
                "UPDATE campaigns SET override_revision = $1, override_reason = $2, \
                 override_actor = $3, override_findings = $4, updated_at = $5 WHERE id = $6 \
                 RETURNING state",
            )
            .bind(o.revision).bind(&o.reason).bind(&label).bind(&findings).bind(now).bind(id)
            .fetch_optional(&mut *tx).await?;
            let Some(state) = state else {
                return Err(StoreError::NotFound(format!("no campaign with id {id}")).into());
            };
            sqlx::query(
                "INSERT INTO campaign_events (campaign_id, old_state, new_state, actor, reason, \
                 created_at) VALUES ($1, $2, $2, $3, $4, $5)",
            )
            .bind(id).bind(&state).bind(&label).bind(&note).bind(now)
            .execute(&mut *tx).await?;
            record_audit!(&mut *tx, actor, "campaign.override_check", "campaign", id,
                serde_json::json!({"issue_revision": o.revision, "reason": o.reason,
                                   "findings": o.findings}));
            tx.commit().await?;
            Ok(())
        })
    }

    /// The distinct time zones of organisations.
    pub async fn organisation_zones(&self) -> Result<Vec<String>> {
        let sql = "SELECT DISTINCT timezone FROM organisations WHERE timezone IS NOT NULL AND timezone <> ''";
        Ok(on_pool!(self, p => sqlx::query_scalar(sql).fetch_all(p).await?))
    }

    /// Scheduled campaigns whose start time has come.
    pub async fn due_campaigns(&self, now_ms: i64) -> Result<Vec<i64>> {
        let sql = "SELECT id FROM campaigns WHERE state = 'scheduled' AND start_ms <= $1 ORDER BY start_ms, id";
        Ok(on_pool!(self, p => sqlx::query_scalar(sql).bind(now_ms).fetch_all(p).await?))
    }

    /// Running campaigns, oldest first.
    pub async fn running_campaigns(&self) -> Result<Vec<i64>> {
        let sql = "SELECT id FROM campaigns WHERE state = 'running' ORDER BY id";
        Ok(on_pool!(self, p => sqlx::query_scalar(sql).fetch_all(p).await?))
    }

    /// Claims up to `limit` due deliveries for `worker` under a lease until
    /// `lease_until_ms`. Other workers' rows whose lease has expired go
    /// back to `retry` first. Deliveries to contacts who are no longer active are marked
    /// `skipped` and not returned.
    pub async fn claim(
        &self,
        campaign: i64,
        worker: &str,
        now_ms: i64,
        lease_until_ms: i64,
        limit: i64,
    ) -> Result<Vec<Claimed>> {
        let now = Utc::now();
        let dialect = self.dialect();
        let lock = match dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
        };
        // One status at a time, so that each claim reads the queue index
        // in its own order and stops at the limit: retries first (they
        // waited longest), then pending rows.
        let claim_sql = |status: &str| {
            format!(
                "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, lease_ms = $1, \
                 worker = $2, updated_at = $3 WHERE id IN (SELECT id FROM deliveries \
                 WHERE campaign_id = $4 AND status = '{status}' AND due_ms <= $5 \
                 ORDER BY due_ms, id LIMIT $6 {lock}) RETURNING id"
            )
        };
        let claim_sql = [claim_sql("retry"), claim_sql("pending")];
        let list = match dialect {
            Dialect::Sqlite => "(SELECT value FROM json_each($1))",
            Dialect::Postgres => "(SELECT jsonb_array_elements_text($1::text::jsonb)::bigint)",
        };
        let select_sql = format!(
            "SELECT {RECIPIENT_FIELDS}, c.status AS contact_status FROM deliveries d \
             JOIN contacts c ON c.id = d.contact_id \
             LEFT JOIN organisations o ON o.id = c.organisation_id WHERE d.id IN {list} ORDER BY d.due_ms, d.id"
        );
        let skip_sql = format!(
            "UPDATE deliveries SET status = 'skipped', lease_ms = NULL, worker = NULL, \
             last_reply = 'not sent: the contact is no longer active', updated_at = $2 \
             WHERE id IN {list}"
        );
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(dialect)).await?;
            // Another worker's expired claims: that worker died (a live one
            // renews its leases). This worker's own are left to it: it
            // renews them once the database answers again, or puts them
            // back at the start of its next run.
            sqlx::query(
                "UPDATE deliveries SET status = 'retry', lease_ms = NULL, worker = NULL, \
                 updated_at = $3 WHERE campaign_id = $1 AND status = 'sending' AND lease_ms < $2 \
                 AND worker <> $4",
            )
            .bind(campaign).bind(now_ms).bind(now).bind(worker)
            .execute(&mut *tx).await?;
            let mut ids: Vec<i64> = Vec::new();
            for sql in &claim_sql {
                let left = limit - ids.len() as i64;
                if left <= 0 {
                    break;
                }
                let got: Vec<i64> = sqlx::query_scalar(sql)
                    .bind(lease_until_ms).bind(worker).bind(now).bind(campaign).bind(now_ms).bind(left)
                    .fetch_all(&mut *tx).await?;
                ids.extend(got);
            }
            if ids.is_empty() {
                tx.commit().await?;
                return Ok(Vec::new());
            }
            let ids_json = serde_json::to_string(&ids)?;
            let rows: Vec<(Claimed, String)> = {
                use sqlx::Row;
                let raw = sqlx::query(&select_sql).bind(&ids_json).fetch_all(&mut *tx).await?;
                let mut out = Vec::with_capacity(raw.len());
                for r in raw {
                    let claimed = Claimed {
                        id: r.try_get("id")?,
                        contact_id: r.try_get("contact_id")?,
                        email: r.try_get("email")?,
                        attempts: r.try_get("attempts")?,
                        name: r.try_get("name")?,
                        title: r.try_get("title")?,
                        salutation: r.try_get("salutation")?,
                        org_name: r.try_get("org_name")?,
                        org_kind: r.try_get("org_kind")?,
                        org_country: r.try_get("org_country")?,
                        org_city: r.try_get("org_city")?,
                        org_timezone: r.try_get("org_timezone")?,
                    };
                    out.push((claimed, r.try_get::<String, _>("contact_status")?));
                }
                out
            };
            let inactive: Vec<i64> = rows.iter().filter(|(_, s)| s != "active").map(|(c, _)| c.id).collect();
            if !inactive.is_empty() {
                sqlx::query(&skip_sql)
                    .bind(serde_json::to_string(&inactive)?).bind(now)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(rows.into_iter().filter(|(_, s)| s == "active").map(|(c, _)| c).collect())
        })
    }

    /// Records the outcomes of a batch in one transaction. Only rows still
    /// held by `worker` change; returns how many did.
    ///
    /// SQLite gets the outcomes as bound rows of a `VALUES` list: reading
    /// each field out of a JSON document costs more than the update itself.
    /// PostgreSQL gets one array per field.
    pub async fn complete(&self, worker: &str, outcomes: &[Outcome]) -> Result<u64> {
        if outcomes.is_empty() {
            return Ok(0);
        }
        let now = Utc::now();
        match self {
            Store::Sqlite(p) => {
                let mut tx = p.begin_with(begin_write(Dialect::Sqlite)).await?;
                let mut n = 0;
                for chunk in outcomes.chunks(COMPLETE_ROWS_PER_STATEMENT) {
                    let sql = sqlite_complete_sql(chunk.len());
                    let mut q = sqlx::query(&sql);
                    for o in chunk {
                        q = q
                            .bind(o.delivery_id)
                            .bind(o.status.as_str())
                            .bind(o.due_ms)
                            .bind(o.code.as_deref())
                            .bind(o.reply.as_str())
                            .bind(o.message_id.as_deref())
                            .bind(o.server.as_deref())
                            .bind(o.uncounted);
                    }
                    n += q
                        .bind(now)
                        .bind(now)
                        .bind(worker)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                Ok(n)
            }
            Store::Postgres(p) => {
                // One array per field, bound in binary. The worker and the
                // status a row must still have come from the arrays too, as
                // join conditions: statistics say (rightly, as a rule) that
                // hardly any row is `sending` for a given worker, and with
                // those as plain filters the planner scans every held row
                // once per outcome instead of looking each outcome's row up
                // by primary key.
                let sql = "UPDATE deliveries AS d SET status = x.s, due_ms = COALESCE(x.d, d.due_ms), \
                     last_code = x.c, last_reply = x.r, message_id = COALESCE(x.m, d.message_id), \
                     server = COALESCE(x.v, d.server), \
                     sent_at = CASE WHEN x.s = 'sent' THEN $9 ELSE d.sent_at END, \
                     attempts = d.attempts - x.u, lease_ms = NULL, worker = NULL, updated_at = $9 \
                     FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], \
                     $6::text[], $7::text[], $8::bigint[], array_fill($10::text, ARRAY[cardinality($1)]), \
                     array_fill('sending'::text, ARRAY[cardinality($1)])) \
                     AS x(id, s, d, c, r, m, v, u, held_by, held) \
                     WHERE d.id = x.id AND d.worker = x.held_by AND d.status = x.held";
                let ids: Vec<i64> = outcomes.iter().map(|o| o.delivery_id).collect();
                let statuses: Vec<&str> = outcomes.iter().map(|o| o.status.as_str()).collect();
                let dues: Vec<Option<i64>> = outcomes.iter().map(|o| o.due_ms).collect();
                let codes: Vec<Option<&str>> = outcomes.iter().map(|o| o.code.as_deref()).collect();
                let replies: Vec<&str> = outcomes.iter().map(|o| o.reply.as_str()).collect();
                let mids: Vec<Option<&str>> =
                    outcomes.iter().map(|o| o.message_id.as_deref()).collect();
                let servers: Vec<Option<&str>> =
                    outcomes.iter().map(|o| o.server.as_deref()).collect();
                let uncounted: Vec<i64> = outcomes.iter().map(|o| o.uncounted).collect();
                let mut tx = p.begin_with(begin_write(Dialect::Postgres)).await?;
                let n = sqlx::query(sql)
                    .bind(&ids)
                    .bind(&statuses)
                    .bind(&dues)
                    .bind(&codes)
                    .bind(&replies)
                    .bind(&mids)
                    .bind(&servers)
                    .bind(&uncounted)
                    .bind(now)
                    .bind(worker)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(n)
            }
        }
    }

    /// Gives back rows this worker claimed but did not attempt (e.g. on
    /// pause or shutdown), without counting an attempt.
    pub async fn release(&self, worker: &str, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let list = match self.dialect() {
            Dialect::Sqlite => "(SELECT value FROM json_each($1))",
            Dialect::Postgres => "(SELECT jsonb_array_elements_text($1::text::jsonb)::bigint)",
        };
        let sql = format!(
            "UPDATE deliveries SET status = CASE WHEN attempts > 1 THEN 'retry' ELSE 'pending' END, \
             attempts = attempts - 1, lease_ms = NULL, worker = NULL, updated_at = $2 \
             WHERE id IN {list} AND worker = $3 AND status = 'sending'"
        );
        let doc = serde_json::to_string(ids)?;
        on_pool!(self, p => {
            sqlx::query(&sql).bind(&doc).bind(Utc::now()).bind(worker).execute(p).await?;
        });
        Ok(())
    }

    /// Renews the lease of the rows `worker` holds among `ids` until
    /// `lease_until_ms`; returns the ids it still holds (a row missing from
    /// the answer was taken over after its lease expired, or finished).
    pub async fn renew_claims(
        &self,
        worker: &str,
        ids: &[i64],
        lease_until_ms: i64,
    ) -> Result<Vec<i64>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = match self.dialect() {
            Dialect::Sqlite => "(SELECT value FROM json_each($1))",
            Dialect::Postgres => "(SELECT jsonb_array_elements_text($1::text::jsonb)::bigint)",
        };
        let sql = format!(
            "UPDATE deliveries SET lease_ms = $2 WHERE id IN {list} AND worker = $3 \
             AND status = 'sending' RETURNING id"
        );
        let doc = serde_json::to_string(ids)?;
        Ok(on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let held: Vec<i64> = sqlx::query_scalar(&sql)
                .bind(&doc).bind(lease_until_ms).bind(worker)
                .fetch_all(&mut *tx).await?;
            tx.commit().await?;
            held
        }))
    }

    /// Puts back the rows of `campaign` that `worker` left claimed in an
    /// earlier run of its own that ended without recording them (an error
    /// while they were in flight): they become `retry` at once, keeping
    /// their attempt (they may have been sent), instead of waiting for
    /// their lease. Returns how many.
    pub async fn reclaim_own(&self, campaign: i64, worker: &str) -> Result<u64> {
        let sql = "UPDATE deliveries SET status = 'retry', lease_ms = NULL, worker = NULL, \
                   updated_at = $1 WHERE campaign_id = $2 AND status = 'sending' AND worker = $3";
        Ok(on_pool!(self, p => sqlx::query(sql)
            .bind(Utc::now()).bind(campaign).bind(worker)
            .execute(p).await?.rows_affected()))
    }

    /// Notes that campaign `id` waits for an unreachable relay: the first
    /// call sets since when, later ones only the reason. Returns since when
    /// it waits (Unix ms), or `None` if the campaign is not running.
    pub async fn set_waiting(&self, id: i64, now_ms: i64, reason: &str) -> Result<Option<i64>> {
        let sql = "UPDATE campaigns SET waiting_since_ms = COALESCE(waiting_since_ms, $1), \
                   waiting_reason = $2 WHERE id = $3 AND state = 'running' RETURNING waiting_since_ms";
        Ok(
            on_pool!(self, p => sqlx::query_scalar::<_, Option<i64>>(sql)
            .bind(now_ms).bind(reason).bind(id)
            .fetch_optional(p).await?.flatten()),
        )
    }

    /// Notes that the relay answers again: campaign `id` no longer waits.
    /// Returns whether it was waiting.
    pub async fn clear_waiting(&self, id: i64) -> Result<bool> {
        let sql = "UPDATE campaigns SET waiting_since_ms = NULL, waiting_reason = '' \
                   WHERE id = $1 AND waiting_since_ms IS NOT NULL";
        Ok(on_pool!(self, p => sqlx::query(sql).bind(id).execute(p).await?.rows_affected()) > 0)
    }

    /// Reserves up to `want` sends against `server`'s limit of `per_second`
    /// messages in the one-second window (whole seconds of Unix time)
    /// containing `now_ms`, for every worker together. Returns how many
    /// were granted (0 once the window is used up) and when the window
    /// ends (Unix ms): a grant must be used before then.
    pub async fn reserve_rate(
        &self,
        server: &str,
        now_ms: i64,
        per_second: i64,
        want: i64,
    ) -> Result<(i64, i64)> {
        let start = now_ms - now_ms.rem_euclid(1000);
        let lock = match self.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        };
        let select = format!("SELECT window_start, used FROM send_rate WHERE server = $1{lock}");
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            sqlx::query(
                "INSERT INTO send_rate (server, window_start, used) VALUES ($1, $2, 0) \
                 ON CONFLICT (server) DO NOTHING",
            )
            .bind(server).bind(start)
            .execute(&mut *tx).await?;
            let (window, used): (i64, i64) =
                sqlx::query_as(&select).bind(server).fetch_one(&mut *tx).await?;
            // A window in the past starts over; a later one (another
            // host's clock runs ahead) is used as it is.
            let (window, used) = if window < start { (start, 0) } else { (window, used) };
            let granted = want.min(per_second - used).max(0);
            sqlx::query("UPDATE send_rate SET window_start = $1, used = $2 WHERE server = $3")
                .bind(window).bind(used + granted).bind(server)
                .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok((granted, window + 1000))
        })
    }

    /// Deliveries of a campaign by status.
    pub async fn delivery_counts(&self, campaign: i64) -> Result<Counts> {
        let sql = "SELECT status, COUNT(*) FROM deliveries WHERE campaign_id = $1 GROUP BY status";
        let rows: Vec<(String, i64)> =
            on_pool!(self, p => sqlx::query_as(sql).bind(campaign).fetch_all(p).await?);
        let mut c = Counts::default();
        for (status, n) in rows {
            match DeliveryStatus::parse(&status)? {
                DeliveryStatus::Pending => c.pending = n,
                DeliveryStatus::Sending => c.sending = n,
                DeliveryStatus::Retry => c.retry = n,
                DeliveryStatus::Sent => c.sent = n,
                DeliveryStatus::Failed => c.failed = n,
                DeliveryStatus::Skipped => c.skipped = n,
            }
        }
        Ok(c)
    }

    /// The earliest time (Unix ms) a row of the campaign becomes claimable:
    /// a due time or a lease expiry. `None` when nothing is open.
    pub async fn next_due(&self, campaign: i64) -> Result<Option<i64>> {
        let sql = "SELECT MIN(CASE WHEN status = 'sending' THEN lease_ms ELSE due_ms END) FROM deliveries \
                   WHERE campaign_id = $1 AND status IN ('pending', 'retry', 'sending')";
        Ok(
            on_pool!(self, p => sqlx::query_scalar::<_, Option<i64>>(sql).bind(campaign).fetch_one(p).await?),
        )
    }

    /// Moves a running campaign to finished when no delivery is open.
    pub async fn finish_if_done(&self, campaign: i64, actor: &str) -> Result<bool> {
        let now = Utc::now();
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let open: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM deliveries WHERE campaign_id = $1 \
                 AND status IN ('pending', 'retry', 'sending')",
            )
            .bind(campaign).fetch_one(&mut *tx).await?;
            let moved = open == 0 && move_state!(tx, self.dialect(), campaign, &[CampaignState::Running], CampaignState::Finished,
                actor, "every recipient done", now
            );
            tx.commit().await?;
            Ok(moved)
        })
    }

    /// Queues a campaign's failed deliveries again, due now, and reopens a
    /// finished campaign. Returns how many were queued.
    pub async fn retry_failed(&self, campaign: i64, actor: &Actor) -> Result<u64> {
        let now = Utc::now();
        let label = actor.label();
        let now_ms = now.timestamp_millis();
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let state: Option<String> = sqlx::query_scalar("SELECT state FROM campaigns WHERE id = $1")
                .bind(campaign).fetch_optional(&mut *tx).await?;
            let Some(state) = state else {
                return Err(StoreError::NotFound(format!("no campaign with id {campaign}")).into());
            };
            if matches!(state.as_str(), "cancelled" | "draft" | "scheduled" | "blocked") {
                return Err(StoreError::Conflict(format!(
                    "campaign {campaign} is {state}; only a started campaign's failures can be retried"
                )).into());
            }
            let n = sqlx::query(
                "UPDATE deliveries SET status = 'retry', attempts = 0, due_ms = $1, updated_at = $2 \
                 WHERE campaign_id = $3 AND status = 'failed'",
            )
            .bind(now_ms).bind(now).bind(campaign)
            .execute(&mut *tx).await?.rows_affected();
            if n > 0 && state == "finished" {
                move_state!(
                    tx, self.dialect(), campaign, &[CampaignState::Finished], CampaignState::Running,
                    &label, &format!("retrying {n} failed"), now
                );
            }
            if n > 0 {
                record_audit!(&mut *tx, actor, "campaign.retry_failed", "campaign", campaign,
                    serde_json::json!({"queued": n}));
            }
            tx.commit().await?;
            Ok(n)
        })
    }

    /// A campaign's deliveries, optionally of one status, by id.
    pub async fn deliveries(
        &self,
        campaign: i64,
        status: Option<DeliveryStatus>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>> {
        let sql = "SELECT id, contact_id, email, status, attempts, due_ms, server, last_code, last_reply, \
                   message_id, sent_at FROM deliveries WHERE campaign_id = $1 \
                   AND ($2 = '' OR status = $2) ORDER BY id LIMIT $3";
        let s = status.map(|s| s.as_str()).unwrap_or("");
        Ok(on_pool!(self, p => sqlx::query_as::<_, DeliveryRow>(sql)
            .bind(campaign).bind(s).bind(limit).fetch_all(p).await?))
    }

    /// Bounce events, newest first.
    pub async fn bounce_events(
        &self,
        campaign: Option<i64>,
        limit: i64,
    ) -> Result<Vec<BounceEvent>> {
        let sql = "SELECT id, contact_id, campaign_id, email, kind, reason, status, diagnostic, source, \
                   created_at FROM bounce_events WHERE ($1 = 0 OR campaign_id = $1) ORDER BY id DESC LIMIT $2";
        Ok(on_pool!(self, p => sqlx::query_as::<_, BounceEvent>(sql)
            .bind(campaign.unwrap_or(0)).bind(limit).fetch_all(p).await?))
    }

    /// Reserves up to `want` sends against `server`'s hourly and daily
    /// ceilings (0 = no ceiling) in the fixed UTC windows containing
    /// `now_ms`; returns how many were granted. Shared by every worker on the
    /// database: the reservation is one write transaction.
    pub async fn reserve_sends(
        &self,
        server: &str,
        now_ms: i64,
        want: i64,
        per_hour: i64,
        per_day: i64,
    ) -> Result<i64> {
        let windows: Vec<(&str, i64, i64)> = [
            ("hour", 3_600_000i64, per_hour),
            ("day", 86_400_000i64, per_day),
        ]
        .into_iter()
        .filter(|(_, _, limit)| *limit > 0)
        .map(|(period, len, limit)| (period, now_ms - now_ms.rem_euclid(len), limit))
        .collect();
        if windows.is_empty() {
            return Ok(want);
        }
        let lock = match self.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        };
        let select = format!(
            "SELECT used FROM send_windows WHERE server = $1 AND period = $2 AND window_start = $3{lock}"
        );
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let mut granted = want;
            for (period, start, limit) in &windows {
                sqlx::query(
                    "INSERT INTO send_windows (server, period, window_start, used) \
                     VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
                )
                .bind(server).bind(*period).bind(*start)
                .execute(&mut *tx).await?;
                let used: i64 = sqlx::query_scalar(&select)
                    .bind(server).bind(*period).bind(*start)
                    .fetch_one(&mut *tx).await?;
                granted = granted.min((limit - used).max(0));
            }
            if granted > 0 {
                for (period, start, _) in &windows {
                    sqlx::query(
                        "UPDATE send_windows SET used = used + $1 WHERE server = $2 AND period = $3 \
                         AND window_start = $4",
                    )
                    .bind(granted).bind(server).bind(*period).bind(*start)
                    .execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(granted)
        })
    }

    /// Sends already reserved in the current windows (for status displays).
    pub async fn sends_used(&self, server: &str, period: &str, window_start: i64) -> Result<i64> {
        let sql =
            "SELECT COALESCE(MAX(used), 0) FROM send_windows WHERE server = $1 AND period = $2 \
                   AND window_start = $3";
        Ok(on_pool!(self, p => sqlx::query_scalar(sql)
            .bind(server).bind(period).bind(window_start).fetch_one(p).await?))
    }
}

/// Outcomes per SQLite `UPDATE` in [`Store::complete`]: 8 parameters each,
/// well under SQLite's limit of 32,766 parameters per statement.
const COMPLETE_ROWS_PER_STATEMENT: usize = 500;

/// The SQLite statement that records `rows` outcomes, bound as 8 values
/// per outcome (id, status, due, code, reply, Message-ID, server,
/// uncounted), then the time (twice) and the worker.
fn sqlite_complete_sql(rows: usize) -> String {
    let values = super::sqlite_values(rows, 8);
    format!(
        "WITH j(id, s, d, c, r, m, v, u) AS (VALUES {values}) \
         UPDATE deliveries SET status = j.s, due_ms = COALESCE(j.d, due_ms), last_code = j.c, \
         last_reply = j.r, message_id = COALESCE(j.m, message_id), server = COALESCE(j.v, server), \
         sent_at = CASE WHEN j.s = 'sent' THEN ? ELSE sent_at END, \
         attempts = attempts - j.u, lease_ms = NULL, worker = NULL, updated_at = ? \
         FROM j WHERE deliveries.id = j.id AND deliveries.worker = ? \
         AND deliveries.status = 'sending'"
    )
}
