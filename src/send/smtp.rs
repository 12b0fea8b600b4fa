//! One SMTP mail transaction over an open lettre connection: PIPELINING
//! (RFC 2920) when the server offers it, a fast dot-stuffing of the
//! message, and `RSET` after a refusal so the connection stays in use.
//!
//! lettre's `AsyncSmtpConnection::send` waits for each of MAIL, RCPT and
//! DATA in turn (four round trips a message), dot-stuffs the message one
//! byte at a time (a sixth of whatsup's CPU time in the sending benchmark),
//! and closes the connection after any negative reply. Here the commands are
//! lettre's own types, written through its public `command` and
//! `read_response`; only the framing differs:
//! - with PIPELINING, MAIL, RCPT and DATA go out in one write and their
//!   three replies are read after it; the first negative one is the
//!   outcome. If a server accepts DATA after refusing MAIL or RCPT, the
//!   empty message is ended at once (it has no recipient) before `RSET`;
//! - the message is stuffed by [`DotStuffed`], which finds line-initial
//!   dots with a vectorised search (memchr's memmem) and copies the text
//!   between them in whole slices, and sent with its end
//!   marker in the same write. A message that is not UTF-8 goes through
//!   lettre's own encoder instead.
//!
//! lettre does not record whether a server offers PIPELINING, so
//! [`Connection::new`] asks EHLO once more (before AUTH) and reads it from
//! the reply.

use std::fmt;

use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::Error;
use lettre::Address;

/// Why a message was not accepted.
#[derive(Debug)]
pub enum Refused {
    /// The server replied 4xx or 5xx.
    Reply(Error),
    /// No usable reply: the connection is lost, timed out or out of step.
    Lost(Error),
    /// The message needs an extension the server does not offer.
    Unsupported(String),
}

/// An open SMTP connection and what this module knows of the server.
pub struct Connection {
    smtp: AsyncSmtpConnection,
    pipelining: bool,
    broken: bool,
}

impl Connection {
    /// Wraps a connection that has greeted the server (and started TLS),
    /// asking EHLO again to learn whether it offers PIPELINING. Call it
    /// before AUTH: EHLO starts the session over.
    pub async fn new(mut smtp: AsyncSmtpConnection, hello: &ClientId) -> Result<Connection, Error> {
        let reply = smtp.command(Ehlo::new(hello.clone())).await?;
        let pipelining = offers(&reply, "PIPELINING");
        Ok(Connection {
            smtp,
            pipelining,
            broken: false,
        })
    }

    /// The lettre connection, for AUTH and liveness checks.
    pub fn smtp(&mut self) -> &mut AsyncSmtpConnection {
        &mut self.smtp
    }

    /// True once the connection cannot carry another message.
    pub fn is_broken(&self) -> bool {
        self.broken || self.smtp.has_broken()
    }

    /// Sends `body` from `from` to `to`: the server's final reply, or why
    /// it was not accepted. After a refusal the session is reset, so the
    /// connection can be used again unless [`Connection::is_broken`].
    pub async fn send(
        &mut self,
        from: &Address,
        to: &Address,
        body: &[u8],
    ) -> Result<Response, Refused> {
        let info = self.smtp.server_info();
        let mut params = Vec::new();
        if !(AsRef::<str>::as_ref(from).is_ascii() && AsRef::<str>::as_ref(to).is_ascii()) {
            if !info.supports_feature(Extension::SmtpUtfEight) {
                return Err(Refused::Unsupported(
                    "the envelope has a non-ASCII address and the server does not offer SMTPUTF8"
                        .into(),
                ));
            }
            params.push(MailParameter::SmtpUtfEight);
        }
        if !body.is_ascii() {
            if !info.supports_feature(Extension::EightBitMime) {
                return Err(Refused::Unsupported(
                    "the message has 8-bit bytes and the server does not offer 8BITMIME".into(),
                ));
            }
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let mail = Mail::new(Some(from.clone()), params);
        let rcpt = Rcpt::new(to.clone(), vec![]);
        if self.pipelining {
            self.envelope_pipelined(&mail, &rcpt).await?;
        } else {
            for command in [mail.to_string(), rcpt.to_string(), Data.to_string()] {
                let r = self.smtp.command(command).await;
                if let Err(refused) = self.step(r) {
                    return Err(self.reset_after(refused).await);
                }
            }
        }
        let reply = match std::str::from_utf8(body) {
            Ok(text) => self.smtp.command(DotStuffed(text)).await,
            Err(_) => self.smtp.message(body).await,
        };
        // After the final reply the server has ended the transaction
        // either way: no RSET is needed.
        self.step(reply)
    }

    /// MAIL, RCPT and DATA in one write, then their three replies. The
    /// first refusal is the outcome, also when the server then hangs up
    /// (a 421 closes the connection before the later replies).
    async fn envelope_pipelined(&mut self, mail: &Mail, rcpt: &Rcpt) -> Result<(), Refused> {
        let mut first: Option<Refused> = None;
        let mut data_accepted = false;
        for reply in 0..3 {
            let r = if reply == 0 {
                self.smtp.command(format!("{mail}{rcpt}{Data}")).await
            } else {
                self.smtp.read_response().await
            };
            match self.step(r) {
                Ok(_) => data_accepted = reply == 2,
                Err(lost @ Refused::Lost(_)) => return Err(first.unwrap_or(lost)),
                Err(refused) => {
                    first.get_or_insert(refused);
                }
            }
        }
        let Some(refused) = first else {
            return Ok(());
        };
        if data_accepted {
            // DATA was accepted without a recipient: end the empty message
            // (the server refuses it), then reset.
            let r = self.smtp.command(".\r\n").await;
            if let Err(Refused::Lost(_)) = self.step(r) {
                return Err(refused);
            }
        }
        Err(self.reset_after(refused).await)
    }

    /// Sorts a reply: negative replies are refusals, anything else that
    /// failed breaks the connection.
    fn step(&mut self, r: Result<Response, Error>) -> Result<Response, Refused> {
        match r {
            Ok(reply) => Ok(reply),
            Err(e) if e.is_permanent() || e.is_transient() => Err(Refused::Reply(e)),
            Err(e) => {
                self.broken = true;
                Err(Refused::Lost(e))
            }
        }
    }

    /// Ends a refused transaction with RSET; a connection that cannot is
    /// broken. Returns the refusal.
    async fn reset_after(&mut self, refused: Refused) -> Refused {
        if !self.broken && self.smtp.command(Rset).await.is_err() {
            self.broken = true;
        }
        refused
    }
}

/// Whether an EHLO reply lists `keyword`.
fn offers(ehlo: &Response, keyword: &str) -> bool {
    ehlo.message().skip(1).any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
    })
}

