//! Plain-text bounces: recognising who wrote them and reading the failed
//! addresses and the server's words out of the human-readable text.
//!
//! Layouts read (the samples in `tests/data/bounces` show each):
//!
//! - **`<address>: text` blocks** (Postfix, qmail, Yahoo, and the fallback
//!   for any producer): a line that starts with an address in angle
//!   brackets and a colon opens a block; the following lines up to a blank
//!   line are its diagnostic.
//! - **Exim**: after "The following address(es) failed:" (or, in a delay
//!   warning, "…has not yet been delivered…"), an indented address line and
//!   more deeply indented lines below it.
//! - **Sendmail**: after "----- The following addresses had permanent fatal
//!   errors -----", `<address>` lines with `(reason: …)` lines below them;
//!   without a reason, the transcript's `<<<` reply that names the address.
//! - **Exchange / Office 365 / Outlook.com**: in "Diagnostic information for
//!   administrators", an address line followed by "Remote Server returned
//!   '…'" or `#550 5.1.1 … ##`.
//! - **Gmail**: "…wasn't delivered to ADDRESS…" or "Delivery to the
//!   following recipient failed permanently:", with the diagnostic after "The
//!   response from the remote server was:" or "The response was:".
//! - **Amazon SES**: the address list after "…to the following recipients:".
//! - **Generic** ([`address_lines`]), for every other notice: a line that
//!   names an address standing alone or first (`ADDR`, `<ADDR>:`, `ADDR on
//!   DATE`, `ADDR (reason)`: Exchange 5.5 and 2003, GroupWise, docomo,
//!   Biglobe, MailMarshal, OpenSMTPD), after words that say it failed
//!   ("error delivering your mail to", "Invalid final delivery userid:",
//!   "Delivery failed 20 attempts:", "User ADDR not listed in": IMail, Lotus
//!   Notes, InterScan), or with a status code or known reason beside it.
//!   Header lines, greetings ("Sorry sender@…"), forward targets, alias
//!   expansions, transcript `MAIL FROM:` lines, our own addresses and role
//!   addresses (`postmaster@…`) never count.
//! - **`X-Failed-Recipients`** names the recipients outright when present.
//!
//! A recipient without words of its own takes the notice's text before the
//! quoted original as its diagnostic. A challenge of a challenge-response
//! system is not a bounce.
//!
//! Whether the notice as a whole reports a delay or a permanent failure is
//! read from its wording ([`notice_wording`]), for recipients that come
//! without a code of their own; a notice that is not a delay is a permanent
//! failure, and a recipient in it never becomes a success (a transcript's
//! 2xx line is not its answer).

use super::message::View;
use super::rules::{decide, reason_from_text, Evidence};
use super::scan::{
    collapse_ws, cut_bytes, find_addresses, find_enhanced, find_smtp_code, first_address,
};
use super::{Original, Producer, RecipientResult, MAX_RECIPIENTS};

/// How much of the human-readable text is searched for wording.
const MAX_WORDING_BYTES: usize = 128 * 1024;

/// One failed address as the text gives it.
#[derive(Debug, Clone)]
pub struct Found {
    pub address: String,
    pub text: String,
}

/// The notice's own wording about all of its recipients.
#[derive(Debug, Clone, Copy, Default)]
pub struct Notice {
    /// 5 for "permanent error" wording, 4 for "temporary".
    pub class: Option<u8>,
    /// The notice is a delay warning.
    pub is_delay: bool,
}

/// Lower-cased, whitespace-collapsed start of the human text plus subject.
fn flat(msg: &View) -> String {
    let mut s = msg.subject.to_lowercase();
    s.push(' ');
    let human = cut_bytes(msg.human(), MAX_WORDING_BYTES).to_lowercase();
    for w in human.split_whitespace() {
        s.push_str(w);
        s.push(' ');
    }
    s
}

