//! Amazon SES notifications that arrive as mail: the JSON of a bounce,
//! complaint or delivery-delay notification in the body (an SNS e-mail-JSON
//! subscription wraps it in the SNS envelope, whose `Message` is the JSON as
//! a string; SES's own feedback forwarding and tools that mail the raw
//! notification put it there directly).
//!
//! The fields read are the same as the `/webhooks/ses` endpoint's:
//! `notificationType`, then `bounce.bounceType`, `bounce.bounceSubType` and
//! `bounce.bouncedRecipients[]` (`emailAddress`, `status`,
//! `diagnosticCode`), `complaint.complainedRecipients[]` and
//! `complaint.complaintFeedbackType`, or `deliveryDelay.delayedRecipients[]`.
//! Each recipient goes through [`reported::failure`], the same rules as a
//! webhook's.

use serde_json::Value;

use super::message::View;
use super::reported::{self, Report, Verdict};
use super::{Kind, Reason, RecipientResult};

/// The results of an SES notification in the body, or `None` if there is
/// none (or it is a delivery or another event without failures).
pub fn read(msg: &View) -> Option<Vec<RecipientResult>> {
    let text = &msg.text;
    if !text.contains("notificationType") {
        return None;
    }
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    let outer: Value = serde_json::from_str(text.get(start..=end)?).ok()?;
    let notification = match outer.get("Message").and_then(Value::as_str) {
        Some(inner) => serde_json::from_str(inner).ok()?,
        None => outer,
    };
    let kind = notification.get("notificationType")?.as_str()?;
    let str_of = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match kind {
        "Bounce" => {
            let bounce = notification.get("bounce")?;
            let verdict = match bounce.get("bounceType").and_then(Value::as_str) {
                Some("Permanent") => Verdict::Permanent,
                Some("Transient") => Verdict::Transient,
                _ => Verdict::Undetermined,
            };
            let category = reported::ses_bounce_category(&str_of(bounce, "bounceSubType"));
            Some(recipients(bounce, "bouncedRecipients", |r| {
                reported::failure(&Report {
                    address: &str_of(r, "emailAddress"),
                    verdict,
                    status: r.get("status").and_then(Value::as_str),
                    diagnostic: &str_of(r, "diagnosticCode"),
                    category,
                })
            }))
        }
        "DeliveryDelay" => {
            let delay = notification.get("deliveryDelay")?;
            Some(recipients(delay, "delayedRecipients", |r| {
                reported::failure(&Report {
                    address: &str_of(r, "emailAddress"),
                    verdict: Verdict::Delayed,
                    status: r.get("status").and_then(Value::as_str),
                    diagnostic: &str_of(r, "diagnosticCode"),
                    category: "",
                })
            }))
        }
        "Complaint" => {
            let complaint = notification.get("complaint")?;
            let feedback = str_of(complaint, "complaintFeedbackType").to_ascii_lowercase();
            let (kind, reason) = match feedback.as_str() {
                "auth-failure" => (Kind::Unknown, Reason::AuthFailure),
                "not-spam" => (Kind::Unknown, Reason::Other),
                _ => (Kind::Complaint, Reason::Complaint),
            };
            let text = if feedback.is_empty() {
                String::new()
            } else {
                format!("feedback type {feedback}")
            };
            Some(recipients(complaint, "complainedRecipients", |r| {
                reported::stated(&str_of(r, "emailAddress"), kind, reason, &text)
            }))
        }
        _ => None,
    }
}

fn recipients(
    v: &Value,
    key: &str,
    each: impl Fn(&Value) -> Option<RecipientResult>,
) -> Vec<RecipientResult> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(each).collect())
        .unwrap_or_default()
}
