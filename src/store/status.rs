//! The audit trail of contact statuses, and the one place that changes a
//! contact's status: [`record_change!`] writes the new status and its
//! `status_events` row inside the caller's transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

/// One entry of a contact's audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StatusEvent {
    pub id: i64,
    pub old_status: Option<String>,
    pub new_status: String,
    pub reason: String,
    pub actor: String,
    pub evidence: Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// Sets contact `$id`'s status from `$old` (an `Option<ContactStatus>`) to
/// `$change.status` and appends the audit event, on connection `$conn`, which
/// must be inside a transaction. A macro so it runs on either backend.
macro_rules! record_change {
    ($conn:expr, $id:expr, $old:expr, $change:expr) => {{
        let change: &$crate::store::StatusChange<'_> = $change;
        let old: Option<$crate::domain::ContactStatus> = $old;
        let now = chrono::Utc::now();
        sqlx::query(
            "UPDATE contacts SET status = $1, status_reason = $2, status_changed_at = $3, \
             updated_at = $3 WHERE id = $4",
        )
        .bind(change.status.as_str())
        .bind(change.reason)
        .bind(now)
        .bind($id)
        .execute(&mut *$conn)
        .await?;
        sqlx::query(
            "INSERT INTO status_events (contact_id, old_status, new_status, reason, actor, \
             evidence, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($id)
        .bind(old.map(|s| s.as_str()))
        .bind(change.status.as_str())
        .bind(change.reason)
        .bind(change.actor)
        .bind(sqlx::types::Json(&change.evidence))
        .bind(now)
        .execute(&mut *$conn)
        .await?;
    }};
}
pub(crate) use record_change;
