//! Where rendered messages go: SMTP relays or the outbox directory.
//!
//! **SMTP.** lettre's async SMTP connections, with our own small pool of open
//! connections per configured server: lettre's pooled transport opens its
//! sockets without `TCP_NODELAY`, and its separate write of the final
//! `.` after the message body then waits for the peer's delayed ACK
//! (about 40 ms a message: 100 messages/s over 8 connections on loopback).
//! Our connections set `TCP_NODELAY` and hand the socket to lettre
//! (`connect_with_transport`, then STARTTLS and AUTH as configured). The
//! mail transaction itself is [`super::smtp`]'s: pipelined when the server
//! offers it, and the connection kept after a refusal. Each
//! server has an explicit bound on concurrent connections (a semaphore;
//! every message in flight holds one connection), a timeout on every SMTP
//! conversation, a per-second limit (each worker spaces its messages with a
//! governor token bucket, and every one-second window is counted in the
//! database so the limit holds for all workers together), and hourly and
//! daily ceilings reserved in the database, so they hold for every worker
//! together. Servers are chosen by weight; one whose ceiling is used up is
//! passed over until it recovers.
//!
//! **Unreachable servers.** A connection that cannot be opened (refused,
//! timed out, greeting, EHLO, STARTTLS or AUTH failing) means the message
//! was never handed to the server: it is not an attempt. The server then
//! backs off (0.1 s doubling up to 30 s after consecutive failures); while
//! it does, only one connection at a time probes it, the other messages use
//! its open connections or another server, or wait. A message that finds
//! every server backing off for longer than [`WAIT_IN_PROCESS`] comes back
//! as [`Failure::Unreachable`], to be queued again without using up an
//! attempt. A single failed connection therefore never fails the messages
//! of everyone else.
//!
//! **Outbox.** Writes `<dir>/campaign-<id>/<delivery>.eml` (to a temporary
//! name, then renamed), with the envelope in `Return-Path` and
//! `X-Envelope-To` headers. A message sent again after a crash overwrites
//! its own file, so the outbox never holds duplicates.
//!
//! Every failure is classified: [`Failure::Permanent`] (5xx),
//! [`Failure::Transient`] (4xx, including 421), [`Failure::Network`] (a
//! conversation about this message that was lost or timed out): these are
//! attempts. [`Failure::Unreachable`], [`Failure::Ceiling`],
//! [`Failure::Deferred`] and [`Failure::NotHeld`] are not: the message
//! was not handed to any server.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::Address;
use tokio::sync::Semaphore;

use super::smtp::{Connection, Refused};
use crate::config::SmtpServer;
use crate::store::Store;

/// The first and the longest pause before a server that could not be
/// reached is tried again (doubling after each consecutive failure).
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_LONGEST: Duration = Duration::from_secs(30);
/// A message waits in process for a server that backs off at most this
/// long; beyond it, the message is queued again ([`Failure::Unreachable`]).
pub const WAIT_IN_PROCESS: Duration = Duration::from_secs(2);
/// How often a message waiting for a probe connection looks again.
const PROBE_POLL: Duration = Duration::from_millis(50);
/// An idle connection older than this is closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// An idle connection older than this is checked with NOOP before reuse.
const CHECK_AFTER: Duration = Duration::from_secs(5);
/// Sends reserved from the shared ceilings at a time.
const RESERVE_CHUNK: i64 = 10;

