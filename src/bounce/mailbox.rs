//! Mailbox intake: bounces read from an IMAP folder or a POP3 maildrop and
//! handed to [`Intake::ingest`], for setups where the bounce address is a
//! mailbox rather than a pipe from the MTA (`whatsup bounces poll imap|pop3`).
//!
//! ## One pass
//!
//! A pass logs in, lists what is there when it starts, and works through it
//! in batches of `batch_size`:
//!
//! - **IMAP** (`[bounces.imap]`): `UID FETCH` of the batch's bodies
//!   (`BODY.PEEK[]`, so nothing is marked read), each message ingested in UID
//!   order, then the committed ones moved to `processed_folder` (created if
//!   missing) or deleted (`after`). Moving uses `UID MOVE` when the server
//!   has MOVE (RFC 6851), else `UID COPY` + `UID STORE +FLAGS.SILENT
//!   (\Deleted)` + `UID EXPUNGE` (UIDPLUS, RFC 4315); a server without
//!   UIDPLUS gets a plain `EXPUNGE`, which also removes any other message
//!   someone flagged `\Deleted` in that folder. Messages already flagged
//!   `\Deleted` are skipped: an earlier pass handled them.
//! - **POP3** (`[bounces.pop3]`): `STAT`, `LIST` and `UIDL`, then `RETR`
//!   each message of the batch, `DELE` the committed ones, and `QUIT`, which
//!   is when the server really removes them (RFC 1939 UPDATE state). POP3 has
//!   no folders, so `delete` is the only `after`.
//!
//! ## The invariant: remove only what is committed
//!
//! A message leaves the mailbox (moved, deleted, or moved to the quarantine
//! folder) only after [`Intake::ingest`] returned `Ok` (its transaction is
//! committed) or after its copy is written to the quarantine directory. A
//! crash, a lost connection or a failed MOVE/QUIT in between leaves a message
//! in the mailbox that is already recorded; the next pass reads it again, and
//! the intake, idempotent by the message's SHA-256, records nothing twice
//! (it counts as a duplicate). So the worst case is work done twice, never a
//! bounce lost.
//!
//! UIDs are only used within the session that listed them, so UIDVALIDITY
//! changes between passes do not matter.
//!
//! ## What a message can do to the intake
//!
//! Nothing beyond itself. A message the intake refuses as permanent (empty,
//! not a message, over `bounces.max_message_bytes`: [`IntakeError::is_permanent`])
//! is copied to the quarantine directory with the error beside it
//! ([`quarantine`]), then moved to `quarantine_folder` (IMAP, if set) or
//! treated like a processed one, and the pass goes on. An oversized message
//! is never downloaded whole: IMAP fetches its first `max_message_bytes`
//! (`BODY.PEEK[]<0.N>`), POP3 discards the rest as it arrives. Malformed
//! MIME, unknown charsets, nested bounces and base64 garbage are the
//! classifier's business and end in a normal (if less informative) record. A
//! panic while reading one message is caught and that message quarantined.
//!
//! A **store** failure (the database is down, full or read-only) is not the
//! message's fault: the message stays in the mailbox, the batch stops there
//! (the ones before it are still moved), and the pass reports how many were
//! left for the next one.

pub(crate) mod net;
mod pop3;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use async_imap::imap_proto::{Response, Status};
use async_imap::types::{Capabilities, Flag, Uid};
use futures_util::{FutureExt, Stream, StreamExt};
use serde::Serialize;

use super::intake::{Intake, IntakeError};
use super::quarantine::quarantine;
use crate::config::{Config, Imap};
pub use net::Security;
use net::{timed, Conn, Endpoint};

/// The way in: an IMAP folder or a POP3 maildrop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Imap,
    Pop3,
}

