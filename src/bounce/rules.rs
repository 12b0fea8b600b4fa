//! The decision: from an action, a status code and a diagnostic text to a
//! [`Kind`] and a [`Reason`].
//!
//! Servers often send a misleading code (a 550 for a full mailbox, a 5.7.1
//! for an unknown user, a 5.4.1 "Access denied" for a recipient that does not
//! exist), so the text is read first and the code only fills in when the
//! text says nothing we recognise. The steps, documented with a table in
//! `docs/bounces.md`:
//!
//! 1. **Reason from the text.** [`TEXT_RULES`] is tried in order on the
//!    lower-cased diagnostic, with every address and URL in it blanked out
//!    first (so `filtered@example.org` says nothing); the first rule with a
//!    phrase found wins. The order puts specific phrases before general
//!    ones: "spamhaus" (a block list) before "spam", "mailbox full" before
//!    "mailbox", "connection refused" before "refused". A host-not-found
//!    text that says to try again is a temporary DNS failure:
//!    `network_error`.
//! 2. **Reason from the code,** when the text gave none: the enhanced status
//!    code's subject and detail ([`reason_from_enhanced`]), else the SMTP
//!    reply code ([`reason_from_smtp`]), else `other` if there is any code,
//!    else `unknown`. A few codes are specific enough to beat the text:
//!    x.1.7 and x.1.8 (our sender) are `sender_rejected`, and x.1.10 and
//!    x.7.27 (null MX) are `not_accept`, whatever words come with them.
//! 3. **The stage.** A refusal of MAIL FROM, HELO/EHLO or the connection
//!    ([`stage`]) is about our side: an address reason there becomes
//!    `sender_rejected` (MAIL FROM) or `blocked` (connection, HELO). A "user
//!    unknown" at the DATA stage without an x.1.x code is a filter:
//!    `filtered`.
//! 4. **Class:** the enhanced code's class (2, 4 or 5), else the SMTP
//!    code's first digit, else the DSN action (`failed` means 5, `delayed`
//!    means 4), else what the wording of the whole notice says.
//! 5. **Kind**, after Sisimai's reason taxonomy (see `docs/bounces.md`):
//!    - the action is `delayed` (or the notice is a delay warning), unless
//!      the status is x.4.7 (the delivery time expired, so it is over):
//!      `delay`;
//!    - a class 2 status or a `delivered`/`relayed`/`expanded` action: no
//!      failure at all, the caller drops it;
//!    - `user_unknown`, `host_unknown` and `has_moved`: `hard`, whatever the
//!      class: the reason is about the address itself;
//!    - `not_accept`: `hard`, unless the class is 4 or the text says the
//!      failure is temporary;
//!    - every other reason: `soft`. The address may be fine: the cause is a
//!      suspended or full mailbox, our message, our sender or reputation, a
//!      filter, the network, or an unexplained failure, and repeated soft
//!      bounces still stop the mail;
//!    - reason `unknown` with no class at all: `unknown`.
//!
//!    An action `failed` with a class 4 status and nothing more specific
//!    is `expired`: the sending MTA gave up on a temporary failure.

use super::scan::contains_any;
use super::{Kind, Reason};

/// What one recipient's failure looked like.
#[derive(Debug, Default, Clone)]
pub struct Evidence<'a> {
    /// The RFC 3464 Action, lower-case (`failed`, `delayed`, …).
    pub action: Option<&'a str>,
    /// The enhanced status code, `5.1.1`.
    pub enhanced: Option<&'a str>,
    /// The SMTP reply code, 550.
    pub smtp: Option<u16>,
    /// The server's text.
    pub text: &'a str,
    /// The class the notice as a whole implies (5 for "permanent error"
    /// wording, 4 for "temporary"), if the recipient has no code.
    pub notice_class: Option<u8>,
    /// The notice is a delay warning (messages are still being retried).
    pub notice_is_delay: bool,
}

/// One row of the text rules: the reason, and the phrases (lower case) that
/// indicate it.
pub struct TextRule {
    pub reason: Reason,
    pub phrases: &'static [&'static str],
}

