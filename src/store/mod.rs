//! The subscriber store: the only module that contains SQL.
//!
//! One API over two backends, chosen by the database URL: SQLite (the embedded
//! default, WAL mode) and PostgreSQL. Both run the same runtime-checked
//! `sqlx::query_as` calls through [`on_pool!`]; where the dialects differ the
//! SQL is chosen per backend next to each other, so they cannot drift apart.
//!
//! Every change of a contact's status goes through [`Store::set_status`] (or
//! [`status::record_change`] inside an import transaction), which writes the
//! audit trail in the same transaction as the change.

pub mod import;
mod rebuild;
pub mod retry;
pub mod segment_sql;
mod status;

use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::Connection as _;

use crate::config::Config;
use crate::domain::segment::Segment;
use crate::domain::{
    Actor, ContactStatus, CountryCode, EmailAddress, Language, OrgKind, Relationship, TimeZone,
};
pub use segment_sql::{Dialect, SqlParam};
pub use status::StatusEvent;

/// Runs `$body` with `$p` bound to the backend's pool. The body is compiled
/// once per backend, so generic sqlx calls work against either.
macro_rules! on_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($p) => $body,
            $crate::store::Store::Postgres($p) => $body,
        }
    };
}

/// Binds a list of [`SqlParam`]s onto a query in order.
macro_rules! bind_params {
    ($query:expr, $params:expr) => {{
        let mut q = $query;
        for p in $params {
            q = match p {
                $crate::store::SqlParam::Text(s) => q.bind(s.clone()),
                $crate::store::SqlParam::Int(i) => q.bind(*i),
            };
        }
        q
    }};
}

/// Inserts a tag if missing and evaluates to its id. A macro so that it works
/// on either backend's transaction.
macro_rules! ensure_tag {
    ($conn:expr, $name:expr, $now:expr) => {{
        let name = $crate::store::normalise_tag($name);
        sqlx::query(
            "INSERT INTO tags (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&name)
        .bind($now)
        .execute(&mut *$conn)
        .await?;
        sqlx::query_scalar::<_, i64>("SELECT id FROM tags WHERE name = $1")
            .bind(&name)
            .fetch_one(&mut *$conn)
            .await?
    }};
}

// Declared after the macros above, which they use.
pub mod approvals;
pub mod audit;
pub mod backup;
pub mod bounces;
pub mod campaigns;
pub mod copy;
pub mod issues;
pub mod jobs;
pub mod media;
pub mod schema;
pub mod stats;
pub mod users;
pub mod views;
pub mod web;

use audit::{changes, record_audit};

/// Errors a caller answers differently from a failure of the database:
/// HTTP answers them with 404 and 409. They travel inside `anyhow::Error`
/// (find them with `downcast_ref`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with what is stored (a duplicate, or a state
    /// that does not allow it).
    #[error("{0}")]
    Conflict(String),
}

/// A handle on the database. Cheap to clone (the pools are reference-counted).
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An organisation on the list.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Organisation {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub timezone: Option<String>,
    pub relationship: Option<String>,
    pub relationship_since: Option<i64>,
    pub notes: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// How many contacts belong to it (filled by listings).
    #[sqlx(default)]
    pub contacts: i64,
}

/// The fields of an organisation, validated; used to add or edit one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrgFields {
    pub kind: Option<OrgKind>,
    pub name: Option<String>,
    pub country: Option<Option<CountryCode>>,
    pub region: Option<Option<String>>,
    pub city: Option<Option<String>>,
    pub timezone: Option<Option<TimeZone>>,
    pub relationship: Option<Option<Relationship>>,
    pub relationship_since: Option<Option<i64>>,
    pub notes: Option<String>,
}

/// A contact with its organisation's fields and its tags, as listed and exported.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Contact {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub title: String,
    /// The greeting to use as it is written ("Your Excellency"); empty
    /// when the greeting is made from the name and title.
    pub salutation: String,
    pub organisation_id: Option<i64>,
    pub language: Option<String>,
    pub status: String,
    pub status_reason: String,
    pub status_changed_at: DateTime<Utc>,
    pub consent_source: String,
    pub consent_at: Option<DateTime<Utc>>,
    pub attributes: Json<serde_json::Map<String, serde_json::Value>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub org_name: Option<String>,
    pub org_kind: Option<String>,
    pub org_country: Option<String>,
    pub org_region: Option<String>,
    pub org_city: Option<String>,
    pub org_timezone: Option<String>,
    pub org_relationship: Option<String>,
    pub org_since: Option<i64>,
    /// Tag names joined with ';', sorted.
    pub tags: Option<String>,
}

