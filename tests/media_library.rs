//! The media library on SQLite and on PostgreSQL, with real image files made
//! in the test by the `image` crate: the store functions (conformance),
//! `media::add` (validation, metadata stripped, resizing, WebP and GIF,
//! deduplication, typed refusals that leave nothing behind, the
//! decompression-bomb limit), and `GET /media/HASH.EXT` over loopback.

use std::io::Cursor;
use std::path::Path;

use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::codecs::webp::WebPEncoder;
use image::{AnimationDecoder, DynamicImage, Frame, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use sha2::{Digest, Sha256};
use whatsup::media::{self, MediaError};
use whatsup::store::media::NewMedia;
use whatsup::web::Server;

use crate::common;
use crate::common::{http, TestDb};

/// A gradient, so that resizing and re-encoding have something to do.
fn picture(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    })
}

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A JPEG with an EXIF segment (a camera model and a GPS marker) and a
/// comment, as a phone writes them.
fn jpeg_with_metadata(width: u32, height: u32) -> Vec<u8> {
    let plain = encode(
        DynamicImage::ImageRgb8(picture(width, height)),
        ImageFormat::Jpeg,
    );
    let exif_payload = b"Exif\0\0MM\0*\0\0\0\x08\0\0SECRET-CAMERA GPS 35.6895N 139.6917E";
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((exif_payload.len() + 2) as u16).to_be_bytes());
    app1.extend_from_slice(exif_payload);
    let comment = b"private comment";
    let mut com = vec![0xFF, 0xFE];
    com.extend_from_slice(&((comment.len() + 2) as u16).to_be_bytes());
    com.extend_from_slice(comment);
    let mut out = plain[..2].to_vec(); // SOI
    out.extend(app1);
    out.extend(com);
    out.extend_from_slice(&plain[2..]);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut v: Vec<String> = rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

/// The test's own media directory (a PostgreSQL test has no temporary
/// data_dir of its own).
fn isolated(mut db: TestDb) -> (TestDb, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    db.config.media.dir = dir.path().join("media");
    (db, dir)
}

async fn the_store_keeps_one_row_per_hash_and_finds_it_by_hash_and_id(db: TestDb) {
    let hash = "ab".repeat(32);
    let new = NewMedia {
        hash: &hash,
        ext: "png",
        width: 640,
        height: 480,
        bytes: 1234,
        alt: "A lantern festival on the Sumida river",
        original_name: "提灯.png",
        uploaded_by: "cli:tester",
    };
    let (first, created) = db.store.add_media(&new).await.unwrap();
    assert!(created);
    assert_eq!(first.file_name(), format!("{hash}.png"));
    assert_eq!(first.path(), format!("/media/{hash}.png"));
    assert_eq!((first.width, first.height, first.bytes), (640, 480, 1234));
    assert_eq!(first.original_name, "提灯.png");
    let again = NewMedia {
        alt: "another description",
        ..new.clone()
    };
    let (second, created) = db.store.add_media(&again).await.unwrap();
    assert!(!created, "the same hash is stored once");
    assert_eq!(second, first, "the first row is kept as it was");
    assert_eq!(
        db.store.media_by_hash(&hash).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        db.store.media_by_id(first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        db.store.media_by_hash(&"cd".repeat(32)).await.unwrap(),
        None
    );
    assert_eq!(db.store.media_by_id(first.id + 100).await.unwrap(), None);

    let other = "ef".repeat(32);
    let (newer, _) = db
        .store
        .add_media(&NewMedia {
            hash: &other,
            ext: "jpg",
            ..new.clone()
        })
        .await
        .unwrap();
    let list = db.store.list_media(10, 0).await.unwrap();
    assert_eq!(
        list.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![newer.id, first.id],
        "newest first"
    );
    assert_eq!(db.store.list_media(1, 1).await.unwrap(), vec![first]);
    // The schema refuses what the library never writes.
    for bad in [
        NewMedia {
            alt: "  ",
            hash: &"01".repeat(32),
            ..new.clone()
        },
        NewMedia {
            ext: "svg",
            hash: &"02".repeat(32),
            ..new.clone()
        },
        NewMedia {
            hash: "short",
            ..new.clone()
        },
    ] {
        assert!(db.store.add_media(&bad).await.is_err(), "{bad:?}");
    }
}

async fn a_wide_jpeg_is_resized_stripped_of_metadata_and_stored_under_its_hash(db: TestDb) {
    let (db, _media) = isolated(db);
    let upload = jpeg_with_metadata(1600, 400);
    assert!(contains(&upload, b"SECRET-CAMERA"));
    let m = media::add(
        &db.store,
        &db.config,
        "cli:tester",
        upload,
        "dir/photo.JPG",
        " Cool spot ",
    )
    .await
    .unwrap();
    assert_eq!((m.width, m.height, m.ext.as_str()), (1200, 300, "jpg"));
    assert_eq!(m.alt, "Cool spot");
    assert_eq!(m.original_name, "photo.JPG");
    assert_eq!(m.uploaded_by, "cli:tester");
    let path = db.config.media_dir().join(m.file_name());
    let stored = std::fs::read(&path).unwrap();
    assert_eq!(stored.len() as i64, m.bytes);
    let digest: String = Sha256::digest(&stored)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(digest, m.hash, "the file is named by the hash of its bytes");
    for secret in [&b"SECRET-CAMERA"[..], b"Exif", b"private comment"] {
        assert!(
            !contains(&stored, secret),
            "{:?} survived",
            String::from_utf8_lossy(secret)
        );
    }
    let decoded = image::load_from_memory(&stored).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (1200, 300));
    assert_eq!(
        files_in(&db.config.media_dir()),
        vec![m.file_name()],
        "no temporary file left"
    );
}

