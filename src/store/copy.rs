//! `whatsup store copy`: an SQLite store into an empty PostgreSQL database,
//! every table, ids kept.
//!
//! Nothing here names a table. The tables and their columns are read at
//! run time from the SQLite schema and from the migrated PostgreSQL one,
//! which must agree (same tables, same columns: both come from the same
//! version's migrations). The tables are copied parents first, in the
//! order of the foreign keys of both schemas, so a table added by a later
//! migration is copied without any change here.
//!
//! - **Values** are read by their SQLite storage class and converted to the
//!   PostgreSQL column's type: integers, booleans (0/1), floats, text,
//!   timestamps (chrono's RFC 3339 text, kept to the microsecond that
//!   PostgreSQL stores), JSON (parsed, so a bad document stops the copy
//!   with its table and key), bytes; any other type goes as text through a
//!   cast. A chunk of rows is one `INSERT … SELECT FROM UNNEST(arrays)`.
//! - **Consistency:** the source is read in one read transaction, a single
//!   snapshot however long the copy takes (stop `serve` and `worker` before
//!   copying anyway: what they write afterwards is not in the copy, and the
//!   verification would then fail).
//! - **Resumable:** the target holds a bookkeeping table,
//!   `whatsup_store_copy`, with each table's position (the last copied
//!   key). Every chunk commits together with its position, so an
//!   interrupted copy (killed, a lost connection, a full disk) goes on from
//!   the last committed chunk when run again. The bookkeeping table is
//!   dropped once the copy is verified.
//! - **Sequences:** every identity column's sequence is set past the
//!   highest id copied, so new rows do not collide.
//! - **Verification:** per table, the row count and a checksum on both
//!   sides: each row's values in a canonical form (the same conversion as
//!   the copy) hashed with SHA-256, the hashes added up, so the order rows
//!   come in does not matter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use futures_util::TryStreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Connection, Row, TypeInfo, ValueRef};

/// The bookkeeping table in the target.
pub const BOOKKEEPING: &str = "whatsup_store_copy";

/// Rows per chunk: one INSERT and one commit each.
pub const CHUNK_ROWS: usize = 5_000;

/// A double-quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What a PostgreSQL column holds, as far as the copy is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Int,
    Bool,
    Float,
    Text,
    Timestamp,
    Json,
    Bytes,
    /// Anything else, sent as text through a cast to this type.
    Other(String),
}

impl Kind {
    fn from_pg(data_type: &str, udt: &str) -> Result<Kind> {
        Ok(match data_type {
            "bigint" | "integer" | "smallint" => Kind::Int,
            "boolean" => Kind::Bool,
            "double precision" | "real" => Kind::Float,
            "text" | "character varying" | "character" => Kind::Text,
            "timestamp with time zone" | "timestamp without time zone" => Kind::Timestamp,
            "jsonb" | "json" => Kind::Json,
            "bytea" => Kind::Bytes,
            "ARRAY" => bail!("array columns ({udt}) are not supported"),
            _ => Kind::Other(udt.to_string()),
        })
    }

    /// The array type a chunk of this column is bound as, with the casts
    /// to the column's type.
    fn unnest_arg(&self, n: usize, udt: &str) -> String {
        match self {
            Kind::Int => format!("${n}::int8[]"),
            Kind::Bool => format!("${n}::bool[]"),
            Kind::Float => format!("${n}::float8[]"),
            Kind::Text => format!("${n}::text[]"),
            Kind::Timestamp => format!("${n}::timestamptz[]"),
            Kind::Json => format!("${n}::text[]::{udt}[]"),
            Kind::Bytes => format!("${n}::bytea[]"),
            Kind::Other(t) => format!("${n}::text[]::{}[]", quote_ident(t)),
        }
    }

