//! The contacts pages: search and filter with the segment language (the
//! count follows the typing through htmx, and a mistake is shown under
//! the box with its column and a "did you mean"), 50 to a page in address
//! order (keyset paging both ways); a contact's page with its details and
//! edit form, its status with the history and a change form, its
//! deliveries and its bounces; and adding a contact.
//!
//! Changes go through `app::contacts`, the functions
//! `POST/PATCH /api/v1/contacts…` call.
//!
//! - `GET /admin/contacts?q=SEGMENT&after=EMAIL|before=EMAIL`
//! - `GET /admin/contacts/new`, `POST /admin/contacts`
//! - `GET /admin/contacts/{id}`, `POST /admin/contacts/{id}` (edit),
//!   `POST /admin/contacts/{id}/status`

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::{context, Value};
use serde::Deserialize;

use super::{redirect_with, AdminResult, AdminShared, Flash, NavItem, Page};
use crate::app::contacts::{self as app_contacts, AddContact, EditContact};
use crate::app::{segments, AppError};
use crate::domain::{Action, ContactStatus};
use crate::store::Contact;

pub const NAV: &[NavItem] = &[NavItem {
    href: "/admin/contacts",
    label: "Contacts",
    action: Action::ContactsRead,
    order: 40,
    summary: "Find contacts with the segment language, see their history, edit and add them.",
}];

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "admin/contacts.html",
        include_str!("../../../templates/admin/contacts.html"),
    ),
    (
        "admin/contacts_show.html",
        include_str!("../../../templates/admin/contacts_show.html"),
    ),
    (
        "admin/contacts_new.html",
        include_str!("../../../templates/admin/contacts_new.html"),
    ),
    (
        "admin/contacts_fields.html",
        include_str!("../../../templates/admin/contacts_fields.html"),
    ),
];

/// Contacts on one page.
const PER_PAGE: i64 = 50;
/// Deliveries shown on a contact's page.
const DELIVERIES_SHOWN: i64 = 100;

pub fn routes() -> Router<AdminShared> {
    Router::new()
        .route("/admin/contacts", get(list).post(add))
        .route("/admin/contacts/new", get(new_form))
        .route("/admin/contacts/{id}", get(show).post(edit))
        .route("/admin/contacts/{id}/status", post(set_status))
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    after: Option<String>,
    before: Option<String>,
}

/// A query string for a search and a page cursor.
fn page_link(q: &str, key: &str, email: &str) -> String {
    format!(
        "/admin/contacts?q={}&{key}={}",
        super::encode(q),
        super::encode(email)
    )
}

async fn list(
    State(s): State<AdminShared>,
    page: Page,
    Query(query): Query<ListQuery>,
) -> AdminResult {
    page.require(Action::ContactsRead)?;
    let q = query.q.trim().to_string();
    let base = context! { title => "Contacts", q => q.as_str() };
    let segment = match segments::check(&q) {
        Ok(seg) => seg,
        Err(problem) => {
            return s.render(
                &page,
                "admin/contacts.html",
                context! { problem => Value::from_serialize(&problem), ..base },
            )
        }
    };
    let store = s.store();
    let total = store.count_contacts(segment.as_ref()).await?;
    let after = query.after.filter(|a| !a.is_empty());
    let before = query.before.filter(|b| !b.is_empty());
    let rows = match (&after, &before) {
        (_, Some(b)) => {
            store
                .contact_page_before(segment.as_ref(), b, PER_PAGE)
                .await?
        }
        (a, None) => {
            store
                .contact_page(segment.as_ref(), a.as_deref(), PER_PAGE)
                .await?
        }
    };
    let full = rows.len() as i64 == PER_PAGE;
    let next = match rows.last() {
        Some(last) if full || before.is_some() => Some(page_link(&q, "after", &last.email)),
        _ => None,
    };
    let prev = match rows.first() {
        Some(first) if after.is_some() || (before.is_some() && full) => {
            Some(page_link(&q, "before", &first.email))
        }
        _ => None,
    };
    s.render(
        &page,
        "admin/contacts.html",
        context! {
            total,
            rows => Value::from_serialize(&rows),
            next,
            prev,
            ..base
        },
    )
}