impl Protocol {
    /// The name used as the bounce source and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
        }
    }

    /// Seconds between passes (`poll_secs` of its section).
    pub fn poll_interval(self, config: &Config) -> Duration {
        Duration::from_secs(match self {
            Protocol::Imap => config.bounces.imap.poll_secs,
            Protocol::Pop3 => config.bounces.pop3.poll_secs,
        })
    }

    /// One pass over the mailbox; see the module documentation. Never
    /// fails as a whole: a problem is in [`PassReport::failure`].
    pub async fn pass(self, intake: &Intake, config: &Config, stop: &AtomicBool) -> PassReport {
        let started = Instant::now();
        let mut tally = Tally::default();
        let outcome = match self {
            Protocol::Imap => imap_pass(intake, config, stop, &mut tally).await,
            Protocol::Pop3 => pop3::pass(intake, config, stop, &mut tally).await,
        };
        let failure = match outcome {
            Ok(None) => None,
            Ok(Some(store_error)) => Some(Failure {
                kind: FailureKind::Store,
                message: store_error,
            }),
            Err(e) => Some(Failure {
                kind: FailureKind::Mailbox,
                message: format!("{e:#}"),
            }),
        };
        let mut counts = tally.counts;
        counts.left = tally.listed.saturating_sub(tally.handled);
        PassReport {
            protocol: self,
            counts,
            failure,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// What a pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Recorded for the first time, then moved or deleted.
    pub ingested: u64,
    /// Recorded before (the same bytes): nothing changed, moved or deleted.
    pub duplicates: u64,
    /// Set aside in the quarantine directory, then moved or deleted.
    pub quarantined: u64,
    /// Still in the mailbox for a later pass (store failure, lost
    /// connection, or stopped).
    pub left: u64,
}

/// Why a pass ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// The store failed: messages stay until it works again.
    Store,
    /// The server: connecting, logging in, or a command failed.
    Mailbox,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// The result of one pass.
#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    pub protocol: Protocol,
    #[serde(flatten)]
    pub counts: Counts,
    pub failure: Option<Failure>,
    pub seconds: f64,
}

/// Counts kept while a pass runs; `left` is derived at the end.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    counts: Counts,
    /// Messages there when the pass listed them (that it means to handle).
    listed: u64,
    /// Of those, ingested or quarantined.
    handled: u64,
}

/// What became of one message.
enum Verdict {
    /// Committed (or recorded before): remove it from the mailbox.
    Done,
    /// Copied to the quarantine directory: remove it from the inbox.
    Quarantined,
    /// The store failed: leave it, and stop.
    Retry(String),
}

