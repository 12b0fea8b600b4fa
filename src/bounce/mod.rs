//! Bounce and complaint classification: from the raw bytes of a message that
//! came back to what happened to which recipient, and why.
//!
//! [`classify`] is pure: no database, no network, no clock. It reads, in this
//! order, and the first that applies decides:
//!
//! 1. **RFC 5965 ARF feedback reports** (`multipart/report;
//!    report-type=feedback-report`). Feedback types `abuse`, `fraud`,
//!    `virus`, `other` and unknown types are complaints: kind `complaint`,
//!    reason `complaint`, for each `Original-Rcpt-To`, else the returned
//!    message's `To`. `auth-failure`
//!    (RFC 6591) and `not-spam` reports are kept with kind `unknown` and
//!    `is_bounce: false`: they are about our authentication or are the
//!    opposite of a complaint, and must not unsubscribe anyone.
//! 2. **RFC 3464 delivery status notifications** (`message/delivery-status`)
//!    and their RFC 6533 UTF-8 form (`message/global-delivery-status`): one
//!    result per recipient group with Action `failed` or `delayed` (or
//!    without an Action); `delivered`, `relayed` and `expanded` recipients
//!    are successes and are left out. The machine-readable fields are
//!    preferred; a recipient without a Diagnostic-Code takes the text the
//!    human-readable part gives for the same address.
//! 3. **Plain-text bounces** from MTAs that send no DSN, recognised by their
//!    wording (see [`Producer`]): Postfix, Exim, Sendmail, qmail,
//!    Exchange/Office 365/Outlook.com, Gmail, Yahoo, Amazon SES, and a
//!    generic reader for any other notice from a daemon, with a null
//!    Return-Path, a bounce subject or `X-Failed-Recipients`, which takes
//!    the addresses that stand alone or after failure wording on a line
//!    (Exchange 5.5/2003, IMail, Lotus Notes, InterScan, MailMarshal,
//!    GroupWise, Japanese carriers, …).
//!    Amazon SES notifications whose JSON is the mail body come next
//!    (`ses_mail`).
//! 4. **RFC 3834 auto-replies**, unless the headers say bounce (a daemon
//!    sender, a bounce subject, `X-Failed-Recipients`, a null Return-Path
//!    without an auto-reply subject) (`Auto-Submitted` other than `no`,
//!    `X-Autoreply`, `X-Autorespond`, `Precedence: auto_reply`, or subjects
//!    such as "Out of office" and "Automatic reply"): `is_bounce: false`,
//!    with one result of kind `auto_reply` for the sender, reason
//!    `has_moved` when the text says the person has left or moved (which is
//!    what the operator needs when staff rotate), else `vacation`. An
//!    auto-reply proves the address works, so it must never count as a
//!    bounce. Bounce checks run first: MTAs mark their own bounces
//!    `Auto-Submitted: auto-replied` too.
//! 5. **A forwarded bounce**: a message with no bounce of its own whose
//!    attached `message/rfc822` part is one is classified by that part (at
//!    most three levels deep).
//!
//! Anything else is `is_bounce: false` with no recipients.
//!
//! ## Kind and reason
//!
//! The decision from status code and diagnostic text together is in
//! [`rules`]; its module documentation and `docs/bounces.md` give every
//! rule. In short: the text decides the reason when it says something we
//! know, the code when it does not; only reasons about the address itself
//! (`user_unknown`, `host_unknown`, `has_moved`, and a permanent
//! `not_accept`) are `hard`, everything else (a suspended account, our
//! sender refused, an unexplained 5xx, …) is `soft`: the line of Sisimai's
//! reason taxonomy.
//!
//! ## For matching back to the campaign
//!
//! [`Classification::envelope_to`] is the address the bounce itself was
//! delivered to (`X-Original-To`, else `Delivered-To`, else `Envelope-To`,
//! else `To`), which carries the VERP-encoded recipient when the sender used
//! one. [`Classification::original`] holds the Message-ID and the
//! `X-Whatsup-Campaign` and `X-Whatsup-Delivery` headers of the returned
//! message, read from a `message/rfc822` (or `message/global`) part, a
//! `text/rfc822-headers` part, or the copy that text bounces quote inline.
//!
//! ## Bad input
//!
//! Only the first [`MAX_SCAN_BYTES`] of a message are read. Malformed MIME,
//! undecodable charsets and base64 garbage degrade to less information,
//! never to a panic. Input that is empty or has no header at all is an
//! error ([`ClassifyError`]), so an intake can set it aside.

