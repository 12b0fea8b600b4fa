//! Bulk primitives for CSV import, on one dedicated connection.
//!
//! The import logic (validation, merging, counting) lives in `crate::import`;
//! this file only holds its SQL. A chunk of thousands of rows costs a
//! handful of statements. The per-row ones bind the rows as parameters: a
//! `VALUES` list of anonymous `?` on SQLite, one array per field through
//! `unnest` on PostgreSQL. (Reading each field out of a JSON document cost
//! more than inserting the row.) The organisation and tag statements, which
//! carry few rows, take one JSON document.
//!
//! A session keeps a temporary table `import_seen` of the existing contacts
//! the file has matched so far, so duplicates of them are found without
//! holding the whole file in memory. (The importer tells duplicates of the
//! contacts it created apart by id, see `crate::import::created`.)

use std::collections::{HashMap, HashSet};

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::pool::PoolConnection;
use sqlx::types::Json;
use sqlx::{Postgres, Sqlite};

use super::{
    begin_write, sqlite_list, sqlite_values, status, Dialect, StatusChange, Store,
    SQLITE_MAX_PARAMS,
};
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
#[derive(Debug, Clone, serde::Deserialize, sqlx::FromRow)]
pub struct ExistingContact {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub title: String,
    pub salutation: String,
    pub organisation_id: Option<i64>,
    pub language: Option<String>,
    pub status: String,
    pub attributes: Json<serde_json::Map<String, serde_json::Value>>,
}

/// A contact to insert: email, name, title, organisation, language,
/// attributes, salutation.
#[derive(Debug, Clone)]
pub struct NewRow<'a> {
    pub e: &'a str,
    pub n: &'a str,
    pub t: &'a str,
    pub o: Option<i64>,
    pub l: Option<&'a str>,
    pub a: &'a serde_json::Map<String, serde_json::Value>,
    pub s: &'a str,
}

/// One import's connection and transaction state.
pub struct ImportSession {
    /// Taken out only when the session is dropped.
    conn: Option<Conn>,
    dialect: Dialect,
    /// Dry runs hold one transaction over the whole import and roll it back.
    dry_run: bool,
    in_tx: bool,
    /// Statements that put the connection's settings back. A session
    /// dropped before they ran closes its connection instead of returning it
    /// to the pool.
    restore: Vec<String>,
    /// Organisations and tags found by `check_references` in the open batch:
    /// its lock keeps them there until it ends.
    checked: [HashSet<i64>; 2],
}

impl Drop for ImportSession {
    fn drop(&mut self) {
        if self.restore.is_empty() {
            return;
        }
        // Detached from the pool, the connection is closed when dropped.
        match self.conn.take() {
            Some(Conn::Sqlite(c)) => drop(c.detach()),
            Some(Conn::Postgres(c)) => drop(c.detach()),
            None => {}
        }
    }
}