/// The add and edit forms' fields.
#[derive(Debug, Default, Deserialize)]
pub struct ContactForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    title: String,
    /// How to address them ("" for the default greeting).
    #[serde(default)]
    salutation: String,
    /// An organisation id, or "" for none.
    #[serde(default)]
    organisation_id: String,
    #[serde(default)]
    language: String,
    /// Comma-separated.
    #[serde(default)]
    tags: String,
}

impl ContactForm {
    fn of(c: &Contact) -> ContactForm {
        ContactForm {
            email: c.email.clone(),
            name: c.name.clone(),
            title: c.title.clone(),
            salutation: c.salutation.clone(),
            organisation_id: c.organisation_id.map(|i| i.to_string()).unwrap_or_default(),
            language: c.language.clone().unwrap_or_default(),
            tags: c.tag_list().join(", "),
        }
    }

    fn tags(&self) -> Vec<String> {
        self.tags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect()
    }

    fn organisation(&self) -> Result<Option<i64>, AppError> {
        let t = self.organisation_id.trim();
        if t.is_empty() {
            return Ok(None);
        }
        t.parse()
            .map(Some)
            .map_err(|_| AppError::field("organisation_id", "choose an organisation"))
    }

    fn value(&self) -> Value {
        context! {
            email => self.email.as_str(), name => self.name.as_str(), title => self.title.as_str(),
            salutation => self.salutation.as_str(),
            organisation_id => self.organisation_id.as_str(), language => self.language.as_str(),
            tags => self.tags.as_str(),
        }
    }
}

/// Each invalid field's message (with its column, if any), by field
/// name; None when the error is not about the input. Forms show these at
/// their fields.
pub(super) fn field_errors(e: &AppError) -> Option<Value> {
    let AppError::Invalid(list) = e else {
        return None;
    };
    let map: std::collections::BTreeMap<String, String> = list
        .iter()
        .map(|f| {
            let at = f
                .column
                .map(|c| format!(" (column {c})"))
                .unwrap_or_default();
            (
                f.field.clone().unwrap_or_else(|| "form".into()),
                format!("{}{at}", f.detail),
            )
        })
        .collect();
    Some(Value::from_serialize(&map))
}

async fn organisations(s: &AdminShared) -> AdminResult<Value> {
    let orgs = s.store().list_orgs(None).await?;
    Ok(Value::from_serialize(
        orgs.iter()
            .map(|o| (o.id, format!("{} ({})", o.name, o.kind)))
            .collect::<Vec<_>>(),
    ))
}

async fn new_form(State(s): State<AdminShared>, page: Page) -> AdminResult {
    page.require(Action::ContactsWrite)?;
    render_new(
        &s,
        &page,
        StatusCode::OK,
        &ContactForm::default(),
        context! {},
    )
    .await
}

async fn render_new(
    s: &AdminShared,
    page: &Page,
    status: StatusCode,
    form: &ContactForm,
    errors: Value,
) -> AdminResult {
    s.render_status(
        page,
        status,
        "admin/contacts_new.html",
        context! {
            title => "Add a contact",
            form => form.value(),
            errors,
            orgs => organisations(s).await?,
        },
    )
}