impl Contact {
    pub fn tag_list(&self) -> Vec<&str> {
        self.tags
            .as_deref()
            .unwrap_or("")
            .split(';')
            .filter(|t| !t.is_empty())
            .collect()
    }
}

/// A new contact, validated.
#[derive(Debug, Clone)]
pub struct NewContact {
    pub email: EmailAddress,
    pub name: String,
    pub title: String,
    pub salutation: String,
    pub organisation_id: Option<i64>,
    pub language: Option<Language>,
    pub consent_source: String,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub tags: Vec<String>,
}

/// Changes to a contact; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ContactPatch {
    pub email: Option<EmailAddress>,
    pub name: Option<String>,
    pub title: Option<String>,
    pub salutation: Option<String>,
    pub organisation_id: Option<Option<i64>>,
    pub language: Option<Option<Language>>,
    /// Attributes to set; a JSON null removes the key.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
}

/// Counts for the at-a-glance summary.
#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
pub struct SummaryRow {
    pub kind: Option<String>,
    pub region: Option<String>,
    pub organisations: i64,
    pub contacts: i64,
    pub active: i64,
    pub unsubscribed: i64,
    pub bounced: i64,
    pub blocklisted: i64,
}

/// A contact's status change request.
#[derive(Debug, Clone)]
pub struct StatusChange<'a> {
    pub status: ContactStatus,
    pub reason: &'a str,
    /// Who or what made the change: `cli:<user>`, `import`, `bounce`, `web`…
    pub actor: &'a str,
    /// Supporting data kept in the audit trail (a bounce's diagnostic, a campaign id…).
    pub evidence: serde_json::Value,
}

/// Process-wide SQLite settings, made once before its first connection.
///
/// SQLite keeps allocation statistics by default, which takes a global
/// mutex around every allocation; whatsup never reads them. Mutex locking
/// was about a tenth of SQLite's thread's time in a million-row import
/// (perf). `sqlite3_config` only works before SQLite initialises; when
/// another part of the process opened a database first, SQLite refuses it
/// and nothing changes.
fn sqlite_settings() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int. sqlite3_config is
        // not thread-safe against other SQLite calls, and `Once` runs it
        // before this process opens any SQLite connection through the store.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            )
        };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite was initialised already: memory statistics stay on"
            );
        }
    });
}