/// Ingests one message, or quarantines it when the message itself is the
/// problem. `size` is the size the server reported; `raw` holds at most
/// `max_message_bytes + 1` bytes of it. `label` says where it came from.
async fn handle(
    intake: &Intake,
    config: &Config,
    protocol: Protocol,
    raw: Vec<u8>,
    size: u64,
    label: &str,
    tally: &mut Tally,
) -> Verdict {
    let max = config.bounces.max_message_bytes;
    let error = if size > max || raw.len() as u64 > max {
        IntakeError::TooLarge {
            size: usize::try_from(size.max(raw.len() as u64)).unwrap_or(usize::MAX),
            max: usize::try_from(max).unwrap_or(usize::MAX),
        }
        .to_string()
    } else {
        // A panic here is a bug, but one message must not stop the intake:
        // the transaction it was in is rolled back when it unwinds, and the
        // message is set aside like any other unreadable one.
        match AssertUnwindSafe(intake.ingest(&raw, protocol.name(), None))
            .catch_unwind()
            .await
        {
            Ok(Ok(done)) => {
                if done.outcome.duplicate {
                    tally.counts.duplicates += 1;
                } else {
                    tally.counts.ingested += 1;
                }
                tally.handled += 1;
                return Verdict::Done;
            }
            Ok(Err(e)) if e.is_permanent() => e.to_string(),
            Ok(Err(e)) => return Verdict::Retry(format!("{label}: {e}")),
            Err(panic) => format!("reading it panicked: {}", panic_text(&*panic)),
        }
    };
    let error = format!("{label}: {error}");
    let config = config.clone();
    let written = {
        let error = error.clone();
        tokio::task::spawn_blocking(move || quarantine(&config, &raw, &error)).await
    };
    match written {
        Ok(Ok(path)) => {
            tracing::warn!("{error}; set aside in {}", path.display());
            tally.counts.quarantined += 1;
            tally.handled += 1;
            Verdict::Quarantined
        }
        Ok(Err(e)) => Verdict::Retry(format!("{error}; and the quarantine failed: {e:#}")),
        Err(e) => Verdict::Retry(format!("{error}; and the quarantine failed: {e}")),
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

// ---------------------------------------------------------------- IMAP ----

/// Bytes fetched in one batch at most (besides `batch_size`), so a batch
/// of large messages does not hold gigabytes.
const BATCH_BYTES: u64 = 64 << 20;

type Session = async_imap::Session<Conn>;

/// What to do with a handled message.
#[derive(Debug, Clone, Copy)]
enum After<'a> {
    Move(&'a str),
    Delete,
}

fn imap_endpoint(s: &Imap) -> Result<Endpoint> {
    let security = Security::parse(&s.tls, "bounces.imap.tls")?;
    Ok(Endpoint {
        host: s.host.clone(),
        port: match (s.port, security) {
            (0, Security::Tls) => 993,
            (0, _) => 143,
            (p, _) => p,
        },
        security,
        ca_file: (!s.ca_file.as_os_str().is_empty()).then(|| s.ca_file.clone()),
        timeout: Duration::from_secs(s.timeout_secs),
    })
}

/// Connects, upgrades with STARTTLS if configured, and logs in.
async fn imap_login(ep: &Endpoint, s: &Imap) -> Result<Session> {
    let conn = ep.connect().await?;
    let mut client = async_imap::Client::new(conn);
    let greeting = timed(ep, "reading the greeting", client.read_response())
        .await?
        .ok_or_else(|| anyhow!("{ep}: the server closed the connection before its greeting"))?;
    match greeting.parsed() {
        Response::Data {
            status: Status::Ok | Status::PreAuth,
            ..
        } => {}
        Response::Data { status, outcome } => bail!(
            "{ep}: the server refused the connection ({status:?}: {})",
            outcome.information.as_deref().unwrap_or("")
        ),
        other => bail!("{ep}: not an IMAP greeting: {other:?}"),
    }
    if ep.security == Security::StartTls {
        timed(
            ep,
            "STARTTLS",
            client.run_command_and_check_ok("STARTTLS", None),
        )
        .await?;
        let conn = ep.upgrade(client.into_inner()).await?;
        client = async_imap::Client::new(conn);
    }
    let login = tokio::time::timeout(ep.timeout, client.login(&s.username, s.password.expose()))
        .await
        .map_err(|_| anyhow!("{ep}: LOGIN: no answer within {:?}", ep.timeout))?;
    login.map_err(|(e, _)| anyhow!("{ep}: logging in as {:?} failed: {e}", s.username))
}

/// Collects a response stream, with the timeout for each item.
async fn collect<T, E>(
    ep: &Endpoint,
    what: &str,
    stream: impl Stream<Item = std::result::Result<T, E>>,
) -> Result<Vec<T>>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let mut stream = std::pin::pin!(stream);
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(ep.timeout, stream.next()).await {
            Ok(Some(item)) => out.push(item.with_context(|| format!("{ep}: {what}"))?),
            Ok(None) => return Ok(out),
            Err(_) => bail!("{ep}: {what}: no answer within {:?}", ep.timeout),
        }
    }
}

/// An IMAP quoted string.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Creates `folder` unless it exists.
async fn ensure_folder(session: &mut Session, ep: &Endpoint, folder: &str) -> Result<()> {
    let pattern = quoted(folder);
    let exists = |names: &[async_imap::types::Name]| {
        names.iter().any(|n| {
            n.name() == folder
                || (folder.eq_ignore_ascii_case("INBOX") && n.name().eq_ignore_ascii_case("INBOX"))
        })
    };
    let list = timed(ep, "LIST", session.list(Some(""), Some(&pattern))).await?;
    if exists(&collect(ep, "LIST", list).await?) {
        return Ok(());
    }
    if let Err(e) = timed(ep, &format!("CREATE {folder}"), session.create(folder)).await {
        // Someone may have created it in between.
        let list = timed(ep, "LIST", session.list(Some(""), Some(&pattern))).await?;
        if !exists(&collect(ep, "LIST", list).await?) {
            return Err(e);
        }
    } else {
        tracing::info!("{ep}: created folder {folder:?}");
    }
    Ok(())
}

