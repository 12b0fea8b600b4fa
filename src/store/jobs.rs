//! Jobs: the long work the API answers with 202 (imports and sends), with
//! their state, progress, result and error, polled or streamed by clients.
//!
//! An import job's row is written by the task running it. A send job
//! follows a campaign: its progress is the campaign's delivery counts,
//! refreshed when the job is read (the worker may be another process).

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use super::audit::record_audit;
use super::{begin_write, Store};
use crate::domain::Actor;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Import,
    Send,
}

impl JobKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobKind::Import => "import",
            JobKind::Send => "send",
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job is over (nothing will change any more).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    pub fn parse(s: &str) -> Option<JobState> {
        [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
        ]
        .into_iter()
        .find(|j| j.as_str() == s)
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub state: String,
    pub campaign_id: Option<i64>,
    pub progress_done: i64,
    pub progress_total: Option<i64>,
    pub result: Json<serde_json::Value>,
    pub error: String,
    pub actor: String,
    pub user_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Job {
    pub fn state(&self) -> JobState {
        JobState::parse(&self.state).unwrap_or(JobState::Failed)
    }
}

const JOB_SELECT: &str = "SELECT id, kind, state, campaign_id, progress_done, progress_total, \
     result, error, actor, user_id, created_at, updated_at, finished_at FROM jobs";

impl Store {
    /// Creates a job in state `state`, with its audit entry (`details` say
    /// what it will do).
    pub async fn create_job(
        &self,
        kind: JobKind,
        state: JobState,
        campaign_id: Option<i64>,
        actor: &Actor,
        details: serde_json::Value,
    ) -> Result<i64> {
        let now = Utc::now();
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO jobs (kind, state, campaign_id, actor, user_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
            )
            .bind(kind.as_str()).bind(state.as_str()).bind(campaign_id).bind(actor.label())
            .bind(actor.account().map(|a| a.id)).bind(now)
            .fetch_one(&mut *tx).await?;
            record_audit!(&mut *tx, actor, format!("{}.start", kind.as_str()), "job", id, details);
            tx.commit().await?;
            Ok(id)
        })
    }

    pub async fn job(&self, id: i64) -> Result<Option<Job>> {
        let sql = format!("{JOB_SELECT} WHERE id = $1");
        Ok(on_pool!(self, p => sqlx::query_as::<_, Job>(&sql).bind(id).fetch_optional(p).await?))
    }

    /// Jobs, newest first; `before` (an id) pages.
    pub async fn list_jobs(&self, before: Option<i64>, limit: i64) -> Result<Vec<Job>> {
        let sql = format!("{JOB_SELECT} WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2");
        Ok(on_pool!(self, p => sqlx::query_as::<_, Job>(&sql)
            .bind(before).bind(limit.clamp(1, 1000)).fetch_all(p).await?))
    }

    /// The latest send job of a campaign.
    pub async fn send_job_of(&self, campaign_id: i64) -> Result<Option<Job>> {
        let sql = format!(
            "{JOB_SELECT} WHERE kind = 'send' AND campaign_id = $1 ORDER BY id DESC LIMIT 1"
        );
        Ok(on_pool!(self, p => sqlx::query_as::<_, Job>(&sql)
            .bind(campaign_id).fetch_optional(p).await?))
    }

    /// Sets a running job's progress and state (a job already over is not
    /// changed).
    pub async fn update_job(
        &self,
        id: i64,
        state: JobState,
        done: i64,
        total: Option<i64>,
    ) -> Result<()> {
        on_pool!(self, p => {
            sqlx::query(
                "UPDATE jobs SET state = $1, progress_done = $2, progress_total = $3, updated_at = $4 \
                 WHERE id = $5 AND state IN ('queued', 'running')",
            )
            .bind(state.as_str()).bind(done).bind(total).bind(Utc::now()).bind(id)
            .execute(p).await?;
        });
        Ok(())
    }

    /// Ends a job with its result or error. Returns false when it was over
    /// already.
    pub async fn finish_job(
        &self,
        id: i64,
        state: JobState,
        result: &serde_json::Value,
        error: &str,
    ) -> Result<bool> {
        let now = Utc::now();
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE jobs SET state = $1, result = $2, error = $3, updated_at = $4, finished_at = $4 \
             WHERE id = $5 AND state IN ('queued', 'running')",
        )
        .bind(state.as_str()).bind(Json(result)).bind(error).bind(now).bind(id)
        .execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Marks import jobs whose process stopped as failed: those still
    /// queued or running whose row has not changed since `stale_before`
    /// (a running import notes its progress every half second). Send jobs
    /// follow their campaign and are left alone. Returns how many.
    pub async fn fail_orphaned_jobs(
        &self,
        reason: &str,
        stale_before: DateTime<Utc>,
    ) -> Result<u64> {
        let now = Utc::now();
        Ok(on_pool!(self, p => sqlx::query(
            "UPDATE jobs SET state = 'failed', error = $1, updated_at = $2, finished_at = $2 \
             WHERE kind = 'import' AND state IN ('queued', 'running') AND updated_at < $3",
        )
        .bind(reason).bind(now).bind(stale_before).execute(p).await?.rows_affected()))
    }
}