impl Store {
    /// Which SQL dialect this backend speaks.
    pub fn dialect(&self) -> Dialect {
        match self {
            Store::Sqlite(_) => Dialect::Sqlite,
            Store::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Opens the database the configuration names, creating the SQLite file and
    /// its directory if needed, and migrates it if `auto_migrate` is on.
    /// Refuses a schema newer than this binary knows (see [`schema`]).
    pub async fn open(config: &Config) -> Result<Store> {
        let url = config.database_url();
        let store = Store::connect(&url, config).await?;
        let checked = store.check_schema(&url, config.database.auto_migrate).await;
        if let Err(e) = checked {
            store.close().await;
            return Err(e);
        }
        if config.database.auto_migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Connects without migrating.
    pub async fn connect(url: &str, config: &Config) -> Result<Store> {
        let db = &config.database;
        if url.starts_with("sqlite:") {
            sqlite_settings();
            let mut opts = SqliteConnectOptions::from_str(url)
                .with_context(|| format!("invalid SQLite URL {}", redact_url(url)))?;
            let path = opts.get_filename().to_path_buf();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating data directory {}", dir.display()))?;
            }
            let sync = match db.sqlite_synchronous.as_str() {
                "normal" => SqliteSynchronous::Normal,
                "extra" => SqliteSynchronous::Extra,
                _ => SqliteSynchronous::Full,
            };
            opts = opts
                .create_if_missing(true)
                // Only takes effect when the file is created: sqlx sends it
                // before anything else, and a database in WAL mode keeps
                // its page size.
                .page_size(db.sqlite_page_size)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(sync)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(db.busy_timeout_secs));
            let pool = SqlitePoolOptions::new()
                .max_connections(db.max_connections.max(1))
                .connect_with(opts)
                .await
                .with_context(|| format!("opening SQLite database {}", path.display()))?;
            Ok(Store::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(url)
                .with_context(|| format!("invalid PostgreSQL URL {}", redact_url(url)))?;
            // One connection first, so that a server that cannot be
            // reached is named with the cause (the pool would only say
            // that it timed out, after the whole acquire timeout).
            let wait = Duration::from_secs(db.busy_timeout_secs.max(5));
            let first = tokio::time::timeout(wait, PgConnection::connect_with(&opts)).await;
            let cause = match first {
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                    None
                }
                Ok(Err(e)) => Some(format!("{e}")),
                Err(_) => Some(format!("no answer within {} s", wait.as_secs())),
            };
            if let Some(cause) = cause {
                bail!(
                    "cannot connect to PostgreSQL at {}:{} (database {:?}, user {:?}): {cause}",
                    opts.get_host(),
                    opts.get_port(),
                    opts.get_database().unwrap_or(""),
                    opts.get_username()
                );
            }
            let pool = PgPoolOptions::new()
                .max_connections(db.max_connections.max(1))
                .acquire_timeout(Duration::from_secs(db.busy_timeout_secs.max(5)))
                .connect_with(opts)
                .await
                .with_context(|| format!("connecting to PostgreSQL at {}", redact_url(url)))?;
            Ok(Store::Postgres(pool))
        } else {
            bail!(
                "unsupported database URL {:?}: expected sqlite://… or postgres://…",
                redact_url(url)
            )
        }
    }

    /// Applies pending migrations (migrations/sqlite or migrations/postgres).
    pub async fn migrate(&self) -> Result<()> {
        let status = self.schema_status().await?;
        if let Some(refusal) = status.refusal("") {
            return Err(schema::SchemaRefused(refusal).into());
        }
        match self {
            Store::Sqlite(p) => {
                self.migrator()
                    .run(p)
                    .await
                    .context("applying database migrations")?;
                rebuild::after_migrations(p).await
            }
            Store::Postgres(p) => self
                .migrator()
                .run(p)
                .await
                .context("applying database migrations"),
        }
    }

    /// The number of migrations applied.
    pub async fn schema_version(&self) -> Result<i64> {
        let sql = "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success";
        Ok(on_pool!(self, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await?))
    }

    pub async fn close(&self) {
        on_pool!(self, p => p.close().await)
    }

    // ---- organisations -------------------------------------------------

    /// Adds an organisation. `kind` and `name` are required.
    pub async fn add_org(&self, f: &OrgFields, actor: &Actor) -> Result<Organisation> {
        let kind = f
            .kind
            .ok_or_else(|| anyhow!("an organisation needs a kind"))?;
        let name = f.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
        let name = name.ok_or_else(|| anyhow!("an organisation needs a name"))?;
        if self.find_org(name).await?.is_some() {
            return Err(StoreError::Conflict(format!(
                "an organisation named {name:?} already exists"
            ))
            .into());
        }
        let now = Utc::now();
        let sql =
            "INSERT INTO organisations (kind, name, name_key, country, region, city, timezone, \
                   relationship, relationship_since, notes, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING id";
        let select = format!("{ORG_SELECT} WHERE o.id = $1");
        let id: i64 = on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let id: i64 = sqlx::query_scalar(sql)
                .bind(kind.as_str())
                .bind(name)
                .bind(org_key(name))
                .bind(f.country.flatten().map(|c| c.to_string()))
                .bind(clean_opt(&f.region))
                .bind(clean_opt(&f.city))
                .bind(f.timezone.flatten().map(|t| t.name()))
                .bind(f.relationship.flatten().map(|r| r.as_str()))
                .bind(f.relationship_since.flatten())
                .bind(f.notes.clone().unwrap_or_default())
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            let created: Organisation = sqlx::query_as(&select).bind(id).fetch_one(&mut *tx).await?;
            record_audit!(&mut *tx, actor, "organisation.create", "organisation", id,
                serde_json::to_value(&created)?);
            tx.commit().await?;
            id
        });
        self.org_by_id(id)
            .await?
            .ok_or_else(|| anyhow!("organisation {id} vanished"))
    }

    /// Finds an organisation by name (case-insensitive) or by numeric id.
    pub async fn find_org(&self, name_or_id: &str) -> Result<Option<Organisation>> {
        if let Ok(id) = name_or_id.trim().parse::<i64>() {
            if let Some(o) = self.org_by_id(id).await? {
                return Ok(Some(o));
            }
        }
        let sql = format!("{ORG_SELECT} WHERE o.name_key = $1");
        Ok(on_pool!(self, p => sqlx::query_as::<_, Organisation>(&sql)
            .bind(org_key(name_or_id))
            .fetch_optional(p)
            .await?))
    }

    pub async fn org_by_id(&self, id: i64) -> Result<Option<Organisation>> {
        let sql = format!("{ORG_SELECT} WHERE o.id = $1");
        Ok(
            on_pool!(self, p => sqlx::query_as::<_, Organisation>(&sql).bind(id).fetch_optional(p).await?),
        )
    }

    /// Lists organisations, optionally only of one kind, with contact counts.
    pub async fn list_orgs(&self, kind: Option<OrgKind>) -> Result<Vec<Organisation>> {
        let sql =
            format!("{ORG_SELECT} WHERE ($1 IS NULL OR o.kind = $1) ORDER BY o.kind, o.name_key");
        Ok(on_pool!(self, p => sqlx::query_as::<_, Organisation>(&sql)
            .bind(kind.map(|k| k.as_str()))
            .fetch_all(p)
            .await?))
    }

    /// Changes the given fields of an organisation.
    pub async fn edit_org(&self, id: i64, f: &OrgFields, actor: &Actor) -> Result<Organisation> {
        let current = self
            .org_by_id(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no organisation {id}")))?;
        let name = match f.name.as_deref().map(str::trim) {
            Some("") => bail!("an organisation's name cannot be empty"),
            Some(n) => n.to_string(),
            None => current.name.clone(),
        };
        if org_key(&name) != org_key(&current.name) && self.find_org(&name).await?.is_some() {
            return Err(StoreError::Conflict(format!(
                "an organisation named {name:?} already exists"
            ))
            .into());
        }
        let pick = |new: &Option<Option<String>>, old: &Option<String>| match new {
            Some(v) => v
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
            None => old.clone(),
        };
        let sql = "UPDATE organisations SET kind = $1, name = $2, name_key = $3, country = $4, \
                   region = $5, city = $6, timezone = $7, relationship = $8, relationship_since = $9, \
                   notes = $10, updated_at = $11 WHERE id = $12";
        let select = format!("{ORG_SELECT} WHERE o.id = $1");
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            sqlx::query(sql)
            .bind(f.kind.map(|k| k.as_str().to_string()).unwrap_or(current.kind.clone()))
            .bind(&name)
            .bind(org_key(&name))
            .bind(match f.country { Some(c) => c.map(|c| c.to_string()), None => current.country.clone() })
            .bind(pick(&f.region, &current.region))
            .bind(pick(&f.city, &current.city))
            .bind(match f.timezone { Some(t) => t.map(|t| t.name().to_string()), None => current.timezone.clone() })
            .bind(match f.relationship { Some(r) => r.map(|r| r.as_str().to_string()), None => current.relationship.clone() })
            .bind(f.relationship_since.unwrap_or(current.relationship_since))
            .bind(f.notes.clone().unwrap_or(current.notes.clone()))
            .bind(Utc::now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let after: Organisation = sqlx::query_as(&select).bind(id).fetch_one(&mut *tx).await?;
            record_audit!(&mut *tx, actor, "organisation.update", "organisation", id,
                changes(&current, &after));
            tx.commit().await?;
        });
        self.org_by_id(id)
            .await?
            .ok_or_else(|| anyhow!("organisation {id} vanished"))
    }

    // ---- contacts ------------------------------------------------------

    /// Adds one contact as active, with its tags.
    pub async fn add_contact(&self, c: &NewContact, actor: &Actor) -> Result<Contact> {
        check_text("name", &c.name)?;
        check_text("title", &c.title)?;
        check_attributes(&c.attributes)?;
        let now = Utc::now();
        let sql = "INSERT INTO contacts (email, name, title, organisation_id, language, status, \
                   status_changed_at, consent_source, consent_at, attributes, created_at, updated_at, \
                   salutation) \
                   VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $6, $8, $6, $6, $9) RETURNING id";
        let attrs = Json(&c.attributes);
        let select = format!("{} WHERE c.id = $1", contact_select(self.dialect()));
        let id: i64 = on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let inserted = sqlx::query_scalar(sql)
                .bind(c.email.as_str())
                .bind(c.name.trim())
                .bind(c.title.trim())
                .bind(c.organisation_id)
                .bind(c.language.as_ref().map(|l| l.as_str()))
                .bind(now)
                .bind(&c.consent_source)
                .bind(attrs)
                .bind(c.salutation.trim())
                .fetch_one(&mut *tx)
                .await;
            let id: i64 = match inserted {
                Ok(id) => id,
                Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => {
                    return Err(StoreError::Conflict(format!(
                        "a contact with the address {} already exists", c.email
                    )).into());
                }
                Err(e) => return Err(e.into()),
            };
            for tag in &c.tags {
                let tag_id = ensure_tag!(&mut *tx, tag, now);
                sqlx::query(ADD_TAG_SQL).bind(id).bind(tag_id).execute(&mut *tx).await?;
            }
            let created: Contact = sqlx::query_as(&select).bind(id).fetch_one(&mut *tx).await?;
            record_audit!(&mut *tx, actor, "contact.create", "contact", id,
                serde_json::to_value(&created)?);
            tx.commit().await?;
            id
        });
        self.contact_by_id(id)
            .await?
            .ok_or_else(|| anyhow!("contact {id} vanished"))
    }

    /// Looks a contact up by address (case-insensitive).
    pub async fn contact(&self, email: &str) -> Result<Option<Contact>> {
        let sql = format!("{} WHERE c.email = $1", contact_select(self.dialect()));
        let email = email.trim().to_lowercase();
        Ok(
            on_pool!(self, p => sqlx::query_as::<_, Contact>(&sql).bind(email).fetch_optional(p).await?),
        )
    }

    pub async fn contact_by_id(&self, id: i64) -> Result<Option<Contact>> {
        let sql = format!("{} WHERE c.id = $1", contact_select(self.dialect()));
        Ok(
            on_pool!(self, p => sqlx::query_as::<_, Contact>(&sql).bind(id).fetch_optional(p).await?),
        )
    }

    /// Applies a patch to a contact's details and tags (never its status:
    /// that is [`Store::set_status`]'s job).
    pub async fn edit_contact(
        &self,
        email: &str,
        patch: &ContactPatch,
        actor: &Actor,
    ) -> Result<Contact> {
        for (field, value) in [("name", &patch.name), ("title", &patch.title)] {
            if let Some(v) = value {
                check_text(field, v)?;
            }
        }
        check_attributes(&patch.attributes)?;
        let current = self
            .contact(email)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no contact {email}")))?;
        if let Some(new) = &patch.email {
            if new.as_str() != current.email && self.contact(new.as_str()).await?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "a contact with the address {new} already exists"
                ))
                .into());
            }
        }
        let mut attrs = current.attributes.0.clone();
        for (k, v) in &patch.attributes {
            if v.is_null() {
                attrs.remove(k);
            } else {
                attrs.insert(k.clone(), v.clone());
            }
        }
        let now = Utc::now();
        let sql = "UPDATE contacts SET email = $1, name = $2, title = $3, organisation_id = $4, \
                   language = $5, attributes = $6, updated_at = $7, salutation = $9 WHERE id = $8";
        let select = format!("{} WHERE c.id = $1", contact_select(self.dialect()));
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            sqlx::query(sql)
                .bind(patch.email.as_ref().map(|e| e.as_str().to_string()).unwrap_or(current.email.clone()))
                .bind(patch.name.as_deref().map(str::trim).unwrap_or(&current.name))
                .bind(patch.title.as_deref().map(str::trim).unwrap_or(&current.title))
                .bind(patch.organisation_id.unwrap_or(current.organisation_id))
                .bind(match &patch.language { Some(l) => l.as_ref().map(|l| l.as_str().to_string()), None => current.language.clone() })
                .bind(Json(&attrs))
                .bind(now)
                .bind(current.id)
                .bind(patch.salutation.as_deref().map(str::trim).unwrap_or(&current.salutation))
                .execute(&mut *tx)
                .await?;
            for tag in &patch.add_tags {
                let tag_id = ensure_tag!(&mut *tx, tag, now);
                sqlx::query(ADD_TAG_SQL).bind(current.id).bind(tag_id).execute(&mut *tx).await?;
            }
            for tag in &patch.remove_tags {
                sqlx::query("DELETE FROM contact_tags WHERE contact_id = $1 AND tag_id IN (SELECT id FROM tags WHERE name = $2)")
                    .bind(current.id)
                    .bind(normalise_tag(tag))
                    .execute(&mut *tx)
                    .await?;
            }
            let after: Contact = sqlx::query_as(&select).bind(current.id).fetch_one(&mut *tx).await?;
            record_audit!(&mut *tx, actor, "contact.update", "contact", current.id,
                changes(&current, &after));
            tx.commit().await?;
        });
        self.contact_by_id(current.id)
            .await?
            .ok_or_else(|| anyhow!("contact vanished"))
    }

    /// Deletes a contact and its history. Returns false if there was none.
    pub async fn remove_contact(&self, email: &str, actor: &Actor) -> Result<bool> {
        let email = email.trim().to_lowercase();
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let id: Option<i64> = sqlx::query_scalar("DELETE FROM contacts WHERE email = $1 RETURNING id")
                .bind(&email).fetch_optional(&mut *tx).await?;
            if let Some(id) = id {
                record_audit!(&mut *tx, actor, "contact.delete", "contact", id,
                    serde_json::json!({"email": email}));
            }
            tx.commit().await?;
            Ok(id.is_some())
        })
    }

    /// Changes a contact's status and writes the audit trail, in one
    /// transaction. Returns the previous status, or `None` when the contact
    /// already had the requested status (nothing is written then).
    pub async fn set_status(
        &self,
        email: &str,
        change: &StatusChange<'_>,
        actor: &Actor,
    ) -> Result<Option<ContactStatus>> {
        let email = email.trim().to_lowercase();
        let select = match self.dialect() {
            Dialect::Sqlite => "SELECT id, status FROM contacts WHERE email = $1",
            Dialect::Postgres => "SELECT id, status FROM contacts WHERE email = $1 FOR UPDATE",
        };
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let row: Option<(i64, String)> =
                sqlx::query_as(select).bind(&email).fetch_optional(&mut *tx).await?;
            let (id, old) = row.ok_or_else(|| StoreError::NotFound(format!("no contact {email}")))?;
            let old = ContactStatus::parse(&old)?;
            if old == change.status {
                return Ok(None);
            }
            status::record_change!(&mut *tx, id, Some(old), change);
            record_audit!(&mut *tx, actor, "contact.set_status", "contact", id,
                serde_json::json!({"email": email, "status": [old.as_str(), change.status.as_str()],
                                   "reason": change.reason}));
            tx.commit().await?;
            Ok(Some(old))
        })
    }

    /// A contact's audit trail, oldest first.
    pub async fn status_history(&self, contact_id: i64) -> Result<Vec<StatusEvent>> {
        let sql = "SELECT id, old_status, new_status, reason, actor, evidence, created_at \
                   FROM status_events WHERE contact_id = $1 ORDER BY id";
        Ok(
            on_pool!(self, p => sqlx::query_as::<_, StatusEvent>(sql).bind(contact_id).fetch_all(p).await?),
        )
    }

    /// Lists contacts matching a segment, ordered by address.
    pub async fn list_contacts(
        &self,
        segment: Option<&Segment>,
        limit: Option<i64>,
        offset: i64,
    ) -> Result<Vec<Contact>> {
        let mut out = Vec::new();
        self.each_contact(segment, limit, offset, |c| {
            out.push(c);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Streams contacts matching a segment, ordered by address, to `f`
    /// without holding them all in memory.
    pub async fn each_contact(
        &self,
        segment: Option<&Segment>,
        limit: Option<i64>,
        offset: i64,
        mut f: impl FnMut(Contact) -> Result<()>,
    ) -> Result<u64> {
        use futures_util::TryStreamExt;
        let dialect = self.dialect();
        let filter = segment.map(|s| segment_sql::compile(s, dialect, 3));
        let sql = format!(
            "{} WHERE {} ORDER BY c.email LIMIT $1 OFFSET $2",
            contact_select(dialect),
            filter.as_ref().map(|f| f.sql.as_str()).unwrap_or("1 = 1")
        );
        let params = filter.map(|f| f.params).unwrap_or_default();
        let mut n = 0u64;
        on_pool!(self, p => {
            let q = sqlx::query_as::<_, Contact>(&sql).bind(limit.unwrap_or(i64::MAX)).bind(offset);
            let q = bind_params!(q, &params);
            let mut rows = q.fetch(p);
            while let Some(c) = rows.try_next().await? {
                n += 1;
                f(c)?;
            }
        });
        Ok(n)
    }

    /// One page of contacts matching a segment, in address order, after
    /// the address `after` (keyset pagination: each page reads only its
    /// own rows of the address index, however deep).
    pub async fn contact_page(
        &self,
        segment: Option<&Segment>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Contact>> {
        let dialect = self.dialect();
        let filter = segment.map(|s| segment_sql::compile(s, dialect, 3));
        let sql = format!(
            "{} WHERE c.email > $1 AND ({}) ORDER BY c.email LIMIT $2",
            contact_select(dialect),
            filter.as_ref().map(|f| f.sql.as_str()).unwrap_or("1 = 1")
        );
        let params = filter.map(|f| f.params).unwrap_or_default();
        Ok(on_pool!(self, p => {
            let q = sqlx::query_as::<_, Contact>(&sql).bind(after.unwrap_or("")).bind(limit);
            bind_params!(q, &params).fetch_all(p).await?
        }))
    }

    /// Counts contacts matching a segment.
    pub async fn count_contacts(&self, segment: Option<&Segment>) -> Result<i64> {
        let filter = segment.map(|s| segment_sql::compile(s, self.dialect(), 1));
        let sql = format!(
            "SELECT COUNT(*) FROM contacts c LEFT JOIN organisations o ON o.id = c.organisation_id WHERE {}",
            filter.as_ref().map(|f| f.sql.as_str()).unwrap_or("1 = 1")
        );
        let params = filter.map(|f| f.params).unwrap_or_default();
        Ok(on_pool!(self, p => {
            let q = bind_params!(sqlx::query_scalar::<_, i64>(&sql), &params);
            q.fetch_one(p).await?
        }))
    }

    /// Contacts and statuses by organisation kind and region.
    pub async fn summary(&self) -> Result<Vec<SummaryRow>> {
        let sql = "SELECT o.kind AS kind, o.region AS region, \
                   COUNT(DISTINCT o.id) AS organisations, COUNT(c.id) AS contacts, \
                   COALESCE(SUM(CASE WHEN c.status = 'active' THEN 1 ELSE 0 END), 0) AS active, \
                   COALESCE(SUM(CASE WHEN c.status = 'unsubscribed' THEN 1 ELSE 0 END), 0) AS unsubscribed, \
                   COALESCE(SUM(CASE WHEN c.status = 'bounced' THEN 1 ELSE 0 END), 0) AS bounced, \
                   COALESCE(SUM(CASE WHEN c.status = 'blocklisted' THEN 1 ELSE 0 END), 0) AS blocklisted \
                   FROM contacts c LEFT JOIN organisations o ON o.id = c.organisation_id \
                   GROUP BY o.kind, o.region ORDER BY o.kind, o.region";
        Ok(on_pool!(self, p => sqlx::query_as::<_, SummaryRow>(sql).fetch_all(p).await?))
    }

    /// The custom attribute names in use, sorted (export writes one column each).
    pub async fn attribute_keys(&self) -> Result<Vec<String>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => {
                "SELECT DISTINCT j.key FROM contacts c, json_each(c.attributes) AS j ORDER BY 1"
            }
            Dialect::Postgres => {
                "SELECT DISTINCT k FROM contacts c, jsonb_object_keys(c.attributes) AS k ORDER BY 1"
            }
        };
        Ok(on_pool!(self, p => sqlx::query_scalar::<_, String>(sql).fetch_all(p).await?))
    }

    /// All tag names with the number of contacts carrying each.
    pub async fn tags(&self) -> Result<Vec<(String, i64)>> {
        let sql = "SELECT t.name, COUNT(ct.contact_id) FROM tags t \
                   LEFT JOIN contact_tags ct ON ct.tag_id = t.id GROUP BY t.name ORDER BY t.name";
        Ok(on_pool!(self, p => sqlx::query_as::<_, (String, i64)>(sql).fetch_all(p).await?))
    }
}

const ADD_TAG_SQL: &str =
    "INSERT INTO contact_tags (contact_id, tag_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";

const ORG_SELECT: &str = "SELECT o.id, o.kind, o.name, o.country, o.region, o.city, o.timezone, \
    o.relationship, o.relationship_since, o.notes, o.created_at, o.updated_at, \
    (SELECT COUNT(*) FROM contacts c WHERE c.organisation_id = o.id) AS contacts \
    FROM organisations o";

/// The SELECT … FROM … JOIN that yields [`Contact`] rows (append a WHERE).
pub(crate) fn contact_select(dialect: Dialect) -> String {
    let tags = match dialect {
        Dialect::Sqlite => {
            "(SELECT group_concat(name, ';') FROM (SELECT t.name AS name FROM contact_tags ct \
            JOIN tags t ON t.id = ct.tag_id WHERE ct.contact_id = c.id ORDER BY t.name))"
        }
        Dialect::Postgres => {
            "(SELECT string_agg(t.name, ';' ORDER BY t.name) FROM contact_tags ct \
            JOIN tags t ON t.id = ct.tag_id WHERE ct.contact_id = c.id)"
        }
    };
    format!(
        "SELECT c.id, c.email, c.name, c.title, c.salutation, c.organisation_id, c.language, c.status, \
         c.status_reason, c.status_changed_at, c.consent_source, c.consent_at, c.attributes, \
         c.created_at, c.updated_at, o.name AS org_name, o.kind AS org_kind, \
         o.country AS org_country, o.region AS org_region, o.city AS org_city, \
         o.timezone AS org_timezone, o.relationship AS org_relationship, \
         o.relationship_since AS org_since, {tags} AS tags \
         FROM contacts c LEFT JOIN organisations o ON o.id = c.organisation_id"
    )
}

/// The statement that opens a write transaction: on SQLite take the write
/// lock at once, so two writers queue on busy_timeout instead of failing.
pub(crate) fn begin_write(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "BEGIN IMMEDIATE",
        Dialect::Postgres => "BEGIN",
    }
}

