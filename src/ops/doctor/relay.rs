//! The relay checks: for each configured SMTP server, the connection and
//! greeting, STARTTLS (or implicit TLS) with the certificate checked as the
//! sender checks it (web PKI roots plus `ca_file`) and its expiry, AUTH
//! with the configured credentials, and PIPELINING. The conversation ends
//! with QUIT after AUTH: no MAIL command, so no message is ever sent.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::Check;
use crate::bounce::mailbox::net::{Conn, Endpoint, Security};
use crate::config::{Config, SmtpServer};

/// Certificates closer to expiry than this are a warning.
const EXPIRY_WARN_DAYS: i64 = 14;

/// The relay checks, and the relay's clock if its greeting carried one.
pub struct RelayChecks {
    pub checks: Vec<Check>,
    pub clock: Option<DateTime<Utc>>,
}

pub async fn check_all(config: &Config) -> RelayChecks {
    let mut out = RelayChecks {
        checks: Vec::new(),
        clock: None,
    };
    if config.sending.transport != "smtp" {
        out.checks.push(Check::skip(
            "relay",
            format!(
                "sending.transport is {:?}: campaigns are written to files, no relay is used",
                config.sending.transport
            ),
        ));
        return out;
    }
    let timeout = Duration::from_secs(config.doctor.timeout_secs);
    for server in config.smtp.servers() {
        let (checks, clock) = check_server(&server, timeout).await;
        out.checks.extend(checks);
        out.clock = out.clock.or(clock);
    }
    out
}

/// What the server said to EHLO.
struct Ehlo {
    extensions: Vec<String>,
}

impl Ehlo {
    fn has(&self, name: &str) -> bool {
        self.extensions.iter().any(|e| {
            e.split_whitespace()
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case(name))
        })
    }

    fn auth_mechanisms(&self) -> Vec<String> {
        self.extensions
            .iter()
            .filter_map(|e| {
                let mut words = e.split_whitespace();
                let first = words.next()?;
                first
                    .eq_ignore_ascii_case("AUTH")
                    .then(|| words.map(|w| w.to_ascii_uppercase()).collect::<Vec<_>>())
            })
            .flatten()
            .collect()
    }
}

/// A line-based SMTP conversation on a plain or TLS connection.
struct Session {
    conn: BufReader<Conn>,
    timeout: Duration,
}

impl Session {
    /// Reads one (possibly multi-line) reply: its code and lines.
    async fn reply(&mut self) -> Result<(u16, Vec<String>)> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(self.timeout, self.conn.read_line(&mut line))
                .await
                .map_err(|_| anyhow!("no reply within {:?}", self.timeout))??;
            if n == 0 {
                bail!("the server closed the connection");
            }
            let line = line.trim_end().to_string();
            if line.len() < 3 {
                bail!("not an SMTP reply: {line:?}");
            }
            let code: u16 = line[..3]
                .parse()
                .map_err(|_| anyhow!("not an SMTP reply: {line:?}"))?;
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if last {
                return Ok((code, lines));
            }
        }
    }

    async fn command(&mut self, line: &str) -> Result<(u16, Vec<String>)> {
        let write = async {
            self.conn
                .get_mut()
                .write_all(format!("{line}\r\n").as_bytes())
                .await?;
            self.conn.get_mut().flush().await
        };
        tokio::time::timeout(self.timeout, write)
            .await
            .map_err(|_| anyhow!("could not send within {:?}", self.timeout))??;
        self.reply().await
    }

    async fn ehlo(&mut self) -> Result<Ehlo> {
        let name = crate::send::worker_id()
            .split(':')
            .next()
            .unwrap_or("localhost")
            .to_string();
        let (code, lines) = self.command(&format!("EHLO {name}")).await?;
        if code != 250 {
            bail!("EHLO refused: {code} {}", lines.join(" "));
        }
        Ok(Ehlo {
            extensions: lines.into_iter().skip(1).collect(),
        })
    }
}

async fn check_server(
    server: &SmtpServer,
    timeout: Duration,
) -> (Vec<Check>, Option<DateTime<Utc>>) {
    let mut checks = Vec::new();
    let id = |what: &str| format!("relay.{}.{what}", server.name);
    let security = match Security::parse(&server.tls, "smtp.tls") {
        Ok(s) => s,
        Err(e) => {
            checks.push(Check::fail(
                id("connect"),
                format!("{e:#}"),
                "set smtp.tls to none, starttls or tls",
            ));
            return (checks, None);
        }
    };
    let endpoint = Endpoint {
        host: server.host.clone(),
        port: server.port,
        security,
        ca_file: Some(server.ca_file.clone()).filter(|p| !p.as_os_str().is_empty()),
        timeout: timeout.min(Duration::from_secs(server.timeout_secs.max(1))),
    };
    let result = converse(server, &endpoint, &mut checks, &id).await;
    let clock = match result {
        Ok(clock) => clock,
        Err((what, e)) => {
            checks.push(Check::fail(
                id(what),
                format!("{endpoint}: {e:#}"),
                advice(what, server),
            ));
            None
        }
    };
    (checks, clock)
}