impl Store {
    /// Takes a connection for an import and prepares its scratch table.
    pub async fn import_session(&self, dry_run: bool) -> Result<ImportSession> {
        let conn = match self {
            Store::Sqlite(p) => Conn::Sqlite(p.acquire().await?),
            Store::Postgres(p) => Conn::Postgres(p.acquire().await?),
        };
        let mut s = ImportSession {
            conn: Some(conn),
            dialect: self.dialect(),
            dry_run,
            in_tx: false,
            restore: Vec::new(),
            checked: Default::default(),
        };
        if s.dialect == Dialect::Sqlite {
            s.check_references_per_batch().await?;
        }
        if !dry_run {
            s.relax_durability().await?;
        }
        let create = match s.dialect {
            Dialect::Sqlite => "CREATE TEMP TABLE IF NOT EXISTS import_seen (email TEXT PRIMARY KEY, line INTEGER NOT NULL) WITHOUT ROWID",
            Dialect::Postgres => "CREATE TEMP TABLE IF NOT EXISTS import_seen (email TEXT PRIMARY KEY, line BIGINT NOT NULL)",
        };
        on_conn!(s.conn(), c => {
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
    fn conn(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("the connection is only taken on drop")
    }

    /// SQLite: the import's connection checks its references once per chunk
    /// ([`ImportSession::check_references`]) instead of through foreign keys
    /// row by row.
    ///
    /// A multi-row INSERT into `contacts`, a parent table, makes SQLite
    /// search each of the five tables that reference contacts for every row
    /// inserted, on top of the organisation lookup: about a tenth of a
    /// million-row import's time. Nothing is lost: a batch holds SQLite's write lock from
    /// before its lookups to its commit, the contacts it links or updates
    /// were found or created under that lock, and the organisations and tags
    /// it refers to are checked under it too.
    async fn check_references_per_batch(&mut self) -> Result<()> {
        // Put back before anything else in `finish`, outside a transaction
        // (the pragma does nothing inside one).
        self.restore.push("PRAGMA foreign_keys = ON".into());
        self.exec("PRAGMA foreign_keys = OFF").await
    }

    /// Fails unless every one of these organisations and tags exists. On
    /// PostgreSQL the reference triggers (migrations/postgres/0010) check
    /// this, and lock the rows, as the rows go in; on SQLite it is this
    /// check, in the batch's transaction.
    pub async fn check_references(&mut self, orgs: &[i64], tags: &[i64]) -> Result<()> {
        let Some(Conn::Sqlite(c)) = self.conn.as_mut() else {
            return Ok(());
        };
        for ((table, ids), checked) in [("organisations", orgs), ("tags", tags)]
            .into_iter()
            .zip(&mut self.checked)
        {
            let mut ids: Vec<i64> = ids
                .iter()
                .copied()
                .filter(|id| !checked.contains(id))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            for chunk in ids.chunks(sqlite_rows_per_statement(1)) {
                let sql = format!(
                    "SELECT count(*) FROM {table} WHERE id IN ({})",
                    sqlite_list(chunk.len())
                );
                let mut q = sqlx::query_scalar(&sql);
                for id in chunk {
                    q = q.bind(*id);
                }
                let found: i64 = q.fetch_one(&mut **c).await?;
                if found != chunk.len() as i64 {
                    bail!(
                        "{} of the {table} this batch refers to no longer exist \
                         (removed by another writer during the import?)",
                        chunk.len() as i64 - found
                    );
                }
            }
            checked.extend(ids);
        }
        Ok(())
    }

    async fn exec(&mut self, sql: &str) -> Result<()> {
        on_conn!(self.conn(), c => { sqlx::query(sql).execute(&mut **c).await?; });
        Ok(())
    }

    /// Starts a batch: its writes commit or roll back together.
    pub async fn begin_batch(&mut self) -> Result<()> {
        self.checked = Default::default();
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
                let (sync, checkpoint, cache): (i64, i64, i64) = on_conn!(self.conn(), c => {
                    let sync = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut **c).await?;
                    let cp = sqlx::query_scalar("PRAGMA wal_autocheckpoint").fetch_one(&mut **c).await?;
                    let cache = sqlx::query_scalar("PRAGMA cache_size").fetch_one(&mut **c).await?;
                    (sync, cp, cache)
                });
                self.restore.extend([
                    format!("PRAGMA synchronous = {sync}"),
                    format!("PRAGMA wal_autocheckpoint = {checkpoint}"),
                    format!("PRAGMA cache_size = {cache}"),
                    // Syncs the WAL, copies it into the database file and
                    // syncs that: everything imported is on disk after this.
                    "PRAGMA wal_checkpoint(FULL)".into(),
                ]);
                self.exec("PRAGMA synchronous = NORMAL").await?;
                // Fewer, larger checkpoints while the import writes.
                self.exec("PRAGMA wal_autocheckpoint = 10000").await?;
                // A batch touches pages all over the address index. With
                // SQLite's default 2 MiB cache it writes pages out and reads
                // them back within the batch; 32 MiB holds a batch's pages
                // (a million-row import took 10% less time).
                self.exec(&format!("PRAGMA cache_size = -{IMPORT_CACHE_KIB}"))
                    .await?;
            }
            Dialect::Postgres => {
                self.exec("SET synchronous_commit = off").await?;
                // RESET, then the DROP of the scratch table in `finish` is a
                // committed transaction that flushes the WAL up to itself,
                // which covers every batch before it.
                self.restore.push("RESET synchronous_commit".into());
            }
        }
        Ok(())
    }

    /// Ends the session; a dry run's changes are rolled back here. After a
    /// real import, everything committed is flushed to disk.
    pub async fn finish(mut self) -> Result<()> {
        self.rollback().await?;
        for sql in self.restore.clone() {
            self.exec(&sql).await?;
        }
        self.restore.clear();
        self.exec("DROP TABLE IF EXISTS import_seen").await
    }