/// Which software wrote the human-readable part, by its wording.
pub fn producer(msg: &View) -> Option<Producer> {
    let t = flat(msg);
    let has = |p: &str| t.contains(p);
    Some(if has("qmail-send program") {
        Producer::Qmail
    } else if has("this message was created automatically by mail delivery software") {
        Producer::Exim
    } else if has("this is the mail system at host")
        || has("i'm sorry to have to inform you that your message could not be delivered")
    {
        Producer::Postfix
    } else if has("transcript of session follows")
        || has("the original message was received at")
        || has("following addresses had permanent fatal errors")
        || has("following addresses had transient non-fatal errors")
    {
        Producer::Sendmail
    } else if has("diagnostic information for administrators")
        || has("delivery has failed to these recipients or groups")
        || has("remote server returned")
    {
        Producer::Exchange
    } else if (has("address not found") && has("wasn't delivered to"))
        || has("the response from the remote server was")
        || has("delivery to the following recipient failed permanently")
        || has("delivery to the following recipient has been delayed")
        || has("message not delivered there was a problem delivering your message to")
    {
        Producer::Gmail
    } else if has("sorry, we were unable to deliver your message to the following address") {
        Producer::Yahoo
    } else if has("an error occurred while trying to deliver the mail to the following recipients")
    {
        Producer::AmazonSes
    } else {
        return None;
    })
}

/// Whether the notice is a delay warning or a permanent failure, by wording.
pub fn notice_wording(msg: &View) -> Notice {
    let t = flat(msg);
    let is_delay = [
        "has not yet been delivered",
        "delayed mail",
        "delivery delayed",
        "(delay)",
        "still being retried",
        "will continue to try",
        "delivery attempts will continue",
        "transient non-fatal errors",
        "warning: could not send message",
        "has been delayed",
        "delivery is delayed",
    ]
    .iter()
    .any(|p| t.contains(p));
    let class = if is_delay || t.contains("temporary error") || t.contains("temporary failure") {
        Some(4)
    } else if [
        "permanent",
        "fatal error",
        "could not be delivered",
        "couldn't be delivered",
        "wasn't delivered",
        "was not delivered",
        "delivery has failed",
        "undeliverable",
        "undelivered",
        "unable to deliver",
        "not be delivered",
        "given up",
        "failure notice",
        "delivery failed",
        "mail delivery failed",
        "returned mail",
        "did not reach",
        "could not reach",
        "transaction failed",
        "delivery to the following recipients failed",
        "error delivering",
        "failed to deliver",
        "delivery problem",
        "non-delivery",
        "nondelivery",
    ]
    .iter()
    .any(|p| t.contains(p))
    {
        Some(5)
    } else {
        None
    };
    Notice { class, is_delay }
}

/// Subjects (lower-cased, any part) that only bounces have.
const BOUNCE_SUBJECTS: &[&str] = &[
    "undeliverable",
    "undelivered",
    "delivery status notification",
    "delivery failure",
    "delivery failed",
    "delivery problem",
    "failure notice",
    "returned mail",
    "mail delivery failed",
    "could not be delivered",
    "not delivered",
    "delivery has failed",
    "nondeliverable",
    "non-deliverable",
    "non-delivery",
    "nondelivery",
    "delayed mail",
    "warning: could not send",
    "mail system error",
    "mail delivery system",
    "delivery notification: delivery has",
    "rejected:",
];

/// Local parts of daemon senders.
const DAEMONS: &[&str] = &[
    "mailer-daemon",
    "mailer_daemon",
    "mailerdaemon",
    "mail-daemon",
    "maildaemon",
    "postmaster",
    "mail.daemon",
];

/// Whether the sender is a mail daemon.
pub fn daemon_sender(msg: &View) -> bool {
    let from_daemon = msg.from.as_deref().is_some_and(|f| {
        let local = f.split('@').next().unwrap_or_default();
        DAEMONS.iter().any(|d| local == *d || local.starts_with(d))
    });
    let from_display = msg.headers.get("From").is_some_and(|f| {
        let f = f.to_lowercase();
        f.contains("mail delivery")
            || f.contains("mailer-daemon")
            || f.contains("mail administrator")
    });
    from_daemon || from_display
}

/// Whether the subject is one only bounces have.
pub fn bounce_subject(msg: &View) -> bool {
    let subject = msg.subject.to_lowercase();
    BOUNCE_SUBJECTS.iter().any(|p| subject.contains(p))
}

/// Whether the Return-Path is null (`<>`), as for every bounce (and for
/// RFC 3834 auto-replies).
pub fn null_return_path(msg: &View) -> bool {
    msg.headers
        .get("Return-Path")
        .is_some_and(|r| r.trim() == "<>")
}

/// The addresses of `X-Failed-Recipients` (Exim, Gmail), lower-cased.
pub fn failed_recipients_header(msg: &View) -> Vec<String> {
    msg.headers
        .all("X-Failed-Recipients")
        .flat_map(find_addresses)
        .map(|a| a.to_lowercase())
        .collect()
}

