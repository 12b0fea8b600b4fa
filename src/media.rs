//! The media library: images an editor uploads for an issue.
//!
//! [`add`] takes the uploaded bytes and:
//! 1. refuses files over `media.max_upload_bytes`, types other than JPEG,
//!    PNG, WebP and GIF (told by their content, never by the name), and a
//!    missing alt text;
//! 2. reads the dimensions from the header and refuses anything beyond
//!    `media.max_dimension` or `media.max_pixels` before a pixel is decoded
//!    (a decompression bomb), then decodes under the same limits;
//! 3. turns a JPEG the right way up by its EXIF orientation, scales it down
//!    to `media.max_width`, and encodes it afresh, which drops all metadata
//!    (EXIF with its GPS position, XMP, ICC, comments). JPEG stays JPEG
//!    (quality 85) and PNG stays PNG; WebP, which some mail programs cannot
//!    show, becomes PNG if it has transparency and JPEG otherwise; GIF stays
//!    GIF, every frame of an animation kept;
//! 4. writes the result as `<media dir>/HASH.EXT`, where HASH is the SHA-256
//!    of those bytes: written to a temporary file, synced, then renamed, so
//!    a file under its final name is always complete, and never replaced
//!    (the same image uploaded twice is stored once);
//! 5. only then adds the row, so no row names a missing file.
//!
//! The public listener serves the files at `/media/HASH.EXT`
//! (`src/web/media.rs`) with a year of immutable caching. The file name
//! the user chose is kept for display only.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::{AnimationDecoder, DynamicImage, Frame, ImageDecoder, ImageFormat, ImageReader};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::store::media::{Media, NewMedia};
use crate::store::Store;

/// The longest alt text accepted, in characters.
pub const MAX_ALT_CHARS: usize = 1000;

/// Why an image was not added.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("alt text is required: describe the image for people who cannot see it")]
    MissingAlt,
    #[error("the alt text is {chars} characters long; at most {MAX_ALT_CHARS} are allowed")]
    AltTooLong { chars: usize },
    #[error("the file is {bytes} bytes; at most {max} are accepted (media.max_upload_bytes)")]
    TooLarge { bytes: u64, max: u64 },
    #[error("the file is not a JPEG, PNG, WebP or GIF image ({found})")]
    Unsupported { found: String },
    #[error(
        "the image is {width} × {height} pixels; at most {max_dimension} pixels a side and \
         {max_pixels} pixels in all are accepted (media.max_dimension, media.max_pixels)"
    )]
    TooManyPixels {
        width: u64,
        height: u64,
        max_dimension: u32,
        max_pixels: u64,
    },
    #[error("the image could not be read: {0}")]
    Undecodable(String),
    #[error("storing the image in {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("recording the image: {0:#}")]
    Store(anyhow::Error),
}

/// An image ready to store: encoded bytes, their type and size in pixels.
#[derive(Debug, Clone)]
pub struct Processed {
    pub bytes: Vec<u8>,
    pub ext: &'static str,
    pub width: u32,
    pub height: u32,
    /// SHA-256 of `bytes`, lower-case hex.
    pub hash: String,
}

/// The limits that apply to one upload, from `[media]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_upload_bytes: u64,
    pub max_width: u32,
    pub max_pixels: u64,
    pub max_dimension: u32,
}

impl From<&crate::config::Media> for Limits {
    fn from(m: &crate::config::Media) -> Self {
        Limits {
            max_upload_bytes: m.max_upload_bytes,
            max_width: m.max_width,
            max_pixels: m.max_pixels,
            max_dimension: m.max_dimension,
        }
    }
}

/// Validates, processes and stores an image, and records it as `actor`.
/// Returns the stored image: a new one, or the one already in the library
/// with the same processed bytes.
pub async fn add(
    store: &Store,
    config: &Config,
    actor: &str,
    bytes: Vec<u8>,
    filename: &str,
    alt: &str,
) -> Result<Media, MediaError> {
    let alt = alt.trim();
    if alt.is_empty() {
        return Err(MediaError::MissingAlt);
    }
    let chars = alt.chars().count();
    if chars > MAX_ALT_CHARS {
        return Err(MediaError::AltTooLong { chars });
    }
    let limits = Limits::from(&config.media);
    // Decoding and encoding are CPU work: off the async threads.
    let processed = tokio::task::spawn_blocking(move || process(&bytes, &limits))
        .await
        .map_err(|e| MediaError::Undecodable(format!("the image worker failed: {e}")))??;
    let dir = config.media_dir();
    let dir_for_write = dir.clone();
    let to_write = processed.clone();
    tokio::task::spawn_blocking(move || store_file(&dir_for_write, &to_write))
        .await
        .map_err(|e| MediaError::Io {
            path: dir,
            source: std::io::Error::other(e.to_string()),
        })??;
    let name = display_name(filename);
    let (media, _) = store
        .add_media(&NewMedia {
            hash: &processed.hash,
            ext: processed.ext,
            width: processed.width,
            height: processed.height,
            bytes: processed.bytes.len() as u64,
            alt,
            original_name: &name,
            uploaded_by: actor,
        })
        .await
        .map_err(MediaError::Store)?;
    Ok(media)
}