/// A message accepted by a server (or written to the outbox).
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub server: String,
    pub reply: String,
}

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// A 5xx reply: do not retry.
    Permanent {
        server: String,
        code: String,
        text: String,
    },
    /// A 4xx reply: retry later.
    Transient {
        server: String,
        code: String,
        text: String,
    },
    /// The conversation about this message was lost or timed out before
    /// the server's final reply.
    Network { server: String, text: String },
    /// No server could be reached (the last one's error is given) until
    /// this time (Unix ms) at the earliest; the message was not attempted.
    Unreachable {
        server: String,
        text: String,
        until_ms: i64,
    },
    /// Every server's hourly or daily ceiling is used up until this time
    /// (Unix ms); the message was not attempted.
    Ceiling { until_ms: i64 },
    /// The message could not go now for another reason (the shared rate
    /// window could not be reserved); not attempted, try after `until_ms`.
    Deferred { text: String, until_ms: i64 },
    /// The claim on the message is no longer safely this worker's: it was
    /// not sent.
    NotHeld,
}

/// The envelope and bytes of one message.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub campaign: i64,
    pub delivery: i64,
    pub mail_from: &'a str,
    pub rcpt_to: &'a str,
    pub bytes: &'a [u8],
}

/// The configured transport.
pub enum Transport {
    Smtp(SmtpPool),
    Outbox(Outbox),
}

impl Transport {
    /// How many messages may be in flight at once.
    pub fn concurrency(&self) -> usize {
        match self {
            Transport::Smtp(p) => p
                .servers
                .iter()
                .map(|s| s.cfg.max_connections as usize)
                .sum(),
            Transport::Outbox(_) => 4,
        }
    }

    pub async fn send(&self, m: Outgoing<'_>) -> Result<Accepted, Failure> {
        self.send_held(m, &|| true).await
    }

    /// Sends `m` if `held()` still says the claim on it is this worker's
    /// when everything else is ready (a connection, the rate limits): it
    /// is asked right before the message goes out.
    pub async fn send_held(
        &self,
        m: Outgoing<'_>,
        held: &(dyn Fn() -> bool + Sync),
    ) -> Result<Accepted, Failure> {
        match self {
            Transport::Smtp(p) => p.send(m, held).await,
            Transport::Outbox(o) => {
                if !held() {
                    return Err(Failure::NotHeld);
                }
                o.write(m).await
            }
        }
    }
}

