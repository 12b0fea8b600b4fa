//! `GET /media/{HASH.EXT}` on the public listener: the media library's
//! images, as the issues show them. A name is served only if the library
//! holds an image under that hash with that extension; the file's content
//! never changes, so it is cached for a year as immutable.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{pages, Shared};
use crate::media::is_media_name;

/// Why a library file could not be served.
pub(crate) enum Unavailable {
    /// No such name, or the library holds none under it.
    NotFound,
    /// The database could not be asked.
    Store(anyhow::Error),
}

/// The library's image named `HASH.EXT` and its stored bytes (also what
/// the admin's thumbnails are served from).
pub(crate) async fn load(
    store: &crate::store::Store,
    config: &crate::config::Config,
    name: &str,
) -> Result<(crate::store::media::Media, Vec<u8>), Unavailable> {
    let Some((hash, ext)) = name.split_once('.').filter(|(h, e)| is_media_name(h, e)) else {
        return Err(Unavailable::NotFound);
    };
    let media = match store.media_by_hash(hash).await {
        Ok(Some(m)) if m.ext == ext => m,
        Ok(_) => return Err(Unavailable::NotFound),
        Err(e) => return Err(Unavailable::Store(e)),
    };
    let path = config.media_dir().join(media.file_name());
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok((media, bytes)),
        Err(e) => {
            tracing::error!(
                "media {name} is recorded but {} cannot be read: {e}",
                path.display()
            );
            Err(Unavailable::NotFound)
        }
    }
}

pub(super) async fn file(
    State(state): State<Shared>,
    Path(name): Path<String>,
    request: HeaderMap,
) -> Response {
    let (media, bytes) = match load(&state.store, &state.config, &name).await {
        Ok(found) => found,
        Err(Unavailable::NotFound) => return pages::not_found(State(state)).await,
        Err(Unavailable::Store(e)) => {
            tracing::error!("media {name}: {e:#}");
            return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response();
        }
    };
    let etag = format!("\"{}\"", media.hash);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    let matches = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag)
        });
    if matches {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(super::assets::content_type(&name)),
    );
    (StatusCode::OK, headers, bytes).into_response()
}