    /// Records `(email, line)` pairs as seen; returns, for those seen in an
    /// earlier chunk, the line where each was first seen. One statement in
    /// the usual case (no duplicates), a second only to find first lines.
    pub async fn mark_seen(&mut self, rows: &[(&str, u64)]) -> Result<HashMap<String, u64>> {
        let mut inserted = 0u64;
        match self.conn() {
            Conn::Sqlite(c) => {
                for chunk in rows.chunks(sqlite_rows_per_statement(2)) {
                    let sql = format!(
                        "INSERT OR FAIL INTO import_seen (email, line) VALUES {} ON CONFLICT (email) DO NOTHING",
                        sqlite_values(chunk.len(), 2)
                    );
                    let mut q = sqlx::query(&sql);
                    for (email, line) in chunk {
                        q = q.bind(*email).bind(*line as i64);
                    }
                    inserted += q.execute(&mut **c).await?.rows_affected();
                }
            }
            Conn::Postgres(c) => {
                let (emails, lines): (Vec<&str>, Vec<i64>) =
                    rows.iter().map(|(e, l)| (*e, *l as i64)).unzip();
                inserted = sqlx::query(
                    "INSERT INTO import_seen (email, line) SELECT * FROM unnest($1::text[], $2::bigint[]) \
                     ON CONFLICT (email) DO NOTHING",
                )
                .bind(emails)
                .bind(lines)
                .execute(&mut **c)
                .await?
                .rows_affected();
            }
        }
        if inserted as usize == rows.len() {
            return Ok(HashMap::new());
        }
        // Some were there already: their stored line is an earlier one.
        let emails: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let mine: HashMap<&str, u64> = rows.iter().copied().collect();
        let seen: Vec<(String, i64)> = self
            .select_by_emails(
                "SELECT json_group_array(json_array(email, line)) FROM import_seen",
                "SELECT email, line FROM import_seen",
                &emails,
            )
            .await?;
        Ok(seen
            .into_iter()
            .filter(|(e, l)| mine.get(e.as_str()) != Some(&(*l as u64)))
            .map(|(e, l)| (e, l as u64))
            .collect())
    }

