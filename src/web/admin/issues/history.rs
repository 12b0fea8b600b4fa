//! An issue's revisions: `GET /admin/issues/{n}/revisions` lists them
//! (who, when, subject); `GET /admin/issues/{n}/revisions/{r}` shows what
//! revision `r` changed, as a line diff of the file against the revision
//! before it (or `?against=R`).

use axum::extract::{Path, Query, State};
use minijinja::{context, Value};
use serde::Deserialize;
use similar::{ChangeTag, TextDiff};

use super::super::{AdminError, AdminResult, AdminShared, Page};
use crate::domain::Action;

fn number(n: i64) -> AdminResult<u32> {
    u32::try_from(n).map_err(|_| AdminError::NotFound(format!("There is no issue {n}.")))
}

/// `GET /admin/issues/{n}/revisions`.
pub(super) async fn list(
    State(state): State<AdminShared>,
    page: Page,
    Path(n): Path<i64>,
) -> AdminResult {
    page.require(Action::IssuesRead)?;
    let n = number(n)?;
    let issue = state
        .store()
        .issue(n)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("There is no issue {n}.")))?;
    let revisions: Vec<Value> = state
        .store()
        .issue_history(n)
        .await?
        .iter()
        .rev()
        .map(|r| {
            context! {
                revision => r.revision,
                subject => r.subject.as_str(),
                actor => r.actor.as_str(),
                created_at => r.created_at.to_rfc3339(),
            }
        })
        .collect();
    state.render(
        &page,
        "admin/issue_history.html",
        context! {
            title => format!("Issue {n}: revisions"),
            number => n,
            subject => issue.subject,
            revisions,
            diff => (),
        },
    )
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DiffQuery {
    against: Option<i64>,
}

/// One line of a diff: `kind` is add, remove or same.
fn diff_lines(old: &str, new: &str) -> Vec<Value> {
    let diff = TextDiff::from_lines(old, new);
    let mut out = Vec::new();
    for group in diff.grouped_ops(3) {
        out.push(context! { kind => "gap", text => "…", old => (), new => () });
        for op in group {
            for change in diff.iter_changes(&op) {
                let kind = match change.tag() {
                    ChangeTag::Delete => "remove",
                    ChangeTag::Insert => "add",
                    ChangeTag::Equal => "same",
                };
                out.push(context! {
                    kind,
                    text => change.value().trim_end_matches('\n'),
                    old => change.old_index().map(|i| i + 1),
                    new => change.new_index().map(|i| i + 1),
                });
            }
        }
    }
    out
}

/// `GET /admin/issues/{n}/revisions/{r}`.
pub(super) async fn show(
    State(state): State<AdminShared>,
    page: Page,
    Path((n, r)): Path<(i64, i64)>,
    Query(q): Query<DiffQuery>,
) -> AdminResult {
    page.require(Action::IssuesRead)?;
    let n = number(n)?;
    let this = state.store().issue_revision(n, Some(r)).await?;
    let against = q.against.unwrap_or(r - 1);
    let before = if against >= 1 {
        Some(state.store().issue_revision(n, Some(against)).await?)
    } else {
        None
    };
    let old = before.as_ref().map(|b| b.source.as_str()).unwrap_or("");
    let lines = diff_lines(old, &this.source);
    let (added, removed) = lines.iter().fold((0, 0), |(a, d), l| {
        match l
            .get_attr("kind")
            .ok()
            .and_then(|k| k.as_str().map(String::from))
            .as_deref()
        {
            Some("add") => (a + 1, d),
            Some("remove") => (a, d + 1),
            _ => (a, d),
        }
    });
    state.render(
        &page,
        "admin/issue_history.html",
        context! {
            title => format!("Issue {n}: revision {r}"),
            number => n,
            subject => this.subject.as_str(),
            revisions => (),
            diff => context! {
                revision => this.revision,
                against => before.as_ref().map(|b| b.revision),
                actor => this.actor.as_str(),
                created_at => this.created_at.to_rfc3339(),
                lines,
                added,
                removed,
                source => this.source.as_str(),
            },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_marks_added_and_removed_lines_with_their_numbers() {
        let lines = diff_lines("a\nb\nc\n", "a\nB\nc\nd\n");
        let kinds: Vec<String> = lines
            .iter()
            .map(|l| l.get_attr("kind").unwrap().to_string())
            .collect();
        assert_eq!(kinds, ["gap", "same", "remove", "add", "same", "add"]);
        assert_eq!(lines[3].get_attr("new").unwrap().to_string(), "2");
    }
}
