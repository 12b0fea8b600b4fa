//! Amazon SES notifications, as the `Message` of an SNS notification: both
//! the identity notifications (`notificationType`) and the event publishing
//! of configuration sets (`eventType`).
//!
//! - **Bounce**: one result per `bounce.bouncedRecipients[]`, from its
//!   `status` and `diagnosticCode` with the `bounceType` (`Permanent`,
//!   `Transient`, `Undetermined`) as the provider's verdict and the
//!   `bounceSubType` as its category (`MailboxFull`, `MessageTooLarge`,
//!   `ContentRejected`, `AttachmentRejected`, `Suppressed`); see
//!   [`reported`](crate::bounce::reported).
//! - **Complaint**: each `complaint.complainedRecipients[]` is a complaint,
//!   unless `complaintFeedbackType` is `not-spam` or `auth-failure` (kind
//!   `unknown`, as for ARF reports). The diagnostic records the feedback
//!   type, the user agent and `complaintSubType`.
//! - **DeliveryDelay** (event publishing): each `delayedRecipients[]` is a
//!   `delay`, its `delayType` the category.
//! - Delivery, Send, Open, Click and the other types are acknowledged and
//!   not recorded.
//!
//! For matching, `mail.source` is the envelope sender (the VERP address),
//! and `mail.headers` (sent only when "include original headers" is on)
//! carries `X-Whatsup-Delivery`, `X-Whatsup-Campaign` and `Message-ID`;
//! without them `mail.commonHeaders.messageId` is used.

use serde::Deserialize;

use super::{Finding, Hints, Rejection};
use crate::bounce::reported::{self, Report, Verdict};
use crate::bounce::{Kind, Reason};