/// What to do when step `what` failed.
fn advice(what: &str, server: &SmtpServer) -> String {
    match what {
        "connect" => format!(
            "check smtp.host and smtp.port ({}:{}), the relay is running, and no firewall is in the way",
            server.host, server.port
        ),
        "tls" => "check that the certificate is valid for smtp.host and signed by a trusted CA; for a \
                  private CA set smtp.ca_file to its PEM file"
            .into(),
        "auth" => "check smtp.username and smtp.password (WHATSUP_SMTP_PASSWORD) with the relay's operator".into(),
        _ => "check the relay's settings".into(),
    }
}

type StepError = (&'static str, anyhow::Error);

/// Runs the conversation, pushing a check per step that passes; the first
/// failing step is returned with its name.
async fn converse(
    server: &SmtpServer,
    endpoint: &Endpoint,
    checks: &mut Vec<Check>,
    id: &dyn Fn(&str) -> String,
) -> std::result::Result<Option<DateTime<Utc>>, StepError> {
    let conn = endpoint.connect().await.map_err(|e| ("connect", e))?;
    let implicit_tls = matches!(conn, Conn::Tls(_));
    let mut s = Session {
        conn: BufReader::new(conn),
        timeout: endpoint.timeout,
    };
    let (code, greeting) = s.reply().await.map_err(|e| ("connect", e))?;
    if code != 220 {
        return Err(("connect", anyhow!("greeting {code} {}", greeting.join(" "))));
    }
    let clock = greeting.iter().find_map(|l| greeting_date(l));
    let mut ehlo = s.ehlo().await.map_err(|e| ("connect", e))?;
    checks.push(Check::pass(
        id("connect"),
        format!(
            "{endpoint} answers: {}",
            greeting.first().map(String::as_str).unwrap_or("")
        ),
    ));
    match endpoint.security {
        Security::None => {
            let loopback = endpoint.host == "localhost"
                || endpoint
                    .host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                checks.push(Check::pass(
                    id("tls"),
                    "no TLS to a relay on this host (loopback)",
                ));
            } else {
                checks.push(Check::warn(
                    id("tls"),
                    format!("smtp.tls = \"none\": messages and the password cross the network unencrypted{}",
                        if ehlo.has("STARTTLS") { " although the relay offers STARTTLS" } else { "" }),
                    "set smtp.tls = \"starttls\" (port 587) or \"tls\" (port 465)",
                ));
            }
        }
        Security::StartTls => {
            if !ehlo.has("STARTTLS") {
                return Err(("tls", anyhow!("the relay does not offer STARTTLS")));
            }
            let (code, lines) = s.command("STARTTLS").await.map_err(|e| ("tls", e))?;
            if code != 220 {
                return Err((
                    "tls",
                    anyhow!("STARTTLS refused: {code} {}", lines.join(" ")),
                ));
            }
            let plain = s.conn.into_inner();
            let upgraded = endpoint.upgrade(plain).await.map_err(|e| ("tls", e))?;
            s = Session {
                conn: BufReader::new(upgraded),
                timeout: endpoint.timeout,
            };
            checks.push(certificate_check(id("tls"), "STARTTLS", s.conn.get_ref()));
            ehlo = s.ehlo().await.map_err(|e| ("tls", e))?;
        }
        Security::Tls => {
            debug_assert!(implicit_tls);
            checks.push(certificate_check(
                id("tls"),
                "implicit TLS",
                s.conn.get_ref(),
            ));
        }
    }
    auth(server, &mut s, &ehlo, checks, id).await?;
    if ehlo.has("PIPELINING") {
        checks.push(Check::pass(
            id("pipelining"),
            "PIPELINING offered: MAIL, RCPT and DATA go out in one write",
        ));
    } else {
        checks.push(Check::warn(
            id("pipelining"),
            "PIPELINING not offered: each message costs three more round trips",
            "ask the relay's operator to enable PIPELINING (RFC 2920), or expect slower sends",
        ));
    }
    let _ = s.command("QUIT").await;
    Ok(clock)
}

