//! The SQL of backups: a consistent copy of a live SQLite store with
//! `VACUUM INTO` (a read transaction: writers carry on while it runs), the
//! checks a copy must pass before it may replace anything, and the
//! checkpoint that folds the write-ahead log into the database file.
//! The files themselves (temporary names, renames, fsync) are
//! `ops::backup`'s.

use std::path::Path;
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::schema::SchemaStatus;
use super::Store;

/// What a copy of an SQLite store holds, read from the file itself.
#[derive(Debug, Clone, Serialize)]
pub struct SqliteFileInfo {
    /// `PRAGMA integrity_check`'s verdict: `ok`, or its first problems.
    pub integrity: Vec<String>,
    pub schema: SchemaStatus,
    /// Rows per table, in name order.
    pub tables: Vec<(String, i64)>,
}

impl SqliteFileInfo {
    pub fn is_intact(&self) -> bool {
        self.integrity == ["ok"]
    }

    /// Rows of one table, if it exists.
    pub fn rows(&self, table: &str) -> Option<i64> {
        self.tables.iter().find(|t| t.0 == table).map(|t| t.1)
    }
}

impl Store {
    /// Writes a consistent copy of this SQLite store to `path`, which must
    /// not exist. Writers go on while it runs: it reads one snapshot.
    pub async fn sqlite_vacuum_into(&self, path: &Path) -> Result<()> {
        let Store::Sqlite(pool) = self else {
            bail!("VACUUM INTO is for SQLite stores only");
        };
        let target = path
            .to_str()
            .ok_or_else(|| anyhow!("{}: the path is not UTF-8", path.display()))?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(pool)
            .await
            .with_context(|| format!("copying the database into {}", path.display()))?;
        Ok(())
    }

    /// Campaigns that are scheduled, running or paused: after a restore
    /// they go on from the state the backup holds.
    pub async fn unfinished_campaigns(&self) -> Result<Vec<i64>> {
        let sql = "SELECT id FROM campaigns WHERE state IN ('scheduled', 'running', 'paused') \
                   ORDER BY id";
        Ok(on_pool!(self, p => sqlx::query_scalar(sql).fetch_all(p).await?))
    }

    /// Folds the write-ahead log into the database file and truncates it,
    /// so that the file alone holds every committed transaction.
    pub async fn sqlite_checkpoint(&self) -> Result<()> {
        let Store::Sqlite(pool) = self else {
            return Ok(());
        };
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(pool)
            .await
            .context("checkpointing the write-ahead log")?;
        if busy != 0 {
            bail!("the write-ahead log could not be checkpointed: another connection is using the database");
        }
        Ok(())
    }
}

/// Opens the SQLite file at `path` (without creating it, without
/// migrating) and reads its integrity, schema version and row counts.
pub async fn inspect_sqlite_file(path: &Path) -> Result<SqliteFileInfo> {
    if !path.is_file() {
        bail!("{}: no such file", path.display());
    }
    let mut header = [0u8; 16];
    {
        use std::io::Read;
        let mut f =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        f.read_exact(&mut header)
            .map_err(|_| anyhow!("{}: too short to be an SQLite database", path.display()))?;
    }
    if &header != b"SQLite format 3\0" {
        bail!("{}: not an SQLite database", path.display());
    }
    let url = format!("sqlite://{}", path.display());
    let opts = SqliteConnectOptions::from_str(&url)
        .with_context(|| format!("{}: not a usable path", path.display()))?
        .create_if_missing(false);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let store = Store::Sqlite(pool.clone());
    let result = async {
        let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check(20)")
            .fetch_all(&pool)
            .await
            .with_context(|| format!("{}: integrity check", path.display()))?;
        let schema = store.schema_status().await?;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .fetch_all(&pool)
        .await?;
        let mut tables = Vec::new();
        for name in names {
            let sql = format!("SELECT COUNT(*) FROM {}", super::copy::quote_ident(&name));
            let n: i64 = sqlx::query_scalar(&sql).fetch_one(&pool).await?;
            tables.push((name, n));
        }
        Ok::<_, anyhow::Error>(SqliteFileInfo {
            integrity,
            schema,
            tables,
        })
    }
    .await;
    pool.close().await;
    result
}
