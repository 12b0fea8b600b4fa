//! The API's types: what goes over the wire, with their OpenAPI schemas.
//! Store rows are converted here; they are not the API.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::path::Operation;
use utoipa::openapi::{OpenApi as OpenApiDoc, RefOr, Response, ResponseBuilder};
use utoipa::{IntoParams, ToSchema};

use crate::domain::approval::ApprovalStatus;
use crate::store::approvals::ApprovalRow;
use crate::store::audit::AuditRow;
use crate::store::campaigns::{Campaign, CampaignEvent, Counts, DeliveryRow};
use crate::store::issues::{Revision, StoredIssue};
use crate::store::jobs::Job;
use crate::store::users::{ApiToken, User};
use crate::store::{Contact, Organisation};

/// Adds to every operation its security (all but the public ones) and the
/// problem responses it may give.
pub fn finish_document(doc: &mut OpenApiDoc) {
    use utoipa::openapi::security::SecurityRequirement;
    let problem = |desc: &str| -> RefOr<Response> {
        RefOr::T(
            ResponseBuilder::new()
                .description(desc)
                .content(
                    "application/problem+json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                            "Problem",
                        ))))
                        .build(),
                )
                .build(),
        )
    };
    for item in doc.paths.paths.values_mut() {
        let ops: [&mut Option<Operation>; 5] = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in ops.into_iter().flatten() {
            let public = op
                .extensions
                .as_ref()
                .and_then(|e| e.get("x-permission"))
                .and_then(|v| v.as_str())
                == Some("public");
            let mut add = vec![
                ("400", "The request is malformed"),
                ("404", "No such object"),
                ("409", "The request conflicts with the current state"),
                ("415", "The body's content type is not accepted"),
                ("422", "The input is invalid: `errors` says where"),
                ("500", "The server failed"),
            ];
            if !public {
                add.push(("401", "No valid credentials"));
                add.push((
                    "403",
                    "The role does not allow this, or the CSRF token is missing",
                ));
                op.security = Some(vec![
                    SecurityRequirement::new("bearer", Vec::<String>::new()),
                    SecurityRequirement::new("session", Vec::<String>::new())
                        .add("csrf", Vec::<String>::new()),
                ]);
            }
            for (code, desc) in add {
                op.responses
                    .responses
                    .entry(code.to_string())
                    .or_insert_with(|| problem(desc));
            }
        }
    }
    if let Some(c) = doc.components.as_mut() {
        c.schemas
            .entry("Problem".into())
            .or_insert_with(<super::problem::Problem as utoipa::PartialSchema>::schema);
        c.schemas
            .entry("InvalidParam".into())
            .or_insert_with(<super::problem::InvalidParam as utoipa::PartialSchema>::schema);
    }
}

