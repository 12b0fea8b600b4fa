//! The admin's static files, served from the binary: htmx and uPlot
//! (vendored from npm at pinned versions, see `assets/vendor/vendor.toml`),
//! their licences, the hand-written `assets/admin/admin.css`, and three files
//! made at start-up from `[branding]`: `admin/brand.css` (the colours as CSS
//! custom properties), `admin/favicon.svg`, and the logo if one is set.
//!
//! Every file has a content hash. [`Assets::url`] gives its fingerprinted URL
//! (`/admin/assets/vendor/htmx/htmx.min.d6fdc75f204e6bde.js`), which is served
//! with `Cache-Control: immutable` for a year: a new build or a new logo
//! changes the URL, never the bytes behind one. The plain name is served too,
//! with `no-cache` and an `ETag`, for a person typing it. Nothing is read from
//! disk after start-up, and no CDN is involved.
//!
//! [`Assets::router`] is what the admin listener mounts under
//! [`Assets::prefix`]; [`Assets::template_context`] is what
//! `templates/admin/base.html` expects as `assets` and `branding`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use minijinja::{context, Value};
use sha2::{Digest, Sha256};

use crate::config::Branding;

/// The CSP the admin's pages are written for: scripts and styles only from
/// our own files (htmx runs with `allowEval` off and inserts no style
/// element), requests only to ourselves, previews framed from ourselves.
pub const ADMIN_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                             img-src 'self' data:; connect-src 'self'; frame-src 'self'; \
                             form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Files compiled into the binary, by logical name.
const EMBEDDED: &[(&str, &[u8])] = &[
    (
        "vendor/htmx/htmx.min.js",
        include_bytes!("../../assets/vendor/htmx/htmx.min.js"),
    ),
    (
        "vendor/htmx/LICENSE",
        include_bytes!("../../assets/vendor/htmx/LICENSE"),
    ),
    (
        "vendor/uplot/uPlot.iife.min.js",
        include_bytes!("../../assets/vendor/uplot/uPlot.iife.min.js"),
    ),
    (
        "vendor/uplot/uPlot.min.css",
        include_bytes!("../../assets/vendor/uplot/uPlot.min.css"),
    ),
    (
        "vendor/uplot/LICENSE",
        include_bytes!("../../assets/vendor/uplot/LICENSE"),
    ),
    (
        "admin/admin.css",
        include_bytes!("../../assets/admin/admin.css"),
    ),
    (
        "admin/dashboard.js",
        include_bytes!("../../assets/admin/dashboard.js"),
    ),
    (
        "admin/operators.css",
        include_bytes!("../../assets/admin/operators.css"),
    ),
    (
        "admin/progress.js",
        include_bytes!("../../assets/admin/progress.js"),
    ),
    (
        "admin/editor.js",
        include_bytes!("../../assets/admin/editor.js"),
    ),
];

/// The largest logo read from `branding.logo_file`.
pub const MAX_LOGO_BYTES: u64 = 512 * 1024;

/// One file: its bytes, type and content hash.
#[derive(Debug)]
pub struct Asset {
    /// The logical name, such as `vendor/htmx/htmx.min.js`.
    pub name: String,
    pub bytes: Cow<'static, [u8]>,
    pub content_type: &'static str,
    /// The first 16 hex digits of the SHA-256 of the bytes.
    pub hash: String,
}

impl Asset {
    fn new(name: &str, bytes: Cow<'static, [u8]>) -> Asset {
        let digest = Sha256::digest(&bytes);
        let hash = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Asset {
            name: name.to_string(),
            content_type: content_type(name),
            bytes,
            hash,
        }
    }

    /// The name with the hash before its extension:
    /// `admin/admin.css` → `admin/admin.0123456789abcdef.css`.
    pub fn fingerprinted(&self) -> String {
        let file_start = self.name.rfind('/').map_or(0, |i| i + 1);
        match self.name[file_start..].rfind('.') {
            Some(dot) => {
                let dot = file_start + dot;
                format!("{}.{}{}", &self.name[..dot], self.hash, &self.name[dot..])
            }
            None => format!("{}.{}", self.name, self.hash),
        }
    }

    fn etag(&self) -> String {
        format!("\"{}\"", self.hash)
    }
}

/// The Content-Type for a file name, by its extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        _ => "text/plain; charset=utf-8",
    }
}

/// The admin's files, ready to serve.
#[derive(Debug)]
pub struct Assets {
    prefix: String,
    by_name: BTreeMap<String, Arc<Asset>>,
    by_fingerprint: HashMap<String, Arc<Asset>>,
    branding: Branding,
    logo: Option<String>,
}