async fn the_same_image_uploaded_twice_is_one_file_and_one_row(db: TestDb) {
    let (db, _media) = isolated(db);
    let png = encode(DynamicImage::ImageRgb8(picture(300, 200)), ImageFormat::Png);
    let a = media::add(
        &db.store,
        &db.config,
        "cli:a",
        png.clone(),
        "a.png",
        "Chart",
    )
    .await
    .unwrap();
    let b = media::add(&db.store, &db.config, "cli:b", png, "b.png", "Chart again")
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        (a.width, a.height, a.ext.as_str()),
        (300, 200, "png"),
        "not enlarged"
    );
    assert_eq!(files_in(&db.config.media_dir()), vec![a.file_name()]);
    assert_eq!(db.store.list_media(10, 0).await.unwrap().len(), 1);
}

async fn webp_becomes_jpeg_or_png_and_an_animated_gif_keeps_its_frames(db: TestDb) {
    let (db, _media) = isolated(db);
    let mut opaque = Vec::new();
    DynamicImage::ImageRgba8(DynamicImage::ImageRgb8(picture(64, 32)).to_rgba8())
        .write_with_encoder(WebPEncoder::new_lossless(&mut opaque))
        .unwrap();
    let m = media::add(&db.store, &db.config, "t", opaque, "x.webp", "Opaque")
        .await
        .unwrap();
    assert_eq!(
        m.ext, "jpg",
        "an opaque WebP becomes JPEG for mail programs"
    );
    let mut clear = RgbaImage::from_pixel(40, 20, Rgba([20, 40, 75, 255]));
    clear.put_pixel(0, 0, Rgba([0, 0, 0, 0]));
    let mut transparent = Vec::new();
    DynamicImage::ImageRgba8(clear)
        .write_with_encoder(WebPEncoder::new_lossless(&mut transparent))
        .unwrap();
    let m = media::add(&db.store, &db.config, "t", transparent, "y.webp", "Logo")
        .await
        .unwrap();
    assert_eq!(m.ext, "png", "transparency is kept");

    let mut gif = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut gif);
        enc.set_repeat(Repeat::Infinite).unwrap();
        let frames = [Rgba([200, 30, 30, 255]), Rgba([20, 40, 75, 255])]
            .into_iter()
            .map(|c| Frame::new(RgbaImage::from_pixel(1500, 30, c)));
        enc.encode_frames(frames).unwrap();
    }
    let m = media::add(
        &db.store,
        &db.config,
        "t",
        gif,
        "blink.gif",
        "Blinking banner",
    )
    .await
    .unwrap();
    assert_eq!((m.ext.as_str(), m.width, m.height), ("gif", 1200, 24));
    let stored = std::fs::read(db.config.media_dir().join(m.file_name())).unwrap();
    let frames = GifDecoder::new(Cursor::new(stored))
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap();
    assert_eq!(frames.len(), 2, "both frames kept");
    assert_eq!(frames[0].buffer().dimensions(), (1200, 24));
}