/// A contact.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContactOut {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub title: String,
    /// The greeting used verbatim; empty: built from the name and title.
    pub salutation: String,
    pub organisation_id: Option<i64>,
    pub organisation: Option<String>,
    pub organisation_kind: Option<String>,
    pub region: Option<String>,
    pub language: Option<String>,
    /// active, unsubscribed, bounced or blocklisted
    pub status: String,
    pub status_reason: String,
    pub status_changed_at: DateTime<Utc>,
    pub consent_source: String,
    pub consent_at: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Contact> for ContactOut {
    fn from(c: &Contact) -> Self {
        ContactOut {
            id: c.id,
            email: c.email.clone(),
            name: c.name.clone(),
            title: c.title.clone(),
            salutation: c.salutation.clone(),
            organisation_id: c.organisation_id,
            organisation: c.org_name.clone(),
            organisation_kind: c.org_kind.clone(),
            region: c.org_region.clone(),
            language: c.language.clone(),
            status: c.status.clone(),
            status_reason: c.status_reason.clone(),
            status_changed_at: c.status_changed_at,
            consent_source: c.consent_source.clone(),
            consent_at: c.consent_at,
            attributes: c.attributes.0.clone(),
            tags: c.tag_list().into_iter().map(String::from).collect(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A page of contacts; `next` is the cursor of the following page.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContactPage {
    pub items: Vec<ContactOut>,
    pub next: Option<String>,
}

/// An organisation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrganisationOut {
    pub id: i64,
    /// city, embassy, representative_office, international_org or other
    pub kind: String,
    pub name: String,
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub timezone: Option<String>,
    pub relationship: Option<String>,
    pub relationship_since: Option<i64>,
    pub notes: String,
    pub contacts: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Organisation> for OrganisationOut {
    fn from(o: &Organisation) -> Self {
        OrganisationOut {
            id: o.id,
            kind: o.kind.clone(),
            name: o.name.clone(),
            country: o.country.clone(),
            region: o.region.clone(),
            city: o.city.clone(),
            timezone: o.timezone.clone(),
            relationship: o.relationship.clone(),
            relationship_since: o.relationship_since,
            notes: o.notes.clone(),
            contacts: o.contacts,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// A campaign.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignOut {
    pub id: i64,
    pub name: String,
    pub issue_number: i64,
    /// The revision frozen at start (null before).
    pub issue_revision: Option<i64>,
    pub segment: String,
    pub from_name: String,
    pub from_address: String,
    pub reply_to: String,
    pub transport: String,
    /// draft, scheduled, blocked, running, paused, finished or cancelled
    pub state: String,
    /// Why it is in its state (a blocked campaign: every failure found)
    pub state_reason: String,
    /// at (everyone at start_ms) or local (local_time on local_date in each zone)
    pub schedule_mode: String,
    pub start_ms: Option<i64>,
    pub local_date: Option<String>,
    pub local_time: Option<String>,
    pub recipients: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The override of the preflight's failures, if an operator gave one.
    pub check_override: Option<CheckOverrideOut>,
}

/// An operator's decision to send an issue revision despite its preflight
/// failures.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckOverrideOut {
    /// The issue revision it covers.
    pub revision: i64,
    pub reason: String,
    /// Who gave it.
    pub actor: String,
    /// The failures it covers, each `rule file:line:column`.
    pub findings: Vec<String>,
}

impl From<&Campaign> for CampaignOut {
    fn from(c: &Campaign) -> Self {
        CampaignOut {
            id: c.id,
            name: c.name.clone(),
            issue_number: c.issue_number,
            issue_revision: c.issue_revision,
            segment: c.segment.clone(),
            from_name: c.from_name.clone(),
            from_address: c.from_address.clone(),
            reply_to: c.reply_to.clone(),
            transport: c.transport.clone(),
            state: c.state.clone(),
            state_reason: c.state_reason.clone(),
            schedule_mode: c.schedule_mode.clone(),
            start_ms: c.start_ms,
            local_date: c.local_date.clone(),
            local_time: c.local_time.clone(),
            recipients: c.recipients,
            created_by: c.created_by.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            check_override: c.override_revision.and_then(|r| {
                c.override_for(r).map(|o| CheckOverrideOut {
                    revision: o.revision,
                    reason: o.reason,
                    actor: c.override_actor.clone(),
                    findings: o.findings,
                })
            }),
        }
    }
}

/// Deliveries by status.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CountsOut {
    pub pending: i64,
    pub sending: i64,
    pub retry: i64,
    pub sent: i64,
    pub failed: i64,
    pub skipped: i64,
    pub total: i64,
}

impl From<&Counts> for CountsOut {
    fn from(c: &Counts) -> Self {
        CountsOut {
            pending: c.pending,
            sending: c.sending,
            retry: c.retry,
            sent: c.sent,
            failed: c.failed,
            skipped: c.skipped,
            total: c.total(),
        }
    }
}

/// One change of a campaign's state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignEventOut {
    pub old_state: Option<String>,
    pub new_state: String,
    pub actor: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

impl From<&CampaignEvent> for CampaignEventOut {
    fn from(e: &CampaignEvent) -> Self {
        CampaignEventOut {
            old_state: e.old_state.clone(),
            new_state: e.new_state.clone(),
            actor: e.actor.clone(),
            reason: e.reason.clone(),
            created_at: e.created_at,
        }
    }
}

/// Whether the campaign may start as far as approval goes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalStatusOut {
    /// not_required, approved or missing
    pub state: String,
    /// The approver (approved).
    pub by: Option<String>,
    /// The issue revision that would be sent now.
    pub revision: i64,
    /// Why an earlier approval no longer holds (missing).
    pub void: Option<String>,
}

/// A request for approval, or an approval.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalEventOut {
    pub id: i64,
    /// request or approval
    pub kind: String,
    pub issue_revision: i64,
    pub segment: String,
    pub actor: String,
    pub note: String,
    pub created_at: DateTime<Utc>,
}

/// A campaign's approval state and its history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalOut {
    pub status: ApprovalStatusOut,
    pub history: Vec<ApprovalEventOut>,
}

impl From<&crate::app::approval::ApprovalView> for ApprovalOut {
    fn from(v: &crate::app::approval::ApprovalView) -> Self {
        let status = match &v.status {
            ApprovalStatus::NotRequired => ApprovalStatusOut {
                state: "not_required".into(),
                by: None,
                revision: v.revision,
                void: None,
            },
            ApprovalStatus::Approved { by, revision } => ApprovalStatusOut {
                state: "approved".into(),
                by: Some(by.clone()),
                revision: *revision,
                void: None,
            },
            ApprovalStatus::Missing { revision, void } => ApprovalStatusOut {
                state: "missing".into(),
                by: None,
                revision: *revision,
                void: void.clone(),
            },
        };
        ApprovalOut {
            status,
            history: v.history.iter().map(ApprovalEventOut::from).collect(),
        }
    }
}

impl From<&ApprovalRow> for ApprovalEventOut {
    fn from(a: &ApprovalRow) -> Self {
        ApprovalEventOut {
            id: a.id,
            kind: a.kind.clone(),
            issue_revision: a.issue_revision,
            segment: a.segment.clone(),
            actor: a.actor.clone(),
            note: a.note.clone(),
            created_at: a.created_at,
        }
    }
}

/// A campaign with its counts, approval and history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignDetail {
    pub campaign: CampaignOut,
    pub counts: CountsOut,
    pub approval: ApprovalOut,
    pub events: Vec<CampaignEventOut>,
}

