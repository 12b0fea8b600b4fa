//! Contacts as staff change them, for the API and the admin pages alike:
//! add, edit and change the status, each checking the actor's permission
//! and its input (address, language, tags, custom attributes, the
//! organisation) and answering typed errors at the field.

use super::error::AppError;
use super::require;
use crate::domain::{Action, Actor, ContactStatus, EmailAddress, Language};
use crate::store::{Contact, ContactPatch, NewContact, StatusChange, Store};

/// A new contact (active), as typed.
#[derive(Debug, Clone, Default)]
pub struct AddContact {
    pub email: String,
    pub name: String,
    pub title: String,
    /// How to address them ("" for the default greeting).
    pub salutation: String,
    pub organisation_id: Option<i64>,
    /// "" for none.
    pub language: String,
    pub tags: Vec<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// Changes to a contact; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EditContact {
    pub email: Option<String>,
    pub name: Option<String>,
    pub title: Option<String>,
    pub salutation: Option<String>,
    /// `Some(None)` detaches it from its organisation.
    pub organisation_id: Option<Option<i64>>,
    /// `Some("")` clears the language.
    pub language: Option<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
}

fn email(s: &str) -> Result<EmailAddress, AppError> {
    EmailAddress::parse(s).map_err(|e| AppError::field("email", e.to_string()))
}

fn salutation(s: &str) -> Result<String, AppError> {
    crate::domain::check_salutation(s.trim()).map_err(|e| AppError::field("salutation", e))?;
    Ok(s.trim().to_string())
}

fn language(s: &str) -> Result<Option<Language>, AppError> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    Language::parse(s)
        .map(Some)
        .map_err(|e| AppError::field("language", e.to_string()))
}

fn check_attributes(attrs: &serde_json::Map<String, serde_json::Value>) -> Result<(), AppError> {
    for (k, v) in attrs {
        let key = k.trim().to_lowercase();
        if key.is_empty() || crate::import::COLUMNS.contains(&key.as_str()) {
            return Err(AppError::field(
                "attributes",
                format!(
                    "{k:?} is not a custom attribute name (it is empty or a documented column)"
                ),
            ));
        }
        if v.is_object() || v.is_array() {
            return Err(AppError::field(
                "attributes",
                format!("{k:?}: values are strings, numbers, booleans or null"),
            ));
        }
    }
    Ok(())
}

fn check_tags(field: &str, tags: &[String]) -> Result<(), AppError> {
    if tags.iter().any(|t| t.trim().is_empty() || t.contains(';')) {
        return Err(AppError::field(
            field,
            "a tag must not be empty or contain ';'",
        ));
    }
    Ok(())
}

async fn check_org(store: &Store, id: Option<i64>) -> Result<(), AppError> {
    if let Some(id) = id {
        if store.org_by_id(id).await?.is_none() {
            return Err(AppError::field(
                "organisation_id",
                format!("no organisation with id {id}"),
            ));
        }
    }
    Ok(())
}

/// A contact by id, or not found.
pub async fn get(store: &Store, id: i64) -> Result<Contact, AppError> {
    store
        .contact_by_id(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no contact with id {id}")))
}

/// Adds an active contact; its consent source is the actor.
pub async fn add(store: &Store, actor: &Actor, input: AddContact) -> Result<Contact, AppError> {
    require(actor, Action::ContactsWrite)?;
    let email = email(&input.email)?;
    check_attributes(&input.attributes)?;
    check_tags("tags", &input.tags)?;
    check_org(store, input.organisation_id).await?;
    let new = NewContact {
        email,
        name: input.name.trim().to_string(),
        title: input.title.trim().to_string(),
        salutation: salutation(&input.salutation)?,
        organisation_id: input.organisation_id,
        language: language(&input.language)?,
        consent_source: actor.label(),
        attributes: input.attributes,
        tags: input.tags.iter().map(|t| t.trim().to_string()).collect(),
    };
    Ok(store.add_contact(&new, actor).await?)
}

/// Changes a contact's details and tags.
pub async fn edit(
    store: &Store,
    actor: &Actor,
    id: i64,
    input: EditContact,
) -> Result<Contact, AppError> {
    require(actor, Action::ContactsWrite)?;
    let current = get(store, id).await?;
    check_attributes(&input.attributes)?;
    check_tags("tags", &input.add_tags)?;
    check_org(store, input.organisation_id.flatten()).await?;
    let patch = ContactPatch {
        email: input.email.as_deref().map(email).transpose()?,
        name: input.name,
        title: input.title,
        salutation: input.salutation.as_deref().map(salutation).transpose()?,
        organisation_id: input.organisation_id,
        language: input.language.as_deref().map(language).transpose()?,
        attributes: input.attributes,
        add_tags: input.add_tags,
        remove_tags: input.remove_tags,
    };
    Ok(store.edit_contact(&current.email, &patch, actor).await?)
}

/// Changes a contact's status with a reason; `source` says through what
/// (api, admin) in the history's evidence. Returns the contact and the
/// status before (None when it already had this one).
pub async fn set_status(
    store: &Store,
    actor: &Actor,
    id: i64,
    status: &str,
    reason: &str,
    source: &str,
) -> Result<(Contact, Option<ContactStatus>), AppError> {
    require(actor, Action::ContactsWrite)?;
    let status =
        ContactStatus::parse(status).map_err(|e| AppError::field("status", e.to_string()))?;
    if reason.trim().is_empty() {
        return Err(AppError::field("reason", "must say why the status changes"));
    }
    let c = get(store, id).await?;
    let label = actor.label();
    let old = store
        .set_status(
            &c.email,
            &StatusChange {
                status,
                reason: reason.trim(),
                actor: &label,
                evidence: serde_json::json!({ "source": source }),
            },
            actor,
        )
        .await?;
    Ok((get(store, id).await?, old))
}
