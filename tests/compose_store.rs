//! Issues in the database: revisions on SQLite, and on a fresh PostgreSQL
//! database (`common::postgres`, required when CI is set).

use chrono::NaiveDate;
use whatsup::config::Config;
use whatsup::store::issues::{IssueText, Saved};
use whatsup::store::Store;

static ACTOR: std::sync::LazyLock<whatsup::domain::Actor> =
    std::sync::LazyLock::new(crate::common::actor);

fn text<'a>(number: u32, subject: &'a str, source: &'a str) -> IssueText<'a> {
    IssueText {
        number,
        subject,
        date: NaiveDate::from_ymd_opt(2025, 7, 1).unwrap(),
        source_path: "samples/issue.md",
        source,
        actor: &ACTOR,
    }
}

async fn revisions_are_kept(store: &Store, number: u32) {
    assert_eq!(
        store
            .save_issue(&text(number, "First", "one"))
            .await
            .unwrap(),
        Saved::Created
    );
    assert_eq!(
        store
            .save_issue(&text(number, "First", "one"))
            .await
            .unwrap(),
        Saved::Unchanged(1)
    );
    assert_eq!(
        store
            .save_issue(&text(number, "Second", "two"))
            .await
            .unwrap(),
        Saved::Revised(2)
    );
    let issue = store.issue(number).await.unwrap().unwrap();
    assert_eq!((issue.subject.as_str(), issue.revisions), ("Second", 2));
    assert_eq!(
        store.issue_revision(number, Some(1)).await.unwrap().source,
        "one"
    );
    assert_eq!(
        store.issue_revision(number, None).await.unwrap().source,
        "two"
    );
    let history = store.issue_history(number).await.unwrap();
    assert_eq!(
        history.iter().map(|r| r.revision).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(store
        .list_issues()
        .await
        .unwrap()
        .iter()
        .any(|i| i.number == i64::from(number)));
    let err = store
        .issue_revision(number, Some(9))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no revision 9"), "{err}");
    assert!(store.issue_revision(number + 100_000, None).await.is_err());
}

#[tokio::test]
async fn issue_revisions_are_kept_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::connect(&url, &Config::default()).await.unwrap();
    store.migrate().await.unwrap();
    revisions_are_kept(&store, 214).await;
}

#[tokio::test]
async fn issue_revisions_are_kept_on_postgres() {
    // A fresh database of its own: the shared one may carry migrations of
    // another branch, and a fixed issue number could collide with other runs.
    let Some(db) = crate::common::postgres().await else {
        return;
    };
    revisions_are_kept(&db.store, 214).await;
}