/// Whether the headers say "bounce": a daemon sender, a null Return-Path,
/// a bounce subject, or `X-Failed-Recipients`.
pub fn bounce_headers(msg: &View) -> bool {
    daemon_sender(msg)
        || null_return_path(msg)
        || bounce_subject(msg)
        || msg.headers.has("X-Failed-Recipients")
}

/// Wording of challenge-response systems, which hold mail until the sender
/// proves to be a person: not a bounce, the address works.
const CHALLENGES: &[&str] = &[
    "sender not pre-approved",
    "not pre-approved",
    "requires confirmation",
    "require confirmation",
    "confirm that you are a human",
    "verify that you are a human",
    "challenge-response",
    "challenge response",
    "pending your verification",
    "awaiting your confirmation",
    "please confirm your message",
];

/// Whether the message is a challenge of a challenge-response system.
pub fn is_challenge(msg: &View) -> bool {
    let t = flat(msg);
    CHALLENGES.iter().any(|p| t.contains(p))
}

/// The failed addresses the text names, with the text about each.
pub fn found(msg: &View, producer: Option<Producer>) -> Vec<Found> {
    let human = msg.human();
    let mut out = match producer {
        Some(Producer::Exim) => exim(human),
        Some(Producer::Sendmail) => sendmail(human),
        Some(Producer::Exchange) => exchange(human),
        Some(Producer::Gmail) => gmail(human),
        Some(Producer::AmazonSes) => address_list_after(human, "following recipients:"),
        _ => Vec::new(),
    };
    let excluded = Excluded::of(msg);
    out.retain(|f| !excluded.address(&f.address));
    if out.is_empty() {
        out = angle_blocks(human);
        out.retain(|f| !excluded.address(&f.address));
    }
    if out.is_empty() {
        out = address_lines(human, &excluded);
    }
    for f in &mut out {
        f.address = f.address.to_lowercase();
        f.text = collapse_ws(&f.text);
    }
    out
}

/// Addresses a notice names that are never the failed recipient.
struct Excluded {
    /// The bounce's own sender and recipient (our VERP address).
    own: Vec<String>,
}

impl Excluded {
    fn of(msg: &View) -> Excluded {
        let mut own: Vec<String> = msg.from.iter().cloned().collect();
        own.extend(msg.envelope_to());
        own.extend(msg.original_from());
        Excluded { own }
    }

    fn address(&self, address: &str) -> bool {
        let lower = address.to_lowercase();
        let local = lower.split('@').next().unwrap_or_default();
        self.own.contains(&lower)
            || DAEMONS.contains(&local)
            || matches!(
                local,
                "abuse" | "hostmaster" | "webmaster" | "noreply" | "no-reply" | "do-not-reply"
            )
    }
}

/// Reads a text bounce. `None` if the message does not look like one.
pub fn read(
    msg: &View,
    producer: Option<Producer>,
    original: &Original,
) -> Option<Vec<RecipientResult>> {
    let signals = bounce_headers(msg);
    if producer.is_none() && !signals {
        return None;
    }
    if is_challenge(msg) {
        return None;
    }
    let mut notice = notice_wording(msg);
    // A failure notice that does not say it is a delay is a failure.
    notice.class.get_or_insert(5);
    let mut found = found(msg, producer);
    // X-Failed-Recipients names the recipients outright.
    let header = failed_recipients_header(msg);
    if !header.is_empty() {
        found = header
            .into_iter()
            .map(|address| {
                let text = found
                    .iter()
                    .find(|f| f.address == address)
                    .map(|f| f.text.clone())
                    .unwrap_or_default();
                Found { address, text }
            })
            .collect();
    }
    // Without a known producer, a notice must name an address: a message
    // that only has a bounce-like subject (a forwarded bounce, say) is left
    // to the other checks.
    if found.is_empty() && producer.is_none() {
        return None;
    }
    let notice_text = notice_text(msg);
    let mut recipients: Vec<RecipientResult> = found
        .iter()
        .filter_map(|f| {
            // The notice's own words stand in for a recipient without any.
            let text = if f.text.is_empty()
                || (reason_from_text(&f.text).is_none()
                    && find_enhanced(&f.text).is_none()
                    && find_smtp_code(&f.text).is_none())
            {
                notice_text.as_str()
            } else {
                f.text.as_str()
            };
            result(&f.address, text, notice)
        })
        .collect();
    if recipients.is_empty() && found.is_empty() {
        // A notice that names no address: the returned message tells whom
        // it was for. The text's first line with a code is the diagnostic.
        let address = original.to.clone();
        if let Some(address) = address {
            let line = msg
                .human()
                .lines()
                .find(|l| find_enhanced(l).is_some() || find_smtp_code(l).is_some())
                .map(collapse_ws)
                .unwrap_or(notice_text);
            recipients.extend(result(&address, &line, notice));
        }
    }
    Some(recipients)
}

