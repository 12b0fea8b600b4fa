//! Campaigns: create, change, request approval, approve, schedule, start
//! (202 with its send job), pause, resume, cancel, retry failed; counts,
//! deliveries with their failures, and statistics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{
    ApprovalOut, CampaignDetail, CampaignEventOut, CampaignOut, CountsOut, DeliveryOut, JobOut,
};
use super::problem::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use super::{stream, ApiShared};
use crate::app::approval;
use crate::app::campaign_actions::{
    self as actions, Control, CreateCampaign, ScheduleAt, ScheduleCampaign,
};
use crate::app::progress::{self, Progress, RateMeter};
use crate::app::timeline::{self as app_timeline, Timeline, ZoneSlot};
use crate::domain::DeliveryStatus;
use crate::store::stats::{GroupCount, ReasonCount};
use crate::web::auth::Caller;

pub fn routes() -> OpenApiRouter<ApiShared> {
    OpenApiRouter::new()
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(get_campaign, update_campaign))
        .routes(routes!(request_approval))
        .routes(routes!(approve))
        .routes(routes!(schedule))
        .routes(routes!(start))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(cancel))
        .routes(routes!(retry_failed))
        .routes(routes!(counts))
        .routes(routes!(deliveries))
        .routes(routes!(stats))
        .routes(routes!(progress))
        .routes(routes!(progress_events))
        .routes(routes!(timeline))
}

/// Every campaign, oldest first.
#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns",
    extensions(("x-permission" = json!("campaigns.read"))),
    responses((status = 200, description = "Campaigns", body = Vec<CampaignOut>)))]
pub async fn list_campaigns(State(state): State<ApiShared>) -> ApiResult<Json<Vec<CampaignOut>>> {
    let list = state.store.campaigns().await?;
    Ok(Json(list.iter().map(CampaignOut::from).collect()))
}

async fn detail(state: &ApiShared, id: i64) -> ApiResult<CampaignDetail> {
    let c = state.store.campaign_or_err(id).await?;
    let counts = state.store.delivery_counts(id).await?;
    let view = approval::view(&state.store, &state.config, &c).await?;
    let events = state.store.campaign_events(id).await?;
    Ok(CampaignDetail {
        campaign: CampaignOut::from(&c),
        counts: CountsOut::from(&counts),
        approval: ApprovalOut::from(&view),
        events: events.iter().map(CampaignEventOut::from).collect(),
    })
}

/// A campaign with its counts, approval and state history.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    extensions(("x-permission" = json!("campaigns.read"))),
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, description = "The campaign", body = CampaignDetail)))]
pub async fn get_campaign(
    State(state): State<ApiShared>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<CampaignDetail>> {
    Ok(Json(detail(&state, id).await?))
}

/// A new campaign; unset fields take the configured defaults.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CampaignIn {
    /// The issue number (saved before).
    pub issue: i64,
    /// A segment expression; empty: every active contact.
    #[serde(default)]
    pub segment: String,
    pub name: Option<String>,
    pub from_name: Option<String>,
    pub from_address: Option<String>,
    pub reply_to: Option<String>,
    /// smtp or outbox
    pub transport: Option<String>,
    /// Create it despite the issue's preflight failures, for this reason
    /// (recorded in the campaign's history). Failures that make the issue
    /// impossible to render cannot be overridden.
    pub override_check: Option<String>,
}

/// Creates a draft campaign, after the send gate's preflight of the
/// issue's latest revision (422 `preflight` with the findings when it fails).
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns",
    extensions(("x-permission" = json!("campaigns.write"))),
    request_body = CampaignIn,
    responses((status = 201, description = "Created", body = CampaignDetail)))]
pub async fn create_campaign(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiJson(input): ApiJson<CampaignIn>,
) -> ApiResult<(StatusCode, Json<CampaignDetail>)> {
    let created = actions::create(
        &state.store,
        &state.config,
        &caller.actor,
        &CreateCampaign {
            issue: input.issue,
            segment: input.segment,
            name: input.name,
            from_name: input.from_name,
            from_address: input.from_address,
            reply_to: input.reply_to,
            transport: input.transport,
            override_check: input.override_check,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(detail(&state, created.campaign.id).await?),
    ))
}

