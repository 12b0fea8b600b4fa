//! Schema changes SQLite cannot make inside a migration's transaction.
//!
//! SQLite cannot alter a CHECK constraint. Its documented way is to rebuild
//! the table (<https://sqlite.org/lang_altertable.html#otheralter>, the
//! twelve steps): with foreign keys off, create the new table, copy the rows,
//! drop the old one, rename the new one, recreate the indexes and triggers,
//! check the foreign keys, commit, and turn foreign keys back on. sqlx runs
//! every SQLite migration inside a transaction, where `PRAGMA foreign_keys`
//! is ignored, and dropping a parent table with foreign keys on deletes its
//! children (`ON DELETE CASCADE`). So the rebuild runs here, after the
//! migrations, on one connection of its own.
//!
//! The rebuild is generic: the new table is the stored `CREATE TABLE` text
//! with only the CHECK list widened, so every column a migration added (this
//! one's or a later one's) is kept, in order, and `SELECT *` copies the rows
//! as they are. It is idempotent: a table whose CHECK already allows the new
//! value is left alone, so an interrupted rebuild (rolled back as a whole)
//! is completed by the next `migrate`.

use anyhow::{bail, Context, Result};
use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqlitePool};

/// A CHECK list to widen: in `table`, the list that ends with `after`
/// gets `add` appended.
struct Widen {
    table: &'static str,
    after: &'static str,
    add: &'static str,
}

/// Migration 0011: campaigns may be `blocked`.
const WIDENINGS: &[Widen] = &[Widen {
    table: "campaigns",
    after: "'finished', 'cancelled'",
    add: "'blocked'",
}];

/// Brings SQLite tables whose CHECK constraints migrations could not change
/// up to date.
pub(super) async fn after_migrations(pool: &SqlitePool) -> Result<()> {
    for w in WIDENINGS {
        if needs(pool, w).await? {
            widen(pool, w)
                .await
                .with_context(|| format!("rebuilding the {} table", w.table))?;
        }
    }
    Ok(())
}

async fn table_sql(conn: impl sqlx::SqliteExecutor<'_>, table: &str) -> Result<String> {
    let sql: Option<String> =
        sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = $1")
            .bind(table)
            .fetch_optional(conn)
            .await?;
    sql.with_context(|| format!("the table {table} does not exist"))
}

fn widened(sql: &str, w: &Widen) -> Option<String> {
    if sql.contains(&format!("{}, {}", w.after, w.add)) {
        return None;
    }
    Some(sql.replacen(w.after, &format!("{}, {}", w.after, w.add), 1))
}

async fn needs(pool: &SqlitePool, w: &Widen) -> Result<bool> {
    let sql = table_sql(pool, w.table).await?;
    if widened(&sql, w).is_none() {
        return Ok(false);
    }
    if !sql.contains(w.after) {
        bail!(
            "the {} table's definition has no CHECK list ending in {}: cannot add {}",
            w.table,
            w.after,
            w.add
        );
    }
    Ok(true)
}

async fn widen(pool: &SqlitePool, w: &Widen) -> Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut *conn)
        .await?;
    let result = rebuild(&mut conn, w).await;
    let restored = sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut *conn)
        .await;
    if result.is_err() || restored.is_err() {
        // Never hand a connection with foreign keys off back to the pool.
        drop(conn.detach());
    }
    result?;
    restored?;
    Ok(())
}

async fn rebuild(conn: &mut PoolConnection<Sqlite>, w: &Widen) -> Result<()> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut **conn).await?;
    let result = async {
        // Another process may have done it while we waited for the lock.
        let old = table_sql(&mut **conn, w.table).await?;
        let Some(new) = widened(&old, w) else {
            return Ok(());
        };
        let temp = format!("{}_rebuild", w.table);
        let create = new.replacen(w.table, &temp, 1);
        if !create.contains(&temp) {
            bail!("cannot rename the table in its definition: {old}");
        }
        let dependants: Vec<String> = sqlx::query_scalar(
            "SELECT sql FROM sqlite_schema WHERE tbl_name = $1 AND type IN ('index', 'trigger') \
             AND sql IS NOT NULL ORDER BY type, name",
        )
        .bind(w.table)
        .fetch_all(&mut **conn)
        .await?;
        sqlx::query(&create).execute(&mut **conn).await?;
        sqlx::query(&format!(
            "INSERT INTO \"{temp}\" SELECT * FROM \"{}\"",
            w.table
        ))
        .execute(&mut **conn)
        .await?;
        sqlx::query(&format!("DROP TABLE \"{}\"", w.table))
            .execute(&mut **conn)
            .await?;
        sqlx::query(&format!("ALTER TABLE \"{temp}\" RENAME TO \"{}\"", w.table))
            .execute(&mut **conn)
            .await?;
        for sql in &dependants {
            sqlx::query(sql).execute(&mut **conn).await?;
        }
        let broken: Vec<(String,)> =
            sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
                .fetch_all(&mut **conn)
                .await?;
        if !broken.is_empty() {
            bail!(
                "the rebuild would leave rows referring to missing ones in {:?}",
                broken
            );
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            sqlx::query("COMMIT").execute(&mut **conn).await?;
            Ok(())
        }
        Err(e) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut **conn).await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_list_is_widened_once() {
        let w = &WIDENINGS[0];
        let sql = "CREATE TABLE campaigns (state TEXT CHECK (state IN ('draft', 'finished', 'cancelled')), x INTEGER)";
        let new = widened(sql, w).unwrap();
        assert!(
            new.contains("('draft', 'finished', 'cancelled', 'blocked')"),
            "{new}"
        );
        assert_eq!(widened(&new, w), None);
    }
}