/// The notice's own words: the human-readable text before the copy of the
/// original, whitespace collapsed.
fn notice_text(msg: &View) -> String {
    collapse_ws(cut_bytes(msg.human(), MAX_WORDING_BYTES))
}

fn result(address: &str, text: &str, notice: Notice) -> Option<RecipientResult> {
    let mut enhanced = find_enhanced(text);
    let mut smtp = find_smtp_code(text);
    // A recipient in a failure notice never becomes a success: a 2xx code
    // in its text is a transcript line, not the answer.
    if enhanced.as_deref().is_some_and(|c| c.starts_with('2')) {
        enhanced = None;
    }
    if smtp.is_some_and(|c| c < 300) {
        smtp = None;
    }
    let (kind, reason) = decide(&Evidence {
        action: None,
        enhanced: enhanced.as_deref(),
        smtp,
        text,
        notice_class: notice.class,
        notice_is_delay: notice.is_delay,
    })?;
    Some(RecipientResult {
        address: address.to_lowercase(),
        original_recipient: None,
        kind,
        reason,
        status: enhanced,
        smtp_code: smtp,
        diagnostic: (!text.is_empty()).then(|| text.to_string()),
        remote_mta: remote_host(text),
    })
}

/// The host named in "host mx.example.org[192.0.2.1] said" and the like.
fn remote_host(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("host ") {
        let start = from + pos + 5;
        let token: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
            .collect();
        let token = token.trim_end_matches('.');
        if token.contains('.') && token.chars().any(|c| c.is_ascii_alphabetic()) {
            return Some(token.to_ascii_lowercase());
        }
        from = start;
    }
    None
}

/// The address a line starts with (after indentation, `<`, and before `>`,
/// `:` or the end of the token), if the line starts with one.
fn leading_address(line: &str) -> Option<(String, &str)> {
    let t = line.trim_start();
    let token_end = t.find(char::is_whitespace).unwrap_or(t.len());
    let token = &t[..token_end];
    let bare = token
        .trim_start_matches('<')
        .trim_end_matches(':')
        .trim_end_matches('>');
    let addr = first_address(bare)?;
    (addr.len() == bare.len()).then(|| (addr, t[token_end..].trim()))
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Postfix, qmail and Yahoo: `<address>: text`, continued to a blank line.
fn angle_blocks(text: &str) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('<') {
            if let Some(close) = t.find('>') {
                let inner = &t[1..close];
                let after = t[close + 1..].trim_start();
                if let (Some(addr), Some(rest)) = (first_address(inner), after.strip_prefix(':')) {
                    if addr.len() == inner.trim().len() {
                        out.push(Found {
                            address: addr,
                            text: rest.to_string(),
                        });
                        open = true;
                        continue;
                    }
                }
            }
        }
        if line.trim().is_empty() {
            open = false;
        } else if open {
            if let Some(last) = out.last_mut() {
                last.text.push(' ');
                last.text.push_str(line.trim());
            }
        }
    }
    out
}

/// Exim: an indented address line and the more deeply indented lines below.
fn exim(text: &str) -> Vec<Found> {
    let lower = text.to_ascii_lowercase();
    let start = [
        "address(es) failed",
        "has not yet been delivered",
        "following address",
    ]
    .iter()
    .filter_map(|p| lower.find(p))
    .min()
    .map(|p| p + lower[p..].find('\n').unwrap_or(lower.len() - p))
    .unwrap_or(0);
    let mut out: Vec<Found> = Vec::new();
    let mut base_indent = None;
    for line in text[start..].lines() {
        if line.trim().is_empty() {
            continue;
        }
        let ind = indent(line);
        if let Some((addr, rest)) = leading_address(line).filter(|_| base_indent.is_none_or_le(ind))
        {
            base_indent = Some(ind);
            out.push(Found {
                address: addr,
                text: rest.to_string(),
            });
        } else if let (Some(b), Some(last)) = (base_indent, out.last_mut()) {
            if ind > b {
                last.text.push(' ');
                last.text.push_str(line.trim());
            } else {
                break;
            }
        }
    }
    // "(generated from …)" is not a diagnostic.
    for f in &mut out {
        let t = f.text.trim_start();
        if t.starts_with("(generated from") {
            if let Some(end) = t.find(')') {
                f.text = t[end + 1..].trim().to_string();
            }
        }
    }
    out
}

