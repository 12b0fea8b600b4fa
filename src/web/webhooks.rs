//! Bounce and complaint webhooks of sending services: `POST /webhooks/ses`
//! (Amazon SES through SNS), `POST /webhooks/sendgrid` (SendGrid Event
//! Webhook) and `POST /webhooks/postmark` (Postmark bounce and spam
//! complaint webhooks). Each route exists only when its verification
//! settings in `[webhooks]` are filled in: SNS topic ARNs, the SendGrid
//! public key, the Postmark Basic credentials. They are not rate-limited per
//! IP (providers post from few addresses) and their bodies are capped at
//! `webhooks.max_body_bytes` (413 above).
//!
//! Every request goes through the same steps:
//!
//! 1. **Authenticate** the raw body: the SNS signature and its certificate
//!    ([`sns`]), SendGrid's ECDSA signature and timestamp ([`sendgrid`]),
//!    Postmark's Basic credentials ([`postmark`]);
//! 2. **parse** it into notices, one per `bounce_messages` row: an SNS
//!    notification is one (keyed by the SHA-256 of the body, which SNS
//!    resends unchanged), a Postmark request is one (same key), a SendGrid
//!    batch is one per event (keyed by `sg_event_id`). Each recipient is
//!    classified by [`crate::bounce::reported`], that is by the same rules
//!    and vocabulary as a bounce message;
//! 3. **match** each result with [`Intake::match_result`]: the VERP
//!    envelope sender, the `X-Whatsup-Delivery` header or custom argument,
//!    the Message-ID, then the address. Every event of a request that got
//!    this far is **verified**, however it was matched: the provider that
//!    sent the message vouches for the address, and its signature or
//!    credentials were checked in step 1;
//! 4. **record** all notices of the request in one transaction
//!    ([`Intake::record`]), which applies the `[bounces]` actions. A notice
//!    recorded before is a duplicate and changes nothing.
//!
//! Replies, as JSON: **200** `{"recorded", "events", "duplicates",
//! "ignored"}` only after the commit; **400** with the reason for a body
//! that is not what the provider documents (nothing is written: parsing
//! finishes before anything is recorded); **401** without credentials or
//! signature headers, or with wrong Basic credentials; **403** for a
//! signature that does not verify, a stale timestamp, a topic not
//! configured or a certificate URL not allowed; **503** when the database
//! (or, for SNS, fetching the certificate) fails, so that the provider
//! retries. Types of notification the intake does not act on (deliveries,
//! opens, clicks) get a 200 and are not recorded.

mod fetch;
mod postmark;
mod sendgrid;
mod ses;
mod sns;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use sha2::{Digest, Sha256};

use super::Shared;
use crate::bounce::intake::{self, hex, Intake, MatchHints};
use crate::bounce::RecipientResult;
use crate::config::Config;
use crate::store::bounces::NewBounceMessage;
use crate::store::Store;

/// The configured webhooks; a `None` endpoint is not routed.
#[derive(Debug)]
pub struct Webhooks {
    intake: Option<Intake>,
    ses: Option<Ses>,
    sendgrid: Option<sendgrid::Verifier>,
    postmark: Option<postmark::Credentials>,
}

#[derive(Debug)]
struct Ses {
    topics: Vec<String>,
    hosts: Vec<String>,
    certs: sns::CertStore,
    /// Set when subscriptions are confirmed by fetching the SubscribeURL.
    confirm: Option<fetch::Https>,
}

