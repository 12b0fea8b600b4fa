//! The media library page: the images editors can put in an issue, and the
//! upload form (JPEG, PNG, WebP or GIF, with its alt text, through
//! `media::add`, the same function `whatsup media add` and
//! `POST /api/v1/media` call).
//!
//! - `GET /admin/media` lists the library, newest first, 48 to a page.
//! - `POST /admin/media` (multipart: `csrf_token` first, then `alt` and
//!   `file`) adds an image; a refusal (no alt text, not an image, too
//!   large) shows the form again with the reason at its field.
//! - `GET /admin/media/file/{HASH.EXT}` serves a stored image to signed-in
//!   users (the admin's pages may load images only from their own origin).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use minijinja::{context, Value};
use serde::Deserialize;

use super::{redirect_with, AdminError, AdminResult, AdminShared, Flash, NavItem, Page};
use crate::domain::Action;
use crate::media::MediaError;
use crate::store::media::Media;
use crate::web::form;
use crate::web::media::{load, Unavailable};

pub const NAV: &[NavItem] = &[NavItem {
    href: "/admin/media",
    label: "Media library",
    action: Action::IssuesRead,
    order: 20,
    summary: "Upload images for issues, each with its alt text, and see the library.",
}];

pub const TEMPLATES: &[(&str, &str)] = &[(
    "admin/media.html",
    include_str!("../../../templates/admin/media.html"),
)];

/// Images on one page of the library.
const PER_PAGE: i64 = 48;

pub fn routes() -> Router<AdminShared> {
    Router::new()
        .route("/admin/media", get(list).post(upload))
        .route("/admin/media/file/{name}", get(file))
        // The same public files as the public listener's, so that previews
        // of issues that name `/media/HASH.EXT` show their images here too.
        .route("/media/{name}", get(public_file))
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    page: Option<i64>,
}

/// A library image as the templates read it.
pub fn media_value(m: &Media) -> Value {
    context! {
        id => m.id,
        url => format!("/admin/media/file/{}", m.file_name()),
        name => m.original_name.as_str(),
        alt => m.alt.as_str(),
        width => m.width,
        height => m.height,
        bytes => m.bytes,
        uploaded_by => m.uploaded_by.as_str(),
        created_at => m.created_at.to_rfc3339(),
    }
}

/// A library image as the editor's picker offers it: its address in an
/// issue (`/media/HASH.EXT`) and a label.
pub fn media_value_for_picker(m: &Media) -> Value {
    let name = if m.original_name.is_empty() {
        format!("Image {}", m.id)
    } else {
        m.original_name.clone()
    };
    context! {
        src => m.path(),
        label => format!("{name} – {} ({} × {})", m.alt, m.width, m.height),
        alt => m.alt.as_str(),
        thumb => format!("/admin/media/file/{}", m.file_name()),
    }
}

/// The form's state when it is shown again: the alt text typed and the
/// message at each field.
#[derive(Debug, Default)]
struct UploadForm {
    alt: String,
    alt_error: Option<String>,
    file_error: Option<String>,
}

async fn list(
    State(state): State<AdminShared>,
    page: Page,
    Query(q): Query<ListQuery>,
) -> AdminResult {
    render_list(&state, &page, q.page.unwrap_or(1), UploadForm::default()).await
}

async fn render_list(
    state: &AdminShared,
    page: &Page,
    number: i64,
    form: UploadForm,
) -> AdminResult {
    page.require(Action::IssuesRead)?;
    let number = number.max(1);
    let mut rows = state
        .store()
        .list_media(PER_PAGE + 1, (number - 1) * PER_PAGE)
        .await?;
    let more = rows.len() as i64 > PER_PAGE;
    rows.truncate(PER_PAGE as usize);
    let status = if form.alt_error.is_some() || form.file_error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let images: Vec<Value> = rows.iter().map(media_value).collect();
    let max_upload = state.config().media.max_upload_bytes as i64;
    state.render_status(
        page,
        status,
        "admin/media.html",
        context! {
            title => "Media library",
            images,
            page_number => number,
            more,
            max_upload,
            alt => form.alt,
            alt_error => form.alt_error,
            file_error => form.file_error,
        },
    )
}

async fn upload(
    State(state): State<AdminShared>,
    page: Page,
    headers: HeaderMap,
    body: Bytes,
) -> AdminResult {
    page.require(Action::IssuesWrite)?;
    let (alt, file) = read_upload(&headers, &body)?;
    let Some(file) = file.filter(|f| !f.bytes.is_empty()) else {
        let form = UploadForm {
            alt,
            file_error: Some("Choose an image file to upload.".into()),
            ..UploadForm::default()
        };
        return render_list(&state, &page, 1, form).await;
    };
    let added = crate::media::add(
        state.store(),
        state.config(),
        &page.actor.label(),
        file.bytes,
        &file.filename,
        &alt,
    )
    .await;
    match added {
        Ok(m) => Ok(redirect_with(
            &state,
            "/admin/media",
            Flash::ok(format!(
                "Added {} ({} × {} pixels).",
                if m.original_name.is_empty() {
                    "the image"
                } else {
                    m.original_name.as_str()
                },
                m.width,
                m.height
            )),
        )),
        Err(e) => {
            let mut form = UploadForm {
                alt,
                ..UploadForm::default()
            };
            match e {
                MediaError::MissingAlt | MediaError::AltTooLong { .. } => {
                    form.alt_error = Some(capitalise(&e.to_string()))
                }
                MediaError::Io { .. } | MediaError::Store(_) => {
                    return Err(AdminError::Internal(anyhow::Error::new(e)))
                }
                _ => form.file_error = Some(capitalise(&e.to_string())),
            }
            render_list(&state, &page, 1, form).await
        }
    }
}

/// The alt text and the file of an upload form.
fn read_upload(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, Option<form::FilePart>), AdminError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = form::boundary(ct)
        .ok_or_else(|| AdminError::BadRequest("the upload must be a multipart form".into()))?;
    let (fields, files) = form::multipart_with_files(body, &boundary)
        .map_err(|e| AdminError::BadRequest(e.to_string()))?;
    let alt = form::value(&fields, "alt").unwrap_or("").to_string();
    let file = files.into_iter().find(|f| f.field == "file");
    Ok((alt, file))
}

/// "alt text is required" → "Alt text is required."
fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    let mut out = match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// `GET /media/{HASH.EXT}` on the admin listener: what the public
/// listener serves at the same path, to anyone.
async fn public_file(State(state): State<AdminShared>, Path(name): Path<String>) -> Response {
    match load(state.store(), state.config(), &name).await {
        Ok((_, bytes)) => image_response(&name, bytes, "public, max-age=31536000, immutable"),
        Err(_) => (StatusCode::NOT_FOUND, "no such image\n").into_response(),
    }
}

fn image_response(name: &str, bytes: Vec<u8>, cache: &'static str) -> Response {
    let mut res: Response = bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::web::assets::content_type(name)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

async fn file(
    State(state): State<AdminShared>,
    page: Page,
    Path(name): Path<String>,
) -> AdminResult {
    page.require(Action::IssuesRead)?;
    match load(state.store(), state.config(), &name).await {
        Ok((_, bytes)) => Ok(image_response(&name, bytes, "private, max-age=86400")),
        Err(Unavailable::NotFound) => Err(AdminError::NotFound(
            "There is no image with this name in the library.".into(),
        )),
        Err(Unavailable::Store(e)) => Err(AdminError::Internal(e)),
    }
}