/// The most parameters one SQLite statement may have (SQLite's own limit is
/// 32,766; bulk statements stay well under it).
pub(crate) const SQLITE_MAX_PARAMS: usize = 30_000;

/// `n` anonymous SQLite parameters, `?,?,?`, for an `IN (…)` list.
///
/// Anonymous parameters are bound in order. Numbered ones (`$N`) would cost
/// a quadratic amount of work: sqlx asks SQLite for each parameter's name,
/// a linear search through the named ones.
pub(crate) fn sqlite_list(n: usize) -> String {
    let mut list = "?,".repeat(n);
    list.pop();
    list
}

/// `rows` tuples of `cols` anonymous parameters, `(?,?),(?,?)`, for a bound
/// SQLite `VALUES` list (see [`sqlite_list`]).
pub(crate) fn sqlite_values(rows: usize, cols: usize) -> String {
    let mut values = format!("({}),", sqlite_list(cols)).repeat(rows);
    values.pop();
    values
}

/// The longest text a contact's field may hold, in bytes (as in an import).
pub const MAX_TEXT_BYTES: usize = 64 << 10;

/// A contact's text field: at most [`MAX_TEXT_BYTES`], and no NUL byte
/// (PostgreSQL cannot store one, so SQLite refuses it too).
fn check_text(field: &str, value: &str) -> Result<()> {
    if value.len() > MAX_TEXT_BYTES {
        bail!(
            "{field} is {} bytes long; it may be at most {} KiB",
            value.len(),
            MAX_TEXT_BYTES >> 10
        );
    }
    if value.contains('\0') {
        bail!("{field} contains a NUL byte");
    }
    Ok(())
}

