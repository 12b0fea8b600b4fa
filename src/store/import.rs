//! Bulk primitives for CSV import, on one dedicated connection.
//!
//! The import logic (validation, merging, counting) lives in `crate::import`;
//! this file only holds its SQL. Rows travel to the database as one JSON
//! document per statement (`json_each` on SQLite, `jsonb_to_recordset` on
//! PostgreSQL), so a batch of thousands of rows costs a handful of round trips.
//!
//! A session keeps a temporary table `import_seen` of the addresses already
//! read from the file, so duplicates are found without holding the whole file
//! in memory.

use std::collections::HashMap;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::pool::PoolConnection;
use sqlx::types::Json;
use sqlx::{Postgres, Sqlite};

use super::{begin_write, status, Dialect, StatusChange, Store};
use crate::domain::ContactStatus;

/// The backend connection an import runs on.
enum Conn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            Conn::Sqlite($c) => $body,
            Conn::Postgres($c) => $body,
        }
    };
}

/// An organisation as the importer sees it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct OrgRecord {
    pub id: i64,
    pub name_key: String,
    pub kind: String,
    pub name: String,
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub timezone: Option<String>,
    pub relationship: Option<String>,
    pub relationship_since: Option<i64>,
}

/// A contact that already exists, with the fields an import may change.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExistingContact {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub title: String,
    pub organisation_id: Option<i64>,
    pub language: Option<String>,
    pub status: String,
    pub attributes: Json<serde_json::Map<String, serde_json::Value>>,
}

/// A contact to insert (field names kept short: they are serialised per row).
#[derive(Debug, Clone, Serialize)]
pub struct NewRow<'a> {
    pub e: &'a str,
    pub n: &'a str,
    pub t: &'a str,
    pub o: Option<i64>,
    pub l: Option<&'a str>,
    pub a: &'a serde_json::Map<String, serde_json::Value>,
}

/// One import's connection and transaction state.
pub struct ImportSession {
    conn: Conn,
    dialect: Dialect,
    /// Dry runs hold one transaction over the whole import and roll it back.
    dry_run: bool,
    in_tx: bool,
    /// Statements that put the connection's durability settings back.
    restore: Vec<String>,
}

impl Store {
    /// Takes a connection for an import and prepares its scratch table.
    pub async fn import_session(&self, dry_run: bool) -> Result<ImportSession> {
        let conn = match self {
            Store::Sqlite(p) => Conn::Sqlite(p.acquire().await?),
            Store::Postgres(p) => Conn::Postgres(p.acquire().await?),
        };
        let mut s = ImportSession {
            conn,
            dialect: self.dialect(),
            dry_run,
            in_tx: false,
            restore: Vec::new(),
        };
        if !dry_run {
            s.relax_durability().await?;
        }
        let create = match s.dialect {
            Dialect::Sqlite => "CREATE TEMP TABLE IF NOT EXISTS import_seen (email TEXT PRIMARY KEY, line INTEGER NOT NULL) WITHOUT ROWID",
            Dialect::Postgres => "CREATE TEMP TABLE IF NOT EXISTS import_seen (email TEXT PRIMARY KEY, line BIGINT NOT NULL)",
        };
        on_conn!(&mut s.conn, c => {
            sqlx::query(create).execute(&mut **c).await?;
            sqlx::query("DELETE FROM import_seen").execute(&mut **c).await?;
        });
        if dry_run {
            s.exec(begin_write(s.dialect)).await?;
            s.in_tx = true;
        }
        Ok(s)
    }
}

impl ImportSession {
    async fn exec(&mut self, sql: &str) -> Result<()> {
        on_conn!(&mut self.conn, c => { sqlx::query(sql).execute(&mut **c).await?; });
        Ok(())
    }

    /// Starts a batch: its writes commit or roll back together.
    pub async fn begin_batch(&mut self) -> Result<()> {
        if !self.dry_run {
            self.exec(begin_write(self.dialect)).await?;
            self.in_tx = true;
        }
        Ok(())
    }

    /// Commits the batch (in a dry run, keeps it pending until `finish`).
    pub async fn commit_batch(&mut self) -> Result<()> {
        if !self.dry_run {
            self.exec("COMMIT").await?;
            self.in_tx = false;
        }
        Ok(())
    }

