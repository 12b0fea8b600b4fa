//! The decision: from an action, a status code and a diagnostic text to a
//! [`Kind`] and a [`Reason`].
//!
//! Servers often send a misleading code (a 550 for a full mailbox, a 5.7.1
//! for an unknown user, a 5.4.1 "Access denied" for a recipient that does not
//! exist), so the text is read first and the code only fills in when the
//! text says nothing we recognise. The steps, documented with a table in
//! `docs/bounces.md`:
//!
//! 1. **Reason from the text.** [`TEXT_RULES`] is tried in order; the first
//!    rule with a phrase found in the lower-cased diagnostic wins. The order
//!    puts specific phrases before general ones: "spamhaus" (a block list)
//!    before "spam", "mailbox full" before "mailbox", "connection refused"
//!    before "refused".
//! 2. **Reason from the code,** when the text gave none: the enhanced status
//!    code's subject and detail ([`reason_from_enhanced`]), else the SMTP
//!    reply code ([`reason_from_smtp`]), else `other` if there is any code,
//!    else `unknown`.
//! 3. **Class:** the enhanced code's class (2, 4 or 5), else the SMTP
//!    code's first digit, else the DSN action (`failed` means 5, `delayed`
//!    means 4), else what the wording of the whole notice says (a "permanent
//!    error" notice means 5).
//! 4. **Kind:**
//!    - the action is `delayed` (or the notice is a delay warning): `delay`;
//!    - class 5 and a reason about the address itself (`user_unknown`,
//!      `host_unknown`, `suspended`, `has_moved`) or `other`: `hard`;
//!    - class 5 and any other reason (`mailbox_full`, `message_too_large`,
//!      `blocked`, `spam_detected`, `policy`, `auth_failure`,
//!      `rate_limited`, `network_error`, `system_error`, `expired`,
//!      `filtered`): `soft`, because the address itself is fine: the cause
//!      is a full mailbox, our message, or our sending reputation, and
//!      repeated soft bounces still stop the mail;
//!    - class 4, whatever the text: `soft`. A 4.x.x "user unknown" stays
//!      soft: the server itself said the condition may pass (directory
//!      lookups that fail for a while answer like this), and the soft
//!      threshold stops a truly dead address soon enough;
//!    - class 2 (a success): not a failure at all, the caller drops it;
//!    - no class but a recipient reason from the text: as class 5 if the
//!      notice is a failure notice;
//!    - nothing known: `unknown`.

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
            "new address",
            "forwarding address",
            "moved to",
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
            "null mx",
            "unrouteable domain",
            "unroutable domain",
            "dns error",
            "domain name not found",
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
            "bad destination mailbox",
            "unrouteable address",
            "no mailbox here",
            "couldn't be found",
            "could not be found",
            "user doesn't have",
            "not our customer",
            "undeliverable address",
            "mailbox not available",
            "not listed in",
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
];

/// The reason the text indicates, if any.
pub fn reason_from_text(text: &str) -> Option<Reason> {
    let lower = text.to_lowercase();
    TEXT_RULES
        .iter()
        .find(|r| contains_any(&lower, r.phrases))
        .map(|r| r.reason)
}

/// The reason an enhanced status code indicates (RFC 3463, RFC 7372 and the
/// IANA registry of enhanced status codes).
pub fn reason_from_enhanced(code: &str) -> Option<Reason> {
    let mut it = code.split('.').skip(1).map(|p| p.parse::<u16>().ok());
    let (Some(Some(subject)), Some(Some(detail))) = (it.next(), it.next()) else {
        return None;
    };
    use Reason::*;
    Some(match (subject, detail) {
        (1, 1) | (1, 3) => UserUnknown,
        (1, 2) | (1, 10) => HostUnknown,
        (1, 6) => HasMoved,
        (1, _) => Other,
        (2, 1) => Suspended,
        (2, 2) => MailboxFull,
        (2, 3) => MessageTooLarge,
        (2, _) => Other,
        (3, 4) => MessageTooLarge,
        (3, _) => SystemError,
        (4, 4) => HostUnknown,
        (4, 6) => SystemError,
        (4, 7) => Expired,
        (4, _) => NetworkError,
        (5, _) => SystemError,
        (6, _) => Other,
        (7, 13) => Suspended,
        (7, 20..=26) => AuthFailure,
        (7, 28) => RateLimited,
        (7, _) => Policy,
        _ => return None,
    })
}

/// The reason an SMTP reply code alone indicates (RFC 5321 section 4.2.3).
/// Most codes say too little; only these are specific enough.
pub fn reason_from_smtp(code: u16) -> Option<Reason> {
    match code {
        551 => Some(Reason::HasMoved),
        552 => Some(Reason::MailboxFull),
        421 => Some(Reason::SystemError),
        _ => None,
    }
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
    let has_code = e.enhanced.is_some() || e.smtp.is_some();
    let reason = reason_from_text(e.text)
        .or_else(|| e.enhanced.and_then(reason_from_enhanced))
        .or_else(|| e.smtp.and_then(reason_from_smtp))
        .unwrap_or(if has_code {
            Reason::Other
        } else {
            Reason::Unknown
        });
    if e.action == Some("delayed") || (e.action.is_none() && e.notice_is_delay) {
        return Some((Kind::Delay, reason));
    }
    let kind = match class {
        Some(4) => Kind::Soft,
        Some(5) => match reason {
            Reason::UserUnknown
            | Reason::HostUnknown
            | Reason::Suspended
            | Reason::HasMoved
            | Reason::Other => Kind::Hard,
            Reason::Unknown => Kind::Unknown,
            _ => Kind::Soft,
        },
        _ => Kind::Unknown,
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
    fn a_temporary_user_unknown_stays_soft() {
        assert_eq!(
            kind_reason(
                Some("4.1.1"),
                Some(450),
                "450 4.1.1 <a@example.org>: Recipient address rejected: User unknown"
            ),
            (Kind::Soft, Reason::UserUnknown)
        );
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
            (Kind::Hard, Reason::Suspended)
        );
        assert_eq!(
            kind_reason(Some("5.7.26"), None, "see the administrator"),
            (Kind::Soft, Reason::AuthFailure)
        );
        assert_eq!(
            kind_reason(Some("5.0.0"), None, "see the administrator"),
            (Kind::Hard, Reason::Other)
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
