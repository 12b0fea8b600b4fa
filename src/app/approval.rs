//! Requesting and giving a campaign's approval (the two-person rule of
//! `domain::approval`), for the CLI, the API and the admin pages alike.
//! An approval passes the send gate's preflight first: nobody approves an
//! issue revision that could not be sent (an override recorded for that
//! revision counts).

use serde::Serialize;

use super::error::AppError;
use crate::config::Config;
use crate::domain::approval::{check_approver, ApprovalStatus};
use crate::domain::{Action, Actor, CampaignState};
use crate::send::gate;
use crate::store::approvals::{ApprovalKind, ApprovalRow};
use crate::store::campaigns::Campaign;
use crate::store::Store;

/// A campaign's approval state and history.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalView {
    pub status: ApprovalStatus,
    /// The issue revision that would be sent now.
    pub revision: i64,
    pub history: Vec<ApprovalRow>,
}

/// The approval state of a campaign.
pub async fn view(store: &Store, config: &Config, c: &Campaign) -> Result<ApprovalView, AppError> {
    let (status, revision) = store
        .approval_status(c, config.newsletter.require_approval)
        .await?;
    Ok(ApprovalView {
        status,
        revision,
        history: store.approvals(c.id).await?,
    })
}

async fn pending_campaign(store: &Store, id: i64) -> Result<Campaign, AppError> {
    let c = store.campaign_or_err(id).await?;
    let state = c.state()?;
    if !matches!(
        state,
        CampaignState::Draft | CampaignState::Scheduled | CampaignState::Blocked
    ) {
        return Err(AppError::Conflict(format!(
            "campaign {id} is {state}; only a draft, scheduled or blocked campaign needs approval"
        )));
    }
    Ok(c)
}

/// Asks for approval of what the campaign would send now.
pub async fn request(
    store: &Store,
    config: &Config,
    actor: &Actor,
    id: i64,
    note: &str,
) -> Result<ApprovalView, AppError> {
    if !actor.may(Action::CampaignsRequestApproval) {
        return Err(AppError::Forbidden(format!(
            "{} may not ask for a campaign's approval",
            actor.label()
        )));
    }
    record(store, config, actor, id, note, ApprovalKind::Request).await
}

/// Approves what the campaign would send now: the issue's latest revision
/// and the campaign's segment. The approver must be an operator or admin
/// who neither created the campaign nor wrote that revision.
pub async fn approve(
    store: &Store,
    config: &Config,
    actor: &Actor,
    id: i64,
    note: &str,
) -> Result<ApprovalView, AppError> {
    record(store, config, actor, id, note, ApprovalKind::Approval).await
}

/// Records a request or an approval of the campaign's current revision
/// and segment (an approval after the two-person check).
async fn record(
    store: &Store,
    config: &Config,
    actor: &Actor,
    id: i64,
    note: &str,
    kind: ApprovalKind,
) -> Result<ApprovalView, AppError> {
    let c = pending_campaign(store, id).await?;
    let number = u32::try_from(c.issue_number).map_err(anyhow::Error::from)?;
    let rev = store.issue_revision(number, None).await?;
    if kind == ApprovalKind::Approval {
        check_approver(actor, &c.created_by, &rev.author, rev.revision)?;
        let (_, refusal) = gate::check_campaign(store, config, &c, actor, None).await?;
        if let Some(r) = refusal {
            return Err(AppError::Refused(r));
        }
    }
    store
        .record_approval(id, kind, rev.revision, &c.segment, note, actor)
        .await?;
    view(store, config, &c).await
}

/// Whether `actor` may approve the campaign as it is now, and if not, why
/// (for a page that offers the button): the same two-person check an
/// approval runs, without recording anything.
pub async fn may_approve(
    store: &Store,
    actor: &Actor,
    c: &Campaign,
) -> Result<Result<(), String>, AppError> {
    let number = u32::try_from(c.issue_number).map_err(anyhow::Error::from)?;
    let rev = store.issue_revision(number, None).await?;
    Ok(check_approver(actor, &c.created_by, &rev.author, rev.revision).map_err(|e| e.to_string()))
}