async fn auth(
    server: &SmtpServer,
    s: &mut Session,
    ehlo: &Ehlo,
    checks: &mut Vec<Check>,
    id: &dyn Fn(&str) -> String,
) -> std::result::Result<(), StepError> {
    let mechanisms = ehlo.auth_mechanisms();
    if server.username.is_empty() {
        if mechanisms.is_empty() {
            checks.push(Check::skip(
                id("auth"),
                "no credentials configured, and the relay offers no AUTH",
            ));
        } else {
            checks.push(Check::warn(
                id("auth"),
                format!("the relay offers AUTH ({}) but no smtp.username is set", mechanisms.join(" ")),
                "set smtp.username and smtp.password if the relay only relays for authenticated clients",
            ));
        }
        return Ok(());
    }
    let user = &server.username;
    let password = server.password.expose();
    // Servers delay the answer to a wrong password (Dovecot by 2 s, more
    // under load): give AUTH longer than the other steps.
    s.timeout = s
        .timeout
        .max(Duration::from_secs(server.timeout_secs.clamp(15, 60)));
    let (code, lines) = if mechanisms.iter().any(|m| m == "PLAIN") {
        let token = STANDARD.encode(format!("\0{user}\0{password}"));
        s.command(&format!("AUTH PLAIN {token}"))
            .await
            .map_err(|e| ("auth", e))?
    } else if mechanisms.iter().any(|m| m == "LOGIN") {
        let (code, lines) = s.command("AUTH LOGIN").await.map_err(|e| ("auth", e))?;
        if code != 334 {
            return Err((
                "auth",
                anyhow!("AUTH LOGIN refused: {code} {}", lines.join(" ")),
            ));
        }
        s.command(&STANDARD.encode(user))
            .await
            .map_err(|e| ("auth", e))?;
        s.command(&STANDARD.encode(password))
            .await
            .map_err(|e| ("auth", e))?
    } else if mechanisms.is_empty() {
        return Err((
            "auth",
            anyhow!("smtp.username is set, but the relay offers no AUTH here"),
        ));
    } else {
        return Err((
            "auth",
            anyhow!(
                "the relay offers AUTH {} and whatsup speaks PLAIN and LOGIN",
                mechanisms.join(" ")
            ),
        ));
    };
    if code != 235 {
        return Err((
            "auth",
            anyhow!("AUTH as {user} refused: {code} {}", lines.join(" ")),
        ));
    }
    checks.push(Check::pass(id("auth"), format!("AUTH as {user} accepted")));
    Ok(())
}

/// The TLS check: the handshake succeeded (so the chain and the name were
/// verified); the certificate's expiry decides pass or warn.
fn certificate_check(id: String, how: &str, conn: &Conn) -> Check {
    let Conn::Tls(tls) = conn else {
        return Check::fail(id, "the connection is not encrypted", "check smtp.tls");
    };
    let (_, session) = tls.get_ref();
    let version = session
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    let Some(cert) = session.peer_certificates().and_then(|c| c.first()) else {
        return Check::pass(id, format!("{how}, {version}: certificate verified"));
    };
    match not_after(cert.as_ref()) {
        Ok((subject, until)) => {
            let days = (until - Utc::now()).num_days();
            let summary = format!(
                "{how}, {version}: certificate for {subject} verified, valid until {} ({days} days)",
                until.format("%Y-%m-%d")
            );
            if days < EXPIRY_WARN_DAYS {
                Check::warn(
                    id,
                    summary,
                    "renew the relay's certificate before it expires",
                )
            } else {
                Check::pass(id, summary)
            }
        }
        Err(e) => Check::pass(id, format!("{how}, {version}: certificate verified ({e})")),
    }
}

/// The subject and expiry of a DER certificate.
fn not_after(der: &[u8]) -> Result<(String, DateTime<Utc>)> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).context("reading the certificate")?;
    let tbs = &cert.tbs_certificate;
    let until = tbs.validity.not_after.to_unix_duration();
    let until = DateTime::<Utc>::from_timestamp(until.as_secs() as i64, 0)
        .ok_or_else(|| anyhow!("expiry out of range"))?;
    Ok((tbs.subject.to_string(), until))
}

/// A date in a greeting such as Sendmail's `…; Mon, 1 Jan 2024 10:00:00 +0000`.
fn greeting_date(line: &str) -> Option<DateTime<Utc>> {
    line.split(';').find_map(|part| {
        DateTime::parse_from_rfc2822(part.trim())
            .ok()
            .map(|d| d.with_timezone(&Utc))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_greeting_with_a_date_gives_the_relays_clock() {
        let d =
            greeting_date("mx.example.org ESMTP Sendmail 8.17.1; Tue, 1 Jul 2025 10:00:00 +0900")
                .unwrap();
        assert_eq!(d.to_rfc3339(), "2025-07-01T01:00:00+00:00");
        assert!(greeting_date("mx.example.org ESMTP Postfix").is_none());
    }

    #[test]
    fn auth_mechanisms_come_from_the_auth_extension() {
        let e = Ehlo {
            extensions: vec![
                "PIPELINING".into(),
                "AUTH PLAIN login".into(),
                "STARTTLS".into(),
            ],
        };
        assert_eq!(e.auth_mechanisms(), ["PLAIN", "LOGIN"]);
        assert!(e.has("starttls") && e.has("PIPELINING") && !e.has("SMTPUTF8"));
    }
}