async fn bad_uploads_get_typed_errors_and_leave_nothing_behind(db: TestDb) {
    let (db, _media) = isolated(db);
    let png = encode(DynamicImage::ImageRgb8(picture(100, 100)), ImageFormat::Png);
    let add = |bytes: Vec<u8>, alt: &'static str| {
        let db = &db;
        async move { media::add(&db.store, &db.config, "t", bytes, "f", alt).await }
    };
    assert!(matches!(
        add(png.clone(), "   ").await,
        Err(MediaError::MissingAlt)
    ));
    assert!(matches!(
        add(png.clone(), Box::leak("x".repeat(1001).into_boxed_str())).await,
        Err(MediaError::AltTooLong { chars: 1001 })
    ));
    let corrupt = png[..png.len() / 2].to_vec();
    let err = add(corrupt, "Half a picture").await.unwrap_err();
    assert!(matches!(err, MediaError::Undecodable(_)), "{err}");
    let gif = encode(DynamicImage::ImageRgb8(picture(64, 64)), ImageFormat::Gif);
    let err = add(gif[..gif.len() / 2].to_vec(), "x").await.unwrap_err();
    assert!(matches!(err, MediaError::Undecodable(_)), "{err}");
    let err = add(b"%PDF-1.7 a document".to_vec(), "x").await.unwrap_err();
    assert!(matches!(err, MediaError::Unsupported { .. }), "{err}");
    assert!(
        err.to_string().contains("not a JPEG, PNG, WebP or GIF"),
        "{err}"
    );
    let bmp = [&b"BM"[..], &[0u8; 60]].concat();
    let err = add(bmp, "x").await.unwrap_err();
    assert!(err.to_string().contains("Bmp"), "{err}");
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>";
    assert!(matches!(
        add(svg.to_vec(), "x").await,
        Err(MediaError::Unsupported { .. })
    ));
    assert!(files_in(&db.config.media_dir()).is_empty());
    assert!(db.store.list_media(10, 0).await.unwrap().is_empty());

    let mut small = db.config.clone();
    small.media.max_upload_bytes = 1024;
    let big = encode(DynamicImage::ImageRgb8(picture(400, 400)), ImageFormat::Png);
    let err = media::add(&db.store, &small, "t", big, "f", "x")
        .await
        .unwrap_err();
    assert!(
        matches!(err, MediaError::TooLarge { max: 1024, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("media.max_upload_bytes"), "{err}");
}

/// A PNG whose header claims `width` × `height` pixels, with one byte of
/// image data: a decompression bomb's shape without its size.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        c.extend_from_slice(&body);
        c.extend_from_slice(&crc32(&body).to_be_bytes());
        c
    };
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(chunk(b"IHDR", &ihdr));
    out.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    out.extend(chunk(b"IEND", &[]));
    out
}

async fn an_image_claiming_too_many_pixels_is_refused_before_decoding(db: TestDb) {
    let (db, _media) = isolated(db);
    let bomb = png_claiming(60_000, 60_000);
    let err = media::add(&db.store, &db.config, "t", bomb, "bomb.png", "x")
        .await
        .unwrap_err();
    match &err {
        MediaError::TooManyPixels { width, height, .. } => {
            assert_eq!((*width, *height), (60_000, 60_000))
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("media.max_pixels"), "{err}");
    // Within each side's limit but over the total: refused too.
    let mut tight = db.config.clone();
    tight.media.max_pixels = 1_000_000;
    let real = encode(
        DynamicImage::ImageRgb8(picture(1200, 1000)),
        ImageFormat::Png,
    );
    let err = media::add(&db.store, &tight, "t", real, "f.png", "x")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            MediaError::TooManyPixels {
                width: 1200,
                height: 1000,
                ..
            }
        ),
        "{err}"
    );
    // An animation whose frames together exceed the budget.
    let mut gif = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut gif);
        let frames =
            (0..3).map(|_| Frame::new(RgbaImage::from_pixel(700, 700, Rgba([1, 2, 3, 255]))));
        enc.encode_frames(frames).unwrap();
    }
    let err = media::add(&db.store, &tight, "t", gif, "f.gif", "x")
        .await
        .unwrap_err();
    assert!(matches!(err, MediaError::TooManyPixels { .. }), "{err}");
    assert!(files_in(&db.config.media_dir()).is_empty());
}

async fn the_public_listener_serves_library_files_with_immutable_caching(db: TestDb) {
    let (db, _media) = isolated(db);
    let jpeg = jpeg_with_metadata(200, 100);
    let m = media::add(&db.store, &db.config, "t", jpeg, "p.jpg", "Photo")
        .await
        .unwrap();
    let mut config = db.config.clone();
    config.web.rate_limit_per_second = 0;
    config.security.token_secret =
        whatsup::config::Secret::new("media-test-secret-0123456789abcdef0123");
    let server = Server::start(db.store.clone(), config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let r = http::get(server.addr, &m.path()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let on_disk = std::fs::read(db.config.media_dir().join(m.file_name())).unwrap();
    assert_eq!(r.raw_body, on_disk);
    let etag = r.header("etag").unwrap();
    let conditional = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n",
        m.path()
    );
    assert_eq!(
        http::raw(server.addr, conditional.as_bytes()).await.status,
        304
    );
    for missing in [
        format!("/media/{}.png", m.hash),         // another extension
        format!("/media/{}.jpg", "0".repeat(64)), // not in the library
        format!("/media/{}.JPG", m.hash),
        "/media/..%2Fwhatsup.db".to_string(),
        "/media/whatsup.db".to_string(),
    ] {
        let r = http::get(server.addr, &missing).await;
        assert_eq!(r.status, 404, "{missing}");
        assert!(r.body.contains("Page not found"), "{missing}: {}", r.body);
    }
    server.stop().await.unwrap();
}

on_both_backends!(
    the_store_keeps_one_row_per_hash_and_finds_it_by_hash_and_id,
    a_wide_jpeg_is_resized_stripped_of_metadata_and_stored_under_its_hash,
    the_same_image_uploaded_twice_is_one_file_and_one_row,
    webp_becomes_jpeg_or_png_and_an_animated_gif_keeps_its_frames,
    bad_uploads_get_typed_errors_and_leave_nothing_behind,
    an_image_claiming_too_many_pixels_is_refused_before_decoding,
    the_public_listener_serves_library_files_with_immutable_caching,
);
