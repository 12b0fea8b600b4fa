//! The media library's rows: one per stored image, unique by content hash.
//! The files themselves are written by `crate::media` before the row.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Store;

/// An image in the library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Media {
    pub id: i64,
    /// SHA-256 of the stored bytes, 64 lower-case hex digits.
    pub hash: String,
    /// `jpg`, `png` or `gif`.
    pub ext: String,
    pub width: i64,
    pub height: i64,
    /// Size of the stored file.
    pub bytes: i64,
    pub alt: String,
    /// The uploaded file's name, for display only.
    pub original_name: String,
    /// Who added it (`cli:USER`, a user, a token).
    pub uploaded_by: String,
    pub created_at: DateTime<Utc>,
}

impl Media {
    /// The file's name in the media directory and in its URL: `HASH.EXT`.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.hash, self.ext)
    }

    /// Its path on the public listener: `/media/HASH.EXT`.
    pub fn path(&self) -> String {
        format!("/media/{}", self.file_name())
    }
}

/// A row to add; the file must already be stored.
#[derive(Debug, Clone)]
pub struct NewMedia<'a> {
    pub hash: &'a str,
    pub ext: &'a str,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub alt: &'a str,
    pub original_name: &'a str,
    pub uploaded_by: &'a str,
}

const COLUMNS: &str = "id, hash, ext, width, height, bytes, alt, original_name, \
                       uploaded_by, created_at";

impl Store {
    /// Adds an image, or returns the one already stored with the same hash
    /// (whose alt text and name stay as they were). `true` if it is new.
    pub async fn add_media(&self, m: &NewMedia<'_>) -> Result<(Media, bool)> {
        let sql = format!(
            "INSERT INTO media (hash, ext, width, height, bytes, alt, original_name, \
             uploaded_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (hash) DO NOTHING RETURNING {COLUMNS}"
        );
        let inserted = on_pool!(self, p => sqlx::query_as::<_, Media>(&sql)
            .bind(m.hash)
            .bind(m.ext)
            .bind(i64::from(m.width))
            .bind(i64::from(m.height))
            .bind(m.bytes as i64)
            .bind(m.alt)
            .bind(m.original_name)
            .bind(m.uploaded_by)
            .bind(Utc::now())
            .fetch_optional(p)
            .await?);
        if let Some(media) = inserted {
            return Ok((media, true));
        }
        let existing = self
            .media_by_hash(m.hash)
            .await?
            .ok_or_else(|| anyhow::anyhow!("media {} vanished while being added", m.hash))?;
        Ok((existing, false))
    }

    /// The image stored under `hash`.
    pub async fn media_by_hash(&self, hash: &str) -> Result<Option<Media>> {
        let sql = format!("SELECT {COLUMNS} FROM media WHERE hash = $1");
        Ok(on_pool!(self, p => sqlx::query_as::<_, Media>(&sql)
            .bind(hash)
            .fetch_optional(p)
            .await?))
    }

    /// The image with this id (issues refer to images by id).
    pub async fn media_by_id(&self, id: i64) -> Result<Option<Media>> {
        let sql = format!("SELECT {COLUMNS} FROM media WHERE id = $1");
        Ok(on_pool!(self, p => sqlx::query_as::<_, Media>(&sql)
            .bind(id)
            .fetch_optional(p)
            .await?))
    }

    /// The library, newest first, `limit` from `offset`.
    pub async fn list_media(&self, limit: i64, offset: i64) -> Result<Vec<Media>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM media ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
        );
        Ok(on_pool!(self, p => sqlx::query_as::<_, Media>(&sql)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?))
    }
}
