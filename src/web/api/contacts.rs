//! Contacts, organisations, tags and segment counts.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{ContactOut, ContactPage, OrganisationOut};
use super::problem::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use super::ApiShared;
use crate::app::campaign_actions::parse_segment;
use crate::app::contacts::{self as app_contacts, AddContact, EditContact};
use crate::app::segments;
use crate::domain::{CountryCode, OrgKind, Relationship, TimeZone};
use crate::store::{Contact, OrgFields};
use crate::web::auth::Caller;

pub fn routes() -> OpenApiRouter<ApiShared> {
    OpenApiRouter::new()
        .routes(routes!(list_contacts, create_contact))
        .routes(routes!(get_contact, update_contact, delete_contact))
        .routes(routes!(set_contact_status))
        .routes(routes!(contact_history))
        .routes(routes!(list_organisations, create_organisation))
        .routes(routes!(get_organisation, update_organisation))
        .routes(routes!(list_tags))
        .routes(routes!(count_segment))
}

/// Listing contacts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    /// A segment expression, e.g. `kind = embassy and region = Europe`.
    pub segment: Option<String>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
    /// Contacts per page (1 to 1000, default 100).
    pub limit: Option<i64>,
}

/// Contacts matching a segment, in address order, a page at a time.
#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts",
    extensions(("x-permission" = json!("contacts.read"))),
    params(ContactQuery),
    responses((status = 200, description = "A page of contacts", body = ContactPage)))]
pub async fn list_contacts(
    State(state): State<ApiShared>,
    ApiQuery(q): ApiQuery<ContactQuery>,
) -> ApiResult<Json<ContactPage>> {
    let segment = parse_segment("segment", q.segment.as_deref().unwrap_or(""))?;
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::invalid("cursor", None, "not a cursor of this API"))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = state
        .store
        .contact_page(segment.as_ref(), after.as_deref(), limit)
        .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| {
            rows.last()
                .map(|c| URL_SAFE_NO_PAD.encode(c.email.as_bytes()))
        })
        .flatten();
    Ok(Json(ContactPage {
        items: rows.iter().map(ContactOut::from).collect(),
        next,
    }))
}

async fn contact(state: &ApiShared, id: i64) -> ApiResult<Contact> {
    state
        .store
        .contact_by_id(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no contact with id {id}")))
}

/// One contact.
#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts",
    extensions(("x-permission" = json!("contacts.read"))),
    params(("id" = i64, Path, description = "Contact id")),
    responses((status = 200, description = "The contact", body = ContactOut)))]
pub async fn get_contact(
    State(state): State<ApiShared>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ContactOut>> {
    Ok(Json(ContactOut::from(&contact(&state, id).await?)))
}

/// A new contact (active).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ContactIn {
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub title: String,
    /// The greeting used verbatim ("Your Excellency"); empty: built from
    /// the name and title.
    #[serde(default)]
    pub salutation: String,
    pub organisation_id: Option<i64>,
    /// e.g. en, fr, pt-BR
    pub language: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Custom attributes (extra CSV columns).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// Adds a contact.
#[utoipa::path(post, path = "/api/v1/contacts", tag = "contacts",
    extensions(("x-permission" = json!("contacts.write"))),
    request_body = ContactIn,
    responses((status = 201, description = "Added", body = ContactOut)))]
pub async fn create_contact(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiJson(input): ApiJson<ContactIn>,
) -> ApiResult<(StatusCode, Json<ContactOut>)> {
    let c = app_contacts::add(
        &state.store,
        &caller.actor,
        AddContact {
            email: input.email,
            name: input.name,
            title: input.title,
            salutation: input.salutation,
            organisation_id: input.organisation_id,
            language: input.language.unwrap_or_default(),
            tags: input.tags,
            attributes: input.attributes,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(ContactOut::from(&c))))
}

/// Changes to a contact; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ContactPatchIn {
    pub email: Option<String>,
    pub name: Option<String>,
    pub title: Option<String>,
    /// The greeting used verbatim; "" to build it from the name and title.
    pub salutation: Option<String>,
    /// Attach to this organisation.
    pub organisation_id: Option<i64>,
    /// Detach from its organisation.
    #[serde(default)]
    pub no_organisation: bool,
    /// A language, or "" to clear it.
    pub language: Option<String>,
    /// Attributes to set; null removes one.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub add_tags: Vec<String>,
    #[serde(default)]
    pub remove_tags: Vec<String>,
}

/// Changes a contact's details and tags (its status: see /status).
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "contacts",
    extensions(("x-permission" = json!("contacts.write"))),
    params(("id" = i64, Path, description = "Contact id")),
    request_body = ContactPatchIn,
    responses((status = 200, description = "Changed", body = ContactOut)))]