impl Assets {
    /// The embedded files plus those made from `branding`, served under
    /// `prefix` (such as `/admin/assets`). Fails if the logo cannot be read
    /// or is not an image type the admin can show.
    pub fn new(prefix: &str, branding: &Branding) -> Result<Assets> {
        let mut files: Vec<Asset> = EMBEDDED
            .iter()
            .map(|(name, bytes)| Asset::new(name, Cow::Borrowed(*bytes)))
            .collect();
        files.push(Asset::new(
            "admin/brand.css",
            Cow::Owned(brand_css(branding).into_bytes()),
        ));
        files.push(Asset::new(
            "admin/favicon.svg",
            Cow::Owned(favicon_svg(branding).into_bytes()),
        ));
        let mut logo = None;
        if !branding.logo_file.as_os_str().is_empty() {
            let asset = read_logo(&branding.logo_file)?;
            logo = Some(asset.name.clone());
            files.push(asset);
        }
        let mut assets = Assets {
            prefix: prefix.trim_end_matches('/').to_string(),
            by_name: BTreeMap::new(),
            by_fingerprint: HashMap::new(),
            branding: branding.clone(),
            logo,
        };
        for asset in files {
            let asset = Arc::new(asset);
            assets
                .by_fingerprint
                .insert(asset.fingerprinted(), asset.clone());
            assets.by_name.insert(asset.name.clone(), asset);
        }
        Ok(assets)
    }

    /// Where the router is mounted, such as `/admin/assets`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The fingerprinted URL of a file, or `None` if there is no such file.
    pub fn url(&self, name: &str) -> Option<String> {
        self.by_name
            .get(name)
            .map(|a| format!("{}/{}", self.prefix, a.fingerprinted()))
    }

    /// Every file, by logical name.
    pub fn files(&self) -> impl Iterator<Item = &Asset> {
        self.by_name.values().map(|a| a.as_ref())
    }

    /// The file a request path (below the prefix) names, and whether it
    /// was the fingerprinted name.
    pub fn lookup(&self, path: &str) -> Option<(&Asset, bool)> {
        if let Some(a) = self.by_fingerprint.get(path) {
            return Some((a, true));
        }
        self.by_name.get(path).map(|a| (a.as_ref(), false))
    }

    /// What `templates/admin/base.html` needs: `assets` (logical name →
    /// fingerprinted URL) and `branding` (organisation, product, the logo's
    /// URL or none).
    pub fn template_context(&self) -> Value {
        let urls: BTreeMap<&str, String> = self
            .by_name
            .keys()
            .filter_map(|n| Some((n.as_str(), self.url(n)?)))
            .collect();
        context! {
            assets => urls,
            branding => context! {
                organisation => self.branding.organisation.as_str(),
                product => self.branding.product.as_str(),
                logo => self.logo.as_deref().and_then(|n| self.url(n)),
            },
        }
    }

    /// A router serving the files at `/{*path}`, for any outer state: mount
    /// it with `Router::nest(assets.prefix(), assets.clone().router())`.
    pub fn router<S: Clone + Send + Sync + 'static>(self: Arc<Self>) -> Router<S> {
        Router::new().route("/{*path}", get(serve)).with_state(self)
    }

    /// The response for a request path below the prefix.
    pub fn respond(&self, path: &str, request: &HeaderMap) -> Response {
        let Some((asset, fingerprinted)) = self.lookup(path) else {
            return (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "not found\n",
            )
                .into_response();
        };
        let cache = if fingerprinted {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        let etag = asset.etag();
        let mut headers = HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        if let Ok(v) = HeaderValue::from_str(&etag) {
            headers.insert(header::ETAG, v);
        }
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if asset.content_type == "image/svg+xml" {
            // An SVG opened on its own runs no script and loads nothing.
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
            );
        }
        if if_none_match(request, &etag) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        let body = match &asset.bytes {
            Cow::Borrowed(b) => axum::body::Body::from(*b),
            Cow::Owned(b) => axum::body::Body::from(b.clone()),
        };
        (StatusCode::OK, headers, body).into_response()
    }
}

async fn serve(
    State(assets): State<Arc<Assets>>,
    UrlPath(path): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    assets.respond(&path, &headers)
}

/// `GET /favicon.ico` on the public listener: the brand icon, so that
/// browsers asking for it on every page (the issue pages have no icon link)
/// get an answer instead of a 404 in their console.
pub async fn favicon(State(state): State<super::Shared>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        favicon_svg(&state.config.branding),
    )
        .into_response()
}

/// True if `If-None-Match` names `etag` (or is `*`).
pub(super) fn if_none_match(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// The colours as CSS custom properties, which `admin.css` uses. The
/// values were checked as `#rrggbb` when the configuration was loaded.
fn brand_css(b: &Branding) -> String {
    format!(
        "/* Made from [branding] at start-up. */\n:root {{\n  --brand: {};\n  --accent: {};\n}}\n",
        b.primary_colour, b.accent_colour
    )
}

/// A 32 × 32 icon in the brand's colours: the primary square with the
/// accent rule under it, as in the header.
fn favicon_svg(b: &Branding) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\">\
         <rect width=\"32\" height=\"32\" rx=\"4\" fill=\"{}\"/>\
         <rect x=\"6\" y=\"22\" width=\"20\" height=\"4\" fill=\"{}\"/></svg>\n",
        b.primary_colour, b.accent_colour
    )
}