    /// The expression that reads this column back for the checksum.
    fn select_expr(&self, column: &str) -> String {
        let c = quote_ident(column);
        match self {
            Kind::Int => format!("{c}::int8"),
            Kind::Float => format!("{c}::float8"),
            Kind::Timestamp => format!("{c}::timestamptz"),
            Kind::Json => format!("{c}::text"),
            Kind::Other(_) => format!("{c}::text"),
            Kind::Bool | Kind::Text | Kind::Bytes => c,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    udt: String,
}

/// How the source's rows are walked in order, for resuming.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Rowid,
    /// A WITHOUT ROWID table: its primary key's columns.
    Columns(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    key: Key,
}

/// A value read from SQLite, by storage class.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A value in the target column's terms (what is inserted and hashed).
#[derive(Debug, Clone, PartialEq)]
enum Typed {
    Null,
    Int(i64),
    Bool(bool),
    Float(f64),
    Text(String),
    Time(DateTime<Utc>),
    Json(serde_json::Value),
    Bytes(Vec<u8>),
}

/// One table's result.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub table: String,
    pub source_rows: i64,
    pub target_rows: i64,
    pub source_checksum: String,
    pub target_checksum: String,
    /// Rows copied by this run (fewer than the total when resumed).
    pub copied_now: i64,
    /// Rows that an earlier, interrupted run had copied already.
    pub resumed_after: i64,
}

impl TableReport {
    pub fn matches(&self) -> bool {
        self.source_rows == self.target_rows && self.source_checksum == self.target_checksum
    }
}

/// A sequence set past the copied ids.
#[derive(Debug, Clone, Serialize)]
pub struct SequenceReport {
    pub table: String,
    pub column: String,
    pub next: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub source: String,
    pub resumed: bool,
    pub tables: Vec<TableReport>,
    pub sequences: Vec<SequenceReport>,
}

impl CopyReport {
    pub fn verified(&self) -> bool {
        self.tables.iter().all(TableReport::matches)
    }
}

/// Progress of a running copy: (table, rows copied so far, rows in all).
pub type Progress<'a> = &'a mut (dyn FnMut(&str, i64, i64) + Send);

/// Copies the SQLite database at `source_path` (already migrated) into the
/// PostgreSQL database `target` (already migrated to the same version).
pub async fn copy(
    source: &mut SqliteConnection,
    source_name: &str,
    target: &mut PgConnection,
    chunk_rows: usize,
    progress: Progress<'_>,
) -> Result<CopyReport> {
    sqlx::query("SET TIME ZONE 'UTC'")
        .execute(&mut *target)
        .await?;
    let mut read = source.begin().await.context("opening a read snapshot")?;
    let tables = plan(&mut read, target).await?;
    let resumed = prepare_target(target, &tables, source_name).await?;
    let mut reports = Vec::new();
    for table in &tables {
        let (before, now) = copy_table(&mut read, target, table, chunk_rows, progress).await?;
        let (source_rows, source_sum) = source_checksum(&mut read, table).await?;
        let (target_rows, target_sum) = target_checksum(target, table).await?;
        reports.push(TableReport {
            table: table.name.clone(),
            source_rows,
            target_rows,
            source_checksum: source_sum,
            target_checksum: target_sum,
            copied_now: now,
            resumed_after: before,
        });
    }
    read.rollback().await?;
    let sequences = advance_sequences(target, &tables).await?;
    let report = CopyReport {
        source: source_name.to_string(),
        resumed,
        tables: reports,
        sequences,
    };
    if report.verified() {
        sqlx::query(&format!("DROP TABLE {BOOKKEEPING}"))
            .execute(&mut *target)
            .await?;
    }
    Ok(report)
}

/// The SQLite file's name, as the bookkeeping records it.
pub fn source_name(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

// ---- the plan --------------------------------------------------------

/// The tables of both schemas, checked against each other, parents first.
async fn plan(source: &mut SqliteConnection, target: &mut PgConnection) -> Result<Vec<Table>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut *source)
    .await?;
    let target_names: BTreeSet<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
         AND table_name NOT IN ('_sqlx_migrations', $1)",
    )
    .bind(BOOKKEEPING)
    .fetch_all(&mut *target)
    .await?
    .into_iter()
    .collect();
    let source_names: BTreeSet<String> = names.iter().cloned().collect();
    let only_source: Vec<_> = source_names.difference(&target_names).collect();
    let only_target: Vec<_> = target_names.difference(&source_names).collect();
    if !only_source.is_empty() || !only_target.is_empty() {
        bail!(
            "the two schemas differ (tables only in SQLite: {only_source:?}; only in \
             PostgreSQL: {only_target:?}): migrate both with the same whatsup"
        );
    }
    let mut tables = BTreeMap::new();
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in &names {
        let table = describe(source, target, name).await?;
        parents.insert(name.clone(), references(source, target, name).await?);
        tables.insert(name.clone(), table);
    }
    let order = parents_first(&parents)?;
    Ok(order
        .into_iter()
        .map(|n| tables.remove(&n).expect("every table was described"))
        .collect())
}

