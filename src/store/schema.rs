//! The schema version: which migrations this binary knows, which the
//! database has applied, and the rule that a binary never runs against a
//! schema newer than it knows.
//!
//! A new binary applies its migrations when it opens the store
//! (`database.auto_migrate`). An old binary that finds a migration it does
//! not know (a newer whatsup upgraded the database, on this host or on
//! another one sharing PostgreSQL) refuses to start instead of writing rows
//! in a shape the newer code does not expect. With `auto_migrate` off, a
//! schema that is behind the binary is refused too, with the command that
//! upgrades it.

use anyhow::Result;
use serde::Serialize;
use sqlx::migrate::Migrator;

use super::{redact_url, Store};

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// A schema this binary must not run against (newer than it knows, a
/// failed or edited migration, or behind it with `auto_migrate` off).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SchemaRefused(pub String);

/// How the database's schema compares with this binary's migrations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaStatus {
    /// The highest migration applied (0: none).
    pub applied: i64,
    /// The highest migration this binary knows.
    pub known: i64,
    /// Known migrations not applied yet.
    pub pending: Vec<i64>,
    /// Applied migrations this binary does not know: a newer whatsup
    /// upgraded the database.
    pub unknown: Vec<i64>,
    /// Known migrations whose applied text differs from this binary's
    /// (the migration files were edited after they ran).
    pub changed: Vec<i64>,
    /// Migrations that started and failed.
    pub failed: Vec<i64>,
}

impl SchemaStatus {
    /// True when the database holds a migration this binary does not know.
    pub fn is_newer(&self) -> bool {
        !self.unknown.is_empty()
    }

    /// The refusal for a schema this binary must not run against, if any.
    pub fn refusal(&self, url: &str) -> Option<String> {
        let db = if url.is_empty() {
            "the database".to_string()
        } else {
            format!("the database {}", redact_url(url))
        };
        if self.is_newer() {
            return Some(format!(
                "{db} has schema version {}, newer than this whatsup {} knows \
                 (version {}): a newer whatsup has upgraded it. Run that version (on every host \
                 that shares the database), or restore a backup made before the upgrade",
                self.applied,
                env!("CARGO_PKG_VERSION"),
                self.known
            ));
        }
        if !self.failed.is_empty() {
            return Some(format!(
                "{db} has a failed migration (version {:?}); restore the backup \
                 made before the upgrade",
                self.failed
            ));
        }
        if !self.changed.is_empty() {
            return Some(format!(
                "{db} applied migration {:?} with a different text than this \
                 whatsup's: the binary and the database come from different builds",
                self.changed
            ));
        }
        None
    }
}

impl Store {
    /// The migrations of this backend, as embedded in the binary.
    pub fn migrator(&self) -> &'static Migrator {
        match self {
            Store::Sqlite(_) => &SQLITE,
            Store::Postgres(_) => &POSTGRES,
        }
    }

    /// The newest migration this binary knows.
    pub fn known_version(&self) -> i64 {
        self.migrator().iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// Compares the applied migrations with this binary's.
    pub async fn schema_status(&self) -> Result<SchemaStatus> {
        let exists_sql = match self {
            Store::Sqlite(_) => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Store::Postgres(_) => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
            }
        };
        let exists: i64 = on_pool!(self, p => sqlx::query_scalar(exists_sql).fetch_one(p).await?);
        let applied: Vec<(i64, bool, Vec<u8>)> = if exists > 0 {
            let sql = "SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version";
            on_pool!(self, p => sqlx::query_as(sql).fetch_all(p).await?)
        } else {
            Vec::new()
        };
        let migrator = self.migrator();
        let known = |v: i64| migrator.iter().find(|m| m.version == v);
        let mut status = SchemaStatus {
            applied: applied
                .iter()
                .filter(|a| a.1)
                .map(|a| a.0)
                .max()
                .unwrap_or(0),
            known: self.known_version(),
            pending: Vec::new(),
            unknown: Vec::new(),
            changed: Vec::new(),
            failed: Vec::new(),
        };
        for (version, success, checksum) in &applied {
            match known(*version) {
                None => status.unknown.push(*version),
                Some(_) if !success => status.failed.push(*version),
                Some(m) if m.checksum.as_ref() != checksum.as_slice() => {
                    status.changed.push(*version)
                }
                Some(_) => {}
            }
        }
        for m in migrator.iter() {
            if !applied.iter().any(|a| a.0 == m.version) {
                status.pending.push(m.version);
            }
        }
        Ok(status)
    }

    /// The database server's clock (for `doctor`).
    pub async fn database_time(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        Ok(match self {
            Store::Sqlite(p) => {
                let t: String = sqlx::query_scalar("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")
                    .fetch_one(p)
                    .await?;
                chrono::DateTime::parse_from_rfc3339(&t)?.with_timezone(&chrono::Utc)
            }
            Store::Postgres(p) => sqlx::query_scalar("SELECT now()").fetch_one(p).await?,
        })
    }

    /// Refuses a schema this binary must not use: newer than it knows, a
    /// failed or edited migration, or (when `migrating` is false) pending
    /// migrations.
    pub async fn check_schema(&self, url: &str, migrating: bool) -> Result<SchemaStatus> {
        let status = self.schema_status().await?;
        if let Some(refusal) = status.refusal(url) {
            return Err(SchemaRefused(refusal).into());
        }
        if !migrating && !status.pending.is_empty() {
            return Err(SchemaRefused(format!(
                "the database {} is at schema version {}, and this whatsup needs version {}: \
                 run `whatsup migrate` (database.auto_migrate is off)",
                redact_url(url),
                status.applied,
                status.known
            ))
            .into());
        }
        Ok(status)
    }
}
