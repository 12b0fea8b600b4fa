//! Two-person approval of campaigns: requests and approvals, each for one
//! issue revision and one segment. The rule (who may approve, and whether a
//! campaign's approval still holds) lives in `app::approval`; this module
//! stores the events with their audit entries.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::audit::record_audit;
use super::campaigns::Campaign;
use super::{begin_write, Store};
use crate::domain::approval::{self, Approval, ApprovalStatus};
use crate::domain::Actor;

/// A request for approval, or an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalKind {
    Request,
    Approval,
}

impl ApprovalKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ApprovalKind::Request => "request",
            ApprovalKind::Approval => "approval",
        }
    }
}

/// One request or approval as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ApprovalRow {
    pub id: i64,
    pub campaign_id: i64,
    pub kind: String,
    pub issue_revision: i64,
    pub segment: String,
    pub actor: String,
    pub principal: String,
    pub note: String,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Records a request or an approval of `campaign_id` for `revision` and
    /// `segment`, with its audit entry, in one transaction.
    pub async fn record_approval(
        &self,
        campaign_id: i64,
        kind: ApprovalKind,
        revision: i64,
        segment: &str,
        note: &str,
        actor: &Actor,
    ) -> Result<ApprovalRow> {
        let now = Utc::now();
        let action = match kind {
            ApprovalKind::Request => "campaign.request_approval",
            ApprovalKind::Approval => "campaign.approve",
        };
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let row: ApprovalRow = sqlx::query_as(
                "INSERT INTO campaign_approvals (campaign_id, kind, issue_revision, segment, actor, \
                 principal, note, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 RETURNING id, campaign_id, kind, issue_revision, segment, actor, principal, note, created_at",
            )
            .bind(campaign_id).bind(kind.as_str()).bind(revision).bind(segment)
            .bind(actor.label()).bind(actor.principal()).bind(note).bind(now)
            .fetch_one(&mut *tx).await?;
            record_audit!(&mut *tx, actor, action, "campaign", campaign_id,
                serde_json::json!({"issue_revision": revision, "segment": segment, "note": note}));
            tx.commit().await?;
            Ok(row)
        })
    }

    /// A campaign's requests and approvals, oldest first.
    pub async fn approvals(&self, campaign_id: i64) -> Result<Vec<ApprovalRow>> {
        let sql = "SELECT id, campaign_id, kind, issue_revision, segment, actor, principal, note, \
                   created_at FROM campaign_approvals WHERE campaign_id = $1 ORDER BY id";
        Ok(on_pool!(self, p => sqlx::query_as::<_, ApprovalRow>(sql)
            .bind(campaign_id).fetch_all(p).await?))
    }

    /// Whether `campaign` may start as far as approval goes: its approvals
    /// compared with the issue's latest revision and the campaign's segment
    /// (`required` is `newsletter.require_approval`). Also returns the
    /// latest revision.
    pub async fn approval_status(
        &self,
        campaign: &Campaign,
        required: bool,
    ) -> Result<(ApprovalStatus, i64)> {
        let number = u32::try_from(campaign.issue_number)?;
        let revision = self.issue_revision(number, None).await?.revision;
        let approvals: Vec<Approval> = self
            .approvals(campaign.id)
            .await?
            .into_iter()
            .filter(|a| a.kind == ApprovalKind::Approval.as_str())
            .map(|a| Approval {
                revision: a.issue_revision,
                segment: a.segment,
                actor: a.actor,
            })
            .collect();
        Ok((
            approval::status(required, revision, &campaign.segment, &approvals),
            revision,
        ))
    }
}
