//! A small POP3 client (RFC 1939, with STLS from RFC 2595) and the POP3 pass.
//!
//! Why our own: the POP3 crates on crates.io are either blocking, tied to
//! async-std, or unmaintained, and the part of the protocol needed here is
//! small: `USER`/`PASS`, `STAT`, `LIST`, `UIDL`, `RETR`, `DELE`, `QUIT`.
//! What matters is done carefully:
//!
//! - every read has the configured timeout, and lines and messages have
//!   size limits, so a broken or hostile server cannot hang the intake or
//!   exhaust memory (a message over `max_message_bytes` is read to its end
//!   but only its first bytes are kept);
//! - multi-line responses are dot-unstuffed (a line starting with `..` loses
//!   one dot; a line that is just `.` ends the response), so the bytes handed
//!   to the intake are exactly the message's;
//! - the password is never part of an error message;
//! - after `STLS`, any bytes the server sent before the handshake are a
//!   protocol violation (and a known injection attack) and end the session.
//!
//! Deletion is two-step by design of POP3: `DELE` only marks a message, and
//! `QUIT` (the UPDATE state) removes the marked ones. A session that ends
//! without a successful `QUIT` removes nothing; its messages, already
//! recorded, are read again by the next pass and count as duplicates.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, bail, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::net::{timed, Conn, Endpoint, Security};
use super::{handle, Protocol, Tally, Verdict};
use crate::bounce::intake::Intake;
use crate::config::{Config, Pop3};

/// Longest status or listing line accepted (RFC 1939 allows 512 bytes).
const MAX_LINE: u64 = 8 * 1024;
/// Message lines are read in pieces of at most this many bytes.
const CHUNK: u64 = 64 * 1024;

pub(super) struct Client {
    io: BufReader<Conn>,
    ep: Endpoint,
}

fn endpoint(s: &Pop3) -> Result<Endpoint> {
    let security = Security::parse(&s.tls, "bounces.pop3.tls")?;
    Ok(Endpoint {
        host: s.host.clone(),
        port: match (s.port, security) {
            (0, Security::Tls) => 995,
            (0, _) => 110,
            (p, _) => p,
        },
        security,
        ca_file: (!s.ca_file.as_os_str().is_empty()).then(|| s.ca_file.clone()),
        timeout: std::time::Duration::from_secs(s.timeout_secs),
    })
}

/// Printable text of a server line, for error messages.
fn shown(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    if text.chars().count() > 200 {
        text.chars().take(200).collect::<String>() + "…"
    } else {
        text.to_string()
    }
}

impl Client {
    /// Connects, reads the greeting, and upgrades with STLS if configured.
    pub(super) async fn connect(ep: Endpoint) -> Result<Client> {
        let conn = ep.connect().await?;
        let mut client = Client {
            io: BufReader::new(conn),
            ep,
        };
        client.status("the greeting").await?;
        if client.ep.security == Security::StartTls {
            client.command("STLS", "STLS").await?;
            if !client.io.buffer().is_empty() {
                bail!(
                    "{}: the server sent data before the TLS handshake after STLS",
                    client.ep
                );
            }
            let ep = client.ep.clone();
            let conn = ep.upgrade(client.io.into_inner()).await?;
            client = Client {
                io: BufReader::new(conn),
                ep,
            };
        }
        Ok(client)
    }

    /// Appends to `buf` up to and including the next LF, reading at most
    /// `limit` bytes, within the endpoint's timeout. An error if the server
    /// closes the connection first.
    async fn read_piece(&mut self, what: &str, limit: u64, buf: &mut Vec<u8>) -> Result<()> {
        let read = timed(
            &self.ep,
            what,
            (&mut self.io).take(limit).read_until(b'\n', buf),
        )
        .await?;
        if read == 0 {
            bail!("{}: {what}: the server closed the connection", self.ep);
        }
        Ok(())
    }