/// One table's columns (in SQLite's order, typed by PostgreSQL) and key.
async fn describe(
    source: &mut SqliteConnection,
    target: &mut PgConnection,
    name: &str,
) -> Result<Table> {
    let cols: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, pk FROM pragma_table_info($1) ORDER BY cid")
            .bind(name)
            .fetch_all(&mut *source)
            .await?;
    let pg: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text, udt_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1",
    )
    .bind(name)
    .fetch_all(&mut *target)
    .await?;
    let pg: BTreeMap<String, (String, String)> =
        pg.into_iter().map(|(c, t, u)| (c, (t, u))).collect();
    let source_cols: BTreeSet<&String> = cols.iter().map(|c| &c.0).collect();
    let target_cols: BTreeSet<&String> = pg.keys().collect();
    if source_cols != target_cols {
        bail!(
            "table {name}: the columns differ (SQLite: {source_cols:?}; PostgreSQL: \
             {target_cols:?}): migrate both with the same whatsup"
        );
    }
    let mut columns = Vec::new();
    for (col, _) in &cols {
        let (data_type, udt) = &pg[col];
        let kind = Kind::from_pg(data_type, udt).with_context(|| format!("{name}.{col}"))?;
        columns.push(Column {
            name: col.clone(),
            kind,
            udt: udt.clone(),
        });
    }
    let without_rowid: i64 =
        sqlx::query_scalar("SELECT wr FROM pragma_table_list WHERE name = $1 AND schema = 'main'")
            .bind(name)
            .fetch_one(&mut *source)
            .await?;
    let key = if without_rowid == 0 {
        Key::Rowid
    } else {
        let mut pk: Vec<(i64, String)> = cols
            .iter()
            .filter(|c| c.1 > 0)
            .map(|c| (c.1, c.0.clone()))
            .collect();
        pk.sort();
        Key::Columns(pk.into_iter().map(|p| p.1).collect())
    };
    Ok(Table {
        name: name.to_string(),
        columns,
        key,
    })
}

/// The tables `name` refers to, by the foreign keys of either schema (on
/// PostgreSQL some are triggers instead, so SQLite's count too).
async fn references(
    source: &mut SqliteConnection,
    target: &mut PgConnection,
    name: &str,
) -> Result<BTreeSet<String>> {
    let mut out: BTreeSet<String> =
        sqlx::query_scalar::<_, String>("SELECT \"table\" FROM pragma_foreign_key_list($1)")
            .bind(name)
            .fetch_all(&mut *source)
            .await?
            .into_iter()
            .collect();
    let pg: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT r.relname::text FROM pg_constraint c \
         JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE c.contype = 'f' AND t.relname = $1 AND n.nspname = current_schema()",
    )
    .bind(name)
    .fetch_all(&mut *target)
    .await?;
    out.extend(pg);
    out.remove(name);
    Ok(out)
}

/// A topological order, parents first, ties by name; a cycle is an error.
fn parents_first(parents: &BTreeMap<String, BTreeSet<String>>) -> Result<Vec<String>> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut order = Vec::new();
    while order.len() < parents.len() {
        let ready: Vec<String> = parents
            .iter()
            .filter(|(n, ps)| {
                !done.contains(*n)
                    && ps
                        .iter()
                        .all(|p| done.contains(p) || !parents.contains_key(p))
            })
            .map(|(n, _)| n.clone())
            .collect();
        if ready.is_empty() {
            let left: Vec<_> = parents.keys().filter(|n| !done.contains(*n)).collect();
            bail!("the foreign keys between {left:?} form a cycle: no table can be copied first");
        }
        for n in ready {
            done.insert(n.clone());
            order.push(n);
        }
    }
    Ok(order)
}

