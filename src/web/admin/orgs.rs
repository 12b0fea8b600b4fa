//! The organisations pages: the list (kind, country, region, zone,
//! relationship, how many contacts) filtered by kind, and an
//! organisation's page with its details and contacts.
//!
//! - `GET /admin/organisations?kind=KIND`
//! - `GET /admin/organisations/{id}`

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Router;
use minijinja::{context, Value};
use serde::Deserialize;

use super::{AdminError, AdminResult, AdminShared, NavItem, Page};
use crate::app::segments::quote_value;
use crate::domain::segment::Segment;
use crate::domain::{Action, OrgKind};

pub const NAV: &[NavItem] = &[NavItem {
    href: "/admin/organisations",
    label: "Organisations",
    action: Action::ContactsRead,
    order: 41,
    summary: "The embassies, cities and other organisations on the list, with their contacts.",
}];

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "admin/orgs.html",
        include_str!("../../../templates/admin/orgs.html"),
    ),
    (
        "admin/orgs_show.html",
        include_str!("../../../templates/admin/orgs_show.html"),
    ),
];

/// Contacts listed on an organisation's page.
const CONTACTS_SHOWN: i64 = 500;

pub fn routes() -> Router<AdminShared> {
    Router::new()
        .route("/admin/organisations", get(list))
        .route("/admin/organisations/{id}", get(show))
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    kind: String,
}

async fn list(State(s): State<AdminShared>, page: Page, Query(q): Query<ListQuery>) -> AdminResult {
    page.require(Action::ContactsRead)?;
    let kind = match q.kind.trim() {
        "" => None,
        k => Some(OrgKind::parse(k).map_err(|e| AdminError::BadRequest(e.to_string()))?),
    };
    let orgs = s.store().list_orgs(kind).await?;
    let kinds: Vec<&str> = OrgKind::ALL.iter().map(|k| k.as_str()).collect();
    s.render(
        &page,
        "admin/orgs.html",
        context! {
            title => "Organisations",
            orgs => Value::from_serialize(&orgs),
            kinds,
            kind => kind.map(|k| k.as_str()).unwrap_or(""),
        },
    )
}

async fn show(State(s): State<AdminShared>, page: Page, Path(id): Path<i64>) -> AdminResult {
    page.require(Action::ContactsRead)?;
    let store = s.store();
    let org = store
        .org_by_id(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no organisation with id {id}")))?;
    // Its contacts, by the same segment the contacts page would use.
    let text = format!("organisation = {}", quote_value(&org.name));
    let segment = Segment::parse(&text).map_err(|e| anyhow::anyhow!("{}", e.render(&text)))?;
    let contacts = store
        .contact_page(Some(&segment), None, CONTACTS_SHOWN)
        .await?;
    s.render(
        &page,
        "admin/orgs_show.html",
        context! {
            title => org.name.as_str(),
            org => Value::from_serialize(&org),
            contacts => Value::from_serialize(&contacts),
            contacts_shown => CONTACTS_SHOWN,
            search => format!("/admin/contacts?q={}", super::encode(&text)),
        },
    )
}