/// `Option<usize>` helper: no base yet, or the base is at most `ind`.
trait BaseIndent {
    fn is_none_or_le(&self, ind: usize) -> bool;
}

impl BaseIndent for Option<usize> {
    fn is_none_or_le(&self, ind: usize) -> bool {
        match self {
            None => ind <= 8,
            Some(b) => *b == ind,
        }
    }
}

/// Sendmail: `<address>` lines with `(reason: …)` below, in the "addresses
/// had … errors" section; else the transcript reply naming the address.
fn sendmail(text: &str) -> Vec<Found> {
    let lower = text.to_ascii_lowercase();
    let Some(start) = [
        "had permanent fatal errors",
        "had transient non-fatal errors",
    ]
    .iter()
    .filter_map(|p| lower.find(p))
    .min() else {
        return Vec::new();
    };
    let start = start + lower[start..].find('\n').unwrap_or(lower.len() - start);
    let mut out: Vec<Found> = Vec::new();
    for line in text[start..].lines() {
        let t = line.trim();
        if t.is_empty() {
            if out.is_empty() {
                continue;
            }
            break;
        }
        if let Some(reason) = t.strip_prefix("(reason:") {
            if let Some(last) = out.last_mut() {
                last.text = reason.trim_end_matches(')').trim().to_string();
            }
        } else if let (false, Some((addr, _))) =
            (t.starts_with("(expanded from"), leading_address(t))
        {
            out.push(Found {
                address: addr,
                text: String::new(),
            });
        }
    }
    for f in &mut out {
        if f.text.is_empty() {
            if let Some(reply) = text
                .lines()
                .map(str::trim)
                .filter(|l| {
                    l.to_ascii_lowercase()
                        .contains(&f.address.to_ascii_lowercase())
                })
                .find_map(|l| l.strip_prefix("<<<"))
            {
                f.text = reply.trim().to_string();
            }
        }
    }
    out
}

/// Exchange: in "Diagnostic information for administrators", an address
/// line and the lines below it up to a blank line.
fn exchange(text: &str) -> Vec<Found> {
    let lower = text.to_ascii_lowercase();
    let start = [
        "diagnostic information for administrators",
        "delivery has failed to these recipients or groups",
    ]
    .iter()
    .find_map(|p| lower.find(p))
    .unwrap_or(0);
    let mut out: Vec<Found> = Vec::new();
    let mut open = false;
    for line in text[start..].lines().skip(1) {
        let t = line.trim();
        let tl = t.to_ascii_lowercase();
        if t.is_empty() {
            open = false;
            continue;
        }
        if tl.starts_with("generating server:") || tl.starts_with("receiving server:") {
            continue;
        }
        let addresses = find_addresses(t);
        let is_address_line = addresses.len() == 1
            && t.split_whitespace().count() <= 4
            && find_smtp_code(t).is_none()
            && find_enhanced(t).is_none();
        if is_address_line {
            out.push(Found {
                address: addresses[0].clone(),
                text: String::new(),
            });
            open = true;
        } else if open {
            if let Some(last) = out.last_mut() {
                if !last.text.is_empty() {
                    last.text.push(' ');
                }
                last.text.push_str(exchange_unwrap(t));
            }
        }
    }
    out
}

/// `Remote Server returned '550 …'` → `550 …`; `#550 … ##` → `550 …`.
fn exchange_unwrap(line: &str) -> &str {
    let lower = line.to_ascii_lowercase();
    if let Some(pos) = lower.find("remote server returned '") {
        let inner = &line[pos + "remote server returned '".len()..];
        return inner.strip_suffix('\'').unwrap_or(inner);
    }
    line.trim_start_matches('#').trim_end_matches('#').trim()
}

/// The paragraph after `phrase` (case-insensitive), up to a blank line.
fn paragraph_after(text: &str, phrase: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let pos = lower.find(phrase)? + phrase.len();
    let mut out = String::new();
    for line in text[pos..].lines() {
        if line.trim().is_empty() {
            if out.is_empty() {
                continue;
            }
            break;
        }
        out.push_str(line.trim());
        out.push(' ');
    }
    (!out.is_empty()).then(|| out.trim_end().to_string())
}