fn read_logo(path: &Path) -> Result<Asset> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if !matches!(ext.as_str(), "svg" | "png" | "jpg" | "jpeg" | "webp") {
        bail!(
            "branding.logo_file: {} is not an SVG, PNG, JPEG or WebP file (by its extension)",
            path.display()
        );
    }
    let len = std::fs::metadata(path)
        .with_context(|| format!("branding.logo_file: {}", path.display()))?
        .len();
    if len > MAX_LOGO_BYTES {
        bail!(
            "branding.logo_file: {} is {len} bytes; at most {MAX_LOGO_BYTES} are allowed",
            path.display()
        );
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("branding.logo_file: reading {}", path.display()))?;
    Ok(Asset::new(&format!("admin/logo.{ext}"), Cow::Owned(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprinted_name_puts_the_hash_before_the_extension() {
        let a = Asset::new("vendor/htmx/htmx.min.js", Cow::Borrowed(b"x"));
        assert_eq!(a.hash.len(), 16);
        assert_eq!(
            a.fingerprinted(),
            format!("vendor/htmx/htmx.min.{}.js", a.hash)
        );
        let l = Asset::new("vendor/htmx/LICENSE", Cow::Borrowed(b"x"));
        assert_eq!(l.fingerprinted(), format!("vendor/htmx/LICENSE.{}", l.hash));
        let d = Asset::new("dir.v2/file", Cow::Borrowed(b"x"));
        assert_eq!(d.fingerprinted(), format!("dir.v2/file.{}", d.hash));
    }

    #[test]
    fn every_embedded_file_has_a_url_and_a_type() {
        let assets = Assets::new("/admin/assets/", &Branding::default()).unwrap();
        for (name, bytes) in EMBEDDED {
            let url = assets.url(name).unwrap();
            assert!(url.starts_with("/admin/assets/"), "{url}");
            let (a, fingerprinted) = assets.lookup(&url["/admin/assets/".len()..]).unwrap();
            assert!(fingerprinted);
            assert_eq!(a.bytes.as_ref(), *bytes);
            if name.ends_with(".js") || name.ends_with(".css") {
                assert!(a.content_type.contains("charset=utf-8"), "{name}");
            }
        }
        assert!(assets.url("vendor/nothing.js").is_none());
    }

    #[test]
    fn the_brand_stylesheet_and_icon_carry_the_configured_colours() {
        let b = Branding {
            primary_colour: "#003366".into(),
            accent_colour: "#c0392b".into(),
            ..Branding::default()
        };
        let assets = Assets::new("/admin/assets", &b).unwrap();
        let css = assets.lookup("admin/brand.css").unwrap().0;
        let css = std::str::from_utf8(&css.bytes).unwrap();
        assert!(css.contains("--brand: #003366;") && css.contains("--accent: #c0392b;"));
        let default = Assets::new("/admin/assets", &Branding::default()).unwrap();
        assert_ne!(
            assets.url("admin/brand.css"),
            default.url("admin/brand.css"),
            "other colours, another URL"
        );
    }

    #[test]
    fn a_logo_of_another_type_or_too_large_is_refused_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let gif = dir.path().join("logo.bmp");
        std::fs::write(&gif, b"BM").unwrap();
        let b = Branding {
            logo_file: gif,
            ..Branding::default()
        };
        let err = Assets::new("/admin/assets", &b).unwrap_err();
        assert!(format!("{err:#}").contains("branding.logo_file"), "{err:#}");
        let big = dir.path().join("logo.png");
        std::fs::write(&big, vec![0u8; MAX_LOGO_BYTES as usize + 1]).unwrap();
        let b = Branding {
            logo_file: big,
            ..Branding::default()
        };
        let err = Assets::new("/admin/assets", &b).unwrap_err();
        assert!(format!("{err:#}").contains("at most"), "{err:#}");
        let svg = dir.path().join("Logo.SVG");
        std::fs::write(&svg, b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>").unwrap();
        let b = Branding {
            logo_file: svg,
            ..Branding::default()
        };
        let assets = Assets::new("/admin/assets", &b).unwrap();
        let ctx = assets.template_context();
        let logo = ctx
            .get_attr("branding")
            .and_then(|b| b.get_attr("logo"))
            .unwrap();
        assert!(
            logo.to_string().starts_with("/admin/assets/admin/logo."),
            "{logo}"
        );
    }

    #[test]
    fn a_matching_etag_gets_304_and_the_plain_name_is_not_immutable() {
        let assets = Assets::new("/admin/assets", &Branding::default()).unwrap();
        let fresh = assets.respond("admin/admin.css", &HeaderMap::new());
        assert_eq!(fresh.status(), StatusCode::OK);
        assert_eq!(fresh.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = fresh.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        let again = assets.respond("admin/admin.css", &h);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let url = assets.url("admin/admin.css").unwrap();
        let long = assets.respond(&url["/admin/assets/".len()..], &HeaderMap::new());
        assert!(long.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable"));
        assert_eq!(
            assets
                .respond("admin/../admin/admin.css", &HeaderMap::new())
                .status(),
            StatusCode::NOT_FOUND
        );
    }
}
