//! Jobs: imports run in the background, sends followed as they go. A job
//! is polled (`GET /api/v1/jobs/{id}`) or streamed as server-sent events
//! (`GET /api/v1/jobs/{id}/events`, one `job` event per change, ending
//! when the job is over).
//!
//! An import's CSV is written under `<data_dir>/jobs/<id>/` with its
//! reject file; the import itself is the CLI's (`import::import_file`),
//! its progress the share of the file read so far.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tokio::task::JoinSet;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{JobOut, Paging};
use super::problem::{ApiError, ApiPath, ApiQuery, ApiResult};
use super::{stream, ApiShared};
use crate::app::AppError;
use crate::config::Config;
use crate::domain::{Actor, CampaignState};
use crate::import::{import_file, ImportOptions};
use crate::store::jobs::{Job, JobKind, JobState};
use crate::store::Store;
use crate::web::auth::Caller;

pub fn routes() -> OpenApiRouter<ApiShared> {
    OpenApiRouter::new()
        .routes(routes!(create_import))
        .routes(routes!(run_import))
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(job_events))
        .routes(routes!(job_rejects))
}

/// The options of an import, kept beside its upload so that a dry run
/// can be run for real with exactly the same ones.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SavedOptions {
    update: bool,
    force_reactivate: bool,
    tags: Vec<String>,
    consent_source: Option<String>,
}

const OPTIONS_FILE: &str = "options.json";

/// Runs the API's background work and stops it cleanly.
pub struct Runner {
    store: Store,
    config: Config,
    tasks: Mutex<JoinSet<()>>,
    /// Asks running imports to stop after their current batch.
    stop: Arc<AtomicBool>,
    /// Ends event streams at shutdown.
    closing: tokio::sync::watch::Sender<bool>,
}

impl Runner {
    pub fn new(store: Store, config: Config) -> Runner {
        Runner {
            store,
            config,
            tasks: Mutex::new(JoinSet::new()),
            stop: Arc::new(AtomicBool::new(false)),
            closing: tokio::sync::watch::channel(false).0,
        }
    }

    fn dir(&self, id: i64) -> PathBuf {
        self.config
            .general
            .data_dir
            .join("jobs")
            .join(id.to_string())
    }