// ---- the target ------------------------------------------------------

/// Creates the bookkeeping table, or finds an interrupted copy of the same
/// source in it. Returns whether this run resumes one. A target that holds
/// rows without bookkeeping is refused.
async fn prepare_target(
    target: &mut PgConnection,
    tables: &[Table],
    source_name: &str,
) -> Result<bool> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name = $1)",
    )
    .bind(BOOKKEEPING)
    .fetch_one(&mut *target)
    .await?;
    if exists {
        let sources: Vec<String> =
            sqlx::query_scalar(&format!("SELECT DISTINCT source FROM {BOOKKEEPING}"))
                .fetch_all(&mut *target)
                .await?;
        if sources.iter().any(|s| s != source_name) {
            bail!(
                "the target holds an interrupted copy of {sources:?}, not of {source_name}: \
                 resume that one, or copy into an empty database"
            );
        }
        return Ok(true);
    }
    for t in tables {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", quote_ident(&t.name));
        let any: bool = sqlx::query_scalar(&sql).fetch_one(&mut *target).await?;
        if any {
            bail!(
                "the target database is not empty (table {} has rows): copy into a new, empty \
                 database",
                t.name
            );
        }
    }
    let mut tx = target.begin().await?;
    sqlx::query(&format!(
        "CREATE TABLE {BOOKKEEPING} (table_name TEXT PRIMARY KEY, source TEXT NOT NULL, \
         position TEXT, rows_copied BIGINT NOT NULL DEFAULT 0, done BOOLEAN NOT NULL DEFAULT false, \
         updated_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    ))
    .execute(&mut *tx)
    .await?;
    for t in tables {
        sqlx::query(&format!(
            "INSERT INTO {BOOKKEEPING} (table_name, source) VALUES ($1, $2)"
        ))
        .bind(&t.name)
        .bind(source_name)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(false)
}

/// Copies the rest of one table; returns (rows copied before this run,
/// rows copied now).
async fn copy_table(
    source: &mut SqliteConnection,
    target: &mut PgConnection,
    table: &Table,
    chunk_rows: usize,
    progress: Progress<'_>,
) -> Result<(i64, i64)> {
    let (position, before, done): (Option<String>, i64, bool) = sqlx::query_as(&format!(
        "SELECT position, rows_copied, done FROM {BOOKKEEPING} WHERE table_name = $1"
    ))
    .bind(&table.name)
    .fetch_one(&mut *target)
    .await?;
    if done {
        return Ok((before, 0));
    }
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {}",
        quote_ident(&table.name)
    ))
    .fetch_one(&mut *source)
    .await?;
    let mut position: Option<Vec<Val>> = match position {
        Some(p) => Some(serde_json::from_str(&p).context("bookkeeping position")?),
        None => None,
    };
    let mut copied = before;
    progress(&table.name, copied, total);
    loop {
        let (rows, last) = read_chunk(source, table, position.as_deref(), chunk_rows).await?;
        if rows.is_empty() {
            break;
        }
        let n = rows.len() as i64;
        let mut tx = target.begin().await?;
        insert_chunk(&mut tx, table, rows).await?;
        sqlx::query(&format!(
            "UPDATE {BOOKKEEPING} SET position = $1, rows_copied = rows_copied + $2, \
             updated_at = now() WHERE table_name = $3"
        ))
        .bind(serde_json::to_string(&last)?)
        .bind(n)
        .bind(&table.name)
        .execute(&mut *tx)
        .await?;
        tx.commit()
            .await
            .with_context(|| format!("committing rows of {}", table.name))?;
        copied += n;
        position = Some(last);
        progress(&table.name, copied, total);
    }
    sqlx::query(&format!(
        "UPDATE {BOOKKEEPING} SET done = true, updated_at = now() WHERE table_name = $1"
    ))
    .bind(&table.name)
    .execute(&mut *target)
    .await?;
    Ok((before, copied - before))
}