impl Webhooks {
    /// Reads `[webhooks]`; fails on a SendGrid key that is not one.
    pub fn from_config(store: Store, config: &Config) -> Result<Webhooks> {
        let c = &config.webhooks;
        let ses = if c.ses_topic_arns.is_empty() {
            None
        } else {
            let client = || fetch::Https::new(sns::FETCH_TIMEOUT, sns::MAX_CERT_BYTES);
            let dir = Some(c.ses_cert_dir.clone()).filter(|d| !d.as_os_str().is_empty());
            if dir.is_none() && !c.ses_fetch_certs {
                tracing::warn!(
                    "webhooks: SES is on, but with neither webhooks.ses_cert_dir nor \
                     webhooks.ses_fetch_certs no notification can be verified"
                );
            }
            Some(Ses {
                topics: c.ses_topic_arns.clone(),
                hosts: c.ses_cert_hosts.clone(),
                certs: sns::CertStore::new(
                    dir,
                    if c.ses_fetch_certs {
                        Some(client()?)
                    } else {
                        None
                    },
                ),
                confirm: if c.ses_confirm_subscriptions {
                    Some(client()?)
                } else {
                    None
                },
            })
        };
        let sendgrid = if c.sendgrid_public_key.trim().is_empty() {
            None
        } else {
            Some(sendgrid::Verifier::new(
                &c.sendgrid_public_key,
                c.sendgrid_max_age_secs,
            )?)
        };
        let postmark = (!c.postmark_username.is_empty())
            .then(|| postmark::Credentials::new(&c.postmark_username, &c.postmark_password));
        let any = ses.is_some() || sendgrid.is_some() || postmark.is_some();
        let intake = if any {
            Some(Intake::from_config(store, config).context("the bounce intake for webhooks")?)
        } else {
            None
        };
        Ok(Webhooks {
            intake,
            ses,
            sendgrid,
            postmark,
        })
    }

    /// The paths served, for the startup message.
    pub fn paths(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.ses.is_some() {
            out.push("/webhooks/ses");
        }
        if self.sendgrid.is_some() {
            out.push("/webhooks/sendgrid");
        }
        if self.postmark.is_some() {
            out.push("/webhooks/postmark");
        }
        out
    }
}

/// The routes of the configured webhooks, with the body limit.
pub fn routes(state: &Shared) -> Router<Shared> {
    let hooks = &state.webhooks;
    let mut router = Router::new();
    if hooks.ses.is_some() {
        router = router.route("/webhooks/ses", post(ses_hook));
    }
    if hooks.sendgrid.is_some() {
        router = router.route("/webhooks/sendgrid", post(sendgrid_hook));
    }
    if hooks.postmark.is_some() {
        router = router.route("/webhooks/postmark", post(postmark_hook));
    }
    router.layer(DefaultBodyLimit::max(state.config.webhooks.max_body_bytes))
}

/// Why a request was refused.
#[derive(Debug)]
pub enum Rejection {
    /// 400: the body is not what the provider documents.
    BadRequest(String),
    /// 401: no credentials or signature, or wrong Basic credentials.
    Unauthenticated(String),
    /// 403: a signature, timestamp, topic or certificate that does not pass.
    Forbidden(String),
    /// 503: the database or a certificate fetch failed; the provider should
    /// try again. The text is logged, not sent.
    Unavailable(String),
}

impl Rejection {
    fn status(&self) -> StatusCode {
        match self {
            Rejection::BadRequest(_) => StatusCode::BAD_REQUEST,
            Rejection::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Rejection::Forbidden(_) => StatusCode::FORBIDDEN,
            Rejection::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn message(&self) -> &str {
        match self {
            Rejection::BadRequest(m)
            | Rejection::Unauthenticated(m)
            | Rejection::Forbidden(m)
            | Rejection::Unavailable(m) => m,
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let public = match &self {
            Rejection::Unavailable(_) => "temporarily unavailable, please retry",
            other => other.message(),
        };
        let mut res = (self.status(), Json(serde_json::json!({ "error": public }))).into_response();
        let h = res.headers_mut();
        match self {
            Rejection::Unauthenticated(_) => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"whatsup webhooks\""),
                );
            }
            Rejection::Unavailable(_) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            _ => {}
        }
        res
    }
}

/// One result of a notice, and whether it is an unsubscribe request rather
/// than a bounce (Postmark's `Unsubscribe` type).
#[derive(Debug)]
pub struct Finding {
    pub result: RecipientResult,
    pub unsubscribe: bool,
}

impl Finding {
    fn result(result: RecipientResult) -> Finding {
        Finding {
            result,
            unsubscribe: false,
        }
    }