/// One delivery of a campaign.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: i64,
    pub contact_id: i64,
    pub email: String,
    /// pending, sending, retry, sent, failed or skipped
    pub status: String,
    pub attempts: i64,
    pub due_ms: i64,
    pub server: Option<String>,
    /// The server's reply code, e.g. "550 5.1.1".
    pub last_code: Option<String>,
    pub last_reply: Option<String>,
    pub message_id: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<&DeliveryRow> for DeliveryOut {
    fn from(d: &DeliveryRow) -> Self {
        DeliveryOut {
            id: d.id,
            contact_id: d.contact_id,
            email: d.email.clone(),
            status: d.status.clone(),
            attempts: d.attempts,
            due_ms: d.due_ms,
            server: d.server.clone(),
            last_code: d.last_code.clone(),
            last_reply: d.last_reply.clone(),
            message_id: d.message_id.clone(),
            sent_at: d.sent_at,
        }
    }
}

/// An issue.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssueOut {
    pub number: i64,
    pub subject: String,
    pub issue_date: NaiveDate,
    pub source_path: String,
    pub revisions: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&StoredIssue> for IssueOut {
    fn from(i: &StoredIssue) -> Self {
        IssueOut {
            number: i.number,
            subject: i.subject.clone(),
            issue_date: i.issue_date,
            source_path: i.source_path.clone(),
            revisions: i.revisions,
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}

/// A revision of an issue; `source` only when one revision is asked for.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RevisionOut {
    pub revision: i64,
    pub subject: String,
    pub actor: String,
    pub author: String,
    pub created_at: DateTime<Utc>,
    pub source: Option<String>,
}

impl RevisionOut {
    pub fn new(r: &Revision, with_source: bool) -> Self {
        RevisionOut {
            revision: r.revision,
            subject: r.subject.clone(),
            actor: r.actor.clone(),
            author: r.author.clone(),
            created_at: r.created_at,
            source: with_source.then(|| r.source.clone()),
        }
    }
}

/// A job: an import or a send.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobOut {
    pub id: i64,
    /// import or send
    pub kind: String,
    /// queued, running, succeeded, failed or cancelled
    pub state: String,
    pub campaign_id: Option<i64>,
    pub progress_done: i64,
    pub progress_total: Option<i64>,
    /// The outcome: an import's report, a send's counts (null before).
    pub result: serde_json::Value,
    pub error: String,
    pub actor: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Where to poll it, stream it (server-sent events) and, for an
    /// import, download its rejected rows.
    pub links: JobLinks,
}