fn check_attributes(attrs: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
    for (k, v) in attrs {
        check_text("an attribute name", k)?;
        if let Some(text) = v.as_str() {
            check_text(&format!("attribute {}", crate::domain::quote(k)), text)?;
        }
    }
    Ok(())
}

/// Organisations are identified by their name, case-insensitively.
pub fn org_key(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Tags are stored trimmed and lower-cased.
pub fn normalise_tag(tag: &str) -> String {
    tag.trim().to_lowercase()
}

fn clean_opt(v: &Option<Option<String>>) -> Option<String> {
    v.clone()
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A line for the operator about a database failure that needs their hand,
/// naming the database: a damaged SQLite file, a full disk. `None` for other
/// errors.
pub fn failure_hint(e: &anyhow::Error, url: &str) -> Option<String> {
    let code = e
        .chain()
        .find_map(|c| match c.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(db)) => db.code().map(|c| c.to_string()),
            _ => None,
        })?;
    let sqlite = url
        .strip_prefix("sqlite://")
        .or(url.strip_prefix("sqlite:"));
    match (sqlite, code.as_str()) {
        (Some(file), c) if c.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 11 | 26)) => {
            let file = file.split('?').next().unwrap_or(file);
            Some(format!(
                "the SQLite database {file} is damaged (or not an SQLite file): restore it \
                 from a backup, or try `sqlite3 {file} .recover` into a new file"
            ))
        }
        (Some(file), c) if c.parse::<i32>().is_ok_and(|c| c & 0xff == 13) => {
            let file = file.split('?').next().unwrap_or(file);
            Some(format!(
                "the disk holding the SQLite database {file} is full: free some space and run \
                 the command again (what was committed is kept)"
            ))
        }
        (None, "53100") => Some(format!(
            "the PostgreSQL server at {} has no disk space left: free some space and run the \
             command again (what was committed is kept)",
            redact_url(url)
        )),
        _ => None,
    }
}

/// Hides the password in a database URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_in_database_urls() {
        assert_eq!(
            redact_url("postgres://u:secret@localhost/db"),
            "postgres://u:***@localhost/db"
        );
        assert_eq!(
            redact_url("sqlite://data/whatsup.db"),
            "sqlite://data/whatsup.db"
        );
    }

    #[test]
    fn sqlite_values_lists_one_tuple_of_anonymous_parameters_per_row() {
        assert_eq!(sqlite_values(1, 1), "(?)");
        assert_eq!(sqlite_values(3, 2), "(?,?),(?,?),(?,?)");
        assert_eq!(sqlite_list(3), "?,?,?");
    }

    #[test]
    fn organisation_keys_ignore_case_and_spacing() {
        assert_eq!(
            org_key("  Embassy of  France in Japan "),
            "embassy of france in japan"
        );
    }
}