    /// Reads one line (without its CRLF) of at most [`MAX_LINE`] bytes.
    async fn line(&mut self, what: &str) -> Result<Vec<u8>> {
        let mut line = Vec::new();
        self.read_piece(what, MAX_LINE, &mut line).await?;
        if line.last() != Some(&b'\n') {
            bail!(
                "{}: {what}: a line longer than {MAX_LINE} bytes or cut off",
                self.ep
            );
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(line)
    }

    /// Reads a status line: the text after `+OK`, or an error with `-ERR`'s.
    async fn status(&mut self, what: &str) -> Result<String> {
        let line = self.line(what).await?;
        if let Some(rest) = line.strip_prefix(b"+OK") {
            Ok(String::from_utf8_lossy(rest).trim().to_string())
        } else if line.starts_with(b"-ERR") {
            bail!("{}: {what}: the server said {}", self.ep, shown(&line))
        } else {
            bail!("{}: {what}: not a POP3 reply: {}", self.ep, shown(&line))
        }
    }

    /// Sends `command`; `what` is how errors name it (never the password).
    async fn command(&mut self, command: &str, what: &str) -> Result<String> {
        if command.contains(['\r', '\n']) {
            bail!(
                "{}: {what}: line breaks are not allowed in a command",
                self.ep
            );
        }
        let line = format!("{command}\r\n");
        let io = self.io.get_mut();
        timed(&self.ep, what, async {
            io.write_all(line.as_bytes()).await?;
            io.flush().await
        })
        .await?;
        self.status(what).await
    }

    /// The lines of a multi-line response, dot-unstuffed, up to the `.`.
    async fn listing(&mut self, what: &str) -> Result<Vec<Vec<u8>>> {
        let mut lines = Vec::new();
        loop {
            let line = self.line(what).await?;
            match line.strip_prefix(b".") {
                Some([]) => return Ok(lines),
                Some(rest) => lines.push(rest.to_vec()),
                None => lines.push(line),
            }
        }
    }

    pub(super) async fn login(&mut self, user: &str, password: &str) -> Result<()> {
        self.command(&format!("USER {user}"), &format!("USER {user}"))
            .await?;
        self.command(&format!("PASS {password}"), &format!("PASS for {user}"))
            .await?;
        Ok(())
    }

    /// `STAT`: the number of messages.
    pub(super) async fn stat(&mut self) -> Result<u32> {
        let reply = self.command("STAT", "STAT").await?;
        reply
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| anyhow!("{}: STAT: unexpected reply {reply:?}", self.ep))
    }

    /// `LIST`: each message's number and size.
    pub(super) async fn list(&mut self) -> Result<HashMap<u32, u64>> {
        self.command("LIST", "LIST").await?;
        let mut sizes = HashMap::new();
        for line in self.listing("LIST").await? {
            let text = String::from_utf8_lossy(&line);
            let mut words = text.split_whitespace();
            match (
                words.next().and_then(|n| n.parse().ok()),
                words.next().and_then(|n| n.parse().ok()),
            ) {
                (Some(n), Some(size)) => {
                    sizes.insert(n, size);
                }
                _ => bail!("{}: LIST: unexpected line {:?}", self.ep, shown(&line)),
            }
        }
        Ok(sizes)
    }

    /// `UIDL`: each message's unique id, or nothing if the server has no UIDL.
    pub(super) async fn uidl(&mut self) -> Result<HashMap<u32, String>> {
        if self.command("UIDL", "UIDL").await.is_err() {
            return Ok(HashMap::new());
        }
        let mut ids = HashMap::new();
        for line in self.listing("UIDL").await? {
            let text = String::from_utf8_lossy(&line);
            let mut words = text.split_whitespace();
            if let (Some(n), Some(id)) = (words.next().and_then(|n| n.parse().ok()), words.next()) {
                ids.insert(n, id.to_string());
            }
        }
        Ok(ids)
    }