    /// The rows whose `email` is one of `emails`. `postgres` is a SELECT
    /// without a WHERE clause. `sqlite_json` is the same SELECT with its
    /// columns aggregated into one JSON array (`json_group_array(...)`):
    /// sqlx hands every SQLite result row from its worker thread to this
    /// task as a message of its own, which made the existing-contact lookup
    /// more than half of a re-import's time (6.6 s of 13 s for a million
    /// unchanged rows).
    async fn select_by_emails<T>(
        &mut self,
        sqlite_json: &str,
        postgres: &str,
        emails: &[&str],
    ) -> Result<Vec<T>>
    where
        T: Send + Unpin + serde::de::DeserializeOwned,
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        match self.conn() {
            Conn::Sqlite(c) => {
                let mut out = Vec::new();
                for chunk in emails.chunks(sqlite_rows_per_statement(1)) {
                    let sql = format!(
                        "{sqlite_json} WHERE email IN ({})",
                        sqlite_list(chunk.len())
                    );
                    let mut q = sqlx::query_scalar::<_, String>(&sql);
                    for email in chunk {
                        q = q.bind(*email);
                    }
                    out.extend(serde_json::from_str::<Vec<T>>(
                        &q.fetch_one(&mut **c).await?,
                    )?);
                }
                Ok(out)
            }
            Conn::Postgres(c) => Ok(sqlx::query_as(&format!(
                "{postgres} WHERE email = ANY($1::text[])"
            ))
            .bind(emails)
            .fetch_all(&mut **c)
            .await?),
        }
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
        Ok(on_conn!(self.conn(), c => sqlx::query_as(sql).bind(&keys).fetch_all(&mut **c).await?))
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
        let rows: Vec<(String, i64)> = on_conn!(self.conn(), c => sqlx::query_as(sql)
            .bind(&doc).bind(now).fetch_all(&mut **c).await?);
        Ok(rows.into_iter().collect())
    }

    /// Overwrites an organisation's imported fields.
    pub async fn update_org(&mut self, o: &OrgRecord, now: DateTime<Utc>) -> Result<()> {
        let sql = "UPDATE organisations SET kind = $1, name = $2, country = $3, region = $4, city = $5, \
                   timezone = $6, relationship = $7, relationship_since = $8, updated_at = $9 WHERE id = $10";
        on_conn!(self.conn(), c => { sqlx::query(sql)
            .bind(&o.kind).bind(&o.name).bind(&o.country).bind(&o.region).bind(&o.city)
            .bind(&o.timezone).bind(&o.relationship).bind(o.relationship_since).bind(now).bind(o.id)
            .execute(&mut **c).await?; });
        Ok(())
    }

    /// The contacts that already exist among these (normalised) addresses.
    pub async fn find_contacts(&mut self, emails: &[&str]) -> Result<Vec<ExistingContact>> {
        self.select_by_emails(
            "SELECT json_group_array(json_object('id', id, 'email', email, 'name', name, \
             'title', title, 'salutation', salutation, 'organisation_id', organisation_id, \
             'language', language, 'status', status, 'attributes', json(attributes))) FROM contacts",
            "SELECT id, email, name, title, salutation, organisation_id, language, status, attributes \
             FROM contacts",
            emails,
        )
        .await
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
        let attributes: Vec<String> = rows
            .iter()
            .map(|r| serde_json::to_string(r.a))
            .collect::<Result<_, _>>()?;
        match self.conn() {
            Conn::Sqlite(c) => {
                // The batch's transaction holds SQLite's write lock from
                // before these addresses were looked up, so none of them can
                // exist: no conflict to skip. The ids are given here (the
                // next free rowids, as SQLite would choose them) instead of
                // read back with RETURNING, which costs a message per row
                // between sqlx's worker thread and this task.
                let next: i64 = sqlx::query_scalar("SELECT COALESCE(max(id), 0) + 1 FROM contacts")
                    .fetch_one(&mut **c)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                let per = sqlite_rows_per_statement(8);
                for (chunk, attrs) in rows.chunks(per).zip(attributes.chunks(per)) {
                    let sql = format!(
                        "WITH x(id, e, n, t, o, l, a, s) AS (VALUES {}) \
                         INSERT OR FAIL INTO contacts (id, email, name, title, organisation_id, language, status, \
                         status_changed_at, consent_source, consent_at, attributes, created_at, updated_at, \
                         salutation) \
                         SELECT id, e, n, t, o, l, 'active', ?, ?, ?, a, ?, ?, s FROM x",
                        sqlite_values(chunk.len(), 8)
                    );
                    let mut q = sqlx::query(&sql);
                    for (r, a) in chunk.iter().zip(attrs) {
                        let id = next + out.len() as i64;
                        q = q
                            .bind(id)
                            .bind(r.e)
                            .bind(r.n)
                            .bind(r.t)
                            .bind(r.o)
                            .bind(r.l)
                            .bind(a.as_str())
                            .bind(r.s);
                        out.push((id, r.e.to_string()));
                    }
                    let q = q
                        .bind(now)
                        .bind(consent_source)
                        .bind(now)
                        .bind(now)
                        .bind(now);
                    let done = q.execute(&mut **c).await?.rows_affected();
                    if done != chunk.len() as u64 {
                        bail!("{} of {} contacts were inserted", done, chunk.len());
                    }
                }
                Ok(out)
            }
            Conn::Postgres(c) => {
                // PostgreSQL lets another writer add one of these addresses
                // after they were looked up. A plain INSERT costs less than
                // ON CONFLICT (a speculative insertion per row), so it runs
                // under a savepoint and is redone with ON CONFLICT only when
                // such a writer got there first.
                let insert = "INSERT INTO contacts (email, name, title, organisation_id, language, status, \
                     status_changed_at, consent_source, consent_at, attributes, created_at, updated_at, \
                     salutation) \
                     SELECT x.e, x.n, x.t, x.o, x.l, 'active', $7, $8, $7, x.a::jsonb, $7, $7, x.s \
                     FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], \
                     $9::text[]) AS x(e, n, t, o, l, a, s)";
                let arrays = ContactArrays {
                    e: rows.iter().map(|r| r.e).collect(),
                    n: rows.iter().map(|r| r.n).collect(),
                    t: rows.iter().map(|r| r.t).collect(),
                    o: rows.iter().map(|r| r.o).collect(),
                    l: rows.iter().map(|r| r.l).collect(),
                    a: attributes,
                    s: rows.iter().map(|r| r.s).collect(),
                };
                sqlx::query("SAVEPOINT import_contacts")
                    .execute(&mut **c)
                    .await?;
                let plain = format!("{insert} RETURNING id, email");
                match arrays.insert(c, &plain, now, consent_source).await {
                    Ok(inserted) => {
                        sqlx::query("RELEASE SAVEPOINT import_contacts")
                            .execute(&mut **c)
                            .await?;
                        Ok(inserted)
                    }
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        sqlx::query("ROLLBACK TO SAVEPOINT import_contacts")
                            .execute(&mut **c)
                            .await?;
                        sqlx::query("RELEASE SAVEPOINT import_contacts")
                            .execute(&mut **c)
                            .await?;
                        let skipping =
                            format!("{insert} ON CONFLICT (email) DO NOTHING RETURNING id, email");
                        Ok(arrays.insert(c, &skipping, now, consent_source).await?)
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
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
                   attributes = $5, updated_at = $6, salutation = $8 WHERE id = $7";
        on_conn!(self.conn(), c => { sqlx::query(sql)
            .bind(row.n).bind(row.t).bind(row.o).bind(row.l).bind(Json(row.a)).bind(now).bind(id)
            .bind(row.s)
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
        on_conn!(self.conn(), c => status::record_change!(&mut **c, id, old, change));
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
        let rows: Vec<(String, i64)> = on_conn!(self.conn(), c => {
            sqlx::query(insert).bind(&doc).bind(now).execute(&mut **c).await?;
            sqlx::query_as(select).bind(&doc).fetch_all(&mut **c).await?
        });
        Ok(rows.into_iter().collect())
    }

    /// Links contacts to tags; returns how many links were new.
    ///
    /// `fresh` says the contacts were created in this batch, so none of
    /// these (distinct) links can exist yet: they are inserted without
    /// looking for a conflict, which on PostgreSQL costs a speculative
    /// insertion per row.
    pub async fn link_tags(&mut self, pairs: &[(i64, i64)], fresh: bool) -> Result<u64> {
        if pairs.is_empty() {
            return Ok(0);
        }
        let on_conflict = if fresh { "" } else { " ON CONFLICT DO NOTHING" };
        match self.conn() {
            Conn::Sqlite(c) => {
                let mut n = 0;
                for chunk in pairs.chunks(sqlite_rows_per_statement(2)) {
                    let sql = format!(
                        "INSERT OR FAIL INTO contact_tags (contact_id, tag_id) VALUES {}{on_conflict}",
                        sqlite_values(chunk.len(), 2)
                    );
                    let mut q = sqlx::query(&sql);
                    for (contact, tag) in chunk {
                        q = q.bind(*contact).bind(*tag);
                    }
                    n += q.execute(&mut **c).await?.rows_affected();
                }
                Ok(n)
            }
            Conn::Postgres(c) => {
                let (contacts, tags): (Vec<i64>, Vec<i64>) = pairs.iter().copied().unzip();
                let sql = format!(
                    "INSERT INTO contact_tags (contact_id, tag_id) \
                     SELECT * FROM unnest($1::bigint[], $2::bigint[]){on_conflict}"
                );
                Ok(sqlx::query(&sql)
                    .bind(contacts)
                    .bind(tags)
                    .execute(&mut **c)
                    .await?
                    .rows_affected())
            }
        }
    }
}

/// New contacts as one PostgreSQL array per field.
struct ContactArrays<'a> {
    e: Vec<&'a str>,
    n: Vec<&'a str>,
    t: Vec<&'a str>,
    o: Vec<Option<i64>>,
    l: Vec<Option<&'a str>>,
    /// Attributes as JSON text.
    a: Vec<String>,
    s: Vec<&'a str>,
}

impl ContactArrays<'_> {
    /// Runs `sql`, which takes the arrays as `$1`–`$6` and `$9`
    /// (salutations), the time as `$7` and the consent source as `$8`, and
    /// returns `(id, email)` rows.
    async fn insert(
        &self,
        c: &mut sqlx::PgConnection,
        sql: &str,
        now: DateTime<Utc>,
        consent_source: &str,
    ) -> sqlx::Result<Vec<(i64, String)>> {
        sqlx::query_as(sql)
            .bind(&self.e)
            .bind(&self.n)
            .bind(&self.t)
            .bind(&self.o)
            .bind(&self.l)
            .bind(&self.a)
            .bind(now)
            .bind(consent_source)
            .bind(&self.s)
            .fetch_all(c)
            .await
    }
}

/// SQLite's page cache on an import's connection, in KiB.
const IMPORT_CACHE_KIB: u32 = 32 * 1024;

/// Rows per bulk SQLite statement when each binds `cols` parameters.
///
/// The bulk statements are `INSERT OR FAIL`: a failing statement stops
/// where it is instead of undoing its own rows, which spares SQLite a
/// statement journal (a copy of every page the statement changes). Any
/// failure rolls the whole batch back anyway.
fn sqlite_rows_per_statement(cols: usize) -> usize {
    (SQLITE_MAX_PARAMS - 8) / cols
}