/// The text rules, tried in order. Also printed as the table in
/// `docs/bounces.md`.
pub const TEXT_RULES: &[TextRule] = &[
    TextRule {
        // Office 365 Directory-Based Edge Blocking answers an unknown
        // recipient with "5.4.1 Recipient address rejected: Access denied".
        reason: Reason::UserUnknown,
        phrases: &["recipient address rejected: access denied"],
    },
    TextRule {
        // Before the address rules: "Sender address rejected: Domain not
        // found" is about our sender, not the recipient's domain.
        reason: Reason::SenderRejected,
        phrases: &[
            "sender address rejected",
            "sender rejected",
            "sender verify failed",
            "sender verification failed",
            "sender address is invalid",
            "invalid sender",
            "domain of sender address",
            "sender domain must exist",
            "sender address does not exist",
            "unknown sender",
            "sender not accepted",
            "mail from rejected",
        ],
    },
    TextRule {
        reason: Reason::MailboxFull,
        phrases: &[
            "mailbox full",
            "mailbox is full",
            "mailbox quota",
            "quota exceeded",
            "over quota",
            "over its quota",
            "exceeded storage",
            "exceeded its storage",
            "insufficient storage",
            "storage allocation",
            "mailbox size limit",
            "full mailbox",
            "out of storage",
            "user is over",
            "disk quota",
            "not enough space",
            "mailbox has exceeded",
            "quota full",
            "mailfolder is full",
            "mail folder is full",
            "box is full",
            "exceeded the local limit",
        ],
    },
    TextRule {
        reason: Reason::MessageTooLarge,
        phrases: &[
            "message too large",
            "message is too large",
            "message too big",
            "message size exceeds",
            "exceeds size limit",
            "size exceeds",
            "message length exceeds",
            "exceeds the maximum size",
            "message exceeds",
            "too large for",
        ],
    },
    TextRule {
        reason: Reason::ContentError,
        phrases: &[
            "headers too large",
            "header too large",
            "header size exceeds",
            "too many headers",
            "8-bit",
            "8bit data",
            "8bit character",
            "contains 8bit",
            "line limit",
            "line too long",
            "lines too long",
            "line length exceeded",
            "invalid mime",
            "malformed mime",
            "header is not valid",
            "bad header",
        ],
    },
    TextRule {
        reason: Reason::RateLimited,
        phrases: &[
            "rate limit",
            "ratelimit",
            "rate-limit",
            "too many messages",
            "too many connections",
            "too many emails",
            "throttl",
            "temporarily deferred",
            "unexpected volume",
            "receiving mail at a rate",
            "sending rate",
            "try again in",
            "exceeded the maximum number of",
            "flood",
        ],
    },
    TextRule {
        reason: Reason::Blocked,
        phrases: &[
            "spamhaus",
            "spamcop",
            "blacklist",
            "black list",
            "blocklist",
            "block list",
            "blocked using",
            "denylist",
            "dnsbl",
            " rbl",
            "(rbl",
            "barracuda",
            "sorbs",
            "listed at",
            "listed on",
            "poor reputation",
            "bad reputation",
            "low reputation",
            "ip reputation",
            "sender reputation",
            "reputation of",
        ],
    },
    TextRule {
        reason: Reason::SpamDetected,
        phrases: &[
            "spam",
            "unsolicited",
            "junk mail",
            "bulk mail",
            "content rejected",
            "message content",
            "phish",
        ],
    },
    TextRule {
        reason: Reason::AuthFailure,
        phrases: &[
            "dmarc",
            "spf",
            "dkim",
            "unauthenticated",
            "not authenticated",
            "authentication",
            "sender domain does not",
            "reverse dns",
            "ptr record",
        ],
    },
    TextRule {
        reason: Reason::Suspended,
        phrases: &[
            "account disabled",
            "account has been disabled",
            "account is disabled",
            "is disabled",
            "mailbox disabled",
            "mailbox is disabled",
            "account has been suspended",
            "account suspended",
            "is suspended",
            "deactivated",
            "inactive",
            "account expired",
            "account has expired",
            "no longer active",
            "not active",
            "account locked",
            "mailbox locked",
            "is locked",
            "frozen",
        ],
    },
    TextRule {
        reason: Reason::HasMoved,
        phrases: &[
            "has moved",
            "user not local",
            "no longer with",
            "no longer at",
            "no longer on server",
            "new address",
            "forwarding address",
            "moved to",
            "has been replaced by",
        ],
    },
    TextRule {
        // Before the host rules: a null MX is a domain that exists.
        reason: Reason::NotAccept,
        phrases: &[
            "does not accept mail",
            "does not accept e-mail",
            "does not accept email",
            "accepts no mail",
            "null mx",
            "nullmx",
            "no smtp service",
            "not accepting network messages",
            "not accepting mail",
        ],
    },
    TextRule {
        reason: Reason::HostUnknown,
        phrases: &[
            "host unknown",
            "unknown host",
            "host not found",
            "host or domain name not found",
            "domain not found",
            "no such domain",
            "domain does not exist",
            "nonexistent domain",
            "non-existent domain",
            "non-existent host",
            "name service error",
            "name or service not known",
            "nxdomain",
            "no mx record",
            "no mx or a record",
            "unrouteable domain",
            "unroutable domain",
            "dns error",
            "domain name not found",
            "domain is not valid",
            "invalid domain",
            "unknown domain",
            "domain doesnt exist",
            "domain doesn't exist",
            // Exim's word for an address no router could place: in
            // practice a domain whose lookups failed.
            "unrouteable address",
        ],
    },
    TextRule {
        reason: Reason::UserUnknown,
        phrases: &[
            "user unknown",
            "unknown user",
            "unknown recipient",
            "unknown address",
            "unknown or illegal alias",
            "no such user",
            "no such recipient",
            "no such mailbox",
            "no such address",
            "no such person",
            "no mailbox",
            "mailbox not found",
            "mailbox unavailable",
            "mailbox does not exist",
            "mailbox doesn't exist",
            "does not exist",
            "doesn't exist",
            "address not found",
            "recipient not found",
            "recipnotfound",
            "recipientnotfound",
            "user not found",
            "not a valid recipient",
            "invalid recipient",
            "invalid address",
            "invalid mailbox",
            "invalid final delivery userid",
            "bad destination mailbox",
            "no mailbox here",
            "couldn't be found",
            "could not be found",
            "user doesn't have",
            "not our customer",
            "undeliverable address",
            "mailbox not available",
            "not listed in",
            "name is not recognized",
            "name is not recognised",
            "account does not exist",
            "no longer valid",
            "not a known user",
            "user invalid",
            "unknown local part",
        ],
    },
    TextRule {
        reason: Reason::Expired,
        phrases: &[
            "retry timeout exceeded",
            "retry time exceeded",
            "expired",
            "giving up",
            "gave up",
            "too long in the queue",
            "delivery time expired",
            "maximum time",
            "could not be delivered within",
            "message timeout",
            "delivery failed 20 attempts",
        ],
    },
    TextRule {
        reason: Reason::NetworkError,
        phrases: &[
            "connection refused",
            "connection timed out",
            "timed out",
            "connection reset",
            "lost connection",
            "network is unreachable",
            "no route to host",
            "host unreachable",
            "tls",
            "ssl",
            "unable to connect",
            "could not connect",
            "connect to",
        ],
    },
    TextRule {
        reason: Reason::Filtered,
        phrases: &[
            "virus",
            "malware",
            "infected",
            "content filter",
            "filtered",
            "attachment",
            "rejected by recipient",
            "recipient's rules",
            "recipient has chosen",
        ],
    },
    TextRule {
        reason: Reason::Policy,
        phrases: &[
            "policy",
            "relay access denied",
            "relaying denied",
            "relay not permitted",
            "not permitted",
            "not allowed",
            "not authorized",
            "unauthorized",
            "administrative prohibition",
            "prohibited",
            "restricted",
            "access denied",
            "only accepts mail",
            "may not have permission",
            "not have permission to post",
        ],
    },
    TextRule {
        reason: Reason::Blocked,
        phrases: &["blocked", "banned", "rejected due to", "refused"],
    },
    TextRule {
        reason: Reason::SystemError,
        phrases: &[
            "mail loop",
            "loops back",
            "loop detected",
            "too many hops",
            "hop count",
            "internal error",
            "local error",
            "system error",
            "i/o error",
            "input/output error",
            "server error",
            "service unavailable",
            "not available",
            "temporarily unavailable",
            "resources",
            "out of memory",
            "try again later",
            "temporary failure",
            "misconfigur",
        ],
    },
    TextRule {
        // Last: "quota" alone also appears in sending-rate texts, which the
        // rate rules above catch first.
        reason: Reason::MailboxFull,
        phrases: &["quota"],
    },
];