    /// Every minute, marks failed the import jobs whose process stopped:
    /// running ones note their progress every half second, so a job
    /// unchanged for two minutes has no process behind it (another server
    /// sharing the database keeps its own jobs fresh).
    pub fn sweep_orphans(&self) {
        let store = self.store.clone();
        let mut closing = self.closing.subscribe();
        self.tasks.lock().expect("job tasks").spawn(async move {
            loop {
                let stale = chrono::Utc::now() - chrono::Duration::minutes(2);
                match store
                    .fail_orphaned_jobs(
                        "the server stopped while the import ran; run it again",
                        stale,
                    )
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::warn!(jobs = n, "import jobs of a stopped process marked failed")
                    }
                    Err(e) => tracing::warn!("sweeping orphaned jobs: {e:#}"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                    _ = closing.changed() => return,
                }
            }
        });
    }

    /// Stops imports after their current batch (committed batches stay;
    /// the job says it was interrupted), ends event streams, and waits.
    pub async fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.closing.send(true);
        let mut tasks = std::mem::take(&mut *self.tasks.lock().expect("job tasks"));
        while tasks.join_next().await.is_some() {}
    }

    /// Creates the send job of a campaign just started.
    pub async fn send_job(
        &self,
        campaign: i64,
        recipients: i64,
        actor: &Actor,
    ) -> anyhow::Result<JobOut> {
        let id = self
            .store
            .create_job(
                JobKind::Send,
                JobState::Running,
                Some(campaign),
                actor,
                serde_json::json!({"campaign": campaign, "recipients": recipients}),
            )
            .await?;
        self.store
            .update_job(id, JobState::Running, 0, Some(recipients))
            .await?;
        let job = self.refresh(id).await?.expect("the job just created");
        Ok(JobOut::from(&job))
    }

    /// A job as it is now: a send job takes its progress and end from its
    /// campaign's deliveries and state.
    pub async fn refresh(&self, id: i64) -> anyhow::Result<Option<Job>> {
        let Some(job) = self.store.job(id).await? else {
            return Ok(None);
        };
        let (true, false, Some(campaign)) = (
            job.kind == JobKind::Send.as_str(),
            job.state().is_final(),
            job.campaign_id,
        ) else {
            return Ok(Some(job));
        };
        let c = self.store.campaign_or_err(campaign).await?;
        let counts = self.store.delivery_counts(campaign).await?;
        let result = serde_json::to_value(counts)?;
        match c.state()? {
            CampaignState::Finished => {
                self.store
                    .update_job(id, JobState::Running, counts.done(), Some(counts.total()))
                    .await?;
                self.store
                    .finish_job(id, JobState::Succeeded, &result, "")
                    .await?;
            }
            CampaignState::Cancelled => {
                self.store
                    .finish_job(id, JobState::Cancelled, &result, &c.state_reason)
                    .await?;
            }
            _ => {
                self.store
                    .update_job(id, JobState::Running, counts.done(), Some(counts.total()))
                    .await?;
            }
        }
        self.store.job(id).await
    }

    /// The end of event streams: changes to true when the server stops.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Where an import job keeps its upload and its reject file.
    pub fn rejects_path(&self, id: i64) -> PathBuf {
        self.dir(id).join("rejects.csv")
    }

    /// Starts an import of `csv` in the background; returns its job.
    pub async fn import(
        &self,
        csv: Bytes,
        opts: ImportOptions,
        actor: &Actor,
    ) -> anyhow::Result<Job> {
        let (id, dir) = self
            .new_import_job(csv.len() as u64, &opts, actor, None)
            .await?;
        tokio::fs::write(dir.join("upload.csv"), &csv).await?;
        self.spawn_import(id, csv.len() as i64, opts, actor).await
    }

    /// Runs the file of a finished dry run for real, with the dry run's
    /// options, as a new job: what the dry run reported is what happens
    /// (unless the contacts changed meanwhile).
    pub async fn run_dry_run(&self, from: i64, actor: &Actor) -> Result<Job, AppError> {
        let job = self
            .store
            .job(from)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no job with id {from}")))?;
        if job.kind != JobKind::Import.as_str() {
            return Err(AppError::NotFound(format!("job {from} is not an import")));
        }
        if job.state() != JobState::Succeeded || job.result.0["dry_run"] != true {
            return Err(AppError::Conflict(format!(
                "job {from} is not a finished dry run (it is {}); upload the file again",
                job.state
            )));
        }
        let saved: SavedOptions = tokio::fs::read(self.dir(from).join(OPTIONS_FILE))
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| {
                AppError::Conflict(format!(
                    "the file of job {from} is no longer on the server; upload it again"
                ))
            })?;
        let source = self.dir(from).join("upload.csv");
        let len = tokio::fs::metadata(&source)
            .await
            .map_err(|_| {
                AppError::Conflict(format!(
                    "the file of job {from} is no longer on the server; upload it again"
                ))
            })?
            .len();
        let opts = ImportOptions {
            dry_run: false,
            update: saved.update,
            force_reactivate: saved.force_reactivate,
            tags: saved.tags,
            reject_file: None,
            consent_source: saved.consent_source,
            batch_size: self.config.import.batch_size,
            actor: actor.label(),
        };
        let (id, dir) = self.new_import_job(len, &opts, actor, Some(from)).await?;
        tokio::fs::copy(&source, dir.join("upload.csv"))
            .await
            .map_err(anyhow::Error::from)?;
        Ok(self.spawn_import(id, len as i64, opts, actor).await?)
    }

    /// Creates an import job (queued) and its directory with the options.
    async fn new_import_job(
        &self,
        bytes: u64,
        opts: &ImportOptions,
        actor: &Actor,
        from: Option<i64>,
    ) -> anyhow::Result<(i64, PathBuf)> {
        let id = self
            .store
            .create_job(
                JobKind::Import,
                JobState::Queued,
                None,
                actor,
                serde_json::json!({"bytes": bytes, "dry_run": opts.dry_run,
                                   "update": opts.update, "tags": opts.tags,
                                   "from_job": from}),
            )
            .await?;
        let dir = self.dir(id);
        tokio::fs::create_dir_all(&dir).await?;
        let saved = SavedOptions {
            update: opts.update,
            force_reactivate: opts.force_reactivate,
            tags: opts.tags.clone(),
            consent_source: opts.consent_source.clone(),
        };
        tokio::fs::write(dir.join(OPTIONS_FILE), serde_json::to_vec(&saved)?).await?;
        Ok((id, dir))
    }

    /// Runs the import of job `id`'s `upload.csv` in the background.
    async fn spawn_import(
        &self,
        id: i64,
        total: i64,
        opts: ImportOptions,
        actor: &Actor,
    ) -> anyhow::Result<Job> {
        let dir = self.dir(id);
        let input = dir.join("upload.csv");
        let rejects = dir.join("rejects.csv");
        self.store
            .update_job(id, JobState::Running, 0, Some(total))
            .await?;
        let store = self.store.clone();
        let stop = self.stop.clone();
        let actor = actor.clone();
        let opts = ImportOptions {
            reject_file: Some(rejects),
            ..opts
        };
        self.tasks.lock().expect("job tasks").spawn(async move {
            let bar = indicatif::ProgressBar::hidden();
            bar.set_length(total as u64);
            let ticker = {
                let (store, bar) = (store.clone(), bar.clone());
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        let done = bar.position() as i64;
                        let _ = store
                            .update_job(id, JobState::Running, done, Some(total))
                            .await;
                    }
                })
            };
            let outcome = import_file(&store, &input, &opts, Some(bar), stop).await;
            ticker.abort();
            let finished = match outcome {
                Ok(mut report) => {
                    report.file = format!("job {id}");
                    let _ = store
                        .update_job(id, JobState::Running, total, Some(total))
                        .await;
                    let audit = store
                        .record_audit(
                            &actor,
                            "import.run",
                            "job",
                            &id.to_string(),
                            crate::import::audit_details(&report),
                        )
                        .await;
                    let value = serde_json::to_value(&report).unwrap_or_default();
                    match audit {
                        Ok(()) if report.interrupted => {
                            store
                                .finish_job(
                                    id,
                                    JobState::Failed,
                                    &value,
                                    "interrupted: the server stopped; committed batches stay, run it again",
                                )
                                .await
                        }
                        Ok(()) => store.finish_job(id, JobState::Succeeded, &value, "").await,
                        Err(e) => {
                            store
                                .finish_job(id, JobState::Failed, &value, &format!("{e:#}"))
                                .await
                        }
                    }
                }
                Err(e) => {
                    store
                        .finish_job(id, JobState::Failed, &serde_json::Value::Null, &format!("{e:#}"))
                        .await
                }
            };
            if let Err(e) = finished {
                tracing::error!(job = id, "recording the import's end: {e:#}");
            }
        });
        Ok(self.store.job(id).await?.expect("the job just created"))
    }
}

