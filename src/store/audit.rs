//! The audit trail: who changed what, when and from where.
//!
//! [`record_audit!`] appends one `audit_log` row inside the caller's
//! transaction, so an entry exists exactly when its change was committed.
//! Every store function that staff reach (contacts, organisations, issues,
//! campaigns, approvals, users, tokens, logins, imports) takes an
//! [`Actor`](crate::domain::Actor) and writes its entry this way.
//! A contact's status history stays in `status_events` as well (bounces and
//! recipients change it too).

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use super::{Dialect, Store};

/// Appends an audit entry on `$conn` (inside a transaction): `$actor` is a
/// `&Actor`, `$action` a dotted name such as `contact.update`, `$kind` and
/// `$id` the object, `$details` a `serde_json::Value` of what changed.
macro_rules! record_audit {
    ($conn:expr, $actor:expr, $action:expr, $kind:expr, $id:expr, $details:expr) => {{
        let actor: &$crate::domain::Actor = $actor;
        let details: serde_json::Value = $details;
        sqlx::query(
            "INSERT INTO audit_log (created_at, actor, actor_kind, user_id, ip, action, \
             object_kind, object_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(chrono::Utc::now())
        .bind(actor.label())
        .bind(actor.kind())
        .bind(actor.account().map(|a| a.id))
        .bind(actor.ip().map(|ip| ip.to_string()))
        .bind($action)
        .bind($kind)
        .bind($id.to_string())
        .bind(sqlx::types::Json(details))
        .execute(&mut *$conn)
        .await?;
    }};
}
pub(crate) use record_audit;

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub actor: String,
    pub actor_kind: String,
    pub user_id: Option<i64>,
    pub ip: Option<String>,
    pub action: String,
    pub object_kind: String,
    pub object_id: String,
    pub details: Json<serde_json::Value>,
}

/// Which entries to list. Entries come newest first; `before` (an id) pages.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since: Option<DateTime<Utc>>,
    /// Entries whose actor label contains this text (case-insensitive).
    pub actor: Option<String>,
    pub object_kind: Option<String>,
    pub object_id: Option<String>,
    /// Only entries with an id below this one.
    pub before: Option<i64>,
    pub limit: i64,
}

impl Store {
    /// Audit entries matching the filter, newest first.
    pub async fn audit_entries(&self, f: &AuditFilter) -> Result<Vec<AuditRow>> {
        let like = match self.dialect() {
            Dialect::Sqlite => "lower(actor) LIKE $2 ESCAPE '\\'",
            Dialect::Postgres => "actor ILIKE $2 ESCAPE '\\'",
        };
        let sql = format!(
            "SELECT id, created_at, actor, actor_kind, user_id, ip, action, object_kind, object_id, \
             details FROM audit_log WHERE ($1 IS NULL OR created_at >= $1) \
             AND ($2 IS NULL OR {like}) AND ($3 IS NULL OR object_kind = $3) \
             AND ($4 IS NULL OR object_id = $4) AND ($5 IS NULL OR id < $5) \
             ORDER BY id DESC LIMIT $6"
        );
        let actor = f.actor.as_ref().map(|a| {
            let escaped = a
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        Ok(on_pool!(self, p => sqlx::query_as::<_, AuditRow>(&sql)
            .bind(f.since)
            .bind(actor)
            .bind(f.object_kind.as_deref())
            .bind(f.object_id.as_deref())
            .bind(f.before)
            .bind(f.limit.clamp(1, 10_000))
            .fetch_all(p)
            .await?))
    }

    /// Records an entry on its own, for actions whose change lives outside
    /// the database (a test message sent) or that change nothing but must
    /// be traced (a failed login).
    pub async fn record_audit(
        &self,
        actor: &crate::domain::Actor,
        action: &str,
        object_kind: &str,
        object_id: &str,
        details: serde_json::Value,
    ) -> Result<()> {
        on_pool!(self, p => {
            let mut tx = p.begin_with(super::begin_write(self.dialect())).await?;
            record_audit!(&mut *tx, actor, action, object_kind, object_id, details);
            tx.commit().await?;
        });
        Ok(())
    }
}

/// What changed between two serialised versions of an object: each
/// top-level field that differs, as `[old, new]`. Timestamps of the change
/// itself (`updated_at`) are left out.
pub fn changes(before: &impl Serialize, after: &impl Serialize) -> serde_json::Value {
    let (Ok(serde_json::Value::Object(b)), Ok(serde_json::Value::Object(a))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return serde_json::json!({});
    };
    let mut out = serde_json::Map::new();
    for (k, new) in &a {
        if k == "updated_at" {
            continue;
        }
        let old = b.get(k).unwrap_or(&serde_json::Value::Null);
        if old != new {
            out.insert(k.clone(), serde_json::json!([old, new]));
        }
    }
    serde_json::Value::Object(out)
}