/// The reason the text indicates, if any.
pub fn reason_from_text(text: &str) -> Option<Reason> {
    let lower = blank_addresses_and_urls(&text.to_lowercase());
    let reason = TEXT_RULES
        .iter()
        .find(|r| contains_any(&lower, r.phrases))
        .map(|r| r.reason)?;
    // "Name service error … Host not found, try again": the DNS did not
    // answer, which says nothing about the domain.
    if reason == Reason::HostUnknown && says_temporary(&lower) {
        return Some(Reason::NetworkError);
    }
    Some(reason)
}

/// Whether the lower-cased text says the failure is temporary.
fn says_temporary(lower: &str) -> bool {
    contains_any(
        lower,
        &[
            "try again",
            "temporar",
            "servfail",
            "server failure",
            "timeout during",
            "dns timeout",
        ],
    )
}

/// `lower` with every e-mail address and URL replaced by spaces, so that a
/// phrase is never matched inside one (`filtered@example.org`,
/// `https://example.org/blocked.html`).
fn blank_addresses_and_urls(lower: &str) -> String {
    let mut out = String::with_capacity(lower.len());
    for word in lower.split_inclusive(char::is_whitespace) {
        let token = word.trim_end();
        let is_address = token.contains('@') && token.len() > 2;
        let is_url = token.contains("://") || token.starts_with("www.");
        if is_address || is_url {
            out.extend(std::iter::repeat(' ').take(word.len()));
        } else {
            out.push_str(word);
        }
    }
    out
}

