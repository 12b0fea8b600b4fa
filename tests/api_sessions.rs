//! Logins, sessions, CSRF and tokens over loopback on both backends:
//! cookie flags, session fixation, CSRF rejection, idle and absolute
//! timeouts, disable and password change during a session, growing login
//! delays per account and per IP, and a revoked token stopping at once.

use crate::common::workspace::{Api, As, PASSWORD};
use crate::common::{self, TestDb};
use whatsup::store::Store;

/// Moves every session's clock back by `minutes` (as if that much time
/// had passed).
async fn age_sessions(store: &Store, column: &str, minutes: i64) {
    let then = chrono::Utc::now() - chrono::Duration::minutes(minutes);
    let sql = format!("UPDATE sessions SET {column} = $1");
    match store {
        Store::Sqlite(p) => {
            sqlx::query(&sql).bind(then).execute(p).await.unwrap();
        }
        Store::Postgres(p) => {
            sqlx::query(&sql).bind(then).execute(p).await.unwrap();
        }
    }
}

async fn a_login_sets_a_strict_cookie_and_a_state_change_needs_its_csrf_token(db: TestDb) {
    let api = Api::start(db).await;
    let (session, r) = api.login("OPERATOR@example.org", PASSWORD).await;
    let (cookie, csrf) = session.expect("logged in");
    let set = r.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "http base URL: {set}");
    assert_eq!(r.json()["user"]["role"], "operator");
    let me = api
        .call(
            As::Session(&cookie, None),
            "GET",
            "/api/v1/auth/session",
            None,
        )
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["csrf_token"], csrf.as_str());
    let body = serde_json::json!({"email": "csrf@example.net"});
    for bad in [None, Some("forged")] {
        let r = api
            .call(
                As::Session(&cookie, bad),
                "POST",
                "/api/v1/contacts",
                Some(&body),
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert_eq!(r.json()["type"], "urn:whatsup:problem:csrf");
    }
    assert!(api
        .db
        .store
        .contact("csrf@example.net")
        .await
        .unwrap()
        .is_none());
    let r = api
        .call(
            As::Session(&cookie, Some(&csrf)),
            "POST",
            "/api/v1/contacts",
            Some(&body),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // A bearer token needs no CSRF token: it is not sent by browsers.
    let r = api
        .call(
            As::Token(&api.operator.token),
            "POST",
            "/api/v1/contacts",
            Some(&serde_json::json!({"email": "bearer@example.net"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Logging out needs the token too, and ends the session.
    let r = api
        .call(
            As::Session(&cookie, None),
            "POST",
            "/api/v1/auth/logout",
            None,
        )
        .await;
    assert_eq!(r.status, 403);
    let r = api
        .call(
            As::Session(&cookie, Some(&csrf)),
            "POST",
            "/api/v1/auth/logout",
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = api
        .call(
            As::Session(&cookie, None),
            "GET",
            "/api/v1/auth/session",
            None,
        )
        .await;
    assert_eq!(r.status, 401);
    api.stop().await;
}

async fn the_cookie_is_secure_when_the_admin_is_reached_over_https(db: TestDb) {
    let mut config = db.config.clone();
    config.admin.base_url = "https://admin.example.org".into();
    let api = Api::start_with(db, config).await;
    let (_, r) = api.login("viewer@example.org", PASSWORD).await;
    assert!(r.header("set-cookie").unwrap().contains("; Secure"));
    api.stop().await;
}

async fn a_login_replaces_the_session_the_browser_presented(db: TestDb) {
    let api = Api::start(db).await;
    // A session id planted in the victim's browser (the attacker's own).
    let (planted, _) = api.login("viewer@example.org", PASSWORD).await;
    let (planted, _) = planted.unwrap();
    let (mine, _) = api
        .login_presenting("editor@example.org", PASSWORD, Some(&planted))
        .await;
    let (mine, _) = mine.unwrap();
    assert_ne!(mine, planted);
    let old = api
        .call(
            As::Session(&planted, None),
            "GET",
            "/api/v1/auth/session",
            None,
        )
        .await;
    assert_eq!(old.status, 401, "the presented session ended at login");
    let new = api
        .call(
            As::Session(&mine, None),
            "GET",
            "/api/v1/auth/session",
            None,
        )
        .await;
    assert_eq!(new.json()["user"]["email"], "editor@example.org");
    api.stop().await;
}

async fn sessions_end_after_their_idle_and_absolute_timeouts(db: TestDb) {
    let api = Api::start(db).await;
    let config = &api.db.config.admin;
    let (s, _) = api.login("viewer@example.org", PASSWORD).await;
    let (cookie, _) = s.unwrap();
    age_sessions(
        &api.db.store,
        "last_seen_at",
        config.session_idle_minutes as i64 - 1,
    )
    .await;
    let r = api
        .call(As::Session(&cookie, None), "GET", "/api/v1/contacts", None)
        .await;
    assert_eq!(r.status, 200, "within the idle timeout");
    age_sessions(
        &api.db.store,
        "last_seen_at",
        config.session_idle_minutes as i64 + 1,
    )
    .await;
    let r = api
        .call(As::Session(&cookie, None), "GET", "/api/v1/contacts", None)
        .await;
    assert_eq!(r.status, 401);
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("without requests"));
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));

    let (s, _) = api.login("viewer@example.org", PASSWORD).await;
    let (cookie, _) = s.unwrap();
    age_sessions(
        &api.db.store,
        "created_at",
        config.session_absolute_hours as i64 * 60 + 1,
    )
    .await;
    let r = api
        .call(As::Session(&cookie, None), "GET", "/api/v1/contacts", None)
        .await;
    assert_eq!(r.status, 401);
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("longest life"));
    api.stop().await;
}

async fn disabling_an_account_or_changing_its_password_ends_its_sessions_at_once(db: TestDb) {
    let api = Api::start(db).await;
    let (s, _) = api.login("editor@example.org", PASSWORD).await;
    let (cookie, _) = s.unwrap();
    let id = api.editor.user.id;
    let r = api
        .call(
            As::Token(&api.admin.token),
            "PATCH",
            &format!("/api/v1/users/{id}"),
            Some(&serde_json::json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for who in [As::Session(&cookie, None), As::Token(&api.editor.token)] {
        let r = api.call(who, "GET", "/api/v1/issues", None).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let (none, r) = api.login("editor@example.org", PASSWORD).await;
    assert!(none.is_none());
    assert_eq!(r.status, 401, "a disabled account cannot log in");
    api.call(
        As::Token(&api.admin.token),
        "PATCH",
        &format!("/api/v1/users/{id}"),
        Some(&serde_json::json!({"disabled": false})),
    )
    .await;
    let (s, _) = api.login("editor@example.org", PASSWORD).await;
    let (cookie, _) = s.unwrap();
    // The password changes (even by a direct write the session check
    // notices: the session carries a fingerprint of the hash).
    let hash = whatsup::app::accounts::hash_password("another long passphrase here")
        .await
        .unwrap();
    let sql = "UPDATE users SET password_hash = $1 WHERE id = $2";
    match &api.db.store {
        Store::Sqlite(p) => {
            sqlx::query(sql)
                .bind(&hash)
                .bind(id)
                .execute(p)
                .await
                .unwrap();
        }
        Store::Postgres(p) => {
            sqlx::query(sql)
                .bind(&hash)
                .bind(id)
                .execute(p)
                .await
                .unwrap();
        }
    }
    let r = api
        .call(As::Session(&cookie, None), "GET", "/api/v1/issues", None)
        .await;
    assert_eq!(r.status, 401);
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("password changed"));
    api.stop().await;
}

async fn failed_logins_make_each_further_attempt_wait_longer(db: TestDb) {
    let mut config = db.config.clone();
    config.admin.login_free_attempts_per_account = 2;
    config.admin.login_free_attempts_per_ip = 6;
    config.admin.login_delay_base_secs = 1;
    let api = Api::start_with(db, config).await;
    let email = "operator@example.org";
    for _ in 0..2 {
        let (_, r) = api.login(email, "wrong password, twice").await;
        assert_eq!(r.status, 401);
    }
    // Past the free attempts even the right password waits, unchecked.
    let (_, r) = api.login(email, PASSWORD).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["retry_after"], 1);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, r) = api.login(email, "wrong once more").await;
    assert_eq!(r.status, 401);
    let (_, r) = api.login(email, PASSWORD).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"), "the wait doubled");
    // Another account from the same address: free until the IP's limit.
    for n in 0..3 {
        let (_, r) = api
            .login(&format!("nobody{n}@example.org"), "guessing again")
            .await;
        assert_eq!(r.status, 401, "attempt {n}");
    }
    let (_, r) = api.login("viewer@example.org", PASSWORD).await;
    assert_eq!(r.status, 429, "the IP made 6 failed attempts: {}", r.body);
    let failed = api
        .db
        .store
        .audit_entries(&whatsup::store::audit::AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "login.failed")
        .count();
    assert_eq!(failed, 6, "throttled attempts are not counted as failures");
    api.stop().await;
}

async fn a_revoked_token_stops_working_at_once_and_a_token_cannot_revoke_itself(db: TestDb) {
    let api = Api::start(db).await;
    let r = api
        .call(
            As::Token(&api.admin.token),
            "POST",
            "/api/v1/tokens",
            Some(&serde_json::json!({"user_id": api.viewer.user.id, "name": "nightly"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let created = r.json();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("wu_"));
    let id = created["token"]["id"].as_i64().unwrap();
    let r = api
        .call(As::Token(&secret), "GET", "/api/v1/contacts", None)
        .await;
    assert_eq!(r.status, 200);
    let listed = api
        .call(As::Token(&api.admin.token), "GET", "/api/v1/tokens", None)
        .await;
    assert!(
        !listed.body.contains(&secret),
        "a listing never shows a secret"
    );
    assert!(listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["id"] == id && t["last_used_at"].is_string()));
    let r = api
        .call(
            As::Token(&api.admin.token),
            "DELETE",
            &format!("/api/v1/tokens/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .call(As::Token(&secret), "GET", "/api/v1/contacts", None)
        .await;
    assert_eq!(r.status, 401);
    // The admin's own token cannot revoke itself.
    let own = api
        .db
        .store
        .list_tokens(Some(api.admin.user.id))
        .await
        .unwrap()[0]
        .id;
    let r = api
        .call(
            As::Token(&api.admin.token),
            "DELETE",
            &format!("/api/v1/tokens/{own}"),
            None,
        )
        .await;
    assert_eq!(r.status, 409);
    api.stop().await;
}

on_both_backends!(
    a_login_sets_a_strict_cookie_and_a_state_change_needs_its_csrf_token,
    the_cookie_is_secure_when_the_admin_is_reached_over_https,
    a_login_replaces_the_session_the_browser_presented,
    sessions_end_after_their_idle_and_absolute_timeouts,
    disabling_an_account_or_changing_its_password_ends_its_sessions_at_once,
    failed_logins_make_each_further_attempt_wait_longer,
    a_revoked_token_stops_working_at_once_and_a_token_cannot_revoke_itself,
);