    /// `RETR n`: the message's bytes, dot-unstuffed, keeping at most `keep`
    /// of them; and its full size.
    pub(super) async fn retr(&mut self, n: u32, keep: usize) -> Result<(Vec<u8>, u64)> {
        let what = format!("RETR {n}");
        self.command(&what, &what).await?;
        let mut body = Vec::new();
        let mut total = 0u64;
        let mut chunk = Vec::new();
        let mut at_line_start = true;
        loop {
            chunk.clear();
            self.read_piece(&what, CHUNK, &mut chunk).await?;
            let mut piece = chunk.as_slice();
            if at_line_start && piece.first() == Some(&b'.') {
                if piece == b".\r\n" || piece == b".\n" {
                    return Ok((body, total));
                }
                // Byte-stuffed: the first dot is not the message's.
                piece = &piece[1..];
            }
            at_line_start = piece.last() == Some(&b'\n');
            total += piece.len() as u64;
            let room = keep.saturating_sub(body.len());
            body.extend_from_slice(&piece[..piece.len().min(room)]);
        }
    }

    pub(super) async fn dele(&mut self, n: u32) -> Result<()> {
        let what = format!("DELE {n}");
        self.command(&what, &what).await.map(drop)
    }

    /// `QUIT`: the server removes the messages marked with `DELE`.
    pub(super) async fn quit(&mut self) -> Result<()> {
        self.command("QUIT", "QUIT (removing the deleted messages)")
            .await
            .map(drop)
    }
}

/// One POP3 pass; `Ok(Some(error))` when the store failed.
pub(super) async fn pass(
    intake: &Intake,
    config: &Config,
    stop: &AtomicBool,
    tally: &mut Tally,
) -> Result<Option<String>> {
    let s = &config.bounces.pop3;
    if s.username.is_empty() {
        bail!(
            "bounces.pop3.username is empty: set it (and WHATSUP_BOUNCES_POP3_PASSWORD) to poll POP3"
        );
    }
    let ep = endpoint(s)?;
    let keep = usize::try_from(config.bounces.max_message_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    // Sessions of at most batch_size messages, so the deletions of each are
    // made final by its QUIT; at most the messages there at the start.
    let mut budget: Option<u64> = None;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let mut client = Client::connect(ep.clone()).await?;
        client.login(&s.username, s.password.expose()).await?;
        let count = client.stat().await?;
        let limit = *budget.get_or_insert_with(|| {
            tally.listed = u64::from(count);
            u64::from(count)
        });
        let remaining = limit.saturating_sub(tally.handled);
        let take = u64::from(count).min(u64::from(s.batch_size)).min(remaining);
        if take == 0 {
            client.quit().await?;
            return Ok(None);
        }
        let sizes = client.list().await?;
        let ids = client.uidl().await?;
        let before = tally.handled;
        let mut retry = None;
        for n in 1..=take as u32 {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let label = match ids.get(&n) {
                Some(id) => format!("pop3 {}@{ep} message {n} (UIDL {id})", s.username),
                None => format!("pop3 {}@{ep} message {n}", s.username),
            };
            let (raw, total) = client.retr(n, keep).await?;
            let size = sizes.get(&n).copied().unwrap_or(0).max(total);
            match handle(intake, config, Protocol::Pop3, raw, size, &label, tally).await {
                Verdict::Done | Verdict::Quarantined => client.dele(n).await?,
                Verdict::Retry(e) => {
                    tracing::warn!("{e}; left in the maildrop for the next pass");
                    retry = Some(e);
                    break;
                }
            }
        }
        client.quit().await?;
        if retry.is_some() {
            return Ok(retry);
        }
        if tally.handled == before {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_ports_follow_the_tls_setting() {
        let mut s = Pop3::default();
        assert_eq!(endpoint(&s).unwrap().port, 995);
        s.tls = "none".into();
        assert_eq!(endpoint(&s).unwrap().port, 110);
    }

    #[test]
    fn long_server_lines_are_cut_in_errors() {
        let long = vec![b'x'; 500];
        assert_eq!(shown(&long).chars().count(), 201);
        assert_eq!(shown(b"-ERR no\r\n"), "-ERR no");
    }
}