/// A job's URLs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobLinks {
    #[serde(rename = "self")]
    pub this: String,
    pub events: String,
    pub rejects: Option<String>,
}

impl From<&Job> for JobOut {
    fn from(j: &Job) -> Self {
        let base = format!("/api/v1/jobs/{}", j.id);
        JobOut {
            id: j.id,
            kind: j.kind.clone(),
            state: j.state.clone(),
            campaign_id: j.campaign_id,
            progress_done: j.progress_done,
            progress_total: j.progress_total,
            result: j.result.0.clone(),
            error: j.error.clone(),
            actor: j.actor.clone(),
            created_at: j.created_at,
            updated_at: j.updated_at,
            finished_at: j.finished_at,
            links: JobLinks {
                this: base.clone(),
                events: format!("{base}/events"),
                rejects: (j.kind == "import").then(|| format!("{base}/rejects")),
            },
        }
    }
}

/// An account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserOut {
    pub id: i64,
    pub email: String,
    pub name: String,
    /// viewer, editor, operator or admin
    pub role: String,
    pub disabled: bool,
    pub has_password: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&User> for UserOut {
    fn from(u: &User) -> Self {
        UserOut {
            id: u.id,
            email: u.email.clone(),
            name: u.name.clone(),
            role: u.role.clone(),
            disabled: u.disabled(),
            has_password: !u.password_hash.is_empty(),
            last_login_at: u.last_login_at,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// An API token (never its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenOut {
    pub id: i64,
    pub user_id: i64,
    pub user_email: String,
    pub name: String,
    /// The token's first characters.
    pub prefix: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&ApiToken> for TokenOut {
    fn from(t: &ApiToken) -> Self {
        TokenOut {
            id: t.id,
            user_id: t.user_id,
            user_email: t.user_email.clone(),
            name: t.name.clone(),
            prefix: t.prefix.clone(),
            created_by: t.created_by.clone(),
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// An audit entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditOut {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    /// user:EMAIL, token:NAME (EMAIL), cli:USER [as EMAIL], web, anonymous or system:NAME
    pub actor: String,
    pub actor_kind: String,
    pub user_id: Option<i64>,
    pub ip: Option<String>,
    /// What was done, e.g. contact.update
    pub action: String,
    pub object_kind: String,
    pub object_id: String,
    /// What changed: for an update, each field as [old, new].
    pub details: serde_json::Value,
}

impl From<&AuditRow> for AuditOut {
    fn from(a: &AuditRow) -> Self {
        AuditOut {
            id: a.id,
            created_at: a.created_at,
            actor: a.actor.clone(),
            actor_kind: a.actor_kind.clone(),
            user_id: a.user_id,
            ip: a.ip.clone(),
            action: a.action.clone(),
            object_kind: a.object_kind.clone(),
            object_id: a.object_id.clone(),
            details: a.details.0.clone(),
        }
    }
}

/// Paging through newest-first lists: `before` is an id.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Only items with an id below this one (the `next_before` of the previous page).
    pub before: Option<i64>,
    /// At most this many items (1 to 1000, default 100).
    pub limit: Option<i64>,
}

impl Paging {
    pub fn limit(&self) -> i64 {
        self.limit.unwrap_or(100).clamp(1, 1000)
    }
}
