//! The CSV import pages: upload a file (a dry run by default) with the
//! importer's options; the job's page shows the progress live (the job's
//! event stream, read by `assets/admin/progress.js`), then the counts and
//! the rejected rows with their line, column and reason, a link to the
//! reject file, and for a finished dry run the button that runs the same
//! file for real with the same options.
//!
//! The work is the API's job runner (`web::api::jobs::Runner`): the same
//! as `POST /api/v1/imports` and `POST /api/v1/imports/{id}/run`, which
//! call the CLI's importer.
//!
//! - `GET /admin/imports`, `POST /admin/imports` (multipart: `csrf_token`
//!   first, then the options and `file`)
//! - `GET /admin/imports/{id}`, `POST /admin/imports/{id}/run`,
//!   `GET /admin/imports/{id}/rejects.csv`

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::{context, Value};

use super::{redirect_with, AdminError, AdminResult, AdminShared, Flash, NavItem, Page};
use crate::domain::Action;
use crate::store::jobs::{Job, JobKind};
use crate::web::api::jobs::ImportQuery;
use crate::web::form;

pub const NAV: &[NavItem] = &[NavItem {
    href: "/admin/imports",
    label: "Imports",
    action: Action::ImportsRun,
    order: 42,
    summary: "Import contacts from a CSV file: a dry run with its row errors first, then for real.",
}];

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "admin/imports.html",
        include_str!("../../../templates/admin/imports.html"),
    ),
    (
        "admin/imports_show.html",
        include_str!("../../../templates/admin/imports_show.html"),
    ),
];

/// Import jobs listed under the upload form.
const JOBS_LISTED: i64 = 200;

pub fn routes() -> Router<AdminShared> {
    Router::new()
        .route("/admin/imports", get(list).post(upload))
        .route("/admin/imports/{id}", get(show))
        .route("/admin/imports/{id}/run", post(run))
        .route("/admin/imports/{id}/rejects.csv", get(rejects))
}

async fn list(State(s): State<AdminShared>, page: Page) -> AdminResult {
    page.require(Action::ImportsRun)?;
    render_list(&s, &page, StatusCode::OK, None).await
}

async fn render_list(
    s: &AdminShared,
    page: &Page,
    status: StatusCode,
    file_error: Option<String>,
) -> AdminResult {
    let jobs: Vec<Job> = s
        .store()
        .list_jobs(None, JOBS_LISTED)
        .await?
        .into_iter()
        .filter(|j| j.kind == JobKind::Import.as_str())
        .collect();
    s.render_status(
        page,
        status,
        "admin/imports.html",
        context! {
            title => "Imports",
            jobs => Value::from_serialize(&jobs),
            file_error,
            columns => crate::import::COLUMNS,
        },
    )
}

async fn upload(
    State(s): State<AdminShared>,
    page: Page,
    headers: HeaderMap,
    body: Bytes,
) -> AdminResult {
    page.require(Action::ImportsRun)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = form::boundary(ct)
        .ok_or_else(|| AdminError::BadRequest("the upload must be a multipart form".into()))?;
    let (fields, files) = form::multipart_with_files(&body, &boundary)
        .map_err(|e| AdminError::BadRequest(e.to_string()))?;
    let Some(file) = files
        .into_iter()
        .find(|f| f.field == "file" && !f.bytes.is_empty())
    else {
        let msg = "Choose a CSV file to import.".to_string();
        return render_list(&s, &page, StatusCode::UNPROCESSABLE_ENTITY, Some(msg)).await;
    };
    let on = |name: &str| form::value(&fields, name).is_some_and(|v| !v.is_empty());
    let text = |name: &str| form::value(&fields, name).map(String::from);
    let query = ImportQuery {
        dry_run: on("dry_run"),
        update: on("update"),
        force_reactivate: on("force_reactivate"),
        tags: text("tags"),
        consent_source: text("consent_source"),
    };
    let opts = query.options(s.config(), &page.actor, "import:admin");
    let dry = opts.dry_run;
    let job = s
        .api
        .jobs
        .import(Bytes::from(file.bytes), opts, &page.actor)
        .await?;
    let what = if dry { "Dry run" } else { "Import" };
    Ok(redirect_with(
        &s,
        &format!("/admin/imports/{}", job.id),
        Flash::ok(format!("{what} of {} started.", file.filename)),
    ))
}

async fn import_job(s: &AdminShared, id: i64) -> AdminResult<Job> {
    let job = s
        .api
        .jobs
        .refresh(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no job with id {id}")))?;
    if job.kind != JobKind::Import.as_str() {
        return Err(AdminError::NotFound(format!("job {id} is not an import")));
    }
    Ok(job)
}

async fn show(State(s): State<AdminShared>, page: Page, Path(id): Path<i64>) -> AdminResult {
    page.require(Action::JobsRead)?;
    let job = import_job(&s, id).await?;
    let state = job.state();
    let empty = serde_json::json!({});
    let report = if job.result.0.is_object() {
        &job.result.0
    } else {
        &empty
    };
    let dry_run = report["dry_run"].as_bool().unwrap_or(false);
    let has_rejects = tokio::fs::try_exists(s.api.jobs.rejects_path(id))
        .await
        .unwrap_or(false)
        && report["rejected"].as_u64().unwrap_or(0) > 0;
    let runnable =
        state == crate::store::jobs::JobState::Succeeded && dry_run && page.may(Action::ImportsRun);
    let percent = match job.progress_total {
        Some(t) if t > 0 => job.progress_done * 100 / t,
        _ => 0,
    };
    s.render(
        &page,
        "admin/imports_show.html",
        context! {
            title => format!("Import job {id}"),
            job => Value::from_serialize(&job),
            report => Value::from_serialize(report),
            dry_run,
            over => state.is_final(),
            percent,
            has_rejects,
            runnable,
        },
    )
}

async fn run(State(s): State<AdminShared>, page: Page, Path(id): Path<i64>) -> AdminResult {
    page.require(Action::ImportsRun)?;
    match s.api.jobs.run_dry_run(id, &page.actor).await {
        Ok(job) => Ok(redirect_with(
            &s,
            &format!("/admin/imports/{}", job.id),
            Flash::ok(format!("Importing the file of dry run {id} for real.")),
        )),
        Err(crate::app::AppError::Conflict(m)) => Ok(redirect_with(
            &s,
            &format!("/admin/imports/{id}"),
            Flash {
                kind: "error".into(),
                text: m,
            },
        )),
        Err(e) => Err(e.into()),
    }
}

async fn rejects(
    State(s): State<AdminShared>,
    page: Page,
    Path(id): Path<i64>,
) -> AdminResult<Response> {
    page.require(Action::JobsRead)?;
    import_job(&s, id).await?;
    let bytes = match tokio::fs::read(s.api.jobs.rejects_path(id)).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AdminError::NotFound(format!(
                "job {id} has no rejected rows"
            )))
        }
        Err(e) => return Err(anyhow::Error::from(e).into()),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"import-{id}-rejects.csv\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
