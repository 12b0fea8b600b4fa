//! The campaigns pages: the list; a new campaign (issue, segment with its
//! live count and sample, transport); a campaign's page with its state,
//! approval (request, and approve by a second person, named), schedule
//! (a time in the newsletter's zone, or each recipient's local time, with
//! the per-zone timeline), start, pause, resume, cancel and retry-failed,
//! live progress (`/api/v1/campaigns/{id}/events` read by
//! `assets/admin/progress.js`; the numbers are in the page without it),
//! the failures with the server's reply, and the history.
//!
//! Every action is the app layer's (`app::campaign_actions`,
//! `app::approval`), the same function `POST /api/v1/campaigns/…` calls.
//!
//! - `GET /admin/campaigns`, `GET /admin/campaigns/new`, `POST /admin/campaigns`
//! - `POST /admin/campaigns/segment` (htmx: the count, sample or error)
//! - `GET /admin/campaigns/{id}`
//! - `POST /admin/campaigns/{id}/{request-approval|approve|schedule|start|pause|resume|cancel|retry-failed}`

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::{context, Value};
use serde::Deserialize;

use super::contacts::field_errors;
use super::{redirect_with, AdminError, AdminResult, AdminShared, Flash, NavItem, Page};
use crate::app::campaign_actions::{
    self as actions, Control, CreateCampaign, ScheduleAt, ScheduleCampaign,
};
use crate::app::timeline;
use crate::app::{approval, progress, segments, AppError};
use crate::domain::{Action, CampaignState, DeliveryStatus};
use crate::store::campaigns::Campaign;

pub const NAV: &[NavItem] = &[NavItem {
    href: "/admin/campaigns",
    label: "Campaigns",
    action: Action::CampaignsRead,
    order: 30,
    summary: "Create, approve, schedule and send campaigns, and watch them go out.",
}];

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "admin/campaigns.html",
        include_str!("../../../templates/admin/campaigns.html"),
    ),
    (
        "admin/campaigns_new.html",
        include_str!("../../../templates/admin/campaigns_new.html"),
    ),
    (
        "admin/campaigns_show.html",
        include_str!("../../../templates/admin/campaigns_show.html"),
    ),
    (
        "admin/campaigns_segment.html",
        include_str!("../../../templates/admin/campaigns_segment.html"),
    ),
];

/// Failures shown on a campaign's page (all are in the API).
const FAILURES_SHOWN: i64 = 200;

pub fn routes() -> Router<AdminShared> {
    Router::new()
        .route("/admin/campaigns", get(list).post(create))
        .route("/admin/campaigns/new", get(new_form))
        .route("/admin/campaigns/segment", post(segment_preview))
        .route("/admin/campaigns/{id}", get(show))
        .route("/admin/campaigns/{id}/{action}", post(act))
}

fn path_of(id: i64) -> String {
    format!("/admin/campaigns/{id}")
}

/// A refusal shown on the next page.
fn error_flash(text: impl Into<String>) -> Flash {
    Flash {
        kind: "error".into(),
        text: text.into(),
    }
}

/// The word and badge class of a campaign state.
fn state_badge(state: &str) -> &'static str {
    match state {
        "running" | "finished" => "badge-ok",
        "scheduled" | "paused" | "blocked" => "badge-warn",
        "cancelled" => "badge-error",
        _ => "",
    }
}

async fn list(State(s): State<AdminShared>, page: Page) -> AdminResult {
    page.require(Action::CampaignsRead)?;
    let store = s.store();
    let mut rows = Vec::new();
    for c in store.campaigns().await?.iter().rev() {
        let counts = store.delivery_counts(c.id).await?;
        let approval = if matches!(c.state.as_str(), "draft" | "scheduled") {
            let (status, _) = store
                .approval_status(c, s.config().newsletter.require_approval)
                .await?;
            Some(status)
        } else {
            None
        };
        rows.push(context! {
            campaign => Value::from_serialize(c),
            badge => state_badge(&c.state),
            counts => Value::from_serialize(counts),
            total => counts.total(),
            approval => Value::from_serialize(&approval),
            start => start_text(&s, c),
        });
    }
    s.render(
        &page,
        "admin/campaigns.html",
        context! { title => "Campaigns", rows },
    )
}