/// The user's file name, for display only: no directories, no control
/// characters, at most 200 characters.
pub fn display_name(filename: &str) -> String {
    let base = filename.rsplit(['/', '\\']).next().unwrap_or_default();
    base.chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect::<String>()
        .trim()
        .to_string()
}

/// Checks, decodes, strips, resizes and encodes an image (pure: no I/O).
pub fn process(bytes: &[u8], limits: &Limits) -> Result<Processed, MediaError> {
    if bytes.len() as u64 > limits.max_upload_bytes {
        return Err(MediaError::TooLarge {
            bytes: bytes.len() as u64,
            max: limits.max_upload_bytes,
        });
    }
    let format = match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Gif)) => f,
        Ok(other) => {
            return Err(MediaError::Unsupported {
                found: format!("it is {other:?}"),
            })
        }
        Err(_) => {
            return Err(MediaError::Unsupported {
                found: "its content is of no image type known here".into(),
            })
        }
    };
    // The header alone, without the size limits, so that a refusal can say
    // how large the image claims to be.
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| MediaError::Undecodable(e.to_string()))?;
    check_size(u64::from(width), u64::from(height), limits)?;
    if format == ImageFormat::Gif {
        return process_gif(bytes, (width, height), limits);
    }
    let mut decoder = reader(bytes, format, limits)
        .into_decoder()
        .map_err(|e| decode_error(e, limits, (width, height)))?;
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder)
        .map_err(|e| decode_error(e, limits, (width, height)))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    let img = scale_down(img, limits.max_width);
    let (ext, bytes) = match format {
        ImageFormat::Png => ("png", encode_png(&img)?),
        ImageFormat::WebP if has_transparency(&img) => ("png", encode_png(&img)?),
        _ => ("jpg", encode_jpeg(&img)?),
    };
    Ok(finish(bytes, ext, img.width(), img.height()))
}

fn reader<'a>(
    bytes: &'a [u8],
    format: ImageFormat,
    limits: &Limits,
) -> ImageReader<Cursor<&'a [u8]>> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_dimension);
    l.max_image_height = Some(limits.max_dimension);
    // The decoded pixels (at most four bytes each) plus the decoder's own.
    l.max_alloc = Some(limits.max_pixels.saturating_mul(4).saturating_add(64 << 20));
    reader.limits(l);
    reader
}

fn check_size(width: u64, height: u64, limits: &Limits) -> Result<(), MediaError> {
    let max_side = u64::from(limits.max_dimension);
    if width == 0 || height == 0 {
        return Err(MediaError::Undecodable("the image has no pixels".into()));
    }
    if width > max_side || height > max_side || width * height > limits.max_pixels {
        return Err(MediaError::TooManyPixels {
            width,
            height,
            max_dimension: limits.max_dimension,
            max_pixels: limits.max_pixels,
        });
    }
    Ok(())
}

fn decode_error(e: image::ImageError, limits: &Limits, (w, h): (u32, u32)) -> MediaError {
    match e {
        image::ImageError::Limits(_) => MediaError::TooManyPixels {
            width: u64::from(w),
            height: u64::from(h),
            max_dimension: limits.max_dimension,
            max_pixels: limits.max_pixels,
        },
        e => MediaError::Undecodable(e.to_string()),
    }
}

/// The new size of a `width` × `height` image no wider than `max_width`.
fn fitted(width: u32, height: u32, max_width: u32) -> (u32, u32) {
    if width <= max_width {
        return (width, height);
    }
    let h = (u64::from(height) * u64::from(max_width) + u64::from(width) / 2) / u64::from(width);
    (max_width, h.max(1) as u32)
}

fn scale_down(img: DynamicImage, max_width: u32) -> DynamicImage {
    let (w, h) = fitted(img.width(), img.height(), max_width);
    if w == img.width() {
        img
    } else {
        img.resize_exact(w, h, FilterType::Lanczos3)
    }
}

fn has_transparency(img: &DynamicImage) -> bool {
    img.color().has_alpha() && img.to_rgba8().pixels().any(|p| p.0[3] < 255)
}

fn encode_png(img: &DynamicImage) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::new();
    img.write_with_encoder(PngEncoder::new(&mut out))
        .map_err(|e| MediaError::Undecodable(format!("encoding PNG: {e}")))?;
    Ok(out)
}

