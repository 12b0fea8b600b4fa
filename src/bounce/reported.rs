//! Failures that a sending service reports in structured form (the SES, SendGrid
//! and Postmark webhooks), turned into the same [`RecipientResult`]s as a
//! bounce message, with the same vocabulary and the same rules.
//!
//! A provider gives, per recipient, some of: its own verdict (permanent,
//! transient, delayed), an enhanced status code, the remote server's text
//! (often `smtp; 550 5.1.1 …`), and a category of its own (SES
//! `bounceSubType`, SendGrid `type`/`bounce_classification`, Postmark
//! `Type`). [`failure`] feeds these to [`rules::decide`](super::rules::decide):
//!
//! - the enhanced code is the one given, else the first in the text; the SMTP
//!   reply code is the first in the text;
//! - the verdict is the DSN action (`failed`, or `delayed` for a delay);
//! - a provider verdict without any code stands in for one: `5.0.0` for a
//!   permanent failure, `4.0.0` for a transient one. Without a reason that
//!   is an unexplained failure, `soft` like every unexplained failure;
//! - when the text and the code leave the reason `other`, `unknown` or the
//!   fallback `expired`, the
//!   provider's category decides it, given as a phrase of the rules' own
//!   table (`"mailbox full"`, `"blocked"`, …), so there is no second
//!   vocabulary;
//! - a failure the provider calls transient is never `hard`, whatever the
//!   code: the provider has seen the address work or expects it to.
//!
//! The stored status and diagnostic are the provider's, never the stand-ins.

use super::rules::{decide, Evidence};
use super::scan::{collapse_ws, find_enhanced, find_smtp_code};
use super::{Kind, Reason, RecipientResult};

/// What the provider itself says about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It will not be delivered, and retrying will not help.
    Permanent,
    /// It was not delivered this time.
    Transient,
    /// Not delivered yet; the provider is still trying.
    Delayed,
    /// The provider does not say.
    Undetermined,
}

/// One recipient's failure as a provider reports it.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    pub address: &'a str,
    pub verdict: Verdict,
    /// The enhanced status code the provider gives, if any.
    pub status: Option<&'a str>,
    /// The remote server's text (or the provider's, if that is all).
    pub diagnostic: &'a str,
    /// A phrase from the rules' text table for the provider's own category,
    /// used only when the code and text give no reason; empty for none.
    pub category: &'a str,
}

/// The result for one reported failure, or `None` for a success (a 2.x.x
/// status) or an empty address.
pub fn failure(r: &Report) -> Option<RecipientResult> {
    let address = normalise_address(r.address)?;
    let given = r.status.map(str::trim).filter(|s| is_enhanced(s));
    let enhanced = given
        .map(str::to_string)
        .or_else(|| find_enhanced(r.diagnostic));
    let smtp = find_smtp_code(strip_type(r.diagnostic));
    let stand_in = match (enhanced.is_some() || smtp.is_some(), r.verdict) {
        (false, Verdict::Permanent) => Some("5.0.0"),
        (false, Verdict::Transient) => Some("4.0.0"),
        _ => None,
    };
    let evidence = Evidence {
        action: match r.verdict {
            Verdict::Delayed => Some("delayed"),
            Verdict::Permanent | Verdict::Transient => Some("failed"),
            Verdict::Undetermined => None,
        },
        enhanced: enhanced.as_deref().or(stand_in),
        smtp,
        text: r.diagnostic,
        notice_class: None,
        notice_is_delay: false,
    };
    let (mut kind, mut reason) = decide(&evidence)?;
    // Expired too: a failed transient code with nothing more specific is
    // `expired` by the rules, and the provider's category says more.
    if matches!(reason, Reason::Other | Reason::Unknown | Reason::Expired) && !r.category.is_empty()
    {
        if let Some(better) = decide(&Evidence {
            text: r.category,
            ..evidence.clone()
        }) {
            (kind, reason) = better;
        }
    }
    if r.verdict == Verdict::Transient && kind == Kind::Hard {
        kind = Kind::Soft;
    }
    Some(RecipientResult {
        address,
        original_recipient: None,
        kind,
        reason,
        status: enhanced,
        smtp_code: smtp,
        diagnostic: diagnostic(r.diagnostic),
        remote_mta: None,
    })
}

/// A result whose kind and reason the provider states outright (a spam
/// complaint, an auto-reply), or `None` for an empty address.
pub fn stated(address: &str, kind: Kind, reason: Reason, text: &str) -> Option<RecipientResult> {
    Some(RecipientResult {
        address: normalise_address(address)?,
        original_recipient: None,
        kind,
        reason,
        status: None,
        smtp_code: None,
        diagnostic: diagnostic(text),
        remote_mta: None,
    })
}

/// The rules' phrase for an SES `bounceSubType` (the webhook's and a
/// mailed notification's), or `""` for none.
pub fn ses_bounce_category(sub_type: &str) -> &'static str {
    match sub_type {
        "MailboxFull" => "mailbox full",
        "MessageTooLarge" => "message too large",
        "ContentRejected" => "content rejected",
        "AttachmentRejected" => "attachment",
        // "has a recent history of bouncing as an invalid address"
        "Suppressed" | "OnAccountSuppressionList" => "invalid address",
        "NoEmail" => "no such address",
        _ => "",
    }
}