/// The reason an enhanced status code indicates (RFC 3463, RFC 7372, RFC
/// 7505 and the IANA registry of enhanced status codes).
pub fn reason_from_enhanced(code: &str) -> Option<Reason> {
    let (subject, detail) = subject_detail(code)?;
    use Reason::*;
    Some(match (subject, detail) {
        (1, 1) | (1, 3) => UserUnknown,
        (1, 2) => HostUnknown,
        (1, 10) => NotAccept,
        (1, 6) => HasMoved,
        (1, 7) | (1, 8) => SenderRejected,
        (1, _) => Other,
        (2, 1) => Suspended,
        (2, 2) => MailboxFull,
        (2, 3) => MessageTooLarge,
        (2, _) => Other,
        (3, 2) => NotAccept,
        (3, 4) => MessageTooLarge,
        (3, _) => SystemError,
        (4, 4) => HostUnknown,
        (4, 6) => SystemError,
        (4, 7) => Expired,
        (4, _) => NetworkError,
        (5, _) => SystemError,
        (6, _) => ContentError,
        (7, 13) => Suspended,
        (7, 20..=26) => AuthFailure,
        (7, 27) => NotAccept,
        (7, 28) => RateLimited,
        (7, _) => Policy,
        _ => return None,
    })
}

/// `5.1.10` → `(1, 10)`.
fn subject_detail(code: &str) -> Option<(u16, u16)> {
    let mut it = code.split('.').skip(1).map(|p| p.parse::<u16>().ok());
    match (it.next(), it.next()) {
        (Some(Some(subject)), Some(Some(detail))) => Some((subject, detail)),
        _ => None,
    }
}

/// Enhanced codes specific enough to decide the reason whatever the text
/// says: the sender's address (x.1.7, x.1.8) and a null MX (x.1.10, x.7.27).
fn decisive_enhanced(code: &str) -> Option<Reason> {
    match subject_detail(code)? {
        (1, 7) | (1, 8) => Some(Reason::SenderRejected),
        (1, 10) | (7, 27) => Some(Reason::NotAccept),
        _ => None,
    }
}

/// The reason an SMTP reply code alone indicates (RFC 5321 section 4.2.3,
/// RFC 7504). Most codes say too little; only these are specific enough.
pub fn reason_from_smtp(code: u16) -> Option<Reason> {
    match code {
        551 => Some(Reason::HasMoved),
        552 => Some(Reason::MailboxFull),
        521 | 556 => Some(Reason::NotAccept),
        421 => Some(Reason::SystemError),
        _ => None,
    }
}