/// The next chunk of rows after `after`, converted, and its last key.
async fn read_chunk(
    source: &mut SqliteConnection,
    table: &Table,
    after: Option<&[Val]>,
    limit: usize,
) -> Result<(Vec<Vec<Typed>>, Vec<Val>)> {
    let cols: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let (key_cols, order) = match &table.key {
        Key::Rowid => (vec!["rowid".to_string()], "rowid".to_string()),
        Key::Columns(k) => {
            let k: Vec<String> = k.iter().map(|c| quote_ident(c)).collect();
            (k.clone(), k.join(", "))
        }
    };
    let filter = match after {
        None => String::new(),
        Some(vals) => {
            let marks = vec!["?"; vals.len()].join(", ");
            format!("WHERE ({order}) > ({marks})")
        }
    };
    let sql = format!(
        "SELECT {}, {} FROM {} {filter} ORDER BY {order} LIMIT {limit}",
        key_cols.join(", "),
        cols.join(", "),
        quote_ident(&table.name),
    );
    let mut q = sqlx::query(&sql);
    for v in after.unwrap_or_default() {
        q = match v {
            Val::Null => q.bind(None::<i64>),
            Val::Int(i) => q.bind(*i),
            Val::Real(f) => q.bind(*f),
            Val::Text(s) => q.bind(s.clone()),
            Val::Blob(b) => q.bind(b.clone()),
        };
    }
    let raw: Vec<SqliteRow> = q.fetch_all(&mut *source).await?;
    let nkey = key_cols.len();
    let mut rows = Vec::with_capacity(raw.len());
    let mut last = Vec::new();
    for row in &raw {
        last = (0..nkey)
            .map(|i| sqlite_val(row, i))
            .collect::<Result<_>>()?;
        let mut typed = Vec::with_capacity(table.columns.len());
        for (i, col) in table.columns.iter().enumerate() {
            let v = sqlite_val(row, nkey + i)?;
            typed.push(convert(v, &col.kind).map_err(|e| {
                anyhow!("{}.{} (row with key {last:?}): {e}", table.name, col.name)
            })?);
        }
        rows.push(typed);
    }
    Ok((rows, last))
}

