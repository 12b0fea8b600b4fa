//! Riding out a database that goes away for a while: a PostgreSQL restart
//! or failover, a network blip, an SQLite file locked beyond
//! `busy_timeout`.
//!
//! [`is_transient`] sorts errors: the connection was lost or refused,
//! the server is shutting down or starting up (`57P01`, `57P02`, `57P03`,
//! class `08`), too many connections (`53300`), a serialization failure or
//! deadlock (`40001`, `40P01`), the pool found no connection in time, and
//! SQLite's `SQLITE_BUSY` and `SQLITE_LOCKED` (with their extended codes).
//! Anything else (a constraint, a syntax error, a full disk, a corrupt
//! file) is not retried: it would fail the same way again.
//!
//! [`DbRetry::run`] repeats one store call on transient errors with
//! exponential backoff (0.25 s doubling up to 5 s) for a bounded time,
//! `database.retry_secs` (5 minutes by default), then returns the last
//! error. Every store call it wraps is one transaction that is either
//! idempotent or conditional, so running it again after an unknown
//! outcome (the connection died during COMMIT) is safe.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Result;

/// The first and the longest wait between two tries.
const FIRST_WAIT: Duration = Duration::from_millis(250);
const LONGEST_WAIT: Duration = Duration::from_secs(5);

/// Whether `e` is worth trying again: the database is briefly away or
/// busy, not wrong.
pub fn is_transient(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(sqlx_transient)
    })
}

fn sqlx_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLITE_BUSY (5) and SQLITE_LOCKED (6), and their extended
                // codes (low byte 5 or 6).
                return code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
            }
            code.starts_with("08")
                || matches!(
                    code,
                    "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
                )
        }
        _ => false,
    }
}

/// How long to keep trying a store call that fails transiently.
#[derive(Debug, Clone, Copy)]
pub struct DbRetry {
    pub budget: Duration,
}

impl DbRetry {
    pub fn new(budget_secs: u64) -> DbRetry {
        DbRetry {
            budget: Duration::from_secs(budget_secs),
        }
    }

    /// Runs `call` until it succeeds, fails for good, or transient failures
    /// have lasted longer than the budget. `what` names the call in logs.
    pub async fn run<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let began = Instant::now();
        let mut wait = FIRST_WAIT;
        let mut tries = 0u32;
        loop {
            match call().await {
                Ok(v) => {
                    if tries > 0 {
                        tracing::warn!(
                            "{what}: the database answers again after {:.1} s",
                            began.elapsed().as_secs_f64()
                        );
                    }
                    return Ok(v);
                }
                Err(e) if is_transient(&e) && began.elapsed() + wait <= self.budget => {
                    if tries == 0 {
                        tracing::warn!(
                            "{what}: the database is unavailable ({e:#}); retrying for up to {} s",
                            self.budget.as_secs()
                        );
                    }
                    tries += 1;
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(LONGEST_WAIT);
                }
                Err(e) if is_transient(&e) => {
                    return Err(e.context(format!(
                    "{what}: the database was unavailable for {:.0} s (database.retry_secs = {})",
                    began.elapsed().as_secs_f64(),
                    self.budget.as_secs()
                )))
                }
                Err(e) => return Err(e.context(what.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_and_timeouts_are_transient_and_constraint_errors_are_not() {
        let io = anyhow::Error::from(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        )));
        assert!(is_transient(&io));
        assert!(is_transient(
            &anyhow::Error::from(sqlx::Error::PoolTimedOut).context("claiming")
        ));
        assert!(!is_transient(&anyhow::Error::from(
            sqlx::Error::RowNotFound
        )));
        assert!(!is_transient(&anyhow::anyhow!("no campaign with id 3")));
    }

    #[tokio::test]
    async fn a_call_that_fails_transiently_is_repeated_until_it_succeeds() {
        let mut calls = 0;
        let got = DbRetry::new(10)
            .run("test", || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 3 {
                        Err(anyhow::Error::from(sqlx::Error::PoolTimedOut))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(got, 3);
    }

    #[tokio::test]
    async fn a_permanent_error_is_returned_at_once() {
        let mut calls = 0;
        let got: Result<()> = DbRetry::new(10)
            .run("test", || {
                calls += 1;
                async { Err(anyhow::anyhow!("constraint")) }
            })
            .await;
        assert!(got.is_err());
        assert_eq!(calls, 1);
    }
}