/// `1:3,7,9:10` for the UIDs given (sorted or not).
fn uid_set(uids: &[Uid]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

struct Server {
    has_move: bool,
    has_uidplus: bool,
}

impl Server {
    fn from(caps: &Capabilities) -> Server {
        Server {
            has_move: caps.has_str("MOVE"),
            has_uidplus: caps.has_str("UIDPLUS"),
        }
    }
}

/// Moves `uids` to `folder`, or deletes them, in the selected folder.
async fn dispose(
    session: &mut Session,
    ep: &Endpoint,
    server: &Server,
    uids: &[Uid],
    after: After<'_>,
) -> Result<()> {
    if uids.is_empty() {
        return Ok(());
    }
    let set = uid_set(uids);
    if let After::Move(folder) = after {
        if server.has_move {
            return timed(
                ep,
                &format!("UID MOVE to {folder:?}"),
                session.uid_mv(&set, folder),
            )
            .await;
        }
        timed(
            ep,
            &format!("UID COPY to {folder:?}"),
            session.uid_copy(&set, folder),
        )
        .await?;
    }
    let stored = timed(
        ep,
        "UID STORE \\Deleted",
        session.uid_store(&set, "+FLAGS.SILENT (\\Deleted)"),
    )
    .await?;
    collect(ep, "UID STORE \\Deleted", stored).await?;
    if server.has_uidplus {
        let expunged = timed(ep, "UID EXPUNGE", session.uid_expunge(&set)).await?;
        collect(ep, "UID EXPUNGE", expunged).await?;
    } else {
        let expunged = timed(ep, "EXPUNGE", session.expunge()).await?;
        collect(ep, "EXPUNGE", expunged).await?;
    }
    Ok(())
}

/// A message as listed: its UID and the size the server gives.
#[derive(Debug, Clone, Copy)]
struct Listed {
    uid: Uid,
    size: u64,
}

async fn imap_pass(
    intake: &Intake,
    config: &Config,
    stop: &AtomicBool,
    tally: &mut Tally,
) -> Result<Option<String>> {
    let s = &config.bounces.imap;
    if s.username.is_empty() {
        bail!(
            "bounces.imap.username is empty: set it (and WHATSUP_BOUNCES_IMAP_PASSWORD) to poll IMAP"
        );
    }
    let ep = imap_endpoint(s)?;
    let mut session = imap_login(&ep, s).await?;
    let result = imap_work(&mut session, &ep, intake, config, stop, tally).await;
    // Polite, but the outcome is decided: a failed LOGOUT changes nothing.
    let _ = tokio::time::timeout(ep.timeout, session.logout()).await;
    result
}

async fn imap_work(
    session: &mut Session,
    ep: &Endpoint,
    intake: &Intake,
    config: &Config,
    stop: &AtomicBool,
    tally: &mut Tally,
) -> Result<Option<String>> {
    let s = &config.bounces.imap;
    let caps = timed(ep, "CAPABILITY", session.capabilities()).await?;
    let server = Server::from(&caps);
    let after = match s.after.as_str() {
        "delete" => After::Delete,
        _ => After::Move(&s.processed_folder),
    };
    if let After::Move(folder) = after {
        ensure_folder(session, ep, folder).await?;
    }
    let quarantine_to = match s.quarantine_folder.as_str() {
        "" => after,
        folder => {
            ensure_folder(session, ep, folder).await?;
            After::Move(folder)
        }
    };
    let folder = &s.folder;
    let selected = timed(ep, &format!("SELECT {folder:?}"), session.select(folder)).await?;
    if selected.exists == 0 {
        return Ok(None);
    }
    let listed = list_messages(session, ep).await?;
    tally.listed = listed.len() as u64;
    let max = config.bounces.max_message_bytes;
    let batch_size = s.batch_size.max(1) as usize;
    let mut rest = listed.as_slice();
    while !rest.is_empty() {
        if stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let mut n = 0;
        let mut bytes = 0u64;
        while n < rest.len() && n < batch_size && (n == 0 || bytes < BATCH_BYTES) {
            bytes += rest[n].size.min(max);
            n += 1;
        }
        let (batch, later) = rest.split_at(n);
        rest = later;
        let mut bodies = fetch_bodies(session, ep, batch, max).await?;
        let mut done = Vec::new();
        let mut set_aside = Vec::new();
        let mut retry = None;
        for m in batch {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            // Gone since the listing (another client), or no body: the next
            // pass sees it again if it is still there.
            let Some(raw) = bodies.remove(&m.uid) else {
                continue;
            };
            let label = format!("imap {}@{ep}/{folder} uid {}", s.username, m.uid);
            match handle(intake, config, Protocol::Imap, raw, m.size, &label, tally).await {
                Verdict::Done => done.push(m.uid),
                Verdict::Quarantined => set_aside.push(m.uid),
                Verdict::Retry(e) => {
                    tracing::warn!("{e}; left in the mailbox for the next pass");
                    retry = Some(e);
                    break;
                }
            }
        }
        dispose(session, ep, &server, &set_aside, quarantine_to).await?;
        dispose(session, ep, &server, &done, after).await?;
        if retry.is_some() {
            return Ok(retry);
        }
    }
    Ok(None)
}

/// Every message in the selected folder not already flagged `\Deleted`, by UID.
async fn list_messages(session: &mut Session, ep: &Endpoint) -> Result<Vec<Listed>> {
    let fetches = timed(
        ep,
        "UID FETCH (RFC822.SIZE FLAGS)",
        session.uid_fetch("1:*", "(UID RFC822.SIZE FLAGS)"),
    )
    .await?;
    let fetches = collect(ep, "UID FETCH (RFC822.SIZE FLAGS)", fetches).await?;
    let mut listed: Vec<Listed> = fetches
        .iter()
        .filter(|f| !f.flags().any(|flag| matches!(flag, Flag::Deleted)))
        .filter_map(|f| {
            Some(Listed {
                uid: f.uid?,
                size: u64::from(f.size?),
            })
        })
        .collect();
    listed.sort_by_key(|m| m.uid);
    listed.dedup_by_key(|m| m.uid);
    Ok(listed)
}

/// The bodies of `batch` by UID; of a message over `max` bytes only the
/// first `max` bytes.
async fn fetch_bodies(
    session: &mut Session,
    ep: &Endpoint,
    batch: &[Listed],
    max: u64,
) -> Result<HashMap<Uid, Vec<u8>>> {
    let mut bodies = HashMap::with_capacity(batch.len());
    let (small, large): (Vec<Listed>, Vec<Listed>) = batch.iter().partition(|m| m.size <= max);
    for (part, query) in [
        (small, "(UID BODY.PEEK[])".to_string()),
        (large, format!("(UID BODY.PEEK[]<0.{max}>)")),
    ] {
        if part.is_empty() {
            continue;
        }
        let uids: Vec<Uid> = part.iter().map(|m| m.uid).collect();
        let fetches = timed(
            ep,
            "UID FETCH BODY",
            session.uid_fetch(uid_set(&uids), &query),
        )
        .await?;
        let fetches = collect(ep, "UID FETCH BODY", fetches).await?;
        for f in &fetches {
            let Some(uid) = f.uid else { continue };
            match f.body() {
                Some(body) => {
                    bodies.insert(uid, body.to_vec());
                }
                // An empty message may come back as NIL.
                None if part.iter().any(|m| m.uid == uid && m.size == 0) => {
                    bodies.entry(uid).or_default();
                }
                None => {}
            }
        }
    }
    Ok(bodies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_collapse_runs_into_ranges() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[10, 9, 9, 1]), "1,9:10");
    }

    #[test]
    fn folder_names_are_quoted_for_the_wire() {
        assert_eq!(quoted("Processed"), "\"Processed\"");
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }

    #[test]
    fn the_standard_ports_follow_the_tls_setting() {
        let mut s = Imap::default();
        assert_eq!(imap_endpoint(&s).unwrap().port, 993);
        s.tls = "starttls".into();
        assert_eq!(imap_endpoint(&s).unwrap().port, 143);
        s.port = 1143;
        assert_eq!(imap_endpoint(&s).unwrap().port, 1143);
    }
}
