//! Issues and their revision history.
//!
//! An issue is identified by its number. Importing a file whose text differs
//! from the latest revision adds a revision (numbered from 1) and updates the
//! issue's subject, date and source path, in one transaction; importing the
//! same text again changes nothing.

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::audit::record_audit;
use super::{begin_write, Store};
use crate::domain::Actor;

/// An issue as listed.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StoredIssue {
    pub id: i64,
    pub number: i64,
    pub subject: String,
    pub issue_date: NaiveDate,
    pub source_path: String,
    pub revisions: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One revision of an issue's source.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Revision {
    pub revision: i64,
    pub subject: String,
    pub source: String,
    pub actor: String,
    /// Who wrote it: a principal (`user:ID`, or the CLI user), see
    /// [`Actor::principal`].
    pub author: String,
    pub created_at: DateTime<Utc>,
}

/// An account's autosaved, unsaved text of an issue.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Draft {
    /// The issue's latest revision when the draft was written.
    pub base_revision: i64,
    pub source: String,
    pub updated_at: DateTime<Utc>,
}

/// What a save did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Saved {
    /// A new issue, at revision 1.
    Created,
    /// A new revision with this number.
    Revised(i64),
    /// The text equals the latest revision; nothing was written.
    Unchanged(i64),
}

/// The issue fields a revision carries (parsed from the file by the caller).
#[derive(Debug, Clone)]
pub struct IssueText<'a> {
    pub number: u32,
    pub subject: &'a str,
    pub date: NaiveDate,
    pub source_path: &'a str,
    pub source: &'a str,
    pub actor: &'a Actor,
}

const ISSUE_SELECT: &str = "SELECT id, number, subject, issue_date, source_path, revisions, \
     created_at, updated_at FROM issues";