fn encode_jpeg(img: &DynamicImage) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::new();
    // JPEG has no alpha: flatten onto white rather than black.
    let rgb = if img.color().has_alpha() {
        let mut canvas =
            image::RgbImage::from_pixel(img.width(), img.height(), image::Rgb([255; 3]));
        for (x, y, p) in img.to_rgba8().enumerate_pixels() {
            let a = u16::from(p.0[3]);
            let blend = |c: u8| ((u16::from(c) * a + 255 * (255 - a)) / 255) as u8;
            canvas.put_pixel(
                x,
                y,
                image::Rgb([blend(p.0[0]), blend(p.0[1]), blend(p.0[2])]),
            );
        }
        DynamicImage::ImageRgb8(canvas)
    } else {
        DynamicImage::ImageRgb8(img.to_rgb8())
    };
    rgb.write_with_encoder(JpegEncoder::new_with_quality(&mut out, 85))
        .map_err(|e| MediaError::Undecodable(format!("encoding JPEG: {e}")))?;
    Ok(out)
}

/// A GIF, animated or not: every frame decoded (within the pixel budget for
/// all frames together), scaled, and encoded again.
fn process_gif(
    bytes: &[u8],
    (width, height): (u32, u32),
    limits: &Limits,
) -> Result<Processed, MediaError> {
    let decoder = GifDecoder::new(Cursor::new(bytes))
        .map_err(|e| decode_error(e, limits, (width, height)))?;
    let (w, h) = fitted(width, height, limits.max_width);
    let mut frames = Vec::new();
    let mut pixels: u64 = 0;
    for frame in decoder.into_frames() {
        let frame = frame.map_err(|e| decode_error(e, limits, (width, height)))?;
        pixels += u64::from(width) * u64::from(height);
        if pixels > limits.max_pixels {
            return Err(MediaError::TooManyPixels {
                width: u64::from(width),
                height: u64::from(height) * (frames.len() as u64 + 1),
                max_dimension: limits.max_dimension,
                max_pixels: limits.max_pixels,
            });
        }
        let delay = frame.delay();
        let buffer = frame.into_buffer();
        let buffer = if w == width {
            buffer
        } else {
            image::imageops::resize(&buffer, w, h, FilterType::Lanczos3)
        };
        frames.push(Frame::from_parts(buffer, 0, 0, delay));
    }
    if frames.is_empty() {
        return Err(MediaError::Undecodable("the GIF has no frames".into()));
    }
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut out, 10);
        if frames.len() > 1 {
            encoder
                .set_repeat(Repeat::Infinite)
                .map_err(|e| MediaError::Undecodable(format!("encoding GIF: {e}")))?;
        }
        encoder
            .encode_frames(frames)
            .map_err(|e| MediaError::Undecodable(format!("encoding GIF: {e}")))?;
    }
    Ok(finish(out, "gif", w, h))
}

fn finish(bytes: Vec<u8>, ext: &'static str, width: u32, height: u32) -> Processed {
    let hash = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Processed {
        bytes,
        ext,
        width,
        height,
        hash,
    }
}

/// Writes `HASH.EXT` into `dir` unless it is already there: a temporary
/// file, synced, renamed into place, and the directory synced.
pub fn store_file(dir: &Path, p: &Processed) -> Result<PathBuf, MediaError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MediaError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let target = dir.join(format!("{}.{}", p.hash, p.ext));
    if let Ok(meta) = std::fs::metadata(&target) {
        if meta.len() == p.bytes.len() as u64 {
            return Ok(target); // the same content, stored before
        }
    }
    // Unique per call: two uploads of the same image may race here.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.{}-{n}.tmp", p.hash, std::process::id()));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&p.bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        MediaError::Io {
            path: target.clone(),
            source: e,
        }
    })?;
    Ok(target)
}

/// True for a `HASH.EXT` name as the library makes them.
pub fn is_media_name(hash: &str, ext: &str) -> bool {
    hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && matches!(ext, "jpg" | "png" | "gif")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wide_image_is_fitted_to_the_maximum_width_keeping_its_shape() {
        assert_eq!(fitted(2400, 1600, 1200), (1200, 800));
        assert_eq!(fitted(1200, 50, 1200), (1200, 50));
        assert_eq!(fitted(5000, 1, 1200), (1200, 1));
        assert_eq!(fitted(1201, 3, 1200), (1200, 3));
    }

    #[test]
    fn the_display_name_drops_directories_and_control_characters() {
        assert_eq!(display_name("../../etc/passwd"), "passwd");
        assert_eq!(display_name("C:\\Users\\ed\\写真 1.jpg"), "写真 1.jpg");
        assert_eq!(display_name("a\u{0}b\nc.png"), "abc.png");
    }

    #[test]
    fn only_names_the_library_makes_are_media_names() {
        let h = "a".repeat(64);
        assert!(is_media_name(&h, "jpg"));
        assert!(!is_media_name(&h, "svg"));
        assert!(!is_media_name(&"A".repeat(64), "png"));
        assert!(!is_media_name("../x", "png"));
    }
}