    fn unsubscribe_request(result: RecipientResult) -> Finding {
        Finding {
            result,
            unsubscribe: true,
        }
    }
}

/// What the provider tells about the original message, for matching.
#[derive(Debug, Default, Clone)]
pub struct Hints {
    /// The envelope sender (MAIL FROM), which is the VERP address.
    pub envelope_sender: Option<String>,
    /// `X-Whatsup-Delivery`, or the custom argument / metadata of that name.
    pub delivery: Option<String>,
    pub campaign: Option<String>,
    /// The original Message-ID.
    pub message_id: Option<String>,
}

/// One `bounce_messages` row to be.
#[derive(Debug)]
pub struct Notice {
    /// The idempotency key: SHA-256, hex.
    pub key: String,
    /// The provider's id of the notification (SNS MessageId, `sg_event_id`,
    /// Postmark ID), stored as the message id.
    pub id: String,
    pub format: &'static str,
    pub findings: Vec<Finding>,
    pub hints: Hints,
}

/// What a request did.
#[derive(Debug, Default, serde::Serialize)]
struct Summary {
    /// Notices recorded now.
    recorded: usize,
    /// Events recorded now.
    events: usize,
    /// Notices recorded before.
    duplicates: usize,
    /// Notifications or events the intake does not act on.
    ignored: usize,
}

/// Matches and records `notices` in one transaction.
async fn record(
    hooks: &Webhooks,
    source: &'static str,
    notices: Vec<Notice>,
    ignored: usize,
) -> Result<Summary, Rejection> {
    let mut summary = Summary {
        ignored,
        ..Summary::default()
    };
    if notices.is_empty() {
        return Ok(summary);
    }
    let Some(intake) = &hooks.intake else {
        return Err(Rejection::Unavailable(
            "the intake is not configured".into(),
        ));
    };
    let store_failed = |e: anyhow::Error| Rejection::Unavailable(format!("the store: {e:#}"));
    let mut messages = Vec::with_capacity(notices.len());
    for n in notices {
        let hints = MatchHints {
            verp: n
                .hints
                .envelope_sender
                .as_deref()
                .and_then(|a| intake.verp_target(a)),
            delivery: n.hints.delivery,
            message_id: n.hints.message_id,
            campaign: n.hints.campaign,
            results: n.findings.len(),
        };
        let mut events = Vec::with_capacity(n.findings.len());
        for f in &n.findings {
            let m = intake
                .match_result(&f.result.address, &hints)
                .await
                .map_err(store_failed)?;
            let mut e = intake::event(&f.result, m);
            // Authenticated in step 1: the provider's word is good.
            e.verified = true;
            if f.unsubscribe {
                e.kind = "unsubscribe".into();
                e.reason = "unsubscribe_request".into();
            }
            events.push(e);
        }
        messages.push(NewBounceMessage {
            sha256: n.key,
            message_id: n.id,
            source: source.to_string(),
            format: n.format.to_string(),
            events,
        });
    }
    let outcomes = intake
        .record(&messages, source)
        .await
        .map_err(store_failed)?;
    for o in &outcomes {
        if o.duplicate {
            summary.duplicates += 1;
        } else {
            summary.recorded += 1;
            summary.events += o.events.len();
        }
    }
    Ok(summary)
}

/// The reply to a request, logged.
fn reply(provider: &str, result: Result<Summary, Rejection>) -> Response {
    match result {
        Ok(summary) => {
            if summary.recorded > 0 {
                tracing::info!(
                    provider,
                    recorded = summary.recorded,
                    events = summary.events,
                    duplicates = summary.duplicates,
                    "webhook recorded"
                );
            }
            (StatusCode::OK, Json(summary)).into_response()
        }
        Err(rejection) => {
            let status = rejection.status();
            if status.is_server_error() {
                tracing::error!(provider, %status, "webhook: {}", rejection.message());
            } else {
                tracing::warn!(provider, %status, "webhook refused: {}", rejection.message());
            }
            rejection.into_response()
        }
    }
}