mod arf;
mod autoreply;
mod dsn;
mod fields;
// The intake needs the store; the fuzz crate (fuzz/, built with `--cfg
// fuzzing`) compiles this module tree on its own, without it.
#[cfg(not(fuzzing))]
pub mod intake;
#[cfg(not(fuzzing))]
pub mod mailbox;
mod message;
#[cfg(not(fuzzing))]
pub mod quarantine;
pub mod reported;
pub mod rules;
mod scan;
mod ses_mail;
mod text;

use serde::Serialize;

pub use scan::MAX_DIAGNOSTIC_CHARS;

/// Only this many bytes of a message are parsed; the reports that matter
/// come first, and the returned original message may be cut.
pub const MAX_SCAN_BYTES: usize = 1 << 20;

/// At most this many recipients are reported per message.
pub const MAX_RECIPIENTS: usize = 200;

/// What happened to one recipient, in the terms the intake acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Permanent: the address does not work. The contact is bounced at once.
    Hard,
    /// Failed this time, but the address may be fine.
    Soft,
    /// The recipient marked the message as spam (ARF).
    Complaint,
    /// Not delivered yet; the sending MTA is still trying.
    Delay,
    /// An automatic reply (vacation, "I have left"). Not a failure.
    AutoReply,
    /// A failure we could not place.
    Unknown,
}

/// Why, from a fixed vocabulary (documented in `docs/bounces.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The mailbox does not exist.
    UserUnknown,
    /// The mailbox is over quota.
    MailboxFull,
    /// The domain or its mail host does not exist.
    HostUnknown,
    /// The sending MTA gave up after retrying too long.
    Expired,
    /// A content filter or the recipient's own rules refused it.
    Filtered,
    /// Our sending host or domain is on a block list or has poor reputation.
    Blocked,
    /// The message was judged to be spam.
    SpamDetected,
    /// The message exceeds a size limit.
    MessageTooLarge,
    /// Refused by a site policy (relaying, restricted recipients, …).
    Policy,
    /// The receiving host could not be reached.
    NetworkError,
    /// A fault of the receiving system (loops, local errors, overload).
    SystemError,
    /// The account exists but is disabled or suspended.
    Suspended,
    /// The domain accepts no mail at all: a null MX (RFC 7505), a 521 or
    /// 556 reply, x.3.2, x.1.10 or x.7.27.
    NotAccept,
    /// Our envelope sender was refused (x.1.7, x.1.8, "Sender address
    /// rejected", a refusal of MAIL FROM): about our side, not the address.
    SenderRejected,
    /// The message's form was refused: headers too large, 8-bit data, line
    /// length, x.6.x media errors.
    ContentError,
    /// The person has moved; the address is no longer theirs.
    HasMoved,
    /// SPF, DKIM, DMARC or reverse DNS checks failed for our mail.
    AuthFailure,
    /// The receiver is throttling us.
    RateLimited,
    /// An ARF complaint: the recipient reported the message as spam.
    Complaint,
    /// An out-of-office auto-reply.
    Vacation,
    /// A failure with a code whose cause is not in this vocabulary.
    Other,
    /// No code and no recognisable text.
    Unknown,
}

/// How the result was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// RFC 3464 `message/delivery-status`.
    Dsn,
    /// RFC 6533 `message/global-delivery-status`.
    GlobalDsn,
    /// RFC 5965 `message/feedback-report`.
    Arf,
    /// A plain-text bounce without a machine-readable part.
    Text,
    /// An RFC 3834 auto-reply.
    AutoReply,
    /// Not a bounce, complaint or auto-reply.
    None,
}

/// Which software's wording the human-readable part matches, if any. Only a
/// hint for the report: the classification does not depend on it for DSNs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Producer {
    Postfix,
    Exim,
    Sendmail,
    Qmail,
    Exchange,
    Gmail,
    Yahoo,
    AmazonSes,
}

/// The result for one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientResult {
    /// The failed address, lower-cased.
    pub address: String,
    /// The address as the sender gave it (RFC 3464 Original-Recipient).
    pub original_recipient: Option<String>,
    pub kind: Kind,
    pub reason: Reason,
    /// The enhanced status code (RFC 3463), e.g. `5.1.1`.
    pub status: Option<String>,
    /// The SMTP reply code, e.g. 550.
    pub smtp_code: Option<u16>,
    /// The server's own words, whitespace collapsed.
    pub diagnostic: Option<String>,
    /// The host that gave the answer (RFC 3464 Remote-MTA).
    pub remote_mta: Option<String>,
}