impl Store {
    /// Stores the text as the issue's newest revision unless it is unchanged.
    pub async fn save_issue(&self, t: &IssueText<'_>) -> Result<Saved> {
        let now = Utc::now();
        let number = i64::from(t.number);
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let existing: Option<(i64, i64)> =
                sqlx::query_as("SELECT id, revisions FROM issues WHERE number = $1")
                    .bind(number)
                    .fetch_optional(&mut *tx)
                    .await?;
            let (issue_id, revision, saved) = match existing {
                Some((id, revs)) => {
                    // Compare with the latest revision's text.
                    let latest: Option<String> = sqlx::query_scalar(
                        "SELECT source FROM issue_revisions WHERE issue_id = $1 AND revision = $2",
                    )
                    .bind(id)
                    .bind(revs)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if latest.as_deref() == Some(t.source) {
                        return Ok(Saved::Unchanged(revs));
                    }
                    sqlx::query(
                        "UPDATE issues SET subject = $1, issue_date = $2, source_path = $3, \
                         revisions = $4, updated_at = $5 WHERE id = $6",
                    )
                    .bind(t.subject)
                    .bind(t.date)
                    .bind(t.source_path)
                    .bind(revs + 1)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    (id, revs + 1, Saved::Revised(revs + 1))
                }
                None => {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO issues (number, subject, issue_date, source_path, revisions, \
                         created_at, updated_at) VALUES ($1, $2, $3, $4, 1, $5, $5) RETURNING id",
                    )
                    .bind(number)
                    .bind(t.subject)
                    .bind(t.date)
                    .bind(t.source_path)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    (id, 1, Saved::Created)
                }
            };
            sqlx::query(
                "INSERT INTO issue_revisions (issue_id, revision, subject, source, actor, author, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(issue_id)
            .bind(revision)
            .bind(t.subject)
            .bind(t.source)
            .bind(t.actor.label())
            .bind(t.actor.principal())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            record_audit!(&mut *tx, t.actor,
                if revision == 1 { "issue.create" } else { "issue.revise" }, "issue", number,
                serde_json::json!({"revision": revision, "subject": t.subject,
                                   "source_path": t.source_path}));
            tx.commit().await?;
            Ok(saved)
        })
    }

    /// All issues, newest number first.
    pub async fn list_issues(&self) -> Result<Vec<StoredIssue>> {
        let sql = format!("{ISSUE_SELECT} ORDER BY number DESC");
        Ok(on_pool!(self, p => sqlx::query_as::<_, StoredIssue>(&sql).fetch_all(p).await?))
    }

    /// One issue by number.
    pub async fn issue(&self, number: u32) -> Result<Option<StoredIssue>> {
        let sql = format!("{ISSUE_SELECT} WHERE number = $1");
        Ok(on_pool!(self, p => sqlx::query_as::<_, StoredIssue>(&sql)
            .bind(i64::from(number))
            .fetch_optional(p)
            .await?))
    }

    /// A revision of an issue; `None` means the latest.
    pub async fn issue_revision(&self, number: u32, revision: Option<i64>) -> Result<Revision> {
        let issue = self.issue(number).await?.ok_or_else(|| {
            super::StoreError::NotFound(format!(
                "no issue number {number} in the database (import it first)"
            ))
        })?;
        let rev = revision.unwrap_or(issue.revisions);
        let sql =
            "SELECT revision, subject, source, actor, author, created_at FROM issue_revisions \
                   WHERE issue_id = $1 AND revision = $2";
        let found = on_pool!(self, p => sqlx::query_as::<_, Revision>(sql)
            .bind(issue.id)
            .bind(rev)
            .fetch_optional(p)
            .await?);
        found.ok_or_else(|| {
            super::StoreError::NotFound(format!(
                "issue {number} has no revision {rev} (it has 1 to {})",
                issue.revisions
            ))
            .into()
        })
    }

    /// The history of an issue, oldest first, without the texts.
    pub async fn issue_history(&self, number: u32) -> Result<Vec<Revision>> {
        let sql = "SELECT r.revision, r.subject, '' AS source, r.actor, r.author, r.created_at \
                   FROM issue_revisions r JOIN issues i ON i.id = r.issue_id \
                   WHERE i.number = $1 ORDER BY r.revision";
        Ok(on_pool!(self, p => sqlx::query_as::<_, Revision>(sql)
            .bind(i64::from(number))
            .fetch_all(p)
            .await?))
    }

    /// Who wrote each issue's latest revision, and when: (number, actor
    /// label, time), for the issues list.
    pub async fn latest_revision_authors(&self) -> Result<Vec<(i64, String, DateTime<Utc>)>> {
        let sql = "SELECT i.number, r.actor, r.created_at FROM issues i \
                   JOIN issue_revisions r ON r.issue_id = i.id AND r.revision = i.revisions";
        Ok(
            on_pool!(self, p => sqlx::query_as::<_, (i64, String, DateTime<Utc>)>(sql)
            .fetch_all(p)
            .await?),
        )
    }

    /// Writes (or replaces) an account's autosaved draft of an issue.
    pub async fn save_draft(
        &self,
        number: u32,
        user_id: i64,
        base_revision: i64,
        source: &str,
    ) -> Result<()> {
        let sql =
            "INSERT INTO issue_drafts (issue_id, user_id, base_revision, source, updated_at) \
                   SELECT id, $2, $3, $4, $5 FROM issues WHERE number = $1 \
                   ON CONFLICT (issue_id, user_id) DO UPDATE SET \
                   base_revision = excluded.base_revision, source = excluded.source, \
                   updated_at = excluded.updated_at";
        let done = on_pool!(self, p => sqlx::query(sql)
            .bind(i64::from(number))
            .bind(user_id)
            .bind(base_revision)
            .bind(source)
            .bind(Utc::now())
            .execute(p)
            .await?
            .rows_affected());
        if done == 0 {
            return Err(super::StoreError::NotFound(format!("no issue number {number}")).into());
        }
        Ok(())
    }

    /// An account's autosaved draft of an issue, if it has one.
    pub async fn draft(&self, number: u32, user_id: i64) -> Result<Option<Draft>> {
        let sql = "SELECT d.base_revision, d.source, d.updated_at FROM issue_drafts d \
                   JOIN issues i ON i.id = d.issue_id WHERE i.number = $1 AND d.user_id = $2";
        Ok(on_pool!(self, p => sqlx::query_as::<_, Draft>(sql)
            .bind(i64::from(number))
            .bind(user_id)
            .fetch_optional(p)
            .await?))
    }

    /// Throws an account's draft of an issue away; `true` if there was one.
    pub async fn discard_draft(&self, number: u32, user_id: i64) -> Result<bool> {
        let sql = "DELETE FROM issue_drafts WHERE user_id = $2 AND issue_id = \
                   (SELECT id FROM issues WHERE number = $1)";
        Ok(on_pool!(self, p => sqlx::query(sql)
            .bind(i64::from(number))
            .bind(user_id)
            .execute(p)
            .await?
            .rows_affected())
            > 0)
    }
}
