//! Postmark's bounce and spam complaint webhooks.
//!
//! **Authentication.** Postmark does not sign its webhooks. Its documented
//! protection is HTTP Basic credentials in the webhook URL
//! (`https://USER:PASSWORD@host/webhooks/postmark`), which it sends as an
//! `Authorization: Basic` header; they are compared with the configured
//! `webhooks.postmark_username` and `webhooks.postmark_password` in constant
//! time (SHA-256 of each side, then [`subtle`]). Serve the endpoint over
//! HTTPS only, or the credentials travel in clear. Missing or wrong
//! credentials are both 401 with a `WWW-Authenticate` challenge.
//!
//! **Payload.** One JSON object per request. `RecordType` `Bounce` and
//! `SpamComplaint` are read; other record types (Delivery, Open, Click,
//! SubscriptionChange) are acknowledged and not recorded. The bounce `Type`
//! (or its `TypeCode`) is Postmark's verdict, and `Details` the remote
//! server's words (`Description` is Postmark's generic text for the type,
//! stored only when there are no details, never classified):
//!
//! | `Type` | result |
//! |---|---|
//! | `HardBounce` | permanent failure |
//! | `BadEmailAddress` | permanent, category "invalid address" |
//! | `SoftBounce` | transient failure |
//! | `DnsError` | transient, category "dns error" |
//! | `Transient` | a `delay` |
//! | `Blocked`, `SpamNotification`, `VirusNotification`, `DMARCPolicy` | permanent, category "blocked", "spam", "virus", "dmarc" (all soft by the rules) |
//! | `SpamComplaint` | a `complaint` |
//! | `Unsubscribe` | an unsubscribe request (kind `unsubscribe`, like a mail to the unsubscribe address) |
//! | `AutoResponder`, `AddressChange`, `ChallengeVerification` | `auto_reply` (`vacation`, `has_moved`, `filtered`) |
//! | `ManuallyDeactivated`, `Unconfirmed`, `SMTPApiError`, `TemplateRenderingFailed` | `unknown` (recorded, no action) |
//! | `Subscribe`, `OpenRelayTest`, `InboundError` | not recorded |
//! | anything else | a failure Postmark did not place (`Undetermined`) |
//!
//! For matching, `Metadata` keys `whatsup_delivery` and `whatsup_campaign`
//! are used when the sender set them (`X-PM-Metadata-whatsup_delivery`),
//! and `MessageID` is looked up among the deliveries' Message-IDs.

use axum::http::{header, HeaderMap};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Finding, Hints, Notice, Rejection};
use crate::bounce::intake::hex;
use crate::bounce::reported::{self, Report, Verdict};
use crate::bounce::{Kind, Reason};
use crate::config::Secret;

/// The configured credentials, kept as SHA-256 digests.
#[derive(Clone)]
pub struct Credentials {
    user: [u8; 32],
    password: [u8; 32],
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials([redacted])")
    }
}

impl Credentials {
    pub fn new(user: &str, password: &Secret) -> Credentials {
        Credentials {
            user: Sha256::digest(user.as_bytes()).into(),
            password: Sha256::digest(password.expose().as_bytes()).into(),
        }
    }