/// Changes to a draft, scheduled or blocked campaign (a new segment voids
/// its approval).
#[derive(Debug, Deserialize, ToSchema)]
pub struct CampaignPatchIn {
    pub name: Option<String>,
    pub segment: Option<String>,
}

/// Changes a draft, scheduled or blocked campaign's name or segment.
#[utoipa::path(patch, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    extensions(("x-permission" = json!("campaigns.write"))),
    params(("id" = i64, Path, description = "Campaign id")),
    request_body = CampaignPatchIn,
    responses((status = 200, description = "Changed", body = CampaignDetail)))]
pub async fn update_campaign(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<CampaignPatchIn>,
) -> ApiResult<Json<CampaignDetail>> {
    actions::update(
        &state.store,
        &caller.actor,
        id,
        input.name.as_deref(),
        input.segment.as_deref(),
    )
    .await?;
    Ok(Json(detail(&state, id).await?))
}

/// A note for an approval or its request.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct NoteIn {
    #[serde(default)]
    pub note: String,
}

/// Asks for a second person's approval of the campaign as it is now.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/request-approval", tag = "campaigns",
    extensions(("x-permission" = json!("campaigns.request_approval"))),
    params(("id" = i64, Path, description = "Campaign id")),
    request_body = NoteIn,
    responses((status = 200, description = "Requested", body = ApprovalOut)))]
pub async fn request_approval(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<NoteIn>,
) -> ApiResult<Json<ApprovalOut>> {
    let v = approval::request(&state.store, &state.config, &caller.actor, id, &input.note).await?;
    Ok(Json(ApprovalOut::from(&v)))
}

/// Approves the campaign's current issue revision and segment. The
/// approver may be neither its creator nor that revision's author (403);
/// a revision that fails the send gate's preflight is refused (422
/// `preflight` with the findings).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/approve", tag = "campaigns",
    extensions(("x-permission" = json!("campaigns.approve"))),
    params(("id" = i64, Path, description = "Campaign id")),
    request_body = NoteIn,
    responses((status = 200, description = "Approved", body = ApprovalOut)))]
pub async fn approve(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<NoteIn>,
) -> ApiResult<Json<ApprovalOut>> {
    let v = approval::approve(&state.store, &state.config, &caller.actor, id, &input.note).await?;
    Ok(Json(ApprovalOut::from(&v)))
}

/// When to start: `at` ("YYYY-MM-DD HH:MM" in the newsletter's zone), or
/// `local_time` ("HH:MM") on `local_date` ("YYYY-MM-DD") in each
/// recipient's own zone.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ScheduleIn {
    pub at: Option<String>,
    pub local_time: Option<String>,
    pub local_date: Option<String>,
    /// Accept a time in the past: the campaign starts at once. Without it
    /// a past time is refused (422).
    #[serde(default)]
    pub now: bool,
    /// Schedule it despite the issue's preflight failures, for this reason
    /// (recorded in the campaign's history).
    pub override_check: Option<String>,
}

/// Schedules a draft, scheduled or blocked campaign, after the send gate's
/// preflight of the revision it would send (422 `preflight` with the
/// findings when it fails).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/schedule", tag = "campaigns",
    extensions(("x-permission" = json!("campaigns.control"))),
    params(("id" = i64, Path, description = "Campaign id")),
    request_body = ScheduleIn,
    responses((status = 200, description = "Scheduled", body = CampaignDetail)))]
pub async fn schedule(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<ScheduleIn>,
) -> ApiResult<Json<CampaignDetail>> {
    let when = match (input.at, input.local_time, input.local_date) {
        (Some(at), None, None) => ScheduleAt::At(at),
        (None, Some(time), Some(date)) => ScheduleAt::Local { date, time },
        _ => {
            return Err(ApiError::invalid(
                "at",
                None,
                "give either `at`, or `local_time` and `local_date`",
            ))
        }
    };
    let input = ScheduleCampaign {
        when,
        now: input.now,
        override_check: input.override_check,
    };
    actions::schedule(&state.store, &state.config, &caller.actor, id, &input).await?;
    Ok(Json(detail(&state, id).await?))
}