/// A message as it goes over the wire after DATA (RFC 5321 4.5.2): a dot
/// doubled at the start of every line, then the end marker `.` on a line
/// of its own. Lines end in CRLF, as whatsup writes them; a bare LF does
/// not start a line (as in lettre's encoder).
pub struct DotStuffed<'a>(pub &'a str);

impl fmt::Display for DotStuffed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0;
        if text.starts_with('.') {
            f.write_str(".")?;
        }
        let mut from = 0;
        for at in memchr::memmem::find_iter(text.as_bytes(), b"\r\n.") {
            // Up to and including the CRLF, then the extra dot; the dot of
            // the text follows with the next slice.
            f.write_str(&text[from..at + 2])?;
            f.write_str(".")?;
            from = at + 2;
        }
        f.write_str(&text[from..])?;
        if text.is_empty() || text.ends_with("\r\n") {
            f.write_str(".\r\n")
        } else {
            f.write_str("\r\n.\r\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5321's rule, a byte at a time: the reference for DotStuffed.
    fn stuffed_slowly(text: &str) -> String {
        let mut out = String::new();
        let mut line_start = true;
        let mut after_cr = false;
        for c in text.chars() {
            if line_start && c == '.' {
                out.push('.');
            }
            out.push(c);
            line_start = after_cr && c == '\n';
            after_cr = c == '\r';
        }
        out.push_str(if text.is_empty() || text.ends_with("\r\n") {
            ".\r\n"
        } else {
            "\r\n.\r\n"
        });
        out
    }

    #[test]
    fn dots_at_the_start_of_lines_are_doubled_and_the_end_marker_follows() {
        assert_eq!(DotStuffed(".a\r\n").to_string(), "..a\r\n.\r\n");
        assert_eq!(DotStuffed("a\r\n.b\r\n").to_string(), "a\r\n..b\r\n.\r\n");
        assert_eq!(DotStuffed("a\r\n..\r\n").to_string(), "a\r\n...\r\n.\r\n");
        assert_eq!(DotStuffed("a\r\n.").to_string(), "a\r\n..\r\n.\r\n");
        assert_eq!(DotStuffed("no end").to_string(), "no end\r\n.\r\n");
        assert_eq!(DotStuffed("").to_string(), ".\r\n");
        // A bare LF does not start a line; a dot mid-line stays single.
        assert_eq!(DotStuffed("a\n.b x.y").to_string(), "a\n.b x.y\r\n.\r\n");
    }

    #[test]
    fn dot_stuffing_matches_the_rule_on_many_generated_texts() {
        let alphabet = ['.', '\r', '\n', 'a', 'é'];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5000 {
            let mut text = String::new();
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (seed >> 59) as usize;
            for _ in 0..len {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                text.push(alphabet[(seed >> 61) as usize % alphabet.len()]);
            }
            assert_eq!(
                DotStuffed(&text).to_string(),
                stuffed_slowly(&text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn pipelining_is_read_from_the_ehlo_reply_lines_after_the_greeting() {
        let reply = |lines: &[&str]| {
            let text: String = lines
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let sep = if i + 1 == lines.len() { ' ' } else { '-' };
                    format!("250{sep}{l}\r\n")
                })
                .collect();
            text.parse::<Response>().unwrap()
        };
        assert!(offers(
            &reply(&["mx.example.org", "SIZE 1000", "pipelining"]),
            "PIPELINING"
        ));
        assert!(!offers(
            &reply(&["mx.example.org", "8BITMIME"]),
            "PIPELINING"
        ));
        // The greeting line names the host, never an extension.
        assert!(!offers(&reply(&["PIPELINING"]), "PIPELINING"));
    }
}