    /// Checks the request's `Authorization: Basic` header.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Rejection> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(Rejection::Unauthenticated(
                "HTTP Basic credentials are required".into(),
            ));
        };
        let wrong = || Rejection::Unauthenticated("wrong HTTP Basic credentials".into());
        let value = value.to_str().map_err(|_| wrong())?.trim();
        let (scheme, encoded) = value.split_once(' ').ok_or_else(wrong)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(wrong());
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| wrong())?;
        let colon = decoded.iter().position(|&b| b == b':').ok_or_else(wrong)?;
        let user: [u8; 32] = Sha256::digest(&decoded[..colon]).into();
        let password: [u8; 32] = Sha256::digest(&decoded[colon + 1..]).into();
        let same = user[..].ct_eq(&self.user[..]) & password[..].ct_eq(&self.password[..]);
        if bool::from(same) {
            Ok(())
        } else {
            Err(wrong())
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Hook {
    #[serde(default)]
    record_type: Option<String>,
    #[serde(rename = "ID", default)]
    id: Option<serde_json::Value>,
    #[serde(rename = "Type", default)]
    bounce_type: Option<String>,
    #[serde(default)]
    type_code: Option<i64>,
    #[serde(rename = "MessageID", default)]
    message_id: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// What a Postmark bounce type means to the intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Treatment {
    Fail(Verdict, &'static str),
    Stated(Kind, Reason),
    Unsubscribe,
    Ignore,
}

/// Postmark's bounce types, by name and by `TypeCode`.
const TYPES: &[(&str, i64, Treatment)] = {
    use Treatment::*;
    &[
        ("HardBounce", 1, Fail(Verdict::Permanent, "")),
        ("Transient", 2, Fail(Verdict::Delayed, "")),
        ("Unsubscribe", 16, Unsubscribe),
        ("Subscribe", 32, Ignore),
        (
            "AutoResponder",
            64,
            Stated(Kind::AutoReply, Reason::Vacation),
        ),
        (
            "AddressChange",
            128,
            Stated(Kind::AutoReply, Reason::HasMoved),
        ),
        ("DnsError", 256, Fail(Verdict::Transient, "dns error")),
        ("SpamNotification", 512, Fail(Verdict::Permanent, "spam")),
        ("OpenRelayTest", 1024, Ignore),
        ("Unknown", 2048, Fail(Verdict::Undetermined, "")),
        ("SoftBounce", 4096, Fail(Verdict::Transient, "")),
        ("VirusNotification", 8192, Fail(Verdict::Permanent, "virus")),
        (
            "ChallengeVerification",
            16384,
            Stated(Kind::AutoReply, Reason::Filtered),
        ),
        (
            "BadEmailAddress",
            100000,
            Fail(Verdict::Permanent, "invalid address"),
        ),
        (
            "SpamComplaint",
            100001,
            Stated(Kind::Complaint, Reason::Complaint),
        ),
        (
            "ManuallyDeactivated",
            100002,
            Stated(Kind::Unknown, Reason::Policy),
        ),
        ("Unconfirmed", 100003, Stated(Kind::Unknown, Reason::Policy)),
        ("Blocked", 100006, Fail(Verdict::Permanent, "blocked")),
        (
            "SMTPApiError",
            100007,
            Stated(Kind::Unknown, Reason::SystemError),
        ),
        ("InboundError", 100008, Ignore),
        ("DMARCPolicy", 100009, Fail(Verdict::Permanent, "dmarc")),
        (
            "TemplateRenderingFailed",
            100010,
            Stated(Kind::Unknown, Reason::SystemError),
        ),
    ]
};

fn treatment(name: Option<&str>, code: Option<i64>) -> Treatment {
    TYPES
        .iter()
        .find(|(n, _, _)| Some(*n) == name)
        .or_else(|| TYPES.iter().find(|(_, c, _)| Some(*c) == code))
        .map(|(_, _, t)| *t)
        .unwrap_or(Treatment::Fail(Verdict::Undetermined, ""))
}

/// Reads an authenticated body: the notice to record, or `None` for a
/// record the intake does not act on.
pub fn parse(body: &[u8]) -> Result<Option<Notice>, Rejection> {
    let hook: Hook = serde_json::from_slice(body)
        .map_err(|e| Rejection::BadRequest(format!("not a Postmark webhook: {e}")))?;
    let record = hook.record_type.as_deref().unwrap_or("Bounce");
    let format = match record {
        "Bounce" => "postmark_bounce",
        "SpamComplaint" => "postmark_spam_complaint",
        _ => return Ok(None),
    };
    let t = if record == "SpamComplaint" {
        Treatment::Stated(Kind::Complaint, Reason::Complaint)
    } else {
        treatment(hook.bounce_type.as_deref(), hook.type_code)
    };
    if t == Treatment::Ignore {
        return Ok(None);
    }
    let address = hook
        .email
        .as_deref()
        .and_then(reported::normalise_address)
        .ok_or_else(|| Rejection::BadRequest(format!("a Postmark {record} without Email")))?;
    let details = hook.details.as_deref().unwrap_or_default().trim();
    let shown = if details.is_empty() {
        hook.description.as_deref().unwrap_or_default()
    } else {
        details
    };
    let finding = match t {
        Treatment::Fail(verdict, category) => reported::failure(&Report {
            address: &address,
            verdict,
            status: None,
            diagnostic: details,
            category,
        })
        .map(|mut r| {
            if r.diagnostic.is_none() {
                r.diagnostic = reported::diagnostic(shown);
            }
            Finding::result(r)
        }),
        Treatment::Stated(kind, reason) => {
            reported::stated(&address, kind, reason, shown).map(Finding::result)
        }
        Treatment::Unsubscribe => reported::stated(&address, Kind::Unknown, Reason::Other, shown)
            .map(Finding::unsubscribe_request),
        Treatment::Ignore => None,
    };
    let Some(finding) = finding else {
        return Ok(None);
    };
    let meta = |key: &str| {
        hook.metadata.as_ref()?.get(key).and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    Ok(Some(Notice {
        key: hex(&Sha256::digest(body)),
        id: match &hook.id {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => String::new(),
        },
        format,
        findings: vec![finding],
        hints: Hints {
            envelope_sender: None,
            delivery: meta("whatsup_delivery"),
            campaign: meta("whatsup_campaign"),
            message_id: hook.message_id.clone().filter(|m| !m.is_empty()),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn only_the_configured_credentials_pass() {
        let c = Credentials::new("postmark", &Secret::new("pa:ss"));
        assert!(c.check(&basic("postmark", "pa:ss")).is_ok());
        assert!(c.check(&basic("postmark", "pa:sS")).is_err());
        assert!(c.check(&basic("Postmark", "pa:ss")).is_err());
        assert!(c.check(&HeaderMap::new()).is_err());
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(c.check(&bearer).is_err());
        assert!(!format!("{c:?}").contains("pa:ss"));
    }

    #[test]
    fn a_hard_bounce_is_classified_from_its_details_not_its_description() {
        let n = parse(
            br#"{"RecordType":"Bounce","ID":4323372036854775807,"Type":"HardBounce","TypeCode":1,
            "MessageID":"883953f4-6105-42a2-a16a-77a8eac79483","Metadata":{"whatsup_delivery":"9","whatsup_campaign":2},
            "Email":"Jane@Example.org","Description":"The server was unable to deliver your message (ex: unknown user, mailbox not found).",
            "Details":"smtp;550 5.2.2 mailbox is full"}"#,
        )
        .unwrap()
        .unwrap();
        let r = &n.findings[0].result;
        assert_eq!(r.address, "jane@example.org");
        assert_eq!((r.kind, r.reason), (Kind::Soft, Reason::MailboxFull));
        assert_eq!(n.id, "4323372036854775807");
        assert_eq!(n.hints.delivery.as_deref(), Some("9"));
        assert_eq!(n.hints.campaign.as_deref(), Some("2"));
        let plain = parse(
            br#"{"RecordType":"Bounce","Type":"HardBounce","Email":"a@example.org",
            "Description":"The server was unable to deliver your message (ex: unknown user, mailbox not found)."}"#,
        )
        .unwrap()
        .unwrap();
        let r = &plain.findings[0].result;
        assert_eq!((r.kind, r.reason), (Kind::Soft, Reason::Other));
        assert!(r.diagnostic.as_deref().unwrap().starts_with("The server"));
    }

    #[test]
    fn types_are_read_by_name_or_by_code() {
        assert_eq!(
            treatment(None, Some(4096)),
            Treatment::Fail(Verdict::Transient, "")
        );
        assert_eq!(
            treatment(Some("SpamComplaint"), None),
            Treatment::Stated(Kind::Complaint, Reason::Complaint)
        );
        assert_eq!(
            treatment(Some("SomethingNew"), Some(7)),
            Treatment::Fail(Verdict::Undetermined, "")
        );
    }

    #[test]
    fn an_unsubscribe_reply_is_an_unsubscribe_request_and_a_delivery_is_ignored() {
        let n = parse(br#"{"RecordType":"Bounce","Type":"Unsubscribe","TypeCode":16,"Email":"a@example.org"}"#)
            .unwrap()
            .unwrap();
        assert!(n.findings[0].unsubscribe);
        assert!(
            parse(br#"{"RecordType":"Delivery","Recipient":"a@example.org"}"#)
                .unwrap()
                .is_none()
        );
        assert!(
            parse(br#"{"RecordType":"Bounce","Type":"Subscribe","Email":"a@example.org"}"#)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn malformed_bodies_are_bad_requests() {
        for bad in [
            &b"[]"[..],
            b"nope",
            br#"{"RecordType":"Bounce","Type":"HardBounce"}"#,
            br#"{"RecordType":"Bounce","Email":5}"#,
        ] {
            assert!(
                matches!(parse(bad), Err(Rejection::BadRequest(_))),
                "{} was accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
