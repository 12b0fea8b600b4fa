//! Previews: the HTML, the text and the whole .eml as one contact would
//! receive them, written to a directory or served on localhost.
//!
//! The server binds 127.0.0.1 only. Its index page shows the HTML at phone
//! (375 px) and desktop (600 px) widths side by side with the text part, and
//! reloads itself when the issue file or a template override changes (the
//! page polls `/version`; a watcher task polls modification times, so no
//! platform file-notification API is needed).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

use super::compiled::{CompiledIssue, Recipient};
use crate::config::Newsletter;

/// The three files of a preview.
#[derive(Debug, Clone)]
pub struct Written {
    pub html: PathBuf,
    pub text: PathBuf,
    pub eml: PathBuf,
}

/// Writes `issue-N.html`, `issue-N.txt` and `issue-N.eml` into `dir`.
pub fn write_files(c: &CompiledIssue, r: &Recipient, dir: &Path) -> Result<Written> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let stem = format!("issue-{}", c.issue.number);
    let w = Written {
        html: dir.join(format!("{stem}.html")),
        text: dir.join(format!("{stem}.txt")),
        eml: dir.join(format!("{stem}.eml")),
    };
    std::fs::write(&w.html, c.html_for(r)?)
        .with_context(|| format!("writing {}", w.html.display()))?;
    std::fs::write(&w.text, c.text_for(r)?)
        .with_context(|| format!("writing {}", w.text.display()))?;
    std::fs::write(&w.eml, c.render_for(r)?.bytes)
        .with_context(|| format!("writing {}", w.eml.display()))?;
    Ok(w)
}

/// What the server shows: the latest compile, or the error.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    version: u64,
    html: String,
    text: String,
    eml: String,
    error: Option<String>,
}

/// The preview server's inputs.
#[derive(Debug, Clone)]
pub struct Source {
    pub issue: PathBuf,
    pub newsletter: Newsletter,
    pub recipient: Recipient,
}

fn build(src: &Source, version: u64) -> Snapshot {
    let res = CompiledIssue::from_file(&src.issue, &src.newsletter).and_then(|c| {
        Ok((
            c.html_for(&src.recipient)?,
            c.text_for(&src.recipient)?,
            c.render_for(&src.recipient)?.bytes,
        ))
    });
    match res {
        Ok((html, text, eml)) => Snapshot {
            version,
            html,
            text,
            eml: String::from_utf8_lossy(&eml).into_owned(),
            error: None,
        },
        Err(e) => Snapshot {
            version,
            error: Some(e.to_string()),
            ..Default::default()
        },
    }
}

/// The newest modification time of the issue file and the override files.
fn stamp(src: &Source) -> Option<SystemTime> {
    let mut newest = std::fs::metadata(&src.issue)
        .and_then(|m| m.modified())
        .ok();
    let dir = &src.newsletter.templates_dir;
    if !dir.as_os_str().is_empty() {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                    newest = newest.max(Some(t));
                }
            }
        }
    }
    newest
}

type Shared = Arc<RwLock<Snapshot>>;

/// Serves the preview on an already-bound listener until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    src: Source,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let state: Shared = Arc::new(RwLock::new(build(&src, 1)));
    let watch_state = state.clone();
    let watcher = tokio::spawn(async move {
        let mut last = stamp(&src);
        loop {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let now = stamp(&src);
            if now != last {
                last = now;
                let version = watch_state.read().map(|s| s.version + 1).unwrap_or(1);
                let snap = build(&src, version);
                if let Ok(mut s) = watch_state.write() {
                    *s = snap;
                }
            }
        }
    });
    let app = Router::new()
        .route("/", get(index))
        .route("/html", get(html))
        .route("/text", get(text))
        .route("/eml", get(eml))
        .route("/version", get(version))
        .with_state(state);
    let res = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    watcher.abort();
    res.context("preview server")
}

fn read(s: &Shared) -> Snapshot {
    s.read().map(|s| s.clone()).unwrap_or_default()
}

async fn version(State(s): State<Shared>) -> String {
    read(&s).version.to_string()
}

async fn html(State(s): State<Shared>) -> impl IntoResponse {
    let snap = read(&s);
    match snap.error {
        Some(e) => Html(format!("<pre>{}</pre>", escape(&e))),
        None => Html(snap.html),
    }
}

async fn text(State(s): State<Shared>) -> impl IntoResponse {
    let snap = read(&s);
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        snap.error.unwrap_or(snap.text),
    )
}

async fn eml(State(s): State<Shared>) -> impl IntoResponse {
    let snap = read(&s);
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        snap.error.unwrap_or(snap.eml),
    )
}

async fn index(State(s): State<Shared>) -> Html<String> {
    let snap = read(&s);
    let body = match &snap.error {
        Some(e) => format!("<pre class=\"error\">{}</pre>", escape(e)),
        None => format!(
            "<div class=\"row\"><figure><figcaption>Phone, 375 px</figcaption>\
             <iframe src=\"/html\" width=\"375\" height=\"900\"></iframe></figure>\
             <figure><figcaption>Desktop, 600 px</figcaption>\
             <iframe src=\"/html\" width=\"640\" height=\"900\"></iframe></figure>\
             <figure><figcaption>Text part</figcaption><pre>{}</pre></figure></div>\
             <p><a href=\"/eml\">Full message (.eml)</a></p>",
            escape(&snap.text)
        ),
    };
    Html(format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>whatsup preview</title>\
         <style>body{{font-family:sans-serif;margin:16px;background:#f4f4f4}}\
         .row{{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}}\
         iframe{{border:1px solid #ccc;background:#fff}}figure{{margin:0}}\
         pre{{white-space:pre-wrap;max-width:640px;background:#fff;padding:8px;border:1px solid #ccc}}\
         .error{{color:#a00}}</style></head><body>{body}\
         <script>const v={version};setInterval(async()=>{{try{{const r=await fetch('/version');\
         if((await r.text())!==String(v))location.reload();}}catch(e){{}}}},700);</script>\
         </body></html>",
        version = snap.version
    ))
}

fn escape(s: &str) -> String {
    let mut out = String::new();
    super::mime::html_escape_into(s, &mut out);
    out
}