/// Gmail: one address, the remote server's response as the diagnostic.
fn gmail(text: &str) -> Vec<Found> {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let lower = flat.to_ascii_lowercase();
    let address = [
        "wasn't delivered to ",
        "failed permanently:",
        "has been delayed:",
        "problem delivering your message to ",
    ]
    .iter()
    .find_map(|p| {
        let pos = lower.find(p)? + p.len();
        first_address(cut_bytes(&flat[pos..], 300))
    });
    let Some(address) = address else {
        return Vec::new();
    };
    let text = [
        "the response from the remote server was:",
        "the response was:",
        "technical details of permanent failure:",
        "technical details of temporary failure:",
    ]
    .iter()
    .find_map(|p| paragraph_after(text, p))
    .or_else(|| {
        let pos = lower.find(" because ")?;
        let sentence = &flat[pos + 1..];
        Some(sentence.split(". ").next().unwrap_or(sentence).to_string())
    })
    .unwrap_or_default();
    vec![Found { address, text }]
}

/// Addresses one per line after `phrase`, up to a blank line.
fn address_list_after(text: &str, phrase: &str) -> Vec<Found> {
    paragraph_after(text, phrase)
        .map(|p| {
            find_addresses(&p)
                .into_iter()
                .map(|address| Found {
                    address,
                    text: String::new(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Words before an address on a line that say the line is about a failed
/// recipient: "There was an error delivering your mail to <ADDR>",
/// "Invalid final delivery userid: ADDR", "User ADDR not listed in …".
const LINE_CUES: &[&str] = &[
    "deliver",
    "fail",
    "unknown",
    "invalid",
    "error",
    "reject",
    "not listed",
    "bounce",
    "not reach",
    "could not",
    "unable",
    "no such",
    "recipient",
    "user",
    "rcpt to",
    "mailbox",
    "address",
    "message to",
    "mail to",
];

/// Lines that never name the failed recipient: greetings to the sender,
/// forward targets, alias expansions, contact advice.
const NOT_RECIPIENT_LINES: &[&str] = &[
    "expanded from",
    "forwarded to",
    "forwarding to",
    "forwarded from",
    "reply to",
    "contact",
    "sent by",
    "generated by",
    "mail from:",
];

const GREETINGS: &[&str] = &[
    "sorry",
    "hello",
    "hi ",
    "hi,",
    "dear",
    "greetings",
    "attention",
];

/// Any other text: a line that names an address and that is about it,
/// because the address stands alone or first on the line (`ADDR`,
/// `<ADDR>:`, `ADDR on DATE`, `ADDR (reason)`), because words before it say
/// so ([`LINE_CUES`]), or because the line and those right below it carry
/// a status code or a recognisable reason. The text about it is the line and
/// the lines below it up to a blank line or the next address (at most
/// three). Header lines, greetings and forward targets never count.
fn address_lines(text: &str, excluded: &Excluded) -> Vec<Found> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<Found> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        let lower = trimmed.to_lowercase();
        // Words, not addresses: `contact@example.org` is no "contact" line.
        let mut words = lower.clone();
        for a in find_addresses(&lower) {
            words = words.replace(&a, &" ".repeat(a.len()));
        }
        if super::message::looks_like_header(trimmed)
            || GREETINGS.iter().any(|g| words.starts_with(g))
            || NOT_RECIPIENT_LINES.iter().any(|p| words.contains(p))
        {
            continue;
        }
        let addresses = find_addresses(trimmed);
        let Some(address) = addresses.into_iter().find(|a| !excluded.address(a)) else {
            continue;
        };
        let mut block = trimmed.to_string();
        for next in lines.iter().skip(i + 1).take(3) {
            if next.trim().is_empty() || first_address(next).is_some() {
                break;
            }
            block.push(' ');
            block.push_str(next.trim());
        }
        let stands_first = leading_address(trimmed).is_some();
        let before = lower
            .find(&address.to_lowercase())
            .map(|pos| &lower[..pos])
            .unwrap_or_default();
        let cued = LINE_CUES.iter().any(|c| before.contains(c));
        let has_code = find_enhanced(&block).is_some() || find_smtp_code(&block).is_some();
        if !(stands_first || cued || has_code || reason_from_text(&block).is_some()) {
            continue;
        }
        match out
            .iter_mut()
            .find(|f| f.address.eq_ignore_ascii_case(&address))
        {
            // The same address again: its lines add to what is known.
            Some(f) => {
                if f.text.len() < 2000 {
                    f.text.push(' ');
                    f.text.push_str(&block);
                }
            }
            None => {
                out.push(Found {
                    address,
                    text: block,
                });
                if out.len() >= MAX_RECIPIENTS {
                    break;
                }
            }
        }
    }
    out
}
