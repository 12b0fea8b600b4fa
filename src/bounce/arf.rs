//! RFC 5965 Abuse Reporting Format: a `multipart/report;
//! report-type=feedback-report` whose `message/feedback-report` part says
//! what kind of feedback it is and, often, whom the reported message was
//! sent to.
//!
//! The reported recipient is every `Original-Rcpt-To`; if there is none
//! (providers often redact it), the returned message's `To` (the intake
//! also matches through its `X-Whatsup-Delivery` header); if there is
//! neither, one result with an empty address, so that a fully redacted
//! report still counts. Feedback types `abuse`, `fraud`,
//! `virus`, `other` and any unknown type are complaints. `auth-failure`
//! (RFC 6591) is about our own SPF/DKIM and `not-spam` is the opposite of a
//! complaint: both are reported (they are feedback too, and are recorded)
//! with kind `unknown` and `is_bounce: false`, so they unsubscribe no one.

use super::fields::{parse_groups, Fields};
use super::message::View;
use super::scan::{collapse_ws, find_addresses, first_address};
use super::{Classification, Format, Kind, Reason, RecipientResult};

/// Fills `result` from the feedback-report body `report`.
pub fn read(msg: &View, report: &str, result: &mut Classification) {
    let mut fields = Fields::default();
    if let Some(first) = parse_groups(report).into_iter().next() {
        fields = first;
    }
    let feedback_type = fields
        .get("Feedback-Type")
        .map(|t| {
            t.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|| "unknown".to_string());
    let (kind, reason, is_bounce) = match feedback_type.as_str() {
        "auth-failure" => (Kind::Unknown, Reason::AuthFailure, false),
        "not-spam" => (Kind::Unknown, Reason::Other, false),
        _ => (Kind::Complaint, Reason::Complaint, true),
    };
    let mut addresses: Vec<String> = fields
        .all("Original-Rcpt-To")
        .flat_map(find_addresses)
        .map(|a| a.to_lowercase())
        .collect();
    if addresses.is_empty() {
        addresses.extend(result.original.to.clone());
    }
    // An ARF report names its reporter in From; never report that address.
    let reporter = msg.from.as_deref().and_then(first_address);
    addresses.retain(|a| Some(a) != reporter.as_ref());
    if addresses.is_empty() {
        // Fully redacted: still one result, with an empty address, which the
        // intake matches through the returned message's headers.
        addresses.push(String::new());
    }
    let diagnostic = collapse_ws(msg.human());
    let remote = fields
        .get("Reporting-MTA")
        .map(|v| {
            v.split_once(';')
                .map(|(_, h)| h)
                .unwrap_or(v)
                .trim()
                .to_string()
        })
        .or_else(|| fields.get("User-Agent").map(str::to_string));
    result.format = Format::Arf;
    result.is_bounce = is_bounce;
    result.feedback_type = Some(feedback_type);
    result.recipients = addresses
        .into_iter()
        .map(|address| RecipientResult {
            address,
            original_recipient: None,
            kind,
            reason,
            status: None,
            smtp_code: None,
            diagnostic: (!diagnostic.is_empty()).then(|| diagnostic.clone()),
            remote_mta: remote.clone(),
        })
        .collect();
}