/// When a campaign is due, in words with the zone named ("" unscheduled).
fn start_text(s: &AdminShared, c: &Campaign) -> String {
    match (c.schedule_mode.as_str(), &c.local_date, &c.local_time) {
        ("local", Some(d), Some(t)) => format!("{d} {t} in each recipient's zone"),
        _ => c
            .start_ms
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| {
                t.with_timezone(&s.tz)
                    .format("%Y-%m-%d %H:%M %Z")
                    .to_string()
            })
            .unwrap_or_default(),
    }
}

/// The new campaign form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct NewForm {
    #[serde(default)]
    issue: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    segment: String,
    #[serde(default)]
    transport: String,
    /// Create it despite the preflight's failures, for this reason.
    #[serde(default)]
    override_check: String,
}

async fn new_form(State(s): State<AdminShared>, page: Page) -> AdminResult {
    page.require(Action::CampaignsWrite)?;
    let form = NewForm {
        transport: s.config().sending.transport.clone(),
        ..Default::default()
    };
    render_new(&s, &page, StatusCode::OK, &form, context! {}).await
}

async fn render_new(
    s: &AdminShared,
    page: &Page,
    status: StatusCode,
    form: &NewForm,
    errors: Value,
) -> AdminResult {
    let issues = s.store().list_issues().await?;
    let preview = segment_context(s, &form.segment).await?;
    s.render_status(
        page,
        status,
        "admin/campaigns_new.html",
        context! {
            title => "New campaign",
            issues => Value::from_serialize(&issues),
            form => context! {
                issue => form.issue.as_str(),
                name => form.name.as_str(),
                segment => form.segment.as_str(),
                transport => form.transport.as_str(),
                override_check => form.override_check.as_str(),
            },
            errors,
            preview,
        },
    )
}

async fn create(
    State(s): State<AdminShared>,
    page: Page,
    Form(form): Form<NewForm>,
) -> AdminResult {
    page.require(Action::CampaignsWrite)?;
    let issue = match form.issue.trim().parse::<i64>() {
        Ok(n) => n,
        Err(_) => {
            let errors = context! { issue => "choose an issue" };
            return render_new(&s, &page, StatusCode::UNPROCESSABLE_ENTITY, &form, errors).await;
        }
    };
    let input = CreateCampaign {
        issue,
        segment: form.segment.clone(),
        name: Some(form.name.clone()).filter(|n| !n.trim().is_empty()),
        transport: Some(form.transport.clone()).filter(|t| !t.is_empty()),
        override_check: Some(form.override_check.trim().to_string()).filter(|r| !r.is_empty()),
        ..Default::default()
    };
    match actions::create(s.store(), s.config(), &page.actor, &input).await {
        Ok(created) => Ok(redirect_with(
            &s,
            &path_of(created.campaign.id),
            Flash::ok(format!(
                "Campaign “{}” created as a draft (issue revision {} passed its preflight{}).",
                created.campaign.name,
                created.checked.revision,
                if created.checked.overridden {
                    ", failures overridden"
                } else {
                    ""
                }
            )),
        )),
        Err(AppError::Refused(r)) => {
            let errors = context! { refusal => r.to_string(), overridable => r.overridable };
            render_new(&s, &page, StatusCode::UNPROCESSABLE_ENTITY, &form, errors).await
        }
        Err(e) => match field_errors(&e) {
            Some(errors) => {
                render_new(&s, &page, StatusCode::UNPROCESSABLE_ENTITY, &form, errors).await
            }
            None => Err(e.into()),
        },
    }
}