pub async fn update_contact(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<ContactPatchIn>,
) -> ApiResult<Json<ContactOut>> {
    let c = app_contacts::edit(
        &state.store,
        &caller.actor,
        id,
        EditContact {
            email: input.email,
            name: input.name,
            title: input.title,
            salutation: input.salutation,
            organisation_id: if input.no_organisation {
                Some(None)
            } else {
                input.organisation_id.map(Some)
            },
            language: input.language,
            attributes: input.attributes,
            add_tags: input.add_tags,
            remove_tags: input.remove_tags,
        },
    )
    .await?;
    Ok(Json(ContactOut::from(&c)))
}

/// Deletes a contact and its history (to stop mail for good, set the
/// status blocklisted instead).
#[utoipa::path(delete, path = "/api/v1/contacts/{id}", tag = "contacts",
    extensions(("x-permission" = json!("contacts.write"))),
    params(("id" = i64, Path, description = "Contact id")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_contact(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    let c = contact(&state, id).await?;
    if !state.store.remove_contact(&c.email, &caller.actor).await? {
        return Err(ApiError::not_found(format!("no contact with id {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A status change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StatusIn {
    /// active, unsubscribed, bounced or blocklisted
    pub status: String,
    /// Why (kept in the contact's history and the audit trail).
    pub reason: String,
}

/// The result of a status change.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusOut {
    pub contact: ContactOut,
    /// The status before, or null when it was already the one asked for.
    pub old_status: Option<String>,
    pub changed: bool,
}

/// Changes a contact's status.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/status", tag = "contacts",
    extensions(("x-permission" = json!("contacts.write"))),
    params(("id" = i64, Path, description = "Contact id")),
    request_body = StatusIn,
    responses((status = 200, description = "Changed (or already so)", body = StatusOut)))]
pub async fn set_contact_status(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<StatusIn>,
) -> ApiResult<Json<StatusOut>> {
    let (c, old) = app_contacts::set_status(
        &state.store,
        &caller.actor,
        id,
        &input.status,
        &input.reason,
        "api",
    )
    .await?;
    Ok(Json(StatusOut {
        contact: ContactOut::from(&c),
        old_status: old.map(|s| s.as_str().to_string()),
        changed: old.is_some(),
    }))
}

/// One change of a contact's status.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusEventOut {
    pub old_status: Option<String>,
    pub new_status: String,
    pub reason: String,
    pub actor: String,
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A contact's status history, oldest first.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/history", tag = "contacts",
    extensions(("x-permission" = json!("contacts.read"))),
    params(("id" = i64, Path, description = "Contact id")),
    responses((status = 200, description = "The history", body = Vec<StatusEventOut>)))]
pub async fn contact_history(
    State(state): State<ApiShared>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<StatusEventOut>>> {
    let c = contact(&state, id).await?;
    let rows = state.store.status_history(c.id).await?;
    Ok(Json(
        rows.into_iter()
            .map(|e| StatusEventOut {
                old_status: e.old_status,
                new_status: e.new_status,
                reason: e.reason,
                actor: e.actor,
                evidence: e.evidence.0,
                created_at: e.created_at,
            })
            .collect(),
    ))
}

/// Listing organisations.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrgQuery {
    /// Only organisations of this kind.
    pub kind: Option<String>,
}

/// Organisations with their contact counts.
#[utoipa::path(get, path = "/api/v1/organisations", tag = "organisations",
    extensions(("x-permission" = json!("contacts.read"))),
    params(OrgQuery),
    responses((status = 200, description = "Organisations", body = Vec<OrganisationOut>)))]
pub async fn list_organisations(
    State(state): State<ApiShared>,
    ApiQuery(q): ApiQuery<OrgQuery>,
) -> ApiResult<Json<Vec<OrganisationOut>>> {
    let kind = q
        .kind
        .as_deref()
        .filter(|k| !k.is_empty())
        .map(OrgKind::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("kind", None, e.to_string()))?;
    let orgs = state.store.list_orgs(kind).await?;
    Ok(Json(orgs.iter().map(OrganisationOut::from).collect()))
}

/// One organisation.
#[utoipa::path(get, path = "/api/v1/organisations/{id}", tag = "organisations",
    extensions(("x-permission" = json!("contacts.read"))),
    params(("id" = i64, Path, description = "Organisation id")),
    responses((status = 200, description = "The organisation", body = OrganisationOut)))]
