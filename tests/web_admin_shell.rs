//! The web admin's shell over loopback on both backends: signing in and
//! out through the form, the redirect to the login page with `next=`, the
//! 403 page for a role the permission table refuses, the CSRF check of
//! every form POST (field, header, multipart), the 404 page, and the
//! media library page that the checks are made on.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use whatsup::web::auth::SESSION_COOKIE;

use crate::common::admin_pages::{csrf_of, html, multipart, post_login, set_cookie, Browser};
use crate::common::http;
use crate::common::workspace::{Api, PASSWORD};
use crate::common::{self, TestDb};

/// A small PNG made here.
fn png(width: u32, height: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x * 7) as u8, (y * 5) as u8, 90])
    });
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(img)
        .write_to(&mut out, ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// The admin served with its media directory in a temporary directory.
async fn start(db: TestDb) -> (Api, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = db.config.clone();
    config.general.data_dir = dir.path().to_path_buf();
    (Api::start_with(db, config).await, dir)
}

async fn a_page_without_a_session_sends_the_browser_to_the_login_page_and_back(db: TestDb) {
    let (api, _dir) = start(db).await;
    let r = http::get(api.addr, "/admin/media?page=2").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let to = r.header("location").unwrap().to_string();
    assert_eq!(to, "/admin/login?next=%2Fadmin%2Fmedia%3Fpage%3D2");
    let login = http::get(api.addr, &to).await;
    assert_eq!(login.status, 200);
    assert!(
        html(&login).contains(r#"name="next" value="/admin/media?page=2""#),
        "{}",
        login.body
    );
    assert!(login
        .body
        .contains(r#"<label for="password">Password</label>"#));
    let r = post_login(
        api.addr,
        "editor@example.org",
        PASSWORD,
        "/admin/media?page=2",
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/admin/media?page=2"));
    // `next` never leads off the admin.
    for evil in [
        "//evil.example/admin",
        "https://evil.example/",
        "/admin/login",
    ] {
        let r = post_login(api.addr, "editor@example.org", PASSWORD, evil).await;
        assert_eq!(r.header("location"), Some("/admin"), "{evil}");
    }
    api.stop().await;
}

async fn signing_in_and_out_through_the_form_starts_and_ends_the_session(db: TestDb) {
    let (api, _dir) = start(db).await;
    let r = post_login(api.addr, "editor@example.org", "not the password", "/admin").await;
    assert_eq!(r.status, 401);
    assert!(r
        .body
        .contains("The email address or the password is not right."));
    assert!(set_cookie(&r, SESSION_COOKIE).is_none());
    // A sign-in posted from another site's form is refused.
    let body = format!(
        "email=editor%40example.org&password={}",
        http::form_value(PASSWORD)
    );
    let r = http::post_with(
        api.addr,
        "/admin/login",
        "application/x-www-form-urlencoded",
        &[("Origin", "https://evil.example")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(set_cookie(&r, SESSION_COOKIE).is_none());

    let b = Browser::sign_in(api.addr, "EDITOR@example.org", PASSWORD).await;
    // The home page is the dashboard, which every role may see.
    let to = b.get("/admin").await;
    assert_eq!(to.status, 303, "{}", to.body);
    assert_eq!(to.header("location"), Some("/admin/dashboard"));
    let home = b.get("/admin/dashboard").await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains("editor@example.org"));
    assert!(
        html(&home).contains(r#"<a href="/admin/media">Media library</a>"#),
        "{}",
        home.body
    );
    assert!(html(&home).contains("Times are shown in Asia/Tokyo (JST)"));
    for h in [
        "content-security-policy",
        "x-frame-options",
        "cache-control",
    ] {
        assert!(home.header(h).is_some(), "{h}");
    }
    // A browser that is signed in skips the login page.
    let r = b.get("/admin/login?next=/admin/media").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/admin/media"));

    let out = b.post_form("/admin/logout", &[]).await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(out.header("location"), Some("/admin/login?signed_out=1"));
    assert_eq!(set_cookie(&out, SESSION_COOKIE).as_deref(), Some(""));
    let page = http::get(api.addr, "/admin/login?signed_out=1").await;
    assert!(page.body.contains("You have signed out."));
    // The old cookie no longer works.
    let r = b.get("/admin/media").await;
    assert_eq!(r.status, 303);
    assert!(r
        .header("location")
        .unwrap()
        .starts_with("/admin/login?next=%2Fadmin%2Fmedia"));
    api.stop().await;
}

async fn a_role_the_permission_table_refuses_gets_the_403_page_and_nothing_changes(db: TestDb) {
    let (api, _dir) = start(db).await;
    let viewer = Browser::sign_in(api.addr, "viewer@example.org", PASSWORD).await;
    let list = viewer.get("/admin/media").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("The library is empty."));
    assert!(
        !list.body.contains("Add an image"),
        "no upload form for a viewer"
    );
    let image = png(40, 30);
    let r = viewer
        .post_multipart(
            "/admin/media",
            &[("alt", "A red lantern")],
            &[("file", "lantern.png", &image)],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("<h1>Not allowed</h1>"), "{}", r.body);
    assert!(r.body.contains("save a new revision of an issue") || r.body.contains("editor"));
    assert!(
        r.body.contains(r#"class="mainnav""#),
        "the 403 page has the layout"
    );
    assert!(api.db.store.list_media(10, 0).await.unwrap().is_empty());
    api.stop().await;
}

async fn a_form_post_without_the_sessions_csrf_token_is_refused(db: TestDb) {
    let (api, _dir) = start(db).await;
    let editor = Browser::sign_in(api.addr, "editor@example.org", PASSWORD).await;
    let image = png(40, 30);
    let files: &[(&str, &str, &[u8])] = &[("file", "lantern.png", &image)];
    // No token, a forged one, a token after the file: all refused.
    let cases = [
        multipart(&[("alt", "A red lantern")], files),
        multipart(&[("csrf_token", "forged"), ("alt", "A red lantern")], files),
    ];
    for (ct, body) in cases {
        let r = editor.post_raw("/admin/media", &ct, &body, &[]).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("security token"), "{}", r.body);
    }
    let mut late = multipart(&[("alt", "A red lantern")], files).1;
    let (ct, _) = multipart(&[], &[]);
    let boundary = ct.split("boundary=").nth(1).unwrap();
    let tail = format!("--{boundary}--\r\n");
    late.truncate(late.len() - tail.len());
    late.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{}\r\n{tail}",
            editor.csrf
        )
        .as_bytes(),
    );
    let r = editor.post_raw("/admin/media", &ct, &late, &[]).await;
    assert_eq!(r.status, 403, "a token after the file is not looked for");
    // Sign-out needs the token too.
    let r = editor
        .post_raw(
            "/admin/logout",
            "application/x-www-form-urlencoded",
            b"",
            &[],
        )
        .await;
    assert_eq!(r.status, 403);
    // Without a session at all, a POST is a 401 page, not a redirect.
    let r = http::post(
        api.addr,
        "/admin/logout",
        "application/x-www-form-urlencoded",
        b"",
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(api.db.store.list_media(10, 0).await.unwrap().is_empty());

    // The same upload with the token in the form, or in htmx's header, works.
    let r = editor
        .post_multipart("/admin/media", &[("alt", "A red lantern")], files)
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let list = editor.get("/admin/media").await;
    assert!(
        list.body.contains("Added lantern.png (40 × 30 pixels)."),
        "{}",
        list.body
    );
    let again = editor.get("/admin/media").await;
    assert!(
        !again.body.contains("Added lantern.png"),
        "the message shows once"
    );
    let csrf = editor.csrf.clone();
    let (ct, body) = multipart(&[("alt", "提灯、赤")], &[("file", "b.png", &png(20, 20))]);
    let r = editor
        .post_raw("/admin/media", &ct, &body, &[("X-CSRF-Token", &csrf)])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let list = editor.get("/admin/media").await;
    assert!(
        list.body.contains("Added b.png (20 × 20 pixels)."),
        "{}",
        list.body
    );
    assert!(list.body.contains(r#"alt="A red lantern""#));
    assert!(list.body.contains("提灯、赤"));
    assert_eq!(csrf_of(&list.body).as_deref(), Some(editor.csrf.as_str()));
    let media = api.db.store.list_media(10, 0).await.unwrap();
    assert_eq!(media.len(), 2);
    assert_eq!(media[1].uploaded_by, "user:editor@example.org");
    // The thumbnail is served to signed-in users only.
    let url = format!("/admin/media/file/{}", media[0].file_name());
    let img = editor.get(&url).await;
    assert_eq!(img.status, 200);
    assert_eq!(img.header("content-type"), Some("image/png"));
    assert_eq!(http::get(api.addr, &url).await.status, 303);
    api.stop().await;
}

async fn an_upload_without_alt_text_shows_the_form_again_with_the_reason_at_the_field(db: TestDb) {
    let (api, _dir) = start(db).await;
    let editor = Browser::sign_in(api.addr, "editor@example.org", PASSWORD).await;
    let r = editor
        .post_multipart(
            "/admin/media",
            &[("alt", "  ")],
            &[("file", "lantern.png", &png(10, 10))],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains(r#"id="alt-error""#), "{}", r.body);
    assert!(r.body.contains("Alt text is required"));
    let r = editor
        .post_multipart(
            "/admin/media",
            &[("alt", "Not an image")],
            &[("file", "notes.png", b"just text")],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains(r#"id="file-error""#), "{}", r.body);
    assert!(
        r.body.contains(r#"value="Not an image""#),
        "the alt text is kept"
    );
    assert!(api.db.store.list_media(10, 0).await.unwrap().is_empty());
    api.stop().await;
}

async fn an_unknown_admin_path_is_the_404_page_and_others_are_the_apis_problem(db: TestDb) {
    let (api, _dir) = start(db).await;
    let editor = Browser::sign_in(api.addr, "editor@example.org", PASSWORD).await;
    let r = editor.get("/admin/no-such-page").await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("<h1>Page not found</h1>"));
    assert!(r.body.contains(r#"class="mainnav""#));
    let r = http::get(api.addr, "/admin/no-such-page").await;
    assert_eq!(r.status, 404);
    assert!(
        !r.body.contains(r#"class="mainnav""#),
        "no menu when signed out"
    );
    let r = http::get(api.addr, "/no-such-thing").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    api.stop().await;
}

on_both_backends!(
    a_page_without_a_session_sends_the_browser_to_the_login_page_and_back,
    signing_in_and_out_through_the_form_starts_and_ends_the_session,
    a_role_the_permission_table_refuses_gets_the_403_page_and_nothing_changes,
    a_form_post_without_the_sessions_csrf_token_is_refused,
    an_upload_without_alt_text_shows_the_form_again_with_the_reason_at_the_field,
    an_unknown_admin_path_is_the_404_page_and_others_are_the_apis_problem,
);