/// Inserts rows as one statement: one array per column through UNNEST.
async fn insert_chunk(conn: &mut PgConnection, table: &Table, rows: Vec<Vec<Typed>>) -> Result<()> {
    let cols: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let args: Vec<String> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| c.kind.unnest_arg(i + 1, &c.udt))
        .collect();
    let sql = format!(
        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT * FROM UNNEST({})",
        quote_ident(&table.name),
        cols.join(", "),
        args.join(", ")
    );
    let mut columns: Vec<Vec<Typed>> = vec![Vec::with_capacity(rows.len()); table.columns.len()];
    for row in rows {
        for (i, v) in row.into_iter().enumerate() {
            columns[i].push(v);
        }
    }
    let mut q = sqlx::query(&sql);
    for (col, values) in table.columns.iter().zip(columns) {
        q = bind_array(q, &col.kind, values);
    }
    q.execute(&mut *conn)
        .await
        .with_context(|| format!("inserting into {}", table.name))?;
    Ok(())
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn bind_array<'q>(q: PgQuery<'q>, kind: &Kind, values: Vec<Typed>) -> PgQuery<'q> {
    macro_rules! pick {
        ($variant:ident) => {
            values
                .into_iter()
                .map(|v| match v {
                    Typed::$variant(x) => Some(x),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
    }
    match kind {
        Kind::Int => q.bind(pick!(Int)),
        Kind::Bool => q.bind(pick!(Bool)),
        Kind::Float => q.bind(pick!(Float)),
        Kind::Timestamp => q.bind(pick!(Time)),
        Kind::Bytes => q.bind(pick!(Bytes)),
        Kind::Json => q.bind(
            values
                .into_iter()
                .map(|v| match v {
                    Typed::Json(j) => Some(j.to_string()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        Kind::Text | Kind::Other(_) => q.bind(pick!(Text)),
    }
}

/// Sets each identity or serial column's sequence past the highest value.
async fn advance_sequences(
    target: &mut PgConnection,
    tables: &[Table],
) -> Result<Vec<SequenceReport>> {
    let mut out = Vec::new();
    for t in tables {
        for c in t.columns.iter().filter(|c| c.kind == Kind::Int) {
            let seq: Option<String> = sqlx::query_scalar("SELECT pg_get_serial_sequence($1, $2)")
                .bind(quote_ident(&t.name))
                .bind(&c.name)
                .fetch_one(&mut *target)
                .await?;
            let Some(seq) = seq else { continue };
            let sql = format!(
                "SELECT setval($1, COALESCE((SELECT MAX({}) FROM {}), 0) + 1, false)",
                quote_ident(&c.name),
                quote_ident(&t.name)
            );
            let next: i64 = sqlx::query_scalar(&sql)
                .bind(&seq)
                .fetch_one(&mut *target)
                .await?;
            out.push(SequenceReport {
                table: t.name.clone(),
                column: c.name.clone(),
                next,
            });
        }
    }
    Ok(out)
}

// ---- values ----------------------------------------------------------

fn sqlite_val(row: &SqliteRow, i: usize) -> Result<Val> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Val::Null);
    }
    let class = raw.type_info().name().to_string();
    Ok(match class.as_str() {
        "INTEGER" => Val::Int(row.try_get(i)?),
        "REAL" => Val::Real(row.try_get(i)?),
        "BLOB" => Val::Blob(row.try_get(i)?),
        _ => Val::Text(row.try_get(i)?),
    })
}

/// Converts a SQLite value into the target column's terms.
fn convert(v: Val, kind: &Kind) -> Result<Typed> {
    Ok(match (v, kind) {
        (Val::Null, _) => Typed::Null,
        (Val::Int(i), Kind::Int) => Typed::Int(i),
        (Val::Text(s), Kind::Int) => Typed::Int(
            s.trim()
                .parse()
                .map_err(|_| anyhow!("{s:?} is not an integer"))?,
        ),
        (Val::Real(f), Kind::Int) if f.fract() == 0.0 && f.abs() < 9.0e15 => Typed::Int(f as i64),
        (Val::Int(i), Kind::Bool) => Typed::Bool(i != 0),
        (Val::Text(s), Kind::Bool) => Typed::Bool(match s.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" => true,
            "0" | "f" | "false" => false,
            _ => bail!("{s:?} is not a boolean"),
        }),
        (Val::Int(i), Kind::Float) => Typed::Float(i as f64),
        (Val::Real(f), Kind::Float) => Typed::Float(f),
        (Val::Text(s), Kind::Float) => Typed::Float(
            s.trim()
                .parse()
                .map_err(|_| anyhow!("{s:?} is not a number"))?,
        ),
        (Val::Text(s), Kind::Timestamp) => Typed::Time(parse_time(&s)?),
        (Val::Text(s), Kind::Json) => {
            Typed::Json(serde_json::from_str(&s).map_err(|e| anyhow!("not a JSON document: {e}"))?)
        }
        (Val::Blob(b), Kind::Bytes) => Typed::Bytes(b),
        (Val::Text(s), Kind::Bytes) => Typed::Bytes(s.into_bytes()),
        (Val::Text(s), Kind::Text | Kind::Other(_)) => Typed::Text(s),
        (Val::Int(i), Kind::Text | Kind::Other(_)) => Typed::Text(i.to_string()),
        (Val::Real(f), Kind::Text | Kind::Other(_)) => Typed::Text(f.to_string()),
        (v, k) => bail!("a {} value cannot go into a {k:?} column", val_class(&v)),
    })
}

fn val_class(v: &Val) -> &'static str {
    match v {
        Val::Null => "NULL",
        Val::Int(_) => "INTEGER",
        Val::Real(_) => "REAL",
        Val::Text(_) => "TEXT",
        Val::Blob(_) => "BLOB",
    }
}

/// Parses a timestamp as chrono writes it to SQLite (RFC 3339), or as
/// SQLite's own functions do (`YYYY-MM-DD HH:MM:SS`, UTC); kept to the
/// microsecond, as PostgreSQL stores it.
fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    let t = s.trim();
    let parsed = DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z").map(|d| d.with_timezone(&Utc))
        })
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f").map(|n| n.and_utc()))
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").map(|n| n.and_utc()))
        .map_err(|_| anyhow!("{s:?} is not a timestamp"))?;
    Ok(parsed.trunc_subsecs(6))
}