/// The segment box's live answer: the count, how many are active, and a
/// sample; or the error with its column, caret and suggestion.
async fn segment_context(s: &AdminShared, text: &str) -> AdminResult<Value> {
    if let Err(problem) = segments::check(text) {
        return Ok(context! { problem => Value::from_serialize(&problem) });
    }
    let p = segments::preview(s.store(), text, 5).await?;
    Ok(context! {
        count => p.count,
        active => p.active,
        sample => Value::from_serialize(&p.sample),
        everyone => text.trim().is_empty(),
    })
}

#[derive(Debug, Deserialize)]
pub struct SegmentForm {
    #[serde(default)]
    segment: String,
}

async fn segment_preview(
    State(s): State<AdminShared>,
    page: Page,
    Form(form): Form<SegmentForm>,
) -> AdminResult {
    page.require(Action::ContactsRead)?;
    let preview = segment_context(&s, &form.segment).await?;
    s.render_fragment(&page, "admin/campaigns_segment.html", context! { preview })
}

async fn show(State(s): State<AdminShared>, page: Page, Path(id): Path<i64>) -> AdminResult {
    page.require(Action::CampaignsRead)?;
    render_show(&s, &page, id, StatusCode::OK, context! {}).await
}

async fn render_show(
    s: &AdminShared,
    page: &Page,
    id: i64,
    status: StatusCode,
    errors: Value,
) -> AdminResult {
    let store = s.store();
    let c = store.campaign_or_err(id).await?;
    let state = c.state()?;
    let pending = matches!(
        state,
        CampaignState::Draft | CampaignState::Scheduled | CampaignState::Blocked
    );
    let view = approval::view(store, s.config(), &c).await?;
    // Whether this user may approve, and if not, why (the two-person rule).
    let approve_refusal = if pending && page.may(Action::CampaignsApprove) {
        approval::may_approve(store, &page.actor, &c).await?.err()
    } else {
        None
    };
    let progress = progress::read(store, id).await?;
    let timeline = timeline::of_campaign(store, s.config(), &c).await?;
    let failures = store
        .deliveries(id, Some(DeliveryStatus::Failed), FAILURES_SHOWN)
        .await?;
    let events = store.campaign_events(id).await?;
    let issue = store
        .issue(u32::try_from(c.issue_number).unwrap_or(0))
        .await?;
    let controls = context! {
        schedule => pending,
        start => pending && view.status.allows_start(),
        pause => state == CampaignState::Running,
        resume => state == CampaignState::Paused,
        cancel => !matches!(state, CampaignState::Finished | CampaignState::Cancelled),
        retry => progress.counts.failed > 0
            && matches!(state, CampaignState::Running | CampaignState::Paused | CampaignState::Finished),
    };
    let tomorrow = (chrono::Utc::now().with_timezone(&s.tz) + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    s.render_status(
        page,
        status,
        "admin/campaigns_show.html",
        context! {
            title => format!("Campaign {}: {}", c.id, c.name),
            campaign => Value::from_serialize(&c),
            badge => state_badge(&c.state),
            start => start_text(s, &c),
            issue => Value::from_serialize(&issue),
            approval => Value::from_serialize(&view),
            approve_refusal,
            progress => Value::from_serialize(&progress),
            timeline => Value::from_serialize(&timeline),
            failures => Value::from_serialize(&failures),
            failures_shown => FAILURES_SHOWN,
            events => Value::from_serialize(&events),
            controls,
            newsletter_zone => s.config().newsletter.timezone.as_str(),
            default_date => c.local_date.clone().unwrap_or(tomorrow),
            default_time => c.local_time.clone().unwrap_or_else(|| "09:00".into()),
            errors,
        },
    )
}

/// What the action forms may send.
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    note: String,
    /// at or local
    #[serde(default)]
    mode: String,
    /// "YYYY-MM-DDTHH:MM" (datetime-local) in the newsletter's zone.
    #[serde(default)]
    at: String,
    #[serde(default)]
    local_date: String,
    #[serde(default)]
    local_time: String,
    /// A schedule whose time has passed starts as soon as it may.
    #[serde(default)]
    now: String,
    /// Schedule or start despite the preflight's failures, for this reason.
    #[serde(default)]
    override_check: String,
}

