//! The admin's vendored and embedded files: every file named in
//! `assets/vendor/vendor.toml` still has its recorded SHA-256, the binary
//! embeds exactly those bytes, and the assets router serves them over
//! loopback with their type, an ETag and a year of immutable caching.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use whatsup::config::Branding;
use whatsup::web::assets::Assets;

use crate::common::http;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// (package, path relative to the repository, recorded sha256).
fn manifest() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(root().join("assets/vendor/vendor.toml")).unwrap();
    let doc: toml::Value = toml::from_str(&text).unwrap();
    let mut out = Vec::new();
    for p in doc["package"].as_array().unwrap() {
        let name = format!(
            "{}@{}",
            p["name"].as_str().unwrap(),
            p["version"].as_str().unwrap()
        );
        assert!(
            p["integrity"].as_str().unwrap().starts_with("sha512-"),
            "{name}: no tarball integrity recorded"
        );
        assert!(
            !p["license"].as_str().unwrap().is_empty(),
            "{name}: no licence"
        );
        let dir = p["dir"].as_str().unwrap();
        for f in p["files"].as_array().unwrap() {
            out.push((
                name.clone(),
                format!("{dir}/{}", f["to"].as_str().unwrap()),
                f["sha256"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

#[test]
fn vendored_files_match_their_recorded_checksums() {
    let files = manifest();
    assert!(files.len() >= 8, "{files:?}");
    for (package, path, recorded) in &files {
        let bytes = std::fs::read(root().join(path))
            .unwrap_or_else(|e| panic!("{path} ({package}) is missing: {e}"));
        assert_eq!(
            &hex(&Sha256::digest(&bytes)),
            recorded,
            "{path} ({package}) differs from the published file; run scripts/vendor_assets.py --check"
        );
    }
    // Every vendored package ships its licence beside its code.
    for package in ["htmx.org", "uplot", "axe-core"] {
        assert!(
            files
                .iter()
                .any(|(p, path, _)| p.starts_with(package) && path.ends_with("/LICENSE")),
            "{package} has no LICENSE"
        );
    }
}

#[test]
fn the_binary_embeds_exactly_the_vendored_bytes() {
    let assets = Assets::new("/admin/assets", &Branding::default()).unwrap();
    let vendored: Vec<_> = manifest()
        .into_iter()
        .filter(|(_, path, _)| path.starts_with("assets/vendor/"))
        .collect();
    for (package, path, recorded) in &vendored {
        let name = path.trim_start_matches("assets/");
        let (asset, _) = assets
            .lookup(name)
            .unwrap_or_else(|| panic!("{name} ({package}) is not embedded"));
        assert_eq!(&hex(&Sha256::digest(&asset.bytes)), recorded, "{name}");
    }
    let embedded_vendor = assets
        .files()
        .filter(|a| a.name.starts_with("vendor/"))
        .count();
    assert_eq!(
        embedded_vendor,
        vendored.len(),
        "an embedded vendor file not in the manifest"
    );
}

#[tokio::test]
async fn the_assets_router_serves_fingerprinted_files_with_long_caching() {
    let assets = Arc::new(Assets::new("/admin/assets", &Branding::default()).unwrap());
    let app: axum::Router = axum::Router::new().nest(assets.prefix(), assets.clone().router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let url = assets.url("vendor/htmx/htmx.min.js").unwrap();
    let r = http::get(addr, &url).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let on_disk = std::fs::read(root().join("assets/vendor/htmx/htmx.min.js")).unwrap();
    assert_eq!(r.raw_body, on_disk);
    let etag = r.header("etag").unwrap().to_string();

    let conditional = format!(
        "GET {url} HTTP/1.1\r\nHost: {addr}\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
    );
    let again = http::raw(addr, conditional.as_bytes()).await;
    assert_eq!(again.status, 304);
    assert!(again.raw_body.is_empty());

    let css = http::get(addr, &assets.url("admin/admin.css").unwrap()).await;
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(css.body.contains("--brand"));
    let plain = http::get(addr, "/admin/assets/admin/admin.css").await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("cache-control"), Some("no-cache"));
    let icon = http::get(addr, &assets.url("admin/favicon.svg").unwrap()).await;
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));
    assert!(icon
        .header("content-security-policy")
        .unwrap()
        .contains("sandbox"));
    for missing in [
        "/admin/assets/vendor/htmx/htmx.min.0000000000000000.js",
        "/admin/assets/../Cargo.toml",
        "/admin/assets/vendor/",
    ] {
        assert_eq!(http::get(addr, missing).await.status, 404, "{missing}");
    }
    server.abort();
}

#[test]
fn the_admin_layout_renders_for_a_signed_out_page_with_only_the_required_context() {
    let assets = Assets::new("/admin/assets", &Branding::default()).unwrap();
    let tz: chrono_tz::Tz = "Asia/Tokyo".parse().unwrap();
    let mut env = whatsup::web::admin::environment(tz);
    env.add_template(
        "admin/test-login.html",
        "{% extends \"admin/base.html\" %}{% block content %}<h1>Sign in</h1>{% endblock %}",
    )
    .unwrap();
    let ctx = minijinja::context! {
        lang => "ja",
        title => "ログイン",
        timezone => "Asia/Tokyo",
        ..assets.template_context()
    };
    let html = env
        .get_template("admin/test-login.html")
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(html.contains("<html lang=\"ja\">"), "{html}");
    assert!(html.contains("<title>ログイン – Tokyo Metropolitan Government</title>"));
    // minijinja escapes '/' in attributes as &#x2f;, which browsers read as '/'.
    let htmx = assets.url("vendor/htmx/htmx.min.js").unwrap();
    assert!(html.contains(&htmx.replace('/', "&#x2f;")), "{html}");
    assert!(html.contains("href=\"#main\""), "the skip link");
    assert!(!html.contains("Sign out") && !html.contains("mainnav"));
    assert!(!html.contains("csrf"), "no token, no CSRF markup");
    // With a token: a meta tag, and htmx sends it as a header.
    let ctx = minijinja::context! {
        lang => "en", title => "t", timezone => "Asia/Tokyo", csrf_token => "a'b\"c<d",
        ..assets.template_context()
    };
    let html = env
        .get_template("admin/test-login.html")
        .and_then(|t| t.render(ctx))
        .unwrap();
    assert!(
        html.contains("<meta name=\"csrf-token\" content=\"a&#x27;b&quot;c&lt;d\">"),
        "{html}"
    );
    assert!(
        html.contains("hx-headers='{\"X-CSRF-Token\":\"a\\u0027b\\\"c\\u003cd\"}'"),
        "{html}"
    );
}