/// Writes messages as files.
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    pub fn new(dir: impl Into<PathBuf>) -> Outbox {
        Outbox { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn write(&self, m: Outgoing<'_>) -> Result<Accepted, Failure> {
        let dir = self.dir.join(format!("campaign-{}", m.campaign));
        let path = dir.join(format!("{:09}.eml", m.delivery));
        let tmp = dir.join(format!(".{:09}.eml.tmp", m.delivery));
        let mut data = Vec::with_capacity(m.bytes.len() + 128);
        data.extend_from_slice(format!("Return-Path: <{}>\r\n", m.mail_from).as_bytes());
        data.extend_from_slice(format!("X-Envelope-To: <{}>\r\n", m.rcpt_to).as_bytes());
        data.extend_from_slice(m.bytes);
        let result = async {
            tokio::fs::create_dir_all(&dir).await?;
            tokio::fs::write(&tmp, &data).await?;
            tokio::fs::rename(&tmp, &path).await
        }
        .await;
        match result {
            Ok(()) => Ok(Accepted {
                server: "outbox".into(),
                reply: format!("written to {}", path.display()),
            }),
            Err(e) => Err(Failure::Network {
                server: "outbox".into(),
                text: format!("writing {}: {e}", path.display()),
            }),
        }
    }
}

/// How a connection to a server is secured.
enum Security {
    Plain,
    StartTls(TlsParameters),
    Implicit(TlsParameters),
}

/// One SMTP server with its limits.
struct Server {
    cfg: SmtpServer,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// Open connections not in use, with when each was last used.
    idle: Mutex<Vec<(Connection, Instant)>>,
    connections: Semaphore,
    per_second: Option<DefaultDirectRateLimiter>,
    /// Sends reserved in the shared per-second window: (window end in Unix
    /// ms, remaining). Locked while a reservation is made.
    rate: tokio::sync::Mutex<(i64, i64)>,
    /// Whether new connections can be opened (backoff after failures).
    health: Mutex<Health>,
    /// Sends reserved from the shared ceilings: (window key, remaining).
    /// Only touched under `reserving`, so concurrent sends neither
    /// over-reserve nor lose a reservation.
    allowance: Mutex<(i64, i64)>,
    reserving: tokio::sync::Mutex<()>,
    /// Ceiling used up until this Unix ms.
    full_until: Mutex<i64>,
}

/// Whether new connections to a server can be opened.
#[derive(Debug, Default)]
struct Health {
    /// Connections that failed to open in a row.
    failures: u32,
    /// No new connection before this instant (backoff).
    retry_at: Option<Instant>,
    /// A connection is being opened to test a server that failed.
    probing: bool,
    /// The last failure, for the messages that wait.
    error: String,
}

/// The one of two unreachable failures that ends sooner.
fn earliest(a: Option<Failure>, b: Failure) -> Failure {
    match (a, &b) {
        (
            Some(a @ Failure::Unreachable { until_ms: x, .. }),
            Failure::Unreachable { until_ms: y, .. },
        ) if x <= *y => a,
        _ => b,
    }
}

/// The Unix ms of an instant (now or later).
fn unix_ms(at: Instant) -> i64 {
    chrono::Utc::now().timestamp_millis()
        + at.saturating_duration_since(Instant::now()).as_millis() as i64
}

/// The SMTP servers, chosen by weight with failover.
pub struct SmtpPool {
    servers: Vec<Arc<Server>>,
    /// Server indexes repeated by weight, walked round-robin.
    wheel: Vec<usize>,
    next: AtomicU64,
    store: Store,
}

impl SmtpPool {
    pub fn new(servers: &[SmtpServer], store: Store) -> Result<SmtpPool> {
        let mut out = Vec::new();
        let mut wheel = Vec::new();
        for (i, cfg) in servers.iter().enumerate() {
            let tls = || -> Result<TlsParameters> {
                let mut b = TlsParameters::builder(cfg.host.clone());
                if !cfg.ca_file.as_os_str().is_empty() {
                    let pem = std::fs::read(&cfg.ca_file).with_context(|| {
                        format!(
                            "smtp {}: reading ca_file {}",
                            cfg.name,
                            cfg.ca_file.display()
                        )
                    })?;
                    let cert = Certificate::from_pem(&pem).with_context(|| {
                        format!(
                            "smtp {}: ca_file {} is not a PEM certificate",
                            cfg.name,
                            cfg.ca_file.display()
                        )
                    })?;
                    b = b.add_root_certificate(cert);
                }
                b.build()
                    .with_context(|| format!("smtp {}: TLS to {}", cfg.name, cfg.host))
            };
            let security = match cfg.tls.as_str() {
                "none" => Security::Plain,
                "starttls" => Security::StartTls(tls()?),
                "tls" => Security::Implicit(tls()?),
                other => return Err(anyhow!("smtp {}: unknown tls mode {other:?}", cfg.name)),
            };
            let credentials = (!cfg.username.is_empty())
                .then(|| Credentials::new(cfg.username.clone(), cfg.password.expose().to_string()));
            let per_second = NonZeroU32::new(cfg.per_second).map(|n| {
                // A burst of one: messages are spread evenly over the second.
                RateLimiter::direct(Quota::per_second(n).allow_burst(NonZeroU32::MIN))
            });
            out.push(Arc::new(Server {
                cfg: cfg.clone(),
                security,
                credentials,
                hello: ClientId::default(),
                idle: Mutex::new(Vec::new()),
                connections: Semaphore::new(cfg.max_connections as usize),
                per_second,
                rate: tokio::sync::Mutex::new((0, 0)),
                health: Mutex::new(Health::default()),
                allowance: Mutex::new((i64::MIN, 0)),
                reserving: tokio::sync::Mutex::new(()),
                full_until: Mutex::new(0),
            }));
            wheel.extend(std::iter::repeat(i).take(cfg.weight as usize));
        }
        if out.is_empty() {
            return Err(anyhow!("no SMTP server configured"));
        }
        Ok(SmtpPool {
            servers: out,
            wheel,
            next: AtomicU64::new(0),
            store,
        })
    }

    /// Servers to try for the next message, preferred first: the weighted
    /// pick, then the others in order.
    fn order(&self) -> Vec<Arc<Server>> {
        let start =
            self.wheel[(self.next.fetch_add(1, Ordering::Relaxed) as usize) % self.wheel.len()];
        let mut v = vec![self.servers[start].clone()];
        v.extend(
            self.servers
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != start)
                .map(|(_, s)| s.clone()),
        );
        v
    }

    async fn send(
        &self,
        m: Outgoing<'_>,
        held: &(dyn Fn() -> bool + Sync),
    ) -> Result<Accepted, Failure> {
        loop {
            match self.try_servers(m, held).await {
                Err(Failure::Unreachable {
                    server,
                    text,
                    until_ms,
                }) => {
                    let wait = until_ms - chrono::Utc::now().timestamp_millis();
                    if wait > WAIT_IN_PROCESS.as_millis() as i64 {
                        return Err(Failure::Unreachable {
                            server,
                            text,
                            until_ms,
                        });
                    }
                    if !held() {
                        return Err(Failure::NotHeld);
                    }
                    tokio::time::sleep(Duration::from_millis(wait.max(1) as u64)).await;
                }
                other => return other,
            }
        }
    }

    /// One pass over the servers, preferred first: the first that takes
    /// the message, or why none did.
    async fn try_servers(
        &self,
        m: Outgoing<'_>,
        held: &(dyn Fn() -> bool + Sync),
    ) -> Result<Accepted, Failure> {
        let mut unreachable: Option<Failure> = None;
        let mut ceiling_until = i64::MAX;
        for server in self.order() {
            if let Some(f) = server.backing_off() {
                unreachable = Some(earliest(unreachable, f));
                continue;
            }
            match self.reserve(&server).await {
                Ok(None) => {}
                Ok(Some(until)) => {
                    ceiling_until = ceiling_until.min(until);
                    continue;
                }
                Err(e) => {
                    return Err(Failure::Deferred {
                        text: format!("reserving a send from the hourly and daily ceilings: {e:#}"),
                        until_ms: chrono::Utc::now().timestamp_millis() + 1000,
                    })
                }
            }
            let _permit = server
                .connections
                .acquire()
                .await
                .expect("semaphore never closed");
            self.pace(&server).await?;
            if !held() {
                return Err(Failure::NotHeld);
            }
            match send_raw(&server, m).await {
                Err(f @ Failure::Unreachable { .. }) => {
                    unreachable = Some(earliest(unreachable, f));
                }
                other => return other,
            }
        }
        match unreachable {
            Some(f) => Err(f),
            None if ceiling_until != i64::MAX => Err(Failure::Ceiling {
                until_ms: ceiling_until,
            }),
            None => Err(Failure::Deferred {
                text: "no SMTP server is configured".into(),
                until_ms: chrono::Utc::now().timestamp_millis() + 1000,
            }),
        }
    }

    /// Waits for this server's per-second limit: the process's own token
    /// bucket spaces the messages, then one send is taken from the shared
    /// window counted in the database (for every worker together).
    async fn pace(&self, s: &Server) -> Result<(), Failure> {
        let Some(limiter) = &s.per_second else {
            return Ok(());
        };
        limiter.until_ready().await;
        let per_second = i64::from(s.cfg.per_second);
        // A reservation takes a few sends at a time (fewer near the end of
        // the window, so that few go unused).
        let chunk = (per_second / 20).clamp(1, 50);
        let mut rate = s.rate.lock().await;
        loop {
            let now_ms = chrono::Utc::now().timestamp_millis();
            if rate.0 > now_ms && rate.1 > 0 {
                rate.1 -= 1;
                return Ok(());
            }
            let left_ms = 1000 - now_ms.rem_euclid(1000);
            let want = chunk.min(((left_ms * per_second + 999) / 1000).max(1));
            let (granted, end) = self
                .store
                .reserve_rate(&s.cfg.name, now_ms, per_second, want)
                .await
                .map_err(|e| Failure::Deferred {
                    text: format!("reserving a send from the shared per-second limit: {e:#}"),
                    until_ms: now_ms + 1000,
                })?;
            *rate = (end, granted);
            if granted == 0 {
                let wait = (end - chrono::Utc::now().timestamp_millis()).max(1);
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
        }
    }

    /// Takes one send from the server's ceilings. `Ok(None)`: go ahead;
    /// `Ok(Some(t))`: used up until Unix ms `t`.
    async fn reserve(&self, s: &Server) -> Result<Option<i64>> {
        if s.cfg.per_hour <= 0 && s.cfg.per_day <= 0 {
            return Ok(None);
        }
        let _one_at_a_time = s.reserving.lock().await;
        let now_ms = chrono::Utc::now().timestamp_millis();
        if *s.full_until.lock().unwrap() > now_ms {
            return Ok(Some(*s.full_until.lock().unwrap()));
        }
        let hour = now_ms - now_ms.rem_euclid(3_600_000);
        {
            let mut a = s.allowance.lock().unwrap();
            if a.0 == hour && a.1 > 0 {
                a.1 -= 1;
                return Ok(None);
            }
        }
        let got = self
            .store
            .reserve_sends(
                &s.cfg.name,
                now_ms,
                RESERVE_CHUNK,
                s.cfg.per_hour,
                s.cfg.per_day,
            )
            .await?;
        if got == 0 {
            let day_end = now_ms - now_ms.rem_euclid(86_400_000) + 86_400_000;
            let hour_end = hour + 3_600_000;
            let day_full = s.cfg.per_day > 0
                && self
                    .store
                    .sends_used(&s.cfg.name, "day", day_end - 86_400_000)
                    .await?
                    >= s.cfg.per_day;
            let until = if day_full { day_end } else { hour_end };
            *s.full_until.lock().unwrap() = until;
            return Ok(Some(until));
        }
        *s.allowance.lock().unwrap() = (hour, got - 1);
        Ok(None)
    }
}

async fn send_raw(s: &Server, m: Outgoing<'_>) -> Result<Accepted, Failure> {
    let name = s.cfg.name.clone();
    let parse = |a: &str| -> Result<Address, Failure> {
        a.parse().map_err(|e| Failure::Permanent {
            server: name.clone(),
            code: String::new(),
            text: format!("invalid address {a:?}: {e}"),
        })
    };
    let from = parse(m.mail_from)?;
    let to = parse(m.rcpt_to)?;
    // Bound the whole conversation (connect and send) as well as each step.
    let whole = Duration::from_secs(s.cfg.timeout_secs.max(1) * 4);
    let timed_out = || Failure::Network {
        server: name.clone(),
        text: format!("no answer within {} s", whole.as_secs()),
    };
    // A pooled connection the server closed meanwhile fails at once: then
    // the message goes once more over a fresh connection.
    loop {
        let (mut conn, reused) = match s.take_idle().await {
            Some(c) => (c, true),
            None => (s.open(whole).await?, false),
        };
        match tokio::time::timeout(whole, conn.send(&from, &to, m.bytes)).await {
            Err(_) => return Err(timed_out()),
            Ok(Ok(r)) => {
                s.put_back(conn);
                return Ok(Accepted {
                    server: name,
                    reply: format!("{} {}", r.code(), r.message().collect::<Vec<_>>().join(" ")),
                });
            }
            Ok(Err(refused)) => {
                let f = match refused {
                    Refused::Reply(e) | Refused::Lost(e) => classify(&name, &e),
                    Refused::Unsupported(text) => Failure::Permanent {
                        server: name.clone(),
                        code: String::new(),
                        text,
                    },
                };
                if !conn.is_broken() {
                    s.put_back(conn);
                }
                if !(reused && matches!(f, Failure::Network { .. })) {
                    return Err(f);
                }
            }
        }
    }
}

impl Server {
    /// Why no new connection can be opened to this server now, unless it
    /// has an open one to spare: it backs off after failures, or another
    /// message is probing it.
    fn backing_off(&self) -> Option<Failure> {
        if !self.idle.lock().unwrap().is_empty() {
            return None;
        }
        let h = self.health.lock().unwrap();
        if h.failures == 0 {
            return None;
        }
        let now = Instant::now();
        let until = match h.retry_at {
            Some(t) if t > now => t,
            _ if h.probing => now + PROBE_POLL,
            _ => return None,
        };
        Some(Failure::Unreachable {
            server: self.cfg.name.clone(),
            text: h.error.clone(),
            until_ms: unix_ms(until),
        })
    }

    /// Opens a new connection within `whole`, keeping track of the
    /// server's health: after failures, only one connection at a time
    /// (the probe) tries it, once its backoff is over. Any failure here is
    /// [`Failure::Unreachable`]: no message was handed to the server.
    async fn open(&self, whole: Duration) -> Result<Connection, Failure> {
        {
            let mut h = self.health.lock().unwrap();
            if h.failures > 0 {
                let now = Instant::now();
                let wait = match h.retry_at {
                    Some(t) if t > now => Some(t),
                    _ if h.probing => Some(now + PROBE_POLL),
                    _ => None,
                };
                if let Some(until) = wait {
                    return Err(Failure::Unreachable {
                        server: self.cfg.name.clone(),
                        text: h.error.clone(),
                        until_ms: unix_ms(until),
                    });
                }
                h.probing = true;
            }
        }
        let result = match tokio::time::timeout(whole, self.connect()).await {
            Err(_) => Err(format!(
                "connecting to {}:{}: no answer within {} s",
                self.cfg.host,
                self.cfg.port,
                whole.as_secs()
            )),
            Ok(Err(
                Failure::Permanent { code, text, .. } | Failure::Transient { code, text, .. },
            )) if !text.starts_with(&code) => Err(format!("{code} {text}")),
            Ok(Err(
                Failure::Permanent { text, .. }
                | Failure::Transient { text, .. }
                | Failure::Network { text, .. }
                | Failure::Unreachable { text, .. }
                | Failure::Deferred { text, .. },
            )) => Err(text),
            Ok(Err(Failure::Ceiling { .. } | Failure::NotHeld)) => {
                Err("the connection could not be opened".into())
            }
            Ok(Ok(c)) => Ok(c),
        };
        let mut h = self.health.lock().unwrap();
        h.probing = false;
        match result {
            Ok(c) => {
                if h.failures > 0 {
                    super::report::relay_up(&self.cfg.name);
                }
                *h = Health::default();
                Ok(c)
            }
            Err(text) => {
                h.failures += 1;
                let backoff = BACKOFF_FIRST
                    .saturating_mul(1 << (h.failures - 1).min(16))
                    .min(BACKOFF_LONGEST);
                let until = Instant::now() + backoff;
                h.retry_at = Some(until);
                if h.failures == 1 {
                    super::report::relay_down(&self.cfg.name, &text, backoff);
                } else if h.failures % 10 == 0 {
                    tracing::warn!(
                        server = %self.cfg.name,
                        failures = h.failures,
                        "cannot connect to the SMTP server: {text}"
                    );
                }
                h.error = text.clone();
                Err(Failure::Unreachable {
                    server: self.cfg.name.clone(),
                    text,
                    until_ms: unix_ms(until),
                })
            }
        }
    }

    /// An idle connection that is still usable, if there is one; stale
    /// ones are dropped.
    async fn take_idle(&self) -> Option<Connection> {
        loop {
            let (mut conn, since) = self.idle.lock().unwrap().pop()?;
            let idle_for = since.elapsed();
            if idle_for >= IDLE_TIMEOUT {
                continue;
            }
            if idle_for >= CHECK_AFTER && !conn.smtp().test_connected().await {
                continue;
            }
            return Some(conn);
        }
    }

    fn put_back(&self, conn: Connection) {
        self.idle.lock().unwrap().push((conn, Instant::now()));
    }

    /// Opens a connection: TCP with `TCP_NODELAY`, EHLO, STARTTLS and AUTH
    /// as configured (implicit TLS goes through lettre's own connect).
    async fn connect(&self) -> Result<Connection, Failure> {
        let name = &self.cfg.name;
        let lettre_err = |e: lettre::transport::smtp::Error| classify(name, &e);
        let conn = match &self.security {
            Security::Implicit(tls) => AsyncSmtpConnection::connect_tokio1(
                (self.cfg.host.as_str(), self.cfg.port),
                Some(Duration::from_secs(self.cfg.timeout_secs.max(1))),
                &self.hello,
                Some(tls.clone()),
                None,
            )
            .await
            .map_err(lettre_err)?,
            Security::Plain | Security::StartTls(_) => {
                let tcp = tokio::net::TcpStream::connect((self.cfg.host.as_str(), self.cfg.port))
                    .await
                    .map_err(|e| Failure::Network {
                        server: name.clone(),
                        text: format!("connecting to {}:{}: {e}", self.cfg.host, self.cfg.port),
                    })?;
                // Best effort: without it messages are only slower.
                let _ = tcp.set_nodelay(true);
                let mut c = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
                    .await
                    .map_err(lettre_err)?;
                if let Security::StartTls(tls) = &self.security {
                    c.starttls(tls.clone(), &self.hello)
                        .await
                        .map_err(lettre_err)?;
                }
                c
            }
        };
        let mut conn = Connection::new(conn, &self.hello)
            .await
            .map_err(lettre_err)?;
        if let Some(creds) = &self.credentials {
            conn.smtp()
                .auth(&[Mechanism::Plain, Mechanism::Login], creds)
                .await
                .map_err(lettre_err)?;
        }
        Ok(conn)
    }
}

/// Sorts a lettre error into permanent, transient or network.
fn classify(server: &str, e: &lettre::transport::smtp::Error) -> Failure {
    let text = error_text(e);
    let code = e.status().map(|c| c.to_string()).unwrap_or_default();
    let code = match enhanced_status(&text) {
        Some(x) if !code.is_empty() => format!("{code} {x}"),
        _ => code,
    };
    let server = server.to_string();
    if e.is_permanent() {
        Failure::Permanent { server, code, text }
    } else if e.is_transient() {
        Failure::Transient { server, code, text }
    } else {
        Failure::Network { server, text }
    }
}

/// The error with its sources, on one line.
fn error_text(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first enhanced status code (RFC 3463, e.g. `5.1.1`) in a reply.
pub fn enhanced_status(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == '(' || c == ')')
        .find(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && (1..=3).contains(&parts[1].len())
                && (1..=3).contains(&parts[2].len())
                && parts[1..]
                    .iter()
                    .all(|p| p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_status_codes_are_found_in_reply_text() {
        assert_eq!(
            enhanced_status("550 5.1.1 <a@example.org>: Recipient address rejected"),
            Some("5.1.1".into())
        );
        assert_eq!(
            enhanced_status("permanent error (550): 5.7.1 blocked"),
            Some("5.7.1".into())
        );
        assert_eq!(enhanced_status("451 try again later"), None);
        assert_eq!(enhanced_status("version 1.2.3.4 here"), None);
    }
}