async fn act(
    State(s): State<AdminShared>,
    page: Page,
    Path((id, action)): Path<(i64, String)>,
    Form(form): Form<ActionForm>,
) -> AdminResult<Response> {
    page.require(match action.as_str() {
        "request-approval" => Action::CampaignsRequestApproval,
        "approve" => Action::CampaignsApprove,
        _ => Action::CampaignsControl,
    })?;
    let (store, config, actor) = (s.store(), s.config(), &page.actor);
    let override_check = Some(form.override_check.trim().to_string()).filter(|r| !r.is_empty());
    let done: Result<String, AppError> = match action.as_str() {
        "request-approval" => approval::request(store, config, actor, id, form.note.trim())
            .await
            .map(|_| "Approval requested.".to_string()),
        "approve" => approval::approve(store, config, actor, id, form.note.trim())
            .await
            .map(|_| format!("Approved by {}.", page.email())),
        "schedule" => {
            let when = match form.mode.as_str() {
                "local" => ScheduleAt::Local {
                    date: form.local_date.clone(),
                    time: form.local_time.clone(),
                },
                _ => ScheduleAt::At(form.at.replace('T', " ")),
            };
            let input = ScheduleCampaign {
                when,
                now: !form.now.is_empty(),
                override_check: override_check.clone(),
            };
            actions::schedule(store, config, actor, id, &input)
                .await
                .map(|c| format!("Scheduled: {}.", start_text(&s, &c.campaign)))
        }
        "start" => {
            match actions::start(store, config, actor, id, override_check.as_deref()).await {
                Ok(started) => {
                    let n = started.recipients;
                    s.api.jobs.send_job(id, n, actor).await?;
                    Ok(format!(
                    "Started: {n} recipients frozen and every message rendered ({:.1} s); sending.",
                    started.render_secs
                ))
                }
                Err(e) => Err(e),
            }
        }
        "pause" => actions::control(store, actor, id, Control::Pause)
            .await
            .map(|_| "Paused.".to_string()),
        "resume" => actions::control(store, actor, id, Control::Resume)
            .await
            .map(|_| "Resumed.".to_string()),
        "cancel" => actions::control(store, actor, id, Control::Cancel)
            .await
            .map(|_| "Cancelled.".to_string()),
        "retry-failed" => actions::retry_failed(store, actor, id)
            .await
            .map(|n| format!("{n} failed deliveries queued again.")),
        _ => {
            return Err(AdminError::NotFound(format!(
                "no campaign action {action:?}"
            )))
        }
    };
    let back = path_of(id);
    match done {
        Ok(text) => Ok(redirect_with(&s, &back, Flash::ok(text))),
        Err(e @ AppError::Invalid(_)) => {
            let errors = field_errors(&e).unwrap_or(context! {});
            render_show(&s, &page, id, StatusCode::UNPROCESSABLE_ENTITY, errors).await
        }
        // The send gate refused (a blocked campaign shows its reasons).
        Err(e @ (AppError::Refused(_) | AppError::Blocked { .. })) => {
            store.campaign_or_err(id).await?;
            Ok(redirect_with(&s, &back, error_flash(e.to_string())))
        }
        // Not now (its state), or not this person (the two-person rule).
        Err(AppError::Conflict(m)) | Err(AppError::Forbidden(m)) => {
            store.campaign_or_err(id).await?;
            Ok(redirect_with(&s, &back, error_flash(m)))
        }
        Err(e) => Err(e.into()),
    }
}