/// Headers of the returned original message, for matching.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Original {
    /// Its Message-ID, without angle brackets.
    pub message_id: Option<String>,
    /// Its `X-Whatsup-Campaign` header.
    pub campaign: Option<String>,
    /// Its `X-Whatsup-Delivery` header (the id of the delivery row).
    pub delivery: Option<String>,
    /// The first address of its `To` header, lower-cased.
    pub to: Option<String>,
}

/// What a message that came back says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    /// A failure, delay or complaint the intake must act on.
    pub is_bounce: bool,
    pub format: Format,
    pub producer: Option<Producer>,
    /// ARF Feedback-Type, lower-cased, for reports.
    pub feedback_type: Option<String>,
    pub recipients: Vec<RecipientResult>,
    /// Where the bounce itself was delivered (the VERP address, if used).
    pub envelope_to: Option<String>,
    pub original: Original,
}

/// Input that is not a message at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error("the input is empty")]
    Empty,
    #[error("the input is not an e-mail message (no header found)")]
    NotAMessage,
}

/// Classifies one raw message. See the module documentation for the order
/// of the checks.
pub fn classify(raw: &[u8]) -> Result<Classification, ClassifyError> {
    classify_at_depth(raw, 0)
}

const MAX_DEPTH: usize = 3;

fn classify_at_depth(raw: &[u8], depth: usize) -> Result<Classification, ClassifyError> {
    let raw = &raw[..raw.len().min(MAX_SCAN_BYTES)];
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ClassifyError::Empty);
    }
    let parsed = mail_parser::MessageParser::default()
        .parse(raw)
        .ok_or(ClassifyError::NotAMessage)?;
    let msg = message::View::new(&parsed);
    if msg.headers.is_empty() {
        return Err(ClassifyError::NotAMessage);
    }
    let mut result = Classification {
        is_bounce: false,
        format: Format::None,
        producer: text::producer(&msg),
        feedback_type: None,
        recipients: Vec::new(),
        envelope_to: msg.envelope_to(),
        original: msg.original(),
    };

    if let Some(report) = msg.feedback_report.as_deref() {
        arf::read(&msg, report, &mut result);
    } else if let Some(dsn) = dsn::read(&msg) {
        result.format = dsn.format;
        result.recipients = dsn.recipients;
        result.is_bounce = !result.recipients.is_empty();
    }
    if result.format == Format::None {
        if let Some(recipients) = text::read(&msg, result.producer, &result.original) {
            result.format = Format::Text;
            result.is_bounce = true;
            result.recipients = recipients;
        }
    }
    if result.format == Format::None {
        if let Some(recipients) = ses_mail::read(&msg) {
            result.format = Format::Text;
            result.is_bounce = !recipients.is_empty();
            result.recipients = recipients;
        }
    }
    if result.format == Format::None && !rules_out_autoreply(&msg) {
        if let Some(r) = autoreply::read(&msg) {
            result.format = Format::AutoReply;
            result.recipients = vec![r];
        }
    }
    if result.format == Format::None && depth < MAX_DEPTH {
        for inner in msg.attached_messages() {
            if let Ok(mut nested) = classify_at_depth(inner, depth + 1) {
                if nested.is_bounce {
                    nested.envelope_to = nested.envelope_to.or(result.envelope_to);
                    return Ok(nested);
                }
            }
        }
    }
    dedupe(&mut result.recipients);
    Ok(result)
}

/// Whether the headers say the message is a bounce, which an auto-reply
/// never is: a daemon sender, a bounce subject or `X-Failed-Recipients`
/// (MTAs mark their bounces `Auto-Submitted: auto-replied` too). A null
/// Return-Path counts only when the subject does not read as an auto-reply
/// and the text is no challenge: RFC 3834 asks auto-replies to be sent with
/// one as well.
fn rules_out_autoreply(msg: &message::View) -> bool {
    text::daemon_sender(msg)
        || text::bounce_subject(msg)
        || msg.headers.has("X-Failed-Recipients")
        || (text::null_return_path(msg)
            && !autoreply::subject_says(msg)
            && !text::is_challenge(msg))
}

/// Keeps the first result for each address, and at most [`MAX_RECIPIENTS`].
fn dedupe(recipients: &mut Vec<RecipientResult>) {
    let mut seen = std::collections::HashSet::new();
    recipients.retain(|r| seen.insert(r.address.clone()));
    recipients.truncate(MAX_RECIPIENTS);
}

#[cfg(test)]
mod tests;
