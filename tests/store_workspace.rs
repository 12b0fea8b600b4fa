//! The workspace's store functions on SQLite and on PostgreSQL: accounts,
//! sessions, API tokens, login throttling, the audit trail, approvals and
//! jobs. Part of the store conformance suite (with `store_conformance`).

use crate::common::{self, TestDb};

use whatsup::domain::approval::ApprovalStatus;
use whatsup::domain::{Account, Actor, Role};
use whatsup::store::approvals::ApprovalKind;
use whatsup::store::audit::AuditFilter;
use whatsup::store::jobs::{JobKind, JobState};
use whatsup::store::users::{is_unique_violation, NewSession, ThrottleScope};
use whatsup::store::{ContactPatch, NewContact, Store};

fn admin_actor(id: i64) -> Actor {
    Actor::User {
        account: Account {
            id,
            email: "root@example.org".into(),
            role: Role::Admin,
        },
        ip: Some("192.0.2.7".parse().unwrap()),
    }
}

async fn actions(store: &Store) -> Vec<String> {
    let mut rows = store
        .audit_entries(&AuditFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    rows.reverse();
    rows.into_iter().map(|r| r.action).collect()
}

async fn accounts_are_found_case_insensitively_and_every_change_is_audited(db: TestDb) {
    let s = &db.store;
    let by = admin_actor(0);
    let u = s
        .create_user("ed@example.org", " Ed ", Role::Editor, "$hash", &by)
        .await
        .unwrap();
    assert_eq!((u.name.as_str(), u.role().unwrap()), ("Ed", Role::Editor));
    let dup = s
        .create_user("ed@example.org", "", Role::Viewer, "", &by)
        .await
        .unwrap_err();
    assert!(is_unique_violation(&dup), "{dup:#}");
    let found = s.user_by_email(" ED@example.org ").await.unwrap().unwrap();
    assert_eq!(found.id, u.id);
    let u = s
        .set_user_role(u.id, Role::Operator, &by)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.role, "operator");
    assert_eq!(s.enabled_admins().await.unwrap(), 0);
    let u = s.set_user_disabled(u.id, true, &by).await.unwrap().unwrap();
    assert!(u.disabled());
    assert!(s.set_password_hash(u.id, "$new", &by).await.unwrap());
    assert!(!s.set_password_hash(999, "$new", &by).await.unwrap());
    assert_eq!(
        actions(s).await,
        [
            "user.create",
            "user.set_role",
            "user.disable",
            "user.set_password"
        ]
    );
    let rows = s
        .audit_entries(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let role = rows.iter().find(|r| r.action == "user.set_role").unwrap();
    assert_eq!(
        role.details.0["role"],
        serde_json::json!(["editor", "operator"])
    );
    assert_eq!(role.ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(role.actor, "user:root@example.org");
    assert_eq!(role.object_id, u.id.to_string());
}

async fn a_login_replaces_the_presented_session_and_disable_or_a_new_password_ends_them(
    db: TestDb,
) {
    let s = &db.store;
    let u = s
        .create_user("op@example.org", "", Role::Operator, "$h", &admin_actor(0))
        .await
        .unwrap();
    let me = Actor::User {
        account: u.account().unwrap(),
        ip: None,
    };
    let session = |id: &'static str, replaces: Option<&'static str>| NewSession {
        id_hash: id,
        user_id: u.id,
        csrf_token: "csrf",
        password_tag: "tag",
        ip: Some("192.0.2.1".into()),
        user_agent: "test",
        replaces,
    };
    s.create_session(&session("one", None), &me).await.unwrap();
    s.create_session(&session("two", Some("one")), &me)
        .await
        .unwrap();
    assert!(s.session("one").await.unwrap().is_none());
    let (two, owner) = s.session("two").await.unwrap().unwrap();
    assert_eq!((two.csrf_token.as_str(), owner.id), ("csrf", u.id));
    assert!(s
        .user_by_id(u.id)
        .await
        .unwrap()
        .unwrap()
        .last_login_at
        .is_some());
    s.touch_session("two").await.unwrap();
    assert!(s.session("two").await.unwrap().unwrap().1.id == u.id);
    s.set_password_hash(u.id, "$other", &me).await.unwrap();
    assert_eq!(s.session_count(u.id).await.unwrap(), 0);
    s.create_session(&session("three", None), &me)
        .await
        .unwrap();
    s.set_user_disabled(u.id, true, &admin_actor(0))
        .await
        .unwrap();
    assert!(s.session("three").await.unwrap().is_none());
    s.set_user_disabled(u.id, false, &admin_actor(0))
        .await
        .unwrap();
    s.create_session(&session("four", None), &me).await.unwrap();
    assert!(s.delete_session("four", Some(&me)).await.unwrap());
    assert!(!s.delete_session("four", Some(&me)).await.unwrap());
    let log = actions(s).await;
    assert_eq!(log.iter().filter(|a| *a == "login").count(), 4, "{log:?}");
    assert_eq!(log.last().unwrap(), "logout");
}

async fn tokens_are_found_by_hash_touched_at_most_once_a_minute_and_revoked_once(db: TestDb) {
    let s = &db.store;
    let by = admin_actor(0);
    let u = s
        .create_user("bot@example.org", "", Role::Viewer, "", &by)
        .await
        .unwrap();
    let t = s
        .create_token(u.id, "export", "hash-1", "wu_abcdef", &by)
        .await
        .unwrap();
    assert_eq!(
        (t.user_email.as_str(), t.created_by.as_str()),
        ("bot@example.org", "user:root@example.org")
    );
    let dup = s
        .create_token(u.id, "export", "hash-2", "wu_ghijkl", &by)
        .await
        .unwrap_err();
    assert!(is_unique_violation(&dup));
    let (found, owner) = s.token_by_hash("hash-1").await.unwrap().unwrap();
    assert_eq!((found.id, owner.id), (t.id, u.id));
    assert!(found.last_used_at.is_none());
    let now = chrono::Utc::now();
    s.touch_token(t.id, now).await.unwrap();
    let first = s
        .token_by_id(t.id)
        .await
        .unwrap()
        .unwrap()
        .last_used_at
        .unwrap();
    s.touch_token(t.id, now + chrono::Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(
        s.token_by_id(t.id).await.unwrap().unwrap().last_used_at,
        Some(first)
    );
    s.touch_token(t.id, now + chrono::Duration::seconds(61))
        .await
        .unwrap();
    assert!(
        s.token_by_id(t.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
            .unwrap()
            > first
    );
    assert!(s.revoke_token(t.id, &by).await.unwrap());
    assert!(!s.revoke_token(t.id, &by).await.unwrap());
    assert!(s
        .token_by_id(t.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    assert_eq!(s.list_tokens(Some(u.id)).await.unwrap().len(), 1);
    assert_eq!(s.list_tokens(Some(u.id + 1)).await.unwrap().len(), 0);
    assert_eq!(
        actions(s).await,
        ["user.create", "token.create", "token.revoke"]
    );
}

async fn login_failures_count_per_key_and_are_forgotten_after_a_while(db: TestDb) {
    let s = &db.store;
    let anon = Actor::Anonymous {
        ip: Some("192.0.2.9".parse().unwrap()),
    };
    let keys = [
        (ThrottleScope::Account, "a@example.org"),
        (ThrottleScope::Ip, "192.0.2.9"),
    ];
    for t in [1_000, 2_000, 3_000] {
        s.record_login_failure(&keys, t, 60_000, &anon, "a@example.org")
            .await
            .unwrap();
    }
    assert_eq!(
        s.login_failures(ThrottleScope::Account, "a@example.org")
            .await
            .unwrap(),
        Some((3, 3_000))
    );
    assert_eq!(
        s.login_failures(ThrottleScope::Ip, "192.0.2.9")
            .await
            .unwrap(),
        Some((3, 3_000))
    );
    // The latest failure is older than the window: counting starts again.
    s.record_login_failure(&keys, 100_000, 60_000, &anon, "a@example.org")
        .await
        .unwrap();
    assert_eq!(
        s.login_failures(ThrottleScope::Account, "a@example.org")
            .await
            .unwrap(),
        Some((1, 100_000))
    );
    s.clear_login_failures(ThrottleScope::Account, "a@example.org")
        .await
        .unwrap();
    assert_eq!(
        s.login_failures(ThrottleScope::Account, "a@example.org")
            .await
            .unwrap(),
        None
    );
    let rows = s
        .audit_entries(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r.action == "login.failed"
        && r.actor == "anonymous"
        && r.ip.as_deref() == Some("192.0.2.9")));
}

async fn the_audit_trail_filters_by_time_actor_and_object_and_pages_newest_first(db: TestDb) {
    let s = &db.store;
    let alice = admin_actor(1);
    let cli = Actor::Cli {
        unix_user: "ops_1".into(),
        account: None,
    };
    let c = s
        .add_contact(&new_contact("x@example.org"), &cli)
        .await
        .unwrap();
    s.edit_contact(
        "x@example.org",
        &ContactPatch {
            name: Some("Renamed".into()),
            ..Default::default()
        },
        &alice,
    )
    .await
    .unwrap();
    // A change that fails writes no entry.
    assert!(s
        .add_contact(&new_contact("X@example.org"), &alice)
        .await
        .is_err());
    s.remove_contact("x@example.org", &alice).await.unwrap();
    let all = s
        .audit_entries(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let names: Vec<&str> = all.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        names,
        ["contact.delete", "contact.update", "contact.create"]
    );
    assert_eq!(
        all[1].details.0,
        serde_json::json!({"name": ["Test Person", "Renamed"]})
    );
    assert_eq!(all[2].actor_kind, "cli");
    let by_cli = s
        .audit_entries(&AuditFilter {
            actor: Some("OPS_1".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_cli.len(), 1);
    // `_` in the filter is a character, not a wildcard.
    let none = s
        .audit_entries(&AuditFilter {
            actor: Some("ops_2".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    let page = s
        .audit_entries(&AuditFilter {
            before: Some(all[0].id),
            limit: 1,
            object_kind: Some("contact".into()),
            object_id: Some(c.id.to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page[0].action, "contact.update");
    let later = s
        .audit_entries(&AuditFilter {
            since: Some(chrono::Utc::now() + chrono::Duration::seconds(5)),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(later.is_empty());
}

fn new_contact(email: &str) -> NewContact {
    NewContact {
        email: whatsup::domain::EmailAddress::parse(email).unwrap(),
        name: "Test Person".into(),
        title: String::new(),
        salutation: String::new(),
        organisation_id: None,
        language: None,
        consent_source: "test".into(),
        attributes: Default::default(),
        tags: vec![],
    }
}

async fn an_approval_holds_for_its_revision_and_segment_only(db: TestDb) {
    let s = &db.store;
    common::save_sample_issue(s).await;
    let id = common::draft_campaign(s, "Approval", "kind = embassy").await;
    let c = s.campaign_or_err(id).await.unwrap();
    assert_eq!(c.created_by, "system:test");
    let (status, rev) = s.approval_status(&c, true).await.unwrap();
    assert_eq!(rev, 1);
    assert!(!status.allows_start());
    let (status, _) = s.approval_status(&c, false).await.unwrap();
    assert_eq!(status, ApprovalStatus::NotRequired);
    let approver = admin_actor(5);
    let row = s
        .record_approval(id, ApprovalKind::Approval, 1, &c.segment, "ok", &approver)
        .await
        .unwrap();
    assert_eq!(
        (row.principal.as_str(), row.kind.as_str()),
        ("user:5", "approval")
    );
    let (status, _) = s.approval_status(&c, true).await.unwrap();
    assert!(status.allows_start(), "{status:?}");
    // Another segment voids it.
    let admin = admin_actor(5);
    assert!(s
        .update_campaign(id, None, Some("kind = city"), &admin)
        .await
        .unwrap());
    let c = s.campaign_or_err(id).await.unwrap();
    let (status, _) = s.approval_status(&c, true).await.unwrap();
    assert!(!status.allows_start(), "{status:?}");
    assert_eq!(s.approvals(id).await.unwrap().len(), 1);
    let log = actions(s).await;
    assert!(
        log.ends_with(&["campaign.approve".into(), "campaign.update".into()]),
        "{log:?}"
    );
}

async fn jobs_move_through_their_states_and_orphaned_imports_fail(db: TestDb) {
    let s = &db.store;
    let me = admin_actor(3);
    let a = s
        .create_job(
            JobKind::Import,
            JobState::Running,
            None,
            &me,
            serde_json::json!({"file": "a.csv"}),
        )
        .await
        .unwrap();
    s.update_job(a, JobState::Running, 10, Some(100))
        .await
        .unwrap();
    let job = s.job(a).await.unwrap().unwrap();
    assert_eq!(
        (job.progress_done, job.progress_total, job.state()),
        (10, Some(100), JobState::Running)
    );
    assert!(s
        .finish_job(
            a,
            JobState::Succeeded,
            &serde_json::json!({"created": 9}),
            ""
        )
        .await
        .unwrap());
    // A job over stays over.
    assert!(!s
        .finish_job(a, JobState::Failed, &serde_json::json!(null), "late")
        .await
        .unwrap());
    s.update_job(a, JobState::Running, 1, None).await.unwrap();
    let job = s.job(a).await.unwrap().unwrap();
    assert_eq!(job.state(), JobState::Succeeded);
    assert_eq!(job.result.0["created"], 9);
    assert!(job.finished_at.is_some());
    let b = s
        .create_job(
            JobKind::Import,
            JobState::Queued,
            None,
            &me,
            serde_json::json!({}),
        )
        .await
        .unwrap();
    // A job that changed recently has a live process behind it.
    let long_ago = chrono::Utc::now() - chrono::Duration::minutes(2);
    assert_eq!(
        s.fail_orphaned_jobs("the server stopped", long_ago)
            .await
            .unwrap(),
        0
    );
    let soon = chrono::Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(
        s.fail_orphaned_jobs("the server stopped", soon)
            .await
            .unwrap(),
        1
    );
    let job = s.job(b).await.unwrap().unwrap();
    assert_eq!(
        (job.state(), job.error.as_str()),
        (JobState::Failed, "the server stopped")
    );
    let listed = s.list_jobs(None, 10).await.unwrap();
    assert_eq!(listed.iter().map(|j| j.id).collect::<Vec<_>>(), [b, a]);
    assert_eq!(s.list_jobs(Some(b), 10).await.unwrap().len(), 1);
    assert_eq!(actions(s).await, ["import.start", "import.start"]);
}

async fn an_issue_draft_is_kept_per_account_replaced_and_thrown_away(db: TestDb) {
    let s = &db.store;
    common::save_sample_issue(s).await;
    let by = Actor::system("test");
    let ed = s
        .create_user("ed@example.org", "Ed", Role::Editor, "$hash", &by)
        .await
        .unwrap();
    let ann = s
        .create_user("ann@example.org", "Ann", Role::Editor, "$hash", &by)
        .await
        .unwrap();
    assert!(s.draft(214, ed.id).await.unwrap().is_none());
    s.save_draft(214, ed.id, 1, "first 東京").await.unwrap();
    s.save_draft(214, ed.id, 1, "second 東京").await.unwrap();
    s.save_draft(214, ann.id, 1, "ann's").await.unwrap();
    let d = s.draft(214, ed.id).await.unwrap().unwrap();
    assert_eq!((d.base_revision, d.source.as_str()), (1, "second 東京"));
    assert_eq!(s.draft(214, ann.id).await.unwrap().unwrap().source, "ann's");
    let missing = s.save_draft(999, ed.id, 1, "x").await.unwrap_err();
    assert!(
        format!("{missing:#}").contains("no issue number 999"),
        "{missing:#}"
    );
    assert!(s.discard_draft(214, ed.id).await.unwrap());
    assert!(!s.discard_draft(214, ed.id).await.unwrap());
    assert!(s.draft(214, ed.id).await.unwrap().is_none());
    assert!(
        s.draft(214, ann.id).await.unwrap().is_some(),
        "only ed's is gone"
    );
    // Who wrote the latest revision, for the issues list.
    let authors = s.latest_revision_authors().await.unwrap();
    assert_eq!(authors.len(), 1);
    assert_eq!(authors[0].0, 214);
    assert_eq!(authors[0].1, common::actor().label());
}

on_both_backends!(
    an_issue_draft_is_kept_per_account_replaced_and_thrown_away,
    accounts_are_found_case_insensitively_and_every_change_is_audited,
    a_login_replaces_the_presented_session_and_disable_or_a_new_password_ends_them,
    tokens_are_found_by_hash_touched_at_most_once_a_minute_and_revoked_once,
    login_failures_count_per_key_and_are_forgotten_after_a_while,
    the_audit_trail_filters_by_time_actor_and_object_and_pages_newest_first,
    an_approval_holds_for_its_revision_and_segment_only,
    jobs_move_through_their_states_and_orphaned_imports_fail,
);
