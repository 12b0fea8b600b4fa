//! The admins' pages over loopback on both backends: adding an account,
//! changing its role, disabling, enabling and resetting its password;
//! creating an API token (its secret shown once), listing and revoking it;
//! and the audit log's filters and pages. Each change is checked where it
//! takes effect (the API, a session, a sign-in), not only on the page.

use crate::common::admin_pages::{html, Browser};
use crate::common::http::Reply;
use crate::common::workspace::{Api, As, PASSWORD};
use crate::common::{self, TestDb};

const NEW_PASSWORD: &str = "lantern orchard cobalt drifts";

/// The id in a `Location: /admin/users/ID`.
fn user_id(r: &Reply) -> i64 {
    let to = r.header("location").unwrap_or_else(|| panic!("{}", r.body));
    to.rsplit('/').next().unwrap().parse().unwrap()
}

async fn an_admin_adds_a_user_changes_the_role_disables_enables_and_resets_the_password(
    db: TestDb,
) {
    let api = Api::start(db).await;
    let admin = Browser::sign_in(api.addr, "admin@example.org", PASSWORD).await;
    let list = admin.get("/admin/users").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(html(&list).contains(r#"<a href="/admin/users" aria-current="page">Users</a>"#));
    assert!(list.body.contains("viewer@example.org"));

    // A weak password is refused at its field, and nothing is added.
    let r = admin
        .post_form(
            "/admin/users",
            &[
                ("email", "hanako@example.org"),
                ("name", "山田 花子"),
                ("role", "editor"),
                ("password", "password1234"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains(r#"id="password-error""#), "{}", r.body);
    assert!(
        r.body.contains("山田 花子"),
        "the form keeps what was typed"
    );
    let r = api
        .call(As::Token(&api.admin.token), "GET", "/api/v1/users", None)
        .await;
    assert!(!r.body.contains("hanako@example.org"));

    let r = admin
        .post_form(
            "/admin/users",
            &[
                ("email", "Hanako@Example.org"),
                ("name", "山田 花子"),
                ("role", "editor"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let id = user_id(&r);
    let page = admin.get(&format!("/admin/users/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Added hanako@example.org as editor."));
    assert!(page.body.contains("山田 花子"));
    // The same address twice is refused at the email field.
    let r = admin
        .post_form(
            "/admin/users",
            &[("email", "hanako@example.org"), ("role", "viewer")],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains(r#"id="email-error""#), "{}", r.body);

    // Hanako signs in; the role change is what the API then sees.
    let hanako = Browser::sign_in(api.addr, "hanako@example.org", PASSWORD).await;
    let r = admin
        .post_form(&format!("/admin/users/{id}/role"), &[("role", "operator")])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let u = api
        .call(
            As::Token(&api.admin.token),
            "GET",
            &format!("/api/v1/users/{id}"),
            None,
        )
        .await
        .json();
    assert_eq!(u["role"], "operator");

    // Disabling ends her session at once; enabling lets her sign in again.
    let r = admin
        .post_form(
            &format!("/admin/users/{id}/access"),
            &[("disabled", "true")],
        )
        .await;
    assert_eq!(r.status, 303);
    let after = hanako.get("/admin").await;
    assert_eq!(after.status, 303);
    assert!(
        after
            .header("location")
            .unwrap()
            .starts_with("/admin/login"),
        "{:?}",
        after.header("location")
    );
    let page = admin.get(&format!("/admin/users/{id}")).await;
    assert!(page.body.contains("is disabled"), "{}", page.body);
    assert!(page.body.contains("Enable account"));
    let r = admin
        .post_form(
            &format!("/admin/users/{id}/access"),
            &[("disabled", "false")],
        )
        .await;
    assert_eq!(r.status, 303);

    // A new password: the old one stops working, the new one works.
    let r = admin
        .post_form(
            &format!("/admin/users/{id}/password"),
            &[("password", "short")],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains(r#"id="password-error""#));
    let r = admin
        .post_form(
            &format!("/admin/users/{id}/password"),
            &[("password", NEW_PASSWORD)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let (session, _) = api.login("hanako@example.org", PASSWORD).await;
    assert!(session.is_none());
    Browser::sign_in(api.addr, "hanako@example.org", NEW_PASSWORD).await;

    // An admin cannot change their own role: the page says so.
    let me = api.admin.user.id;
    let own = admin.get(&format!("/admin/users/{me}")).await;
    assert!(own.body.contains("This is your own account"));
    assert!(!html(&own).contains(&format!("/admin/users/{me}/role")));
    let r = admin
        .post_form(&format!("/admin/users/{me}/role"), &[("role", "viewer")])
        .await;
    assert_eq!(r.status, 303);
    let own = admin.get(&format!("/admin/users/{me}")).await;
    assert!(
        own.body.contains("you cannot change your own role"),
        "{}",
        own.body
    );
    assert!(own.body.contains("notice-error"));

    // Every change is in the audit log, which filters by the account.
    let audit = admin
        .get(&format!("/admin/audit?object_kind=user&object_id={id}"))
        .await;
    assert_eq!(audit.status, 200);
    for action in [
        "user.create",
        "user.set_role",
        "user.disable",
        "user.enable",
        "user.set_password",
    ] {
        assert!(audit.body.contains(action), "{action}: {}", audit.body);
    }
    api.stop().await;
}

async fn a_token_is_shown_once_works_for_the_api_and_stops_when_revoked(db: TestDb) {
    let api = Api::start(db).await;
    let admin = Browser::sign_in(api.addr, "admin@example.org", PASSWORD).await;
    let viewer = api.viewer.user.id.to_string();
    let r = admin
        .post_form("/admin/tokens", &[("user_id", &viewer), ("name", "")])
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains(r#"id="name-error""#), "{}", r.body);

    let r = admin
        .post_form(
            "/admin/tokens",
            &[("user_id", &viewer), ("name", "nightly report")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let at = r.body.find("value=\"wu_").expect("the secret on the page") + 7;
    let secret = &r.body[at..at + r.body[at..].find('"').unwrap()];
    assert_eq!(secret.len(), 3 + 43, "{secret}");
    let contacts = api
        .call(As::Token(secret), "GET", "/api/v1/contacts", None)
        .await;
    assert_eq!(contacts.status, 200, "{}", contacts.body);

    // Listed without its secret, and the same list as the API's.
    let list = admin.get("/admin/tokens").await;
    assert!(list.body.contains("nightly report"));
    assert!(!list.body.contains(secret));
    let tokens = api
        .call(As::Token(&api.admin.token), "GET", "/api/v1/tokens", None)
        .await
        .json();
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "nightly report")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let only = admin.get(&format!("/admin/tokens?user_id={viewer}")).await;
    assert!(only.body.contains("Tokens of viewer@example.org"));

    let r = admin
        .post_form(&format!("/admin/tokens/{id}/revoke"), &[])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let list = admin.get("/admin/tokens").await;
    assert!(
        list.body.contains("Revoked “nightly report”"),
        "{}",
        list.body
    );
    let contacts = api
        .call(As::Token(secret), "GET", "/api/v1/contacts", None)
        .await;
    assert_eq!(contacts.status, 401);
    // Revoking again says it was revoked already.
    admin
        .post_form(&format!("/admin/tokens/{id}/revoke"), &[])
        .await;
    let list = admin.get("/admin/tokens").await;
    assert!(list.body.contains("was revoked already"), "{}", list.body);
    api.stop().await;
}

async fn the_audit_log_filters_by_day_actor_and_object_and_pages_back(db: TestDb) {
    let api = Api::start(db).await;
    let admin = Browser::sign_in(api.addr, "admin@example.org", PASSWORD).await;
    for (email, role) in [
        ("a1@example.org", "viewer"),
        ("a2@example.org", "viewer"),
        ("a3@example.org", "editor"),
    ] {
        let r = admin
            .post_form("/admin/users", &[("email", email), ("role", role)])
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
    }
    // Everyone can read it, viewers too (audit.read).
    let viewer = Browser::sign_in(api.addr, "viewer@example.org", PASSWORD).await;
    let page = viewer
        .get("/admin/audit?actor=admin%40example.org&object_kind=user&limit=2")
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = html(&page);
    assert_eq!(
        body.matches("<code>user.create</code>").count(),
        2,
        "{body}"
    );
    assert!(body.contains("a3@example.org") && body.contains("a2@example.org"));
    assert!(!body.contains("a1@example.org"));
    // The older page, with the same filters.
    let at = body.find("Older entries").expect("a link to older entries");
    let href_start = body[..at].rfind("href=\"").unwrap() + 6;
    let href = body[href_start..at]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert!(
        href.contains("object_kind=user") && href.contains("before="),
        "{href}"
    );
    let older = html(&viewer.get(&href).await);
    assert!(older.contains("a1@example.org"), "{older}");
    assert!(older.contains("Newest entries"));

    // A day in Tokyo: today has the entries, tomorrow none.
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Tokyo)
        .date_naive();
    let r = viewer
        .get(&format!("/admin/audit?object_kind=user&since={today}"))
        .await;
    assert!(r.body.contains("<code>user.create</code>"));
    let r = viewer
        .get(&format!(
            "/admin/audit?since={}",
            today + chrono::Duration::days(1)
        ))
        .await;
    assert!(r.body.contains("No entries match."));
    let r = viewer.get("/admin/audit?since=yesterday").await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains(r#"id="since-error""#), "{}", r.body);
    // A viewer reaches neither the users nor the tokens page.
    assert_eq!(viewer.get("/admin/users").await.status, 403);
    assert_eq!(viewer.get("/admin/tokens").await.status, 403);
    api.stop().await;
}

on_both_backends!(
    an_admin_adds_a_user_changes_the_role_disables_enables_and_resets_the_password,
    a_token_is_shown_once_works_for_the_api_and_stops_when_revoked,
    the_audit_log_filters_by_day_actor_and_object_and_pages_back,
);
