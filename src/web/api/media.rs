//! The media library: list its images, and add one (`media::add`, the
//! function behind `whatsup media add` and the admin's upload form).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::problem::{ApiError, ApiQuery, ApiResult};
use super::ApiShared;
use crate::media::MediaError;
use crate::store::media::Media;
use crate::web::auth::Caller;

pub fn routes() -> OpenApiRouter<ApiShared> {
    OpenApiRouter::new().routes(routes!(list_media, add_media))
}

/// An image in the library.
#[derive(Debug, Serialize, ToSchema)]
pub struct MediaOut {
    pub id: i64,
    /// Its address in an issue: `/media/HASH.EXT`.
    pub path: String,
    pub hash: String,
    /// jpg, png or gif
    pub ext: String,
    pub width: i64,
    pub height: i64,
    pub bytes: i64,
    pub alt: String,
    pub original_name: String,
    pub uploaded_by: String,
    pub created_at: DateTime<Utc>,
}

impl From<&Media> for MediaOut {
    fn from(m: &Media) -> Self {
        MediaOut {
            id: m.id,
            path: m.path(),
            hash: m.hash.clone(),
            ext: m.ext.clone(),
            width: m.width,
            height: m.height,
            bytes: m.bytes,
            alt: m.alt.clone(),
            original_name: m.original_name.clone(),
            uploaded_by: m.uploaded_by.clone(),
            created_at: m.created_at,
        }
    }
}

/// A page of the library.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MediaQuery {
    /// At most this many [default: 100, at most 1000].
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// The library, newest first.
#[utoipa::path(get, path = "/api/v1/media", tag = "media",
    extensions(("x-permission" = json!("issues.read"))),
    params(MediaQuery),
    responses((status = 200, description = "Images", body = Vec<MediaOut>)))]
pub async fn list_media(
    State(state): State<ApiShared>,
    ApiQuery(q): ApiQuery<MediaQuery>,
) -> ApiResult<Json<Vec<MediaOut>>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let offset = q.offset.unwrap_or(0).max(0);
    let rows = state.store.list_media(limit, offset).await?;
    Ok(Json(rows.iter().map(MediaOut::from).collect()))
}

/// The alt text and name of an uploaded image.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AddMediaQuery {
    /// What the image shows, for people who cannot see it (required).
    pub alt: String,
    /// The file's name, for display only.
    pub name: Option<String>,
}

/// Adds an image (the request body: a JPEG, PNG, WebP or GIF file). It is
/// checked, stripped of its metadata, scaled to `media.max_width` and
/// stored under its content hash; the same image twice is stored once.
#[utoipa::path(post, path = "/api/v1/media", tag = "media",
    extensions(("x-permission" = json!("issues.write"))),
    params(AddMediaQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The image file"),
    responses((status = 201, description = "Stored", body = MediaOut)))]
pub async fn add_media(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AddMediaQuery>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<MediaOut>)> {
    let added = crate::media::add(
        &state.store,
        &state.config,
        &caller.actor.label(),
        body.to_vec(),
        q.name.as_deref().unwrap_or(""),
        &q.alt,
    )
    .await;
    match added {
        Ok(m) => Ok((StatusCode::CREATED, Json(MediaOut::from(&m)))),
        Err(e @ (MediaError::MissingAlt | MediaError::AltTooLong { .. })) => {
            Err(ApiError::invalid("alt", None, e.to_string()))
        }
        Err(e @ MediaError::TooLarge { .. }) => {
            Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).with_type("too-large"))
        }
        Err(e @ (MediaError::Io { .. } | MediaError::Store(_))) => {
            Err(ApiError::internal(format!("{e:#}")))
        }
        Err(e) => Err(ApiError::invalid("body", None, e.to_string())),
    }
}