async fn ses_hook(State(state): State<Shared>, body: Bytes) -> Response {
    reply("ses", ses_request(&state.webhooks, &body).await)
}

async fn ses_request(hooks: &Webhooks, body: &[u8]) -> Result<Summary, Rejection> {
    let Some(ses) = &hooks.ses else {
        return Err(Rejection::Forbidden("SES webhooks are off".into()));
    };
    let envelope = sns::Envelope::parse(body)?;
    sns::verify(&envelope, &ses.topics, &ses.hosts, &ses.certs).await?;
    match envelope.kind()? {
        sns::Kind::SubscriptionConfirmation => {
            confirm_subscription(ses, &envelope).await?;
            Ok(Summary {
                ignored: 1,
                ..Summary::default()
            })
        }
        sns::Kind::UnsubscribeConfirmation => {
            tracing::warn!(
                topic = %envelope.topic_arn,
                "webhooks: SNS says this endpoint was unsubscribed from the topic"
            );
            Ok(Summary {
                ignored: 1,
                ..Summary::default()
            })
        }
        sns::Kind::Notification => match ses::parse(&envelope.message)? {
            ses::Parsed::Ignored(kind) => {
                tracing::debug!(%kind, "webhooks: SES notification not acted on");
                Ok(Summary {
                    ignored: 1,
                    ..Summary::default()
                })
            }
            ses::Parsed::Findings {
                format,
                findings,
                hints,
            } => {
                let notice = Notice {
                    key: hex(&Sha256::digest(body)),
                    id: envelope.message_id.clone(),
                    format,
                    findings,
                    hints,
                };
                record(hooks, "ses", vec![notice], 0).await
            }
        },
    }
}

/// Confirms a verified subscription by fetching its SubscribeURL, or logs
/// the URL when confirming is off.
async fn confirm_subscription(ses: &Ses, envelope: &sns::Envelope) -> Result<(), Rejection> {
    let url = envelope.subscribe_url.as_deref().unwrap_or_default();
    let uri = sns::check_url(url, &ses.hosts, true)
        .map_err(|why| Rejection::Forbidden(format!("SubscribeURL refused: {why}")))?;
    let Some(client) = &ses.confirm else {
        tracing::warn!(
            topic = %envelope.topic_arn,
            "webhooks: SNS subscription to confirm; open this URL to confirm it: {url}"
        );
        return Ok(());
    };
    match client.get(&uri).await {
        Ok(got) if got.status == 200 => {
            tracing::info!(topic = %envelope.topic_arn, "webhooks: SNS subscription confirmed");
            Ok(())
        }
        Ok(got) => Err(Rejection::Unavailable(format!(
            "confirming the SNS subscription: the server answered {}",
            got.status
        ))),
        Err(e) => Err(Rejection::Unavailable(format!(
            "confirming the SNS subscription: {e}"
        ))),
    }
}

async fn sendgrid_hook(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    reply(
        "sendgrid",
        sendgrid_request(&state.webhooks, &headers, &body).await,
    )
}

async fn sendgrid_request(
    hooks: &Webhooks,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Summary, Rejection> {
    let Some(verifier) = &hooks.sendgrid else {
        return Err(Rejection::Forbidden("SendGrid webhooks are off".into()));
    };
    verifier.verify(headers, body)?;
    let (notices, ignored) = sendgrid::parse(body)?;
    record(hooks, "sendgrid", notices, ignored).await
}

async fn postmark_hook(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    reply(
        "postmark",
        postmark_request(&state.webhooks, &headers, &body).await,
    )
}

async fn postmark_request(
    hooks: &Webhooks,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Summary, Rejection> {
    let Some(credentials) = &hooks.postmark else {
        return Err(Rejection::Forbidden("Postmark webhooks are off".into()));
    };
    credentials.check(headers)?;
    match postmark::parse(body)? {
        Some(notice) => record(hooks, "postmark", vec![notice], 0).await,
        None => Ok(Summary {
            ignored: 1,
            ..Summary::default()
        }),
    }
}