pub async fn get_organisation(
    State(state): State<ApiShared>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<OrganisationOut>> {
    let o = state
        .store
        .org_by_id(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no organisation with id {id}")))?;
    Ok(Json(OrganisationOut::from(&o)))
}

/// An organisation's fields; absent fields stay as they are (or empty for
/// a new one). An empty string clears an optional field.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct OrganisationIn {
    /// city, embassy, representative_office, international_org or other
    pub kind: Option<String>,
    pub name: Option<String>,
    /// ISO 3166-1 alpha-2
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    /// IANA time zone, e.g. Europe/Paris
    pub timezone: Option<String>,
    /// sister, friendship or partner
    pub relationship: Option<String>,
    pub relationship_since: Option<i64>,
    pub notes: Option<String>,
}

fn opt_field<T, E: std::fmt::Display>(
    field: &str,
    v: &Option<String>,
    parse: impl Fn(&str) -> Result<T, E>,
) -> ApiResult<Option<Option<T>>> {
    match v.as_deref().map(str::trim) {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(s) => parse(s)
            .map(|t| Some(Some(t)))
            .map_err(|e| ApiError::invalid(field, None, e.to_string())),
    }
}

impl OrganisationIn {
    fn fields(&self) -> ApiResult<OrgFields> {
        let text = |v: &Option<String>| {
            v.as_ref()
                .map(|s| Some(s.trim().to_string()).filter(|s| !s.is_empty()))
        };
        Ok(OrgFields {
            kind: self
                .kind
                .as_deref()
                .map(OrgKind::parse)
                .transpose()
                .map_err(|e| ApiError::invalid("kind", None, e.to_string()))?,
            name: self.name.clone(),
            country: opt_field("country", &self.country, CountryCode::parse)?,
            region: text(&self.region),
            city: text(&self.city),
            timezone: opt_field("timezone", &self.timezone, TimeZone::parse)?,
            relationship: opt_field("relationship", &self.relationship, Relationship::parse)?,
            relationship_since: self.relationship_since.map(Some),
            notes: self.notes.clone(),
        })
    }
}

/// Adds an organisation (`kind` and `name` required).
#[utoipa::path(post, path = "/api/v1/organisations", tag = "organisations",
    extensions(("x-permission" = json!("organisations.write"))),
    request_body = OrganisationIn,
    responses((status = 201, description = "Added", body = OrganisationOut)))]
pub async fn create_organisation(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiJson(input): ApiJson<OrganisationIn>,
) -> ApiResult<(StatusCode, Json<OrganisationOut>)> {
    let fields = input.fields()?;
    if fields.kind.is_none() {
        return Err(ApiError::invalid("kind", None, "is required"));
    }
    if fields
        .name
        .as_deref()
        .map(str::trim)
        .unwrap_or("")
        .is_empty()
    {
        return Err(ApiError::invalid("name", None, "is required"));
    }
    let o = state.store.add_org(&fields, &caller.actor).await?;
    Ok((StatusCode::CREATED, Json(OrganisationOut::from(&o))))
}

/// Changes an organisation.
#[utoipa::path(patch, path = "/api/v1/organisations/{id}", tag = "organisations",
    extensions(("x-permission" = json!("organisations.write"))),
    params(("id" = i64, Path, description = "Organisation id")),
    request_body = OrganisationIn,
    responses((status = 200, description = "Changed", body = OrganisationOut)))]
pub async fn update_organisation(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<OrganisationIn>,
) -> ApiResult<Json<OrganisationOut>> {
    let fields = input.fields()?;
    if fields.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::invalid("name", None, "must not be empty"));
    }
    let o = state.store.edit_org(id, &fields, &caller.actor).await?;
    Ok(Json(OrganisationOut::from(&o)))
}

/// A tag and how many contacts carry it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagOut {
    pub tag: String,
    pub contacts: i64,
}

/// Tags in use.
#[utoipa::path(get, path = "/api/v1/tags", tag = "contacts",
    extensions(("x-permission" = json!("contacts.read"))),
    responses((status = 200, description = "Tags", body = Vec<TagOut>)))]
pub async fn list_tags(State(state): State<ApiShared>) -> ApiResult<Json<Vec<TagOut>>> {
    let tags = state.store.tags().await?;
    Ok(Json(
        tags.into_iter()
            .map(|(tag, contacts)| TagOut { tag, contacts })
            .collect(),
    ))
}

/// A segment expression.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SegmentIn {
    pub segment: String,
    /// How many matching contacts to return as a sample (0 to 50, default 5).
    pub sample: Option<i64>,
}

/// How many contacts a segment matches, and a sample of them.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentCount {
    pub count: i64,
    /// Of them, how many are active (would receive a campaign).
    pub active: i64,
    pub sample: Vec<ContactOut>,
}

/// Counts a segment; a parse error is a 422 problem with the column.
#[utoipa::path(post, path = "/api/v1/segments/count", tag = "contacts",
    extensions(("x-permission" = json!("contacts.read"))),
    request_body = SegmentIn,
    responses((status = 200, description = "The count and a sample", body = SegmentCount)))]
pub async fn count_segment(
    State(state): State<ApiShared>,
    ApiJson(input): ApiJson<SegmentIn>,
) -> ApiResult<Json<SegmentCount>> {
    let p = segments::preview(&state.store, &input.segment, input.sample.unwrap_or(5)).await?;
    Ok(Json(SegmentCount {
        count: p.count,
        active: p.active,
        sample: p.sample.iter().map(ContactOut::from).collect(),
    }))
}