/// What one SES notification asks of the intake.
#[derive(Debug)]
pub enum Parsed {
    /// Failures or complaints to record, with a format name.
    Findings {
        format: &'static str,
        findings: Vec<Finding>,
        hints: Hints,
    },
    /// A notification type the intake does not act on.
    Ignored(String),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    notification_type: Option<String>,
    event_type: Option<String>,
    bounce: Option<Bounce>,
    complaint: Option<Complaint>,
    delivery_delay: Option<DeliveryDelay>,
    #[serde(default)]
    mail: Mail,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bounce {
    bounce_type: String,
    #[serde(default)]
    bounce_sub_type: String,
    bounced_recipients: Vec<Recipient>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient {
    email_address: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    diagnostic_code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Complaint {
    complained_recipients: Vec<Recipient>,
    #[serde(default)]
    complaint_feedback_type: Option<String>,
    #[serde(default)]
    complaint_sub_type: Option<String>,
    #[serde(default)]
    user_agent: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryDelay {
    #[serde(default)]
    delay_type: String,
    delayed_recipients: Vec<Recipient>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mail {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    headers: Vec<Header>,
    #[serde(default)]
    common_headers: CommonHeaders,
}

#[derive(Debug, Deserialize)]
struct Header {
    name: String,
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommonHeaders {
    #[serde(default)]
    message_id: Option<String>,
}

/// Reads the SES notification in an SNS `Message`.
pub fn parse(message: &str) -> Result<Parsed, Rejection> {
    let n: Notification = serde_json::from_str(message).map_err(|e| {
        Rejection::BadRequest(format!("the SNS Message is not an SES notification: {e}"))
    })?;
    let Some(kind) = n.notification_type.as_deref().or(n.event_type.as_deref()) else {
        return Err(Rejection::BadRequest(
            "the SES notification has neither notificationType nor eventType".into(),
        ));
    };
    let missing = |what: &str| Rejection::BadRequest(format!("an SES {kind} without {what}"));
    let (format, findings) = match kind {
        "Bounce" => {
            let b = n.bounce.as_ref().ok_or_else(|| missing("bounce"))?;
            ("ses_bounce", bounce(b))
        }
        "Complaint" => {
            let c = n.complaint.as_ref().ok_or_else(|| missing("complaint"))?;
            ("ses_complaint", complaint(c))
        }
        "DeliveryDelay" => {
            let d = n
                .delivery_delay
                .as_ref()
                .ok_or_else(|| missing("deliveryDelay"))?;
            ("ses_delivery_delay", delay(d))
        }
        other => return Ok(Parsed::Ignored(other.to_string())),
    };
    Ok(Parsed::Findings {
        format,
        findings,
        hints: hints(&n.mail),
    })
}

fn bounce(b: &Bounce) -> Vec<Finding> {
    let verdict = match b.bounce_type.as_str() {
        "Permanent" => Verdict::Permanent,
        "Transient" => Verdict::Transient,
        _ => Verdict::Undetermined,
    };
    let category = match b.bounce_sub_type.as_str() {
        "MailboxFull" => "mailbox full",
        "MessageTooLarge" => "message too large",
        "ContentRejected" => "content rejected",
        "AttachmentRejected" => "attachment",
        // "has a recent history of bouncing as an invalid address"
        "Suppressed" => "invalid address",
        _ => "",
    };
    b.bounced_recipients
        .iter()
        .filter_map(|r| {
            reported::failure(&Report {
                address: &r.email_address,
                verdict,
                status: r.status.as_deref(),
                diagnostic: r.diagnostic_code.as_deref().unwrap_or_default(),
                category,
            })
        })
        .map(Finding::result)
        .collect()
}

fn complaint(c: &Complaint) -> Vec<Finding> {
    let feedback = c
        .complaint_feedback_type
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let (kind, reason) = match feedback.as_str() {
        "auth-failure" => (Kind::Unknown, Reason::AuthFailure),
        "not-spam" => (Kind::Unknown, Reason::Other),
        _ => (Kind::Complaint, Reason::Complaint),
    };
    let mut words = Vec::new();
    if !feedback.is_empty() {
        words.push(format!("feedback type {feedback}"));
    }
    if let Some(ua) = c.user_agent.as_deref().filter(|s| !s.is_empty()) {
        words.push(format!("user agent {ua}"));
    }
    if let Some(sub) = c.complaint_sub_type.as_deref().filter(|s| !s.is_empty()) {
        words.push(format!("sub-type {sub}"));
    }
    let diagnostic = words.join("; ");
    c.complained_recipients
        .iter()
        .filter_map(|r| reported::stated(&r.email_address, kind, reason, &diagnostic))
        .map(Finding::result)
        .collect()
}

fn delay(d: &DeliveryDelay) -> Vec<Finding> {
    let category = match d.delay_type.as_str() {
        "MailboxFull" => "mailbox full",
        "SpamDetected" => "spam",
        "RecipientServerError" => "server error",
        "IPFailure" => "blocked",
        "TransientCommunicationFailure" => "connection timed out",
        "InternalFailure" => "internal error",
        _ => "",
    };
    d.delayed_recipients
        .iter()
        .filter_map(|r| {
            reported::failure(&Report {
                address: &r.email_address,
                verdict: Verdict::Delayed,
                status: r.status.as_deref(),
                diagnostic: r.diagnostic_code.as_deref().unwrap_or_default(),
                category,
            })
        })
        .map(Finding::result)
        .collect()
}

fn hints(mail: &Mail) -> Hints {
    let header = |name: &str| {
        mail.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.trim().to_string())
    };
    Hints {
        envelope_sender: mail.source.clone(),
        delivery: header("X-Whatsup-Delivery"),
        campaign: header("X-Whatsup-Campaign"),
        message_id: header("Message-ID").or_else(|| mail.common_headers.message_id.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(json: &str) -> (Vec<Finding>, Hints) {
        match parse(json).unwrap() {
            Parsed::Findings {
                findings, hints, ..
            } => (findings, hints),
            Parsed::Ignored(t) => panic!("ignored {t}"),
        }
    }

    #[test]
    fn a_permanent_bounce_with_headers_gives_a_hard_result_and_every_hint() {
        let (f, h) = findings(
            r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",
            "bouncedRecipients":[{"emailAddress":"Gone@Example.org","action":"failed","status":"5.1.1",
            "diagnosticCode":"smtp; 550 5.1.1 user unknown"}],"timestamp":"2026-01-01T00:00:00.000Z",
            "feedbackId":"x","reportingMTA":"dsn; a8-1.smtp-out.amazonses.com"},
            "mail":{"source":"bounces+tok@news.example.com","messageId":"ses-id","destination":["gone@example.org"],
            "headers":[{"name":"X-Whatsup-Delivery","value":"17"},{"name":"x-whatsup-campaign","value":"3"},
            {"name":"Message-ID","value":"<a.1@news.example.com>"}],
            "commonHeaders":{"messageId":"<other@news.example.com>"}}}"#,
        );
        assert_eq!(f.len(), 1);
        let r = &f[0].result;
        assert_eq!(r.address, "gone@example.org");
        assert_eq!((r.kind, r.reason), (Kind::Hard, Reason::UserUnknown));
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
        assert_eq!(
            h.envelope_sender.as_deref(),
            Some("bounces+tok@news.example.com")
        );
        assert_eq!(h.delivery.as_deref(), Some("17"));
        assert_eq!(h.campaign.as_deref(), Some("3"));
        assert_eq!(h.message_id.as_deref(), Some("<a.1@news.example.com>"));
    }

    #[test]
    fn a_transient_mailbox_full_bounce_without_a_diagnostic_is_soft_mailbox_full() {
        let (f, h) = findings(
            r#"{"notificationType":"Bounce","bounce":{"bounceType":"Transient","bounceSubType":"MailboxFull",
            "bouncedRecipients":[{"emailAddress":"full@example.org"}]},
            "mail":{"commonHeaders":{"messageId":"<m@news.example.com>"}}}"#,
        );
        let r = &f[0].result;
        assert_eq!((r.kind, r.reason), (Kind::Soft, Reason::MailboxFull));
        assert_eq!(r.status, None);
        assert_eq!(h.message_id.as_deref(), Some("<m@news.example.com>"));
    }

    #[test]
    fn a_not_spam_complaint_is_recorded_but_is_no_complaint() {
        let (f, _) = findings(
            r#"{"notificationType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"a@example.org"}],
            "complaintFeedbackType":"not-spam","userAgent":"Mail/1.0"},"mail":{}}"#,
        );
        assert_eq!(f[0].result.kind, Kind::Unknown);
        let (f, _) = findings(
            r#"{"eventType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"a@example.org"}]},"mail":{}}"#,
        );
        assert_eq!(
            (f[0].result.kind, f[0].result.reason),
            (Kind::Complaint, Reason::Complaint)
        );
    }

    #[test]
    fn a_delivery_delay_event_is_a_delay() {
        let (f, _) = findings(
            r#"{"eventType":"DeliveryDelay","deliveryDelay":{"delayType":"MailboxFull",
            "delayedRecipients":[{"emailAddress":"slow@example.org","status":"4.2.2","diagnosticCode":"smtp; 452 4.2.2 over quota"}]},"mail":{}}"#,
        );
        assert_eq!(
            (f[0].result.kind, f[0].result.reason),
            (Kind::Delay, Reason::MailboxFull)
        );
    }

    #[test]
    fn deliveries_and_other_events_are_ignored_and_garbage_is_a_bad_request() {
        assert!(matches!(
            parse(r#"{"notificationType":"Delivery","delivery":{},"mail":{}}"#).unwrap(),
            Parsed::Ignored(t) if t == "Delivery"
        ));
        assert!(matches!(
            parse(r#"{"notificationType":"AmazonSnsSubscriptionSucceeded","message":"ok"}"#)
                .unwrap(),
            Parsed::Ignored(_)
        ));
        for bad in [
            "hello",
            r#"{"mail":{}}"#,
            r#"{"notificationType":"Bounce","mail":{}}"#,
            r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bouncedRecipients":[{}]}}"#,
        ] {
            assert!(
                matches!(parse(bad), Err(Rejection::BadRequest(_))),
                "{bad} was accepted"
            );
        }
    }
}