async fn add(
    State(s): State<AdminShared>,
    page: Page,
    Form(form): Form<ContactForm>,
) -> AdminResult {
    page.require(Action::ContactsWrite)?;
    let result = match form.organisation() {
        Ok(org) => {
            let input = AddContact {
                email: form.email.clone(),
                name: form.name.clone(),
                title: form.title.clone(),
                salutation: form.salutation.clone(),
                organisation_id: org,
                language: form.language.clone(),
                tags: form.tags(),
                attributes: Default::default(),
            };
            app_contacts::add(s.store(), &page.actor, input).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(c) => Ok(redirect_with(
            &s,
            &format!("/admin/contacts/{}", c.id),
            Flash::ok(format!("{} added.", c.email)),
        )),
        Err(e) => match field_errors(&e) {
            Some(errors) => {
                render_new(&s, &page, StatusCode::UNPROCESSABLE_ENTITY, &form, errors).await
            }
            None => Err(e.into()),
        },
    }
}

async fn show(State(s): State<AdminShared>, page: Page, Path(id): Path<i64>) -> AdminResult {
    page.require(Action::ContactsRead)?;
    let c = app_contacts::get(s.store(), id).await?;
    render_show(
        &s,
        &page,
        &c,
        StatusCode::OK,
        &ContactForm::of(&c),
        context! {},
    )
    .await
}

async fn render_show(
    s: &AdminShared,
    page: &Page,
    c: &Contact,
    status: StatusCode,
    form: &ContactForm,
    errors: Value,
) -> AdminResult {
    let store = s.store();
    let history = store.status_history(c.id).await?;
    let deliveries = store.contact_deliveries(c.id, DELIVERIES_SHOWN).await?;
    let bounces = store.bounces_for_email(&c.email).await?;
    let statuses: Vec<&str> = ContactStatus::ALL.iter().map(|s| s.as_str()).collect();
    s.render_status(
        page,
        status,
        "admin/contacts_show.html",
        context! {
            title => format!("Contact: {}", c.email),
            contact => Value::from_serialize(c),
            tags => c.tag_list(),
            history => Value::from_serialize(&history),
            deliveries => Value::from_serialize(&deliveries),
            deliveries_shown => DELIVERIES_SHOWN,
            bounces => Value::from_serialize(&bounces),
            form => form.value(),
            errors,
            orgs => organisations(s).await?,
            statuses,
        },
    )
}

async fn edit(
    State(s): State<AdminShared>,
    page: Page,
    Path(id): Path<i64>,
    Form(form): Form<ContactForm>,
) -> AdminResult {
    page.require(Action::ContactsWrite)?;
    let current = app_contacts::get(s.store(), id).await?;
    let now: Vec<String> = current.tag_list().iter().map(|t| t.to_string()).collect();
    let wanted = form.tags();
    let result = match form.organisation() {
        Ok(org) => {
            let input = EditContact {
                email: Some(form.email.clone()).filter(|e| e.trim() != current.email),
                name: Some(form.name.trim().to_string()),
                title: Some(form.title.trim().to_string()),
                salutation: Some(form.salutation.clone()),
                organisation_id: Some(org),
                language: Some(form.language.clone()),
                add_tags: wanted
                    .iter()
                    .filter(|t| !now.contains(t))
                    .cloned()
                    .collect(),
                remove_tags: now
                    .iter()
                    .filter(|t| !wanted.contains(t))
                    .cloned()
                    .collect(),
                ..Default::default()
            };
            app_contacts::edit(s.store(), &page.actor, id, input).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(c) => Ok(redirect_with(
            &s,
            &format!("/admin/contacts/{}", c.id),
            Flash::ok("Saved."),
        )),
        Err(e) => match field_errors(&e) {
            Some(errors) => {
                render_show(
                    &s,
                    &page,
                    &current,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &form,
                    errors,
                )
                .await
            }
            None => Err(e.into()),
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    status: String,
    #[serde(default)]
    reason: String,
}

async fn set_status(
    State(s): State<AdminShared>,
    page: Page,
    Path(id): Path<i64>,
    Form(form): Form<StatusForm>,
) -> AdminResult {
    page.require(Action::ContactsWrite)?;
    let result = app_contacts::set_status(
        s.store(),
        &page.actor,
        id,
        &form.status,
        &form.reason,
        "admin",
    )
    .await;
    match result {
        Ok((c, Some(old))) => Ok(redirect_with(
            &s,
            &format!("/admin/contacts/{id}"),
            Flash::ok(format!(
                "Status changed from {} to {}.",
                old.as_str(),
                c.status
            )),
        )),
        Ok((c, None)) => Ok(redirect_with(
            &s,
            &format!("/admin/contacts/{id}"),
            Flash::warn(format!("The status was already {}.", c.status)),
        )),
        Err(e) => match field_errors(&e) {
            Some(errors) => {
                let c = app_contacts::get(s.store(), id).await?;
                let errors = context! { status_errors => errors };
                render_show(
                    &s,
                    &page,
                    &c,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &ContactForm::of(&c),
                    errors,
                )
                .await
            }
            None => Err(e.into()),
        },
    }
}