/// Starting a campaign.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartQuery {
    /// Start it despite the issue's preflight failures, for this reason
    /// (recorded in the campaign's history).
    pub override_check: Option<String>,
}

/// Starts a draft, scheduled or blocked campaign now through the send
/// gate: the preflight again, then its recipients frozen and every message
/// rendered once; answers 202 with the send job that follows the delivery
/// (`whatsup serve` or `whatsup worker` sends). Refused (409) until
/// approved; a refusal by the gate leaves the campaign `blocked` (409
/// `blocked` with the reasons and any preflight findings).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/start", tag = "campaigns",
    extensions(("x-permission" = json!("campaigns.control"))),
    params(("id" = i64, Path, description = "Campaign id"), StartQuery),
    responses((status = 202, description = "Started; follow the job", body = JobOut)))]
pub async fn start(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<StartQuery>,
) -> ApiResult<Response> {
    let started = actions::start(
        &state.store,
        &state.config,
        &caller.actor,
        id,
        q.override_check.as_deref(),
    )
    .await?;
    let job = state
        .jobs
        .send_job(id, started.recipients, &caller.actor)
        .await?;
    let location = job.links.this.clone();
    let mut res = (StatusCode::ACCEPTED, Json(job)).into_response();
    if let Ok(v) = location.parse() {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

async fn control(
    state: &ApiShared,
    caller: &Caller,
    id: i64,
    what: Control,
) -> ApiResult<Json<CampaignDetail>> {
    actions::control(&state.store, &caller.actor, id, what).await?;
    Ok(Json(detail(state, id).await?))
}

/// Pauses a running campaign.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/pause", tag = "campaigns",
    extensions(("x-permission" = json!("campaigns.control"))),
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, description = "Paused", body = CampaignDetail)))]
pub async fn pause(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<CampaignDetail>> {
    control(&state, &caller, id, Control::Pause).await
}

/// Resumes a paused campaign where it stopped.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/resume", tag = "campaigns",
    extensions(("x-permission" = json!("campaigns.control"))),
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, description = "Resumed", body = CampaignDetail)))]
pub async fn resume(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<CampaignDetail>> {
    control(&state, &caller, id, Control::Resume).await
}

/// Cancels a campaign that has not finished.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/cancel", tag = "campaigns",
    extensions(("x-permission" = json!("campaigns.control"))),
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, description = "Cancelled", body = CampaignDetail)))]
pub async fn cancel(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<CampaignDetail>> {
    control(&state, &caller, id, Control::Cancel).await
}

/// How many failed deliveries were queued again.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetriedOut {
    pub queued: u64,
    pub campaign: CampaignDetail,
}

/// Queues a started campaign's failed deliveries again.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/retry-failed", tag = "campaigns",
    extensions(("x-permission" = json!("campaigns.control"))),
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, description = "Queued again", body = RetriedOut)))]
pub async fn retry_failed(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<RetriedOut>> {
    let queued = actions::retry_failed(&state.store, &caller.actor, id).await?;
    Ok(Json(RetriedOut {
        queued,
        campaign: detail(&state, id).await?,
    }))
}

/// Deliveries of a campaign by status.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/counts", tag = "campaigns",
    extensions(("x-permission" = json!("campaigns.read"))),
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, description = "Counts", body = CountsOut)))]
pub async fn counts(
    State(state): State<ApiShared>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<CountsOut>> {
    state.store.campaign_or_err(id).await?;
    Ok(Json(CountsOut::from(
        &state.store.delivery_counts(id).await?,
    )))
}

/// Listing deliveries.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only deliveries with this status (failed: with the server's reply).
    pub status: Option<String>,
    /// At most this many (1 to 10000, default 1000).
    pub limit: Option<i64>,
}