/// Import options.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Check everything and report, but write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Merge changed fields into existing contacts and organisations.
    #[serde(default)]
    pub update: bool,
    /// Reactivate unsubscribed, bounced or blocklisted contacts in the file.
    #[serde(default)]
    pub force_reactivate: bool,
    /// Tags added to every imported contact, comma-separated.
    pub tags: Option<String>,
    /// Recorded as each new contact's consent source [default: import:api].
    pub consent_source: Option<String>,
}

impl ImportQuery {
    /// The importer's options; `default_source` is the consent source
    /// when none is given.
    pub fn options(&self, config: &Config, actor: &Actor, default_source: &str) -> ImportOptions {
        ImportOptions {
            dry_run: self.dry_run,
            update: self.update,
            force_reactivate: self.force_reactivate,
            tags: self
                .tags
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect(),
            reject_file: None,
            consent_source: Some(
                self.consent_source
                    .clone()
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or_else(|| default_source.into()),
            ),
            batch_size: config.import.batch_size,
            actor: actor.label(),
        }
    }
}

/// Imports contacts from a CSV file (the CLI's format). Answers 202 with
/// the job: its result is the import's report (counts, and each rejected
/// row's line, column and reason); rejected rows can be downloaded.
#[utoipa::path(post, path = "/api/v1/imports", tag = "jobs",
    extensions(("x-permission" = json!("imports.run"))),
    params(ImportQuery),
    request_body(content = String, content_type = "text/csv", description = "The CSV file"),
    responses((status = 202, description = "Importing; follow the job", body = JobOut)))]