/// The SMTP stage a refusal came at, as the diagnostic tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The greeting, HELO/EHLO or the TLS handshake.
    Connect,
    /// MAIL FROM: our envelope sender.
    MailFrom,
    /// RCPT TO: the recipient.
    RcptTo,
    /// DATA or the end of the data: the message.
    Data,
}

/// The stage the text names (Postfix "in reply to X command", Exim "after
/// X", Sendmail transcripts `>>> X`), if any. The last one named wins: a
/// transcript ends with the command that failed.
pub fn stage(text: &str) -> Option<Stage> {
    let lower = text.to_lowercase();
    const CUES: &[(&str, Stage)] = &[
        ("in reply to mail from", Stage::MailFrom),
        ("after mail from", Stage::MailFrom),
        ("after pipelined mail from", Stage::MailFrom),
        (">>> mail from", Stage::MailFrom),
        ("in reply to rcpt to", Stage::RcptTo),
        ("after rcpt to", Stage::RcptTo),
        ("after pipelined rcpt to", Stage::RcptTo),
        (">>> rcpt to", Stage::RcptTo),
        ("in reply to end of data", Stage::Data),
        ("in reply to data", Stage::Data),
        ("after end of data", Stage::Data),
        ("after data", Stage::Data),
        ("after pipelined data", Stage::Data),
        (">>> data", Stage::Data),
        ("in reply to helo", Stage::Connect),
        ("in reply to ehlo", Stage::Connect),
        ("after helo", Stage::Connect),
        ("after ehlo", Stage::Connect),
        ("after initial connection", Stage::Connect),
        ("refused to talk to me", Stage::Connect),
        ("in reply to initial greeting", Stage::Connect),
        ("in reply to starttls", Stage::Connect),
        ("after starttls", Stage::Connect),
    ];
    CUES.iter()
        .filter_map(|(cue, stage)| lower.rfind(cue).map(|pos| (pos, *stage)))
        .max_by_key(|(pos, _)| *pos)
        .map(|(_, stage)| stage)
}

/// The class of the evidence: 2, 4 or 5, if any is known.
fn class_of(e: &Evidence) -> Option<u8> {
    if let Some(c) = e.enhanced.and_then(|s| s.bytes().next()) {
        return Some(c - b'0');
    }
    if let Some(code) = e.smtp {
        return Some((code / 100) as u8);
    }
    match e.action {
        Some("failed") => return Some(5),
        Some("delayed") => return Some(4),
        _ => {}
    }
    e.notice_class
}

/// Whether a reason is about the recipient's address itself.
fn about_the_address(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::UserUnknown | Reason::HostUnknown | Reason::HasMoved | Reason::NotAccept
    )
}

/// The reason, from the text, the codes and the stage.
fn reason_of(e: &Evidence) -> Reason {
    let has_code = e.enhanced.is_some() || e.smtp.is_some();
    let from_enhanced = e.enhanced.and_then(reason_from_enhanced);
    // "I/O error", "server error": words any failure may carry, weaker
    // than a specific enhanced code (a 5.2.2 with "input/output error").
    let from_text = reason_from_text(e.text).filter(|r| {
        *r != Reason::SystemError
            || matches!(
                from_enhanced,
                None | Some(Reason::Other | Reason::SystemError)
            )
    });
    let reason = e
        .enhanced
        .and_then(decisive_enhanced)
        .or(from_text)
        .or(from_enhanced)
        .or_else(|| e.smtp.and_then(reason_from_smtp))
        .unwrap_or(if has_code {
            Reason::Other
        } else {
            Reason::Unknown
        });
    // A 521 or 556 is the domain refusing all mail, whatever it is called.
    if reason == Reason::HostUnknown && matches!(e.smtp, Some(521 | 556)) {
        return Reason::NotAccept;
    }
    match stage(e.text) {
        Some(Stage::MailFrom) if about_the_address(reason) => Reason::SenderRejected,
        Some(Stage::Connect) if about_the_address(reason) => Reason::Blocked,
        Some(Stage::Data)
            if reason == Reason::UserUnknown
                && !e
                    .enhanced
                    .and_then(subject_detail)
                    .is_some_and(|(s, _)| s == 1) =>
        {
            Reason::Filtered
        }
        _ => reason,
    }
}

