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
//! conversation, a token bucket for messages per second (governor), and hourly and
//! daily ceilings reserved in the database, so they hold for every worker
//! together. Servers are chosen by weight; one that cannot be reached, or
//! whose ceiling is used up, is passed over until it recovers.
//!
//! **Outbox.** Writes `<dir>/campaign-<id>/<delivery>.eml` (to a temporary
//! name, then renamed), with the envelope in `Return-Path` and
//! `X-Envelope-To` headers. A message sent again after a crash overwrites
//! its own file, so the outbox never holds duplicates.
//!
//! Every failure is classified: [`Failure::Permanent`] (5xx),
//! [`Failure::Transient`] (4xx, including 421), or [`Failure::Network`]
//! (refused or lost connections, timeouts, TLS): the caller decides what
//! each means for the delivery.

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

/// How long a server that could not be reached is passed over.
const DOWN_FOR: Duration = Duration::from_secs(10);
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
    /// No SMTP reply: connection refused or lost, timeout, TLS.
    Network { server: String, text: String },
    /// Every server's hourly or daily ceiling is used up until this time
    /// (Unix ms); the message was not attempted.
    Ceiling { until_ms: i64 },
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
        match self {
            Transport::Smtp(p) => p.send(m).await,
            Transport::Outbox(o) => o.write(m).await,
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
    /// Passed over until this instant (unreachable).
    down_until: Mutex<Option<Instant>>,
    /// Sends reserved from the shared ceilings: (window key, remaining).
    /// Only touched under `reserving`, so concurrent sends neither
    /// over-reserve nor lose a reservation.
    allowance: Mutex<(i64, i64)>,
    reserving: tokio::sync::Mutex<()>,
    /// Ceiling used up until this Unix ms.
    full_until: Mutex<i64>,
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
                down_until: Mutex::new(None),
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

    async fn send(&self, m: Outgoing<'_>) -> Result<Accepted, Failure> {
        let mut last: Option<Failure> = None;
        let mut ceiling_until = i64::MAX;
        for server in self.order() {
            let now = Instant::now();
            if matches!(*server.down_until.lock().unwrap(), Some(t) if t > now) {
                continue;
            }
            match self.reserve(&server).await {
                Ok(None) => {}
                Ok(Some(until)) => {
                    ceiling_until = ceiling_until.min(until);
                    continue;
                }
                Err(e) => {
                    last = Some(Failure::Network {
                        server: server.cfg.name.clone(),
                        text: format!("reserving a send: {e:#}"),
                    });
                    continue;
                }
            }
            let _permit = server
                .connections
                .acquire()
                .await
                .expect("semaphore never closed");
            if let Some(l) = &server.per_second {
                l.until_ready().await;
            }
            match send_raw(&server, m).await {
                Ok(a) => {
                    // A success clears the mark: the relay is up (again).
                    if server.down_until.lock().unwrap().take().is_some() {
                        super::report::relay_up(&server.cfg.name);
                    }
                    return Ok(a);
                }
                Err(f @ Failure::Network { .. }) => {
                    // Pass this server over for a while and try the next.
                    let was_up = server
                        .down_until
                        .lock()
                        .unwrap()
                        .replace(Instant::now() + DOWN_FOR)
                        .is_none();
                    if was_up {
                        if let Failure::Network { text, .. } = &f {
                            super::report::relay_down(&server.cfg.name, text, DOWN_FOR);
                        }
                    }
                    last = Some(f);
                }
                Err(f) => return Err(f),
            }
        }
        match last {
            Some(f) => Err(f),
            None if ceiling_until != i64::MAX => Err(Failure::Ceiling {
                until_ms: ceiling_until,
            }),
            None => Err(Failure::Network {
                server: "all".into(),
                text: "every SMTP server is marked down after recent connection failures".into(),
            }),
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
            None => match tokio::time::timeout(whole, s.connect()).await {
                Err(_) => return Err(timed_out()),
                Ok(Err(f)) => return Err(f),
                Ok(Ok(c)) => (c, false),
            },
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