// ---- checksums -------------------------------------------------------

/// Adds one row's canonical form to a table's running sum.
#[derive(Default)]
struct Sum {
    rows: i64,
    total: u128,
}

impl Sum {
    fn add(&mut self, row: &[Typed]) {
        let mut h = Sha256::new();
        let mut buf = String::new();
        for v in row {
            buf.clear();
            canonical(v, &mut buf);
            h.update((buf.len() as u64).to_be_bytes());
            h.update(buf.as_bytes());
        }
        let digest = h.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        self.total = self.total.wrapping_add(u128::from_be_bytes(first));
        self.rows += 1;
    }

    fn finish(&self) -> (i64, String) {
        (self.rows, format!("{:032x}", self.total))
    }
}

fn canonical(v: &Typed, out: &mut String) {
    use std::fmt::Write;
    let _ = match v {
        Typed::Null => write!(out, "N"),
        Typed::Int(i) => write!(out, "I{i}"),
        Typed::Bool(b) => write!(out, "B{}", u8::from(*b)),
        Typed::Float(f) => write!(out, "F{:016x}", f.to_bits()),
        Typed::Text(s) => write!(out, "T{s}"),
        Typed::Time(t) => write!(out, "D{}", t.timestamp_micros()),
        Typed::Json(j) => {
            out.push('J');
            canonical_json(j, out);
            Ok(())
        }
        Typed::Bytes(b) => {
            out.push('X');
            for byte in b {
                let _ = write!(out, "{byte:02x}");
            }
            Ok(())
        }
    };
}

/// JSON with object keys sorted and numbers in one form, so that a
/// document compares equal to PostgreSQL's `jsonb` rendering of it.
fn canonical_json(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                out.push_str(&(f as i64).to_string())
            }
            (_, _, Some(f)) => out.push_str(&format!("{f:?}")),
            _ => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
}

/// Row count and checksum of a source table (in the copy's snapshot).
async fn source_checksum(source: &mut SqliteConnection, table: &Table) -> Result<(i64, String)> {
    let cols: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let sql = format!(
        "SELECT {} FROM {}",
        cols.join(", "),
        quote_ident(&table.name)
    );
    let mut rows = sqlx::query(&sql).fetch(&mut *source);
    let mut sum = Sum::default();
    let mut typed = Vec::with_capacity(table.columns.len());
    while let Some(row) = rows.try_next().await? {
        typed.clear();
        for (i, col) in table.columns.iter().enumerate() {
            let v = convert(sqlite_val(&row, i)?, &col.kind)
                .map_err(|e| anyhow!("{}.{}: {e}", table.name, col.name))?;
            typed.push(v);
        }
        sum.add(&typed);
    }
    Ok(sum.finish())
}

/// Row count and checksum of a target table, read back from PostgreSQL.
async fn target_checksum(target: &mut PgConnection, table: &Table) -> Result<(i64, String)> {
    let cols: Vec<String> = table
        .columns
        .iter()
        .map(|c| c.kind.select_expr(&c.name))
        .collect();
    let sql = format!(
        "SELECT {} FROM {}",
        cols.join(", "),
        quote_ident(&table.name)
    );
    let mut rows = sqlx::query(&sql).fetch(&mut *target);
    let mut sum = Sum::default();
    let mut typed = Vec::with_capacity(table.columns.len());
    while let Some(row) = rows.try_next().await? {
        typed.clear();
        for (i, col) in table.columns.iter().enumerate() {
            typed.push(pg_typed(&row, i, &col.kind)?);
        }
        sum.add(&typed);
    }
    Ok(sum.finish())
}