/// Trimmed, without angle brackets, lower-cased; `None` if empty or
/// absurdly long. The address is kept even if it is not valid: providers
/// report malformed addresses too, and matching simply finds no contact.
pub fn normalise_address(address: &str) -> Option<String> {
    let a = address
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_lowercase();
    (!a.is_empty() && a.len() <= 320).then_some(a)
}

/// The text as stored: whitespace collapsed, cut at
/// [`MAX_DIAGNOSTIC_CHARS`](super::MAX_DIAGNOSTIC_CHARS); `None` if empty.
pub fn diagnostic(text: &str) -> Option<String> {
    let d = collapse_ws(text);
    (!d.is_empty()).then_some(d)
}

/// `smtp; 550 …` (the RFC 3464 diagnostic type) without the type, so that
/// the reply code is found at the start.
fn strip_type(text: &str) -> &str {
    let t = text.trim_start();
    match t.split_once(';') {
        Some((ty, rest)) if ty.trim().eq_ignore_ascii_case("smtp") => rest,
        _ => t,
    }
}

/// `2.0.0`, `5.1.1`, `4.7.650`: class 2, 4 or 5, then two numbers of one to
/// three digits.
fn is_enhanced(s: &str) -> bool {
    let mut parts = s.split('.');
    let class_ok = matches!(parts.next(), Some("2" | "4" | "5"));
    let rest: Vec<&str> = parts.collect();
    class_ok
        && rest.len() == 2
        && rest
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report<'a>(verdict: Verdict, status: Option<&'a str>, text: &'a str) -> Report<'a> {
        Report {
            address: " <Someone@Example.ORG> ",
            verdict,
            status,
            diagnostic: text,
            category: "",
        }
    }

    #[test]
    fn a_permanent_unknown_user_is_hard_with_the_providers_code_and_text() {
        let r = failure(&report(
            Verdict::Permanent,
            Some("5.1.1"),
            "smtp; 550 5.1.1 user unknown",
        ))
        .unwrap();
        assert_eq!(r.address, "someone@example.org");
        assert_eq!((r.kind, r.reason), (Kind::Hard, Reason::UserUnknown));
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
        assert_eq!(r.smtp_code, Some(550));
        assert_eq!(
            r.diagnostic.as_deref(),
            Some("smtp; 550 5.1.1 user unknown")
        );
    }

    #[test]
    fn a_permanent_verdict_without_any_code_is_an_unexplained_soft_failure_with_no_made_up_status()
    {
        let r = failure(&report(Verdict::Permanent, None, "")).unwrap();
        assert_eq!((r.kind, r.reason), (Kind::Soft, Reason::Other));
        assert_eq!(r.status, None);
        assert_eq!(r.diagnostic, None);
    }

    #[test]
    fn the_category_decides_only_when_code_and_text_say_nothing() {
        let mut r = report(Verdict::Transient, None, "");
        r.category = "mailbox full";
        let got = failure(&r).unwrap();
        assert_eq!((got.kind, got.reason), (Kind::Soft, Reason::MailboxFull));
        let mut r = report(Verdict::Permanent, Some("5.1.1"), "550 no such user here");
        r.category = "mailbox full";
        let got = failure(&r).unwrap();
        assert_eq!((got.kind, got.reason), (Kind::Hard, Reason::UserUnknown));
    }

    #[test]
    fn a_delay_is_a_delay_and_a_success_is_nothing() {
        let got = failure(&report(
            Verdict::Delayed,
            None,
            "421 4.7.0 try again later, too many connections",
        ))
        .unwrap();
        assert_eq!((got.kind, got.reason), (Kind::Delay, Reason::RateLimited));
        assert_eq!(got.status.as_deref(), Some("4.7.0"));
        assert!(failure(&report(Verdict::Undetermined, Some("2.0.0"), "250 ok")).is_none());
    }

    #[test]
    fn a_transient_failure_is_never_hard() {
        let got = failure(&report(Verdict::Transient, Some("5.1.1"), "user unknown")).unwrap();
        assert_eq!((got.kind, got.reason), (Kind::Soft, Reason::UserUnknown));
    }

    #[test]
    fn a_status_that_is_not_an_enhanced_code_is_ignored() {
        let got = failure(&report(Verdict::Permanent, Some("bounced"), "")).unwrap();
        assert_eq!(got.status, None);
        assert!(!is_enhanced("5.1"));
        assert!(!is_enhanced("3.1.1"));
        assert!(!is_enhanced("5.1.1234"));
        assert!(is_enhanced("4.7.650"));
    }

    #[test]
    fn an_empty_address_gives_no_result() {
        assert!(failure(&Report {
            address: "  ",
            ..report(Verdict::Permanent, None, "")
        })
        .is_none());
        assert!(stated("<>", Kind::Complaint, Reason::Complaint, "").is_none());
    }
}