/// A campaign's deliveries, with each failure's server reply.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/deliveries", tag = "campaigns",
    extensions(("x-permission" = json!("campaigns.read"))),
    params(("id" = i64, Path, description = "Campaign id"), DeliveryQuery),
    responses((status = 200, description = "Deliveries", body = Vec<DeliveryOut>)))]
pub async fn deliveries(
    State(state): State<ApiShared>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> ApiResult<Json<Vec<DeliveryOut>>> {
    state.store.campaign_or_err(id).await?;
    let status = q
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(DeliveryStatus::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("status", None, e.to_string()))?;
    let rows = state
        .store
        .deliveries(id, status, q.limit.unwrap_or(1000).clamp(1, 10_000))
        .await?;
    Ok(Json(rows.iter().map(DeliveryOut::from).collect()))
}

/// A count in one group.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupCountOut {
    /// The hour ("YYYY-MM-DD HH:00" UTC), region or organisation kind ("" for none).
    pub group: String,
    pub status: String,
    pub count: i64,
}

/// Bounces with one kind and reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReasonCountOut {
    pub kind: String,
    pub reason: String,
    pub count: i64,
}

/// A campaign's statistics.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsOut {
    pub campaign_id: i64,
    pub counts: CountsOut,
    pub by_hour: Vec<GroupCountOut>,
    pub by_region: Vec<GroupCountOut>,
    pub by_kind: Vec<GroupCountOut>,
    pub bounces_by_reason: Vec<ReasonCountOut>,
    pub opens: i64,
    pub clicks: i64,
}

fn groups(v: Vec<GroupCount>) -> Vec<GroupCountOut> {
    v.into_iter()
        .map(|g| GroupCountOut {
            group: g.group,
            status: g.status,
            count: g.count,
        })
        .collect()
}

/// Counts by hour, region, organisation kind and bounce reason.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/stats", tag = "campaigns",
    extensions(("x-permission" = json!("stats.read"))),
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, description = "Statistics", body = StatsOut)))]
pub async fn stats(
    State(state): State<ApiShared>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<StatsOut>> {
    state.store.campaign_or_err(id).await?;
    let s = state.store.campaign_stats(id).await?;
    let counts = state.store.delivery_counts(id).await?;
    let tracking = state.store.tracking_counts(id).await?;
    Ok(Json(StatsOut {
        campaign_id: id,
        counts: CountsOut::from(&counts),
        by_hour: groups(s.by_hour),
        by_region: groups(s.by_region),
        by_kind: groups(s.by_kind),
        bounces_by_reason: s
            .bounces
            .into_iter()
            .map(|r: ReasonCount| ReasonCountOut {
                kind: r.kind,
                reason: r.reason,
                count: r.count,
            })
            .collect(),
        opens: tracking.opens,
        clicks: tracking.clicks.iter().map(|(_, n)| *n).sum(),
    }))
}

/// A campaign's progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressOut {
    pub campaign_id: i64,
    /// draft, scheduled, running, paused, finished or cancelled
    pub state: String,
    pub state_reason: String,
    /// Deliveries by status: `retry` is waiting for a retry.
    pub counts: CountsOut,
    /// Sent, failed or skipped.
    pub done: i64,
    /// Whole percent of the deliveries done.
    pub percent: i64,
    /// Messages sent per minute (in the event stream, measured over its
    /// last 30 seconds while running; null otherwise).
    pub rate_per_minute: Option<i64>,
    /// Since when (Unix ms) the relay cannot be reached, if it cannot.
    pub waiting_since_ms: Option<i64>,
    pub waiting_reason: String,
    /// Finished or cancelled: nothing more will change.
    pub over: bool,
}

impl From<&Progress> for ProgressOut {
    fn from(p: &Progress) -> Self {
        ProgressOut {
            campaign_id: p.campaign_id,
            state: p.state.clone(),
            state_reason: p.state_reason.clone(),
            counts: CountsOut::from(&p.counts),
            done: p.done,
            percent: p.percent,
            rate_per_minute: p.rate_per_minute,
            waiting_since_ms: p.waiting_since_ms,
            waiting_reason: p.waiting_reason.clone(),
            over: p.over,
        }
    }
}