pub async fn create_import(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ImportQuery>,
    body: Bytes,
) -> ApiResult<Response> {
    if body.is_empty() {
        return Err(ApiError::invalid("body", None, "the CSV file is empty"));
    }
    let opts = q.options(&state.config, &caller.actor, "import:api");
    let job = state.jobs.import(body, opts, &caller.actor).await?;
    Ok(accepted(&job))
}

/// Runs a finished dry run's file for real, with the same options, as a
/// new job (202). Refused (409) unless the job is a dry run that finished.
#[utoipa::path(post, path = "/api/v1/imports/{id}/run", tag = "jobs",
    extensions(("x-permission" = json!("imports.run"))),
    params(("id" = i64, Path, description = "The dry run's job id")),
    responses((status = 202, description = "Importing; follow the job", body = JobOut)))]
pub async fn run_import(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let job = state.jobs.run_dry_run(id, &caller.actor).await?;
    Ok(accepted(&job))
}

/// 202 with the job and its Location.
fn accepted(job: &Job) -> Response {
    let mut res = (StatusCode::ACCEPTED, Json(JobOut::from(job))).into_response();
    if let Ok(v) = format!("/api/v1/jobs/{}", job.id).parse() {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// Jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    extensions(("x-permission" = json!("jobs.read"))),
    params(Paging),
    responses((status = 200, description = "Jobs", body = Vec<JobOut>)))]
pub async fn list_jobs(
    State(state): State<ApiShared>,
    ApiQuery(p): ApiQuery<Paging>,
) -> ApiResult<Json<Vec<JobOut>>> {
    let jobs = state.store.list_jobs(p.before, p.limit()).await?;
    let mut out = Vec::with_capacity(jobs.len());
    for j in jobs {
        let j = state.jobs.refresh(j.id).await?.unwrap_or(j);
        out.push(JobOut::from(&j));
    }
    Ok(Json(out))
}

async fn job(state: &ApiShared, id: i64) -> ApiResult<Job> {
    state
        .jobs
        .refresh(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job with id {id}")))
}

/// One job, as it is now.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    extensions(("x-permission" = json!("jobs.read"))),
    params(("id" = i64, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = JobOut)))]
pub async fn get_job(
    State(state): State<ApiShared>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<JobOut>> {
    Ok(Json(JobOut::from(&job(&state, id).await?)))
}

/// One server-sent event of a job's stream.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct JobEvent {
    /// Always `job`.
    pub event: String,
    /// The job as JSON (a `JobOut`).
    pub data: String,
}

/// The job as server-sent events: a `job` event (the job as JSON) at once
/// and at every change, until it is over.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/events", tag = "jobs",
    extensions(("x-permission" = json!("jobs.read"))),
    params(("id" = i64, Path, description = "Job id")),
    responses((status = 200, description = "A stream of `job` events", content_type = "text/event-stream", body = JobEvent)))]
pub async fn job_events(
    State(state): State<ApiShared>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    job(&state, id).await?;
    let closing = state.jobs.closing();
    Ok(stream::polled(
        "job",
        Duration::from_millis(500),
        closing,
        state,
        move |state: ApiShared| async move {
            let reading = match state.jobs.refresh(id).await {
                Ok(Some(j)) => serde_json::to_string(&JobOut::from(&j))
                    .ok()
                    .map(|json| (json, j.state().is_final())),
                _ => None,
            };
            (state, reading)
        },
    ))
}

/// An import's rejected rows, with the header, to fix and import again.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/rejects", tag = "jobs",
    extensions(("x-permission" = json!("jobs.read"))),
    params(("id" = i64, Path, description = "Job id")),
    responses((status = 200, description = "The rejected rows", content_type = "text/csv", body = String)))]
pub async fn job_rejects(
    State(state): State<ApiShared>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let j = job(&state, id).await?;
    if j.kind != JobKind::Import.as_str() {
        return Err(ApiError::not_found(format!("job {id} is not an import")));
    }
    let path = state.jobs.rejects_path(id);
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found(format!(
                "job {id} has no rejected rows{}",
                if j.state().is_final() { "" } else { " yet" }
            )))
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"job-{id}-rejects.csv\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