    /// Undoes the open transaction, if any.
    pub async fn rollback(&mut self) -> Result<()> {
        if self.in_tx {
            self.in_tx = false;
            self.exec("ROLLBACK").await?;
        }
        Ok(())
    }

    /// Batches commit without waiting for the disk; `finish` makes them all
    /// durable with one flush at the end.
    ///
    /// Each batch is still atomic and the store consistent after a crash
    /// (SQLite in WAL mode with `synchronous = NORMAL`, PostgreSQL with
    /// `synchronous_commit = off`, never corrupt); what a power loss can
    /// take back is the last batches committed before it, which importing
    /// the file again puts in. Per-batch fsyncs cost more than the batches'
    /// own work when the disk is busy.
    async fn relax_durability(&mut self) -> Result<()> {
        match self.dialect {
            Dialect::Sqlite => {
                let (sync, checkpoint): (i64, i64) = on_conn!(&mut self.conn, c => {
                    let sync = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut **c).await?;
                    let cp = sqlx::query_scalar("PRAGMA wal_autocheckpoint").fetch_one(&mut **c).await?;
                    (sync, cp)
                });
                self.restore = vec![
                    format!("PRAGMA synchronous = {sync}"),
                    format!("PRAGMA wal_autocheckpoint = {checkpoint}"),
                    // Syncs the WAL, copies it into the database file and
                    // syncs that: everything imported is on disk after this.
                    "PRAGMA wal_checkpoint(FULL)".into(),
                ];
                self.exec("PRAGMA synchronous = NORMAL").await?;
                // Fewer, larger checkpoints while the import writes.
                self.exec("PRAGMA wal_autocheckpoint = 10000").await?;
            }
            Dialect::Postgres => {
                self.exec("SET synchronous_commit = off").await?;
                // RESET, then the DROP of the scratch table in `finish` is a
                // committed transaction that flushes the WAL up to itself,
                // which covers every batch before it.
                self.restore = vec!["RESET synchronous_commit".into()];
            }
        }
        Ok(())
    }

    /// Ends the session; a dry run's changes are rolled back here. After a
    /// real import, everything committed is flushed to disk.
    pub async fn finish(mut self) -> Result<()> {
        self.rollback().await?;
        for sql in std::mem::take(&mut self.restore) {
            self.exec(&sql).await?;
        }
        self.exec("DROP TABLE IF EXISTS import_seen").await
    }

    /// Records `(email, line)` pairs as seen; returns, for those seen in an
    /// earlier batch, the line where each was first seen. One statement in
    /// the usual case (no duplicates), a second only to find first lines.
    pub async fn mark_seen(&mut self, rows: &[(&str, u64)]) -> Result<HashMap<String, u64>> {
        let pairs = serde_json::to_string(rows)?;
        let (insert, select) = match self.dialect {
            Dialect::Sqlite => (
                "INSERT INTO import_seen (email, line) SELECT j.value ->> 0, j.value ->> 1 \
                 FROM json_each($1) AS j WHERE true ON CONFLICT (email) DO NOTHING",
                "SELECT email, line FROM import_seen WHERE email IN (SELECT value FROM json_each($1))",
            ),
            Dialect::Postgres => (
                "INSERT INTO import_seen (email, line) SELECT x ->> 0, (x ->> 1)::bigint \
                 FROM jsonb_array_elements($1::text::jsonb) AS x ON CONFLICT (email) DO NOTHING",
                "SELECT email, line FROM import_seen WHERE email IN \
                 (SELECT jsonb_array_elements_text($1::text::jsonb))",
            ),
        };
        let inserted = on_conn!(&mut self.conn, c => sqlx::query(insert).bind(&pairs).execute(&mut **c).await?.rows_affected());
        if inserted as usize == rows.len() {
            return Ok(HashMap::new());
        }
        // Some were there already: their stored line is an earlier one.
        let emails: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let emails = serde_json::to_string(&emails)?;
        let mine: HashMap<&str, u64> = rows.iter().copied().collect();
        let seen: Vec<(String, i64)> = on_conn!(&mut self.conn, c => sqlx::query_as(select).bind(&emails).fetch_all(&mut **c).await?);
        Ok(seen
            .into_iter()
            .filter(|(e, l)| mine.get(e.as_str()) != Some(&(*l as u64)))
            .map(|(e, l)| (e, l as u64))
            .collect())
    }

    /// The organisations with these name keys.
    pub async fn find_orgs(&mut self, keys: &[&str]) -> Result<Vec<OrgRecord>> {
        let sql = match self.dialect {
            Dialect::Sqlite => "SELECT id, name_key, kind, name, country, region, city, timezone, relationship, \
                 relationship_since FROM organisations WHERE name_key IN (SELECT value FROM json_each($1))",
            Dialect::Postgres => "SELECT id, name_key, kind, name, country, region, city, timezone, relationship, \
                 relationship_since FROM organisations WHERE name_key IN \
                 (SELECT jsonb_array_elements_text($1::text::jsonb))",
        };
        let keys = serde_json::to_string(keys)?;
        Ok(
            on_conn!(&mut self.conn, c => sqlx::query_as(sql).bind(&keys).fetch_all(&mut **c).await?),
        )
    }

    /// Inserts organisations (their `id`s are ignored) in one statement and
    /// returns name key → new id.
    pub async fn insert_orgs(
        &mut self,
        orgs: &[&OrgRecord],
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, i64>> {
        if orgs.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = match self.dialect {
            Dialect::Sqlite => "INSERT INTO organisations (kind, name, name_key, country, region, city, timezone, \
                 relationship, relationship_since, notes, created_at, updated_at) \
                 SELECT j.value ->> 'kind', j.value ->> 'name', j.value ->> 'name_key', j.value ->> 'country', \
                 j.value ->> 'region', j.value ->> 'city', j.value ->> 'timezone', j.value ->> 'relationship', \
                 j.value ->> 'relationship_since', '', $2, $2 FROM json_each($1) AS j WHERE true \
                 RETURNING name_key, id",
            Dialect::Postgres => "INSERT INTO organisations (kind, name, name_key, country, region, city, timezone, \
                 relationship, relationship_since, notes, created_at, updated_at) \
                 SELECT x.kind, x.name, x.name_key, x.country, x.region, x.city, x.timezone, x.relationship, \
                 x.relationship_since, '', $2, $2 FROM jsonb_to_recordset($1::text::jsonb) AS x(kind text, \
                 name text, name_key text, country text, region text, city text, timezone text, \
                 relationship text, relationship_since bigint) RETURNING name_key, id",
        };
        let doc = serde_json::to_string(orgs)?;
        let rows: Vec<(String, i64)> = on_conn!(&mut self.conn, c => sqlx::query_as(sql)
            .bind(&doc).bind(now).fetch_all(&mut **c).await?);
        Ok(rows.into_iter().collect())
    }

    /// Overwrites an organisation's imported fields.
    pub async fn update_org(&mut self, o: &OrgRecord, now: DateTime<Utc>) -> Result<()> {
        let sql = "UPDATE organisations SET kind = $1, name = $2, country = $3, region = $4, city = $5, \
                   timezone = $6, relationship = $7, relationship_since = $8, updated_at = $9 WHERE id = $10";
        on_conn!(&mut self.conn, c => { sqlx::query(sql)
            .bind(&o.kind).bind(&o.name).bind(&o.country).bind(&o.region).bind(&o.city)
            .bind(&o.timezone).bind(&o.relationship).bind(o.relationship_since).bind(now).bind(o.id)
            .execute(&mut **c).await?; });
        Ok(())
    }

    /// The contacts that already exist among these (normalised) addresses.
    pub async fn find_contacts(&mut self, emails: &[&str]) -> Result<Vec<ExistingContact>> {
        let sql = match self.dialect {
            Dialect::Sqlite => {
                "SELECT id, email, name, title, organisation_id, language, status, attributes \
                 FROM contacts WHERE email IN (SELECT value FROM json_each($1))"
            }
            Dialect::Postgres => {
                "SELECT id, email, name, title, organisation_id, language, status, attributes \
                 FROM contacts WHERE email IN (SELECT jsonb_array_elements_text($1::text::jsonb))"
            }
        };
        let emails = serde_json::to_string(emails)?;
        Ok(
            on_conn!(&mut self.conn, c => sqlx::query_as(sql).bind(&emails).fetch_all(&mut **c).await?),
        )
    }

    /// Inserts new active contacts; returns `(id, email)` of those inserted
    /// (an address another writer added meanwhile is skipped, not an error).
    pub async fn insert_contacts(
        &mut self,
        rows: &[NewRow<'_>],
        consent_source: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(i64, String)>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let sql = match self.dialect {
            Dialect::Sqlite => "INSERT INTO contacts (email, name, title, organisation_id, language, status, \
                 status_changed_at, consent_source, consent_at, attributes, created_at, updated_at) \
                 SELECT j.value ->> 'e', j.value ->> 'n', j.value ->> 't', j.value ->> 'o', j.value ->> 'l', \
                 'active', $2, $3, $2, j.value -> 'a', $2, $2 FROM json_each($1) AS j \
                 WHERE true ON CONFLICT (email) DO NOTHING RETURNING id, email",
            Dialect::Postgres => "INSERT INTO contacts (email, name, title, organisation_id, language, status, \
                 status_changed_at, consent_source, consent_at, attributes, created_at, updated_at) \
                 SELECT x.e, x.n, x.t, x.o, x.l, 'active', $2, $3, $2, x.a, $2, $2 \
                 FROM jsonb_to_recordset($1::text::jsonb) AS x(e text, n text, t text, o bigint, l text, a jsonb) \
                 ON CONFLICT (email) DO NOTHING RETURNING id, email",
        };
        let doc = serde_json::to_string(rows)?;
        Ok(on_conn!(&mut self.conn, c => sqlx::query_as(sql)
            .bind(&doc).bind(now).bind(consent_source)
            .fetch_all(&mut **c).await?))
    }

    /// Overwrites an existing contact's imported fields.
    pub async fn update_contact(
        &mut self,
        id: i64,
        row: &NewRow<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let sql =
            "UPDATE contacts SET name = $1, title = $2, organisation_id = $3, language = $4, \
                   attributes = $5, updated_at = $6 WHERE id = $7";
        on_conn!(&mut self.conn, c => { sqlx::query(sql)
            .bind(row.n).bind(row.t).bind(row.o).bind(row.l).bind(Json(row.a)).bind(now).bind(id)
            .execute(&mut **c).await?; });
        Ok(())
    }

    /// Changes a contact's status with its audit event.
    pub async fn change_status(
        &mut self,
        id: i64,
        old: Option<ContactStatus>,
        change: &StatusChange<'_>,
    ) -> Result<()> {
        on_conn!(&mut self.conn, c => status::record_change!(&mut **c, id, old, change));
        Ok(())
    }

    /// Creates the tags that do not exist yet; returns name → id for all.
    pub async fn ensure_tags(
        &mut self,
        names: &[&str],
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, i64>> {
        let (insert, select) = match self.dialect {
            Dialect::Sqlite => (
                "INSERT INTO tags (name, created_at) SELECT value, $2 FROM json_each($1) WHERE true \
                 ON CONFLICT (name) DO NOTHING",
                "SELECT name, id FROM tags WHERE name IN (SELECT value FROM json_each($1))",
            ),
            Dialect::Postgres => (
                "INSERT INTO tags (name, created_at) SELECT jsonb_array_elements_text($1::text::jsonb), $2 \
                 ON CONFLICT (name) DO NOTHING",
                "SELECT name, id FROM tags WHERE name IN (SELECT jsonb_array_elements_text($1::text::jsonb))",
            ),
        };
        let doc = serde_json::to_string(names)?;
        let rows: Vec<(String, i64)> = on_conn!(&mut self.conn, c => {
            sqlx::query(insert).bind(&doc).bind(now).execute(&mut **c).await?;
            sqlx::query_as(select).bind(&doc).fetch_all(&mut **c).await?
        });
        Ok(rows.into_iter().collect())
    }

    /// Links contacts to tags; returns how many links were new.
    pub async fn link_tags(&mut self, pairs: &[(i64, i64)]) -> Result<u64> {
        if pairs.is_empty() {
            return Ok(0);
        }
        let sql = match self.dialect {
            Dialect::Sqlite => "INSERT INTO contact_tags (contact_id, tag_id) SELECT j.value ->> 0, j.value ->> 1 \
                 FROM json_each($1) AS j WHERE true ON CONFLICT DO NOTHING",
            Dialect::Postgres => "INSERT INTO contact_tags (contact_id, tag_id) \
                 SELECT (x ->> 0)::bigint, (x ->> 1)::bigint FROM jsonb_array_elements($1::text::jsonb) AS x \
                 ON CONFLICT DO NOTHING",
        };
        let doc = serde_json::to_string(pairs)?;
        Ok(
            on_conn!(&mut self.conn, c => sqlx::query(sql).bind(&doc).execute(&mut **c).await?.rows_affected()),
        )
    }
}