/// A campaign's progress now: deliveries by status and its state.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/progress", tag = "campaigns",
    extensions(("x-permission" = json!("campaigns.read"))),
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, description = "The progress", body = ProgressOut)))]
pub async fn progress(
    State(state): State<ApiShared>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ProgressOut>> {
    let p = progress::read(&state.store, id).await?;
    Ok(Json(ProgressOut::from(&p)))
}

/// One server-sent event of a campaign's progress stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressEvent {
    /// Always `progress`.
    pub event: String,
    /// The progress as JSON (a `ProgressOut`), with the rate.
    pub data: String,
}

/// A campaign's progress as server-sent events: a `progress` event at
/// once and at every change (read every second), with the sending rate,
/// until the campaign is finished or cancelled.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/events", tag = "campaigns",
    extensions(("x-permission" = json!("campaigns.read"))),
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, description = "A stream of `progress` events", content_type = "text/event-stream", body = ProgressEvent)))]
pub async fn progress_events(
    State(state): State<ApiShared>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    state.store.campaign_or_err(id).await?;
    let closing = state.jobs.closing();
    Ok(stream::polled(
        "progress",
        std::time::Duration::from_secs(1),
        closing,
        (state, RateMeter::default()),
        move |(state, mut meter): (ApiShared, RateMeter)| async move {
            let reading = match meter.read(&state.store, id).await {
                Ok(p) => serde_json::to_string(&ProgressOut::from(&p))
                    .ok()
                    .map(|json| (json, p.over)),
                Err(_) => None,
            };
            ((state, meter), reading)
        },
    ))
}

/// One time zone's recipients and when they are due.
#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneSlotOut {
    /// The IANA zone (the newsletter's for contacts without one).
    pub zone: String,
    /// These contacts have no zone of their own.
    pub default_zone: bool,
    /// When they are due (null: when the campaign is started).
    pub due: Option<chrono::DateTime<chrono::Utc>>,
    /// The due time on the recipients' clock, e.g. "2026-12-01 09:00 CET".
    pub local: String,
    /// The due time in `general.timezone`.
    pub home: String,
    pub recipients: i64,
    /// Due already: sent as soon as the campaign runs.
    pub past: bool,
    pub sent: i64,
    pub failed: i64,
    pub skipped: i64,
    /// Still to send (pending, being sent or waiting for a retry).
    pub open: i64,
}

impl From<&ZoneSlot> for ZoneSlotOut {
    fn from(z: &ZoneSlot) -> Self {
        ZoneSlotOut {
            zone: z.zone.clone(),
            default_zone: z.default_zone,
            due: z.due,
            local: z.local.clone(),
            home: z.home.clone(),
            recipients: z.recipients,
            past: z.past,
            sent: z.sent,
            failed: z.failed,
            skipped: z.skipped,
            open: z.open,
        }
    }
}

/// When a campaign's recipients are due, zone by zone.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineOut {
    /// From the frozen deliveries (true), or planned from the segment now.
    pub started: bool,
    /// at_start, at or local
    pub mode: String,
    pub recipients: i64,
    /// The zone of the `home` times.
    pub home_zone: String,
    pub slots: Vec<ZoneSlotOut>,
}

impl From<&Timeline> for TimelineOut {
    fn from(t: &Timeline) -> Self {
        TimelineOut {
            started: t.started,
            mode: t.mode.to_string(),
            recipients: t.recipients,
            home_zone: t.home_zone.clone(),
            slots: t.slots.iter().map(ZoneSlotOut::from).collect(),
        }
    }
}

/// When each time zone's recipients are due: planned from the segment
/// before the start, from the deliveries (with what each zone received)
/// after.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/timeline", tag = "campaigns",
    extensions(("x-permission" = json!("campaigns.read"))),
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, description = "The timeline", body = TimelineOut)))]
pub async fn timeline(
    State(state): State<ApiShared>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TimelineOut>> {
    let c = state.store.campaign_or_err(id).await?;
    let t = app_timeline::of_campaign(&state.store, &state.config, &c).await?;
    Ok(Json(TimelineOut::from(&t)))
}