fn pg_typed(row: &PgRow, i: usize, kind: &Kind) -> Result<Typed> {
    let v = match kind {
        Kind::Int => row.try_get::<Option<i64>, _>(i)?.map(Typed::Int),
        Kind::Bool => row.try_get::<Option<bool>, _>(i)?.map(Typed::Bool),
        Kind::Float => row.try_get::<Option<f64>, _>(i)?.map(Typed::Float),
        Kind::Timestamp => row.try_get::<Option<DateTime<Utc>>, _>(i)?.map(Typed::Time),
        Kind::Json => match row.try_get::<Option<String>, _>(i)? {
            Some(s) => Some(Typed::Json(serde_json::from_str(&s)?)),
            None => None,
        },
        Kind::Bytes => row.try_get::<Option<Vec<u8>>, _>(i)?.map(Typed::Bytes),
        Kind::Text | Kind::Other(_) => row.try_get::<Option<String>, _>(i)?.map(Typed::Text),
    };
    Ok(v.unwrap_or(Typed::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_before_the_tables_that_refer_to_them() {
        let mut p: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        p.insert(
            "deliveries".into(),
            ["campaigns", "contacts"].map(String::from).into(),
        );
        p.insert(
            "contacts".into(),
            ["organisations"].map(String::from).into(),
        );
        p.insert("campaigns".into(), BTreeSet::new());
        p.insert("organisations".into(), BTreeSet::new());
        let order = parents_first(&p).unwrap();
        let at = |n: &str| order.iter().position(|o| o == n).unwrap();
        assert!(at("organisations") < at("contacts"));
        assert!(at("contacts") < at("deliveries"));
        assert!(at("campaigns") < at("deliveries"));
        p.insert(
            "organisations".into(),
            ["deliveries"].map(String::from).into(),
        );
        let err = parents_first(&p).unwrap_err().to_string();
        assert!(err.contains("cycle"), "{err}");
    }

    #[test]
    fn timestamps_as_chrono_writes_them_keep_their_microseconds() {
        let t = parse_time("2025-07-01T09:30:00.123456789+00:00").unwrap();
        assert_eq!(t.timestamp_micros() % 1_000_000, 123_456);
        let sqlite_style = parse_time("2025-07-01 09:30:00").unwrap();
        assert_eq!(sqlite_style.to_rfc3339(), "2025-07-01T09:30:00+00:00");
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn json_compares_equal_whatever_the_key_order_and_number_form() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1.0,"a":[1e3,"x"]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"a": [1000, "x"], "b": 1}"#).unwrap();
        let (mut x, mut y) = (String::new(), String::new());
        canonical_json(&a, &mut x);
        canonical_json(&b, &mut y);
        assert_eq!(x, y);
    }

    #[test]
    fn a_value_that_does_not_fit_its_column_is_an_error() {
        assert!(convert(Val::Text("twelve".into()), &Kind::Int).is_err());
        assert!(convert(Val::Text("{bad".into()), &Kind::Json).is_err());
        assert_eq!(
            convert(Val::Int(1), &Kind::Bool).unwrap(),
            Typed::Bool(true)
        );
        assert_eq!(convert(Val::Null, &Kind::Json).unwrap(), Typed::Null);
    }

    #[test]
    fn the_checksum_does_not_depend_on_row_order_but_on_every_value() {
        let r1 = vec![Typed::Int(1), Typed::Text("a".into())];
        let r2 = vec![Typed::Int(2), Typed::Text("b".into())];
        let (mut s1, mut s2, mut s3) = (Sum::default(), Sum::default(), Sum::default());
        s1.add(&r1);
        s1.add(&r2);
        s2.add(&r2);
        s2.add(&r1);
        s3.add(&r1);
        s3.add(&[Typed::Int(2), Typed::Text("c".into())]);
        assert_eq!(s1.finish(), s2.finish());
        assert_ne!(s1.finish(), s3.finish());
    }
}