/// Decides the kind and reason of one recipient's result. Returns `None`
/// for a success (class 2 or a delivered/relayed/expanded action).
pub fn decide(e: &Evidence) -> Option<(Kind, Reason)> {
    if matches!(e.action, Some("delivered" | "relayed" | "expanded")) {
        return None;
    }
    let class = class_of(e);
    if class == Some(2) {
        return None;
    }
    let mut reason = reason_of(e);
    let expired_status = e
        .enhanced
        .and_then(subject_detail)
        .is_some_and(|sd| sd == (4, 7));
    let delayed = e.action == Some("delayed") || (e.action.is_none() && e.notice_is_delay);
    if delayed && !expired_status {
        return Some((Kind::Delay, reason));
    }
    if e.action == Some("failed")
        && class == Some(4)
        && matches!(reason, Reason::Other | Reason::Unknown)
    {
        reason = Reason::Expired;
    }
    let kind = match reason {
        Reason::UserUnknown | Reason::HostUnknown | Reason::HasMoved => Kind::Hard,
        Reason::NotAccept => {
            if class == Some(4) || says_temporary(&e.text.to_lowercase()) {
                Kind::Soft
            } else {
                Kind::Hard
            }
        }
        Reason::Unknown if class.is_none() => Kind::Unknown,
        _ => Kind::Soft,
    };
    Some((kind, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_reason(enhanced: Option<&str>, smtp: Option<u16>, text: &str) -> (Kind, Reason) {
        decide(&Evidence {
            action: Some("failed"),
            enhanced,
            smtp,
            text,
            ..Default::default()
        })
        .expect("a failure")
    }

    #[test]
    fn a_permanent_unknown_user_is_a_hard_bounce() {
        assert_eq!(
            kind_reason(Some("5.1.1"), Some(550), "550 5.1.1 <a@example.org>: Recipient address rejected: User unknown in virtual mailbox table"),
            (Kind::Hard, Reason::UserUnknown)
        );
    }

    #[test]
    fn a_full_mailbox_is_soft_even_with_a_permanent_code() {
        assert_eq!(
            kind_reason(Some("5.1.1"), Some(550), "550 5.1.1 mailbox full"),
            (Kind::Soft, Reason::MailboxFull)
        );
        assert_eq!(
            kind_reason(None, Some(552), "552 requested action aborted"),
            (Kind::Soft, Reason::MailboxFull)
        );
    }

    #[test]
    fn a_block_list_listing_is_blocked_and_soft_although_the_text_says_spam() {
        assert_eq!(
            kind_reason(Some("5.7.1"), Some(554), "554 5.7.1 Service unavailable; Client host [192.0.2.7] blocked using zen.spamhaus.example"),
            (Kind::Soft, Reason::Blocked)
        );
    }

    #[test]
    fn a_temporary_user_unknown_is_still_user_unknown_and_hard() {
        assert_eq!(
            kind_reason(
                Some("4.1.1"),
                Some(450),
                "450 4.1.1 <a@example.org>: Recipient address rejected: User unknown"
            ),
            (Kind::Hard, Reason::UserUnknown)
        );
    }

    #[test]
    fn a_suspended_account_and_an_unexplained_permanent_failure_are_soft() {
        assert_eq!(
            kind_reason(
                Some("5.2.1"),
                Some(550),
                "550 5.2.1 The account is disabled"
            ),
            (Kind::Soft, Reason::Suspended)
        );
        assert_eq!(
            kind_reason(None, Some(554), "554 transaction failed"),
            (Kind::Soft, Reason::Other)
        );
    }

    #[test]
    fn a_refused_sender_is_soft_whatever_does_not_exist() {
        assert_eq!(
            kind_reason(
                Some("5.1.8"),
                Some(553),
                "553 5.1.8 <news@example.com>: Domain of sender address does not exist"
            ),
            (Kind::Soft, Reason::SenderRejected)
        );
        assert_eq!(
            kind_reason(
                None,
                Some(550),
                "host mx.example.org said: 550 no such user here (in reply to MAIL FROM command)"
            ),
            (Kind::Soft, Reason::SenderRejected)
        );
        assert_eq!(
            kind_reason(
                None,
                Some(554),
                "SMTP error from remote mail server after initial connection: 554 host unknown to us"
            ),
            (Kind::Soft, Reason::Blocked)
        );
    }

    #[test]
    fn a_user_unknown_at_the_data_stage_without_an_address_code_is_filtering() {
        assert_eq!(
            kind_reason(
                Some("5.7.1"),
                Some(550),
                "550 5.7.1 user unknown (in reply to end of DATA command)"
            ),
            (Kind::Soft, Reason::Filtered)
        );
        assert_eq!(
            kind_reason(
                Some("5.1.1"),
                Some(550),
                "550 5.1.1 user unknown (in reply to end of DATA command)"
            ),
            (Kind::Hard, Reason::UserUnknown)
        );
    }

    #[test]
    fn a_domain_that_accepts_no_mail_is_hard_unless_temporary() {
        assert_eq!(
            kind_reason(
                Some("5.1.10"),
                None,
                "Domain example.org does not accept mail (nullMX)"
            ),
            (Kind::Hard, Reason::NotAccept)
        );
        assert_eq!(
            kind_reason(None, Some(521), "521 mx.example.org does not accept mail"),
            (Kind::Hard, Reason::NotAccept)
        );
        assert_eq!(
            kind_reason(
                Some("4.3.2"),
                Some(421),
                "421 4.3.2 not accepting network messages"
            ),
            (Kind::Soft, Reason::NotAccept)
        );
    }

    #[test]
    fn a_dns_failure_to_try_again_is_a_network_error_not_an_unknown_host() {
        assert_eq!(
            kind_reason(
                Some("5.4.3"),
                None,
                "Host or domain name not found. Name service error for name=example.org type=MX: Host not found, try again"
            ),
            (Kind::Soft, Reason::NetworkError)
        );
    }

    #[test]
    fn phrases_inside_addresses_and_urls_say_nothing() {
        assert_eq!(
            kind_reason(
                Some("5.1.1"),
                Some(550),
                "550 5.1.1 <filtered@example.org> see https://example.org/blocked.html"
            ),
            (Kind::Hard, Reason::UserUnknown)
        );
    }

    #[test]
    fn content_errors_and_expiry_after_temporary_failures_are_soft() {
        assert_eq!(
            kind_reason(Some("5.6.0"), Some(554), "554 5.6.0 see the administrator"),
            (Kind::Soft, Reason::ContentError)
        );
        assert_eq!(
            kind_reason(Some("4.2.0"), Some(450), "450 4.2.0 Greylisted"),
            (Kind::Soft, Reason::Expired)
        );
        let expired_delay = Evidence {
            action: Some("delayed"),
            enhanced: Some("4.4.7"),
            text: "Envelope expired",
            ..Default::default()
        };
        assert_eq!(decide(&expired_delay), Some((Kind::Soft, Reason::Expired)));
    }

    #[test]
    fn an_access_denied_from_directory_based_edge_blocking_means_the_user_is_unknown() {
        assert_eq!(
            kind_reason(
                Some("5.4.1"),
                Some(550),
                "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)"
            ),
            (Kind::Hard, Reason::UserUnknown)
        );
    }

    #[test]
    fn a_bare_code_decides_when_the_text_says_nothing_known() {
        assert_eq!(
            kind_reason(Some("5.2.1"), None, "see the administrator"),
            (Kind::Soft, Reason::Suspended)
        );
        assert_eq!(
            kind_reason(Some("5.7.26"), None, "see the administrator"),
            (Kind::Soft, Reason::AuthFailure)
        );
        assert_eq!(
            kind_reason(Some("5.0.0"), None, "see the administrator"),
            (Kind::Soft, Reason::Other)
        );
    }

    #[test]
    fn a_delayed_action_is_a_delay_and_a_success_is_no_failure() {
        let delayed = Evidence {
            action: Some("delayed"),
            enhanced: Some("4.4.1"),
            text: "connect to mx.example.org[192.0.2.1]:25: Connection timed out",
            ..Default::default()
        };
        assert_eq!(decide(&delayed), Some((Kind::Delay, Reason::NetworkError)));
        let delivered = Evidence {
            action: Some("delivered"),
            enhanced: Some("2.0.0"),
            ..Default::default()
        };
        assert_eq!(decide(&delivered), None);
    }

    #[test]
    fn no_code_and_no_known_text_is_unknown() {
        let e = Evidence {
            text: "something happened",
            ..Default::default()
        };
        assert_eq!(decide(&e), Some((Kind::Unknown, Reason::Unknown)));
    }
}
