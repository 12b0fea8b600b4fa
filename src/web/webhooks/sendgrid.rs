//! SendGrid's Event Webhook with signed requests.
//!
//! **Signature.** SendGrid signs `timestamp + body` (the
//! `X-Twilio-Email-Event-Webhook-Timestamp` header's value, then the raw
//! body bytes) with ECDSA P-256 over SHA-256 and sends the signature, DER
//! and base64, in `X-Twilio-Email-Event-Webhook-Signature`. The public key
//! (`webhooks.sendgrid_public_key`) is the base64 SubjectPublicKeyInfo DER
//! that SendGrid shows. A timestamp further than
//! `webhooks.sendgrid_max_age_secs` from now is refused, so a captured
//! request cannot be replayed later (and a replay within that window is a
//! duplicate anyway).
//!
//! **Events.** The body is a JSON array of events. Each event is recorded
//! as one message of its own, keyed by `sg_event_id` (SendGrid may deliver
//! an event more than once, in different batches), or without one by the
//! SHA-256 of the event's own JSON text; all messages of a request are
//! committed in one transaction.
//!
//! | `event` | result |
//! |---|---|
//! | `bounce`, `type` `bounce` | a permanent failure from `status` and `reason` |
//! | `bounce`, `type` `blocked` | the same, category `blocked` |
//! | `deferred` | a `delay` from `response` (or `reason`) |
//! | `dropped`, reason `Bounced Address` | `hard`: SendGrid holds the address as bounced |
//! | `dropped`, reason `Invalid` | `hard`, `user_unknown` (a malformed address) |
//! | `dropped`, reason `Spam Reporting Address` | a `complaint` |
//! | other `dropped` | `unknown` (recorded, no action): the cause is ours or SendGrid's |
//! | `spamreport` | a `complaint` |
//! | anything else (`processed`, `delivered`, `open`, …) | not recorded |
//!
//! `bounce_classification`, when present, is the category for the reason
//! (`Invalid Address`, `Reputation`, `Content`, `Frequency or Volume`,
//! `Technical`). For matching, `smtp-id` is the original Message-ID, and the
//! custom arguments (unique args) `whatsup_delivery` and `whatsup_campaign`
//! are used if the sender set them (`X-SMTPAPI`).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use base64::Engine;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::{Finding, Hints, Notice, Rejection};
use crate::bounce::intake::hex;
use crate::bounce::reported::{self, Report, Verdict};
use crate::bounce::rules::reason_from_text;
use crate::bounce::{Kind, Reason};

pub const SIGNATURE_HEADER: &str = "x-twilio-email-event-webhook-signature";
pub const TIMESTAMP_HEADER: &str = "x-twilio-email-event-webhook-timestamp";

/// Most events accepted in one request.
pub const MAX_EVENTS: usize = 10_000;

/// The configured verification key and tolerance.
#[derive(Debug, Clone)]
pub struct Verifier {
    key: VerifyingKey,
    max_age_secs: u64,
}

impl Verifier {
    /// From the base64 SubjectPublicKeyInfo DER SendGrid shows.
    pub fn new(public_key: &str, max_age_secs: u64) -> anyhow::Result<Verifier> {
        let compact: String = public_key.split_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| anyhow::anyhow!("webhooks.sendgrid_public_key is not base64"))?;
        let key = VerifyingKey::from_public_key_der(&der).map_err(|_| {
            anyhow::anyhow!("webhooks.sendgrid_public_key is not a P-256 public key (SPKI DER)")
        })?;
        Ok(Verifier { key, max_age_secs })
    }

    /// Checks the request's signature and timestamp.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), Rejection> {
        let header = |name: &str| {
            headers
                .get(name)
                .map(|v| v.to_str().map(str::trim).unwrap_or_default())
        };
        let (Some(signature), Some(timestamp)) =
            (header(SIGNATURE_HEADER), header(TIMESTAMP_HEADER))
        else {
            return Err(Rejection::Unauthenticated(
                "the SendGrid signature or timestamp header is missing".into(),
            ));
        };
        let ts: i64 = timestamp.parse().map_err(|_| {
            Rejection::Forbidden(format!("the timestamp {timestamp:?} is not a number"))
        })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if now.abs_diff(ts) > self.max_age_secs {
            return Err(Rejection::Forbidden(format!(
                "the signed timestamp is {}s from now, more than webhooks.sendgrid_max_age_secs",
                now - ts
            )));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|_| Rejection::Forbidden("the signature is not base64".into()))?;
        let signature = Signature::from_der(&der)
            .map_err(|_| Rejection::Forbidden("the signature is not an ECDSA signature".into()))?;
        // (r, s) and (r, n - s) are equally valid; accept either form.
        let signature = signature.normalize_s().unwrap_or(signature);
        let mut signed = Vec::with_capacity(timestamp.len() + body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.extend_from_slice(body);
        self.key
            .verify(&signed, &signature)
            .map_err(|_| Rejection::Forbidden("the signature does not match".into()))
    }
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(default)]
    email: Option<String>,
    event: String,
    #[serde(default)]
    sg_event_id: Option<String>,
    #[serde(rename = "smtp-id", default)]
    smtp_id: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(rename = "type", default)]
    bounce_type: Option<String>,
    #[serde(default)]
    response: Option<String>,
    #[serde(default)]
    bounce_classification: Option<String>,
    #[serde(default)]
    whatsup_delivery: Option<serde_json::Value>,
    #[serde(default)]
    whatsup_campaign: Option<serde_json::Value>,
}

/// Reads a verified body: one notice per event the intake acts on, and the
/// number of events it does not.
pub fn parse(body: &[u8]) -> Result<(Vec<Notice>, usize), Rejection> {
    let events: Vec<&RawValue> = serde_json::from_slice(body)
        .map_err(|e| Rejection::BadRequest(format!("not a JSON array of SendGrid events: {e}")))?;
    if events.len() > MAX_EVENTS {
        return Err(Rejection::BadRequest(format!(
            "{} events in one request, more than {MAX_EVENTS}",
            events.len()
        )));
    }
    let mut notices = Vec::new();
    let mut ignored = 0;
    for (i, raw) in events.iter().enumerate() {
        let e: Event = serde_json::from_str(raw.get())
            .map_err(|err| Rejection::BadRequest(format!("event {i}: {err}")))?;
        let Some(finding) = finding(&e, i)? else {
            ignored += 1;
            continue;
        };
        let key = match e.sg_event_id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => hex(&Sha256::digest(format!("sendgrid:{id}").as_bytes())),
            None => hex(&Sha256::digest(raw.get().as_bytes())),
        };
        notices.push(Notice {
            key,
            id: e.sg_event_id.clone().unwrap_or_default(),
            format: "sendgrid_event",
            findings: vec![finding],
            hints: Hints {
                envelope_sender: None,
                delivery: e.whatsup_delivery.as_ref().and_then(scalar),
                campaign: e.whatsup_campaign.as_ref().and_then(scalar),
                message_id: e.smtp_id.clone(),
            },
        });
    }
    Ok((notices, ignored))
}

/// The finding of one event, `None` for events the intake does not act on.
fn finding(e: &Event, i: usize) -> Result<Option<Finding>, Rejection> {
    let acted_on = matches!(
        e.event.as_str(),
        "bounce" | "blocked" | "dropped" | "deferred" | "spamreport"
    );
    if !acted_on {
        return Ok(None);
    }
    let address = e
        .email
        .as_deref()
        .and_then(reported::normalise_address)
        .ok_or_else(|| Rejection::BadRequest(format!("event {i} ({}) has no email", e.event)))?;
    let reason = e.reason.as_deref().unwrap_or_default();
    let failure = |verdict, diagnostic: &str, category: &str| {
        reported::failure(&Report {
            address: &address,
            verdict,
            status: e.status.as_deref(),
            diagnostic,
            category,
        })
    };
    let stated = |kind, why, text: &str| reported::stated(&address, kind, why, text);
    let result = match e.event.as_str() {
        "bounce" | "blocked" => {
            let blocked = e.event == "blocked" || e.bounce_type.as_deref() == Some("blocked");
            let category = match e.bounce_classification.as_deref() {
                Some("Invalid Address") => "invalid address",
                Some("Reputation") => "poor reputation",
                Some("Content") => "content rejected",
                Some("Frequency or Volume") => "rate limit",
                Some("Technical") => "system error",
                _ if blocked => "blocked",
                _ => "",
            };
            failure(Verdict::Permanent, reason, category)
        }
        "deferred" => {
            let text = e
                .response
                .as_deref()
                .filter(|r| !r.is_empty())
                .unwrap_or(reason);
            failure(Verdict::Delayed, text, "")
        }
        "spamreport" => stated(Kind::Complaint, Reason::Complaint, "spam report"),
        // "dropped": SendGrid did not send it at all.
        _ => match reason {
            "Bounced Address" => failure(Verdict::Permanent, reason, ""),
            "Invalid" => failure(Verdict::Permanent, reason, "invalid address"),
            "Spam Reporting Address" => stated(Kind::Complaint, Reason::Complaint, reason),
            _ => stated(
                Kind::Unknown,
                reason_from_text(reason).unwrap_or(Reason::Policy),
                reason,
            ),
        },
    };
    Ok(result.map(Finding::result))
}

/// A custom argument's value as text (SendGrid keeps the type it was given).
fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::SigningKey;
    use p256::pkcs8::EncodePublicKey;

    fn keys() -> (SigningKey, String) {
        let signing = SigningKey::from_bytes(&[7u8; 32].into()).unwrap();
        let der = p256::PublicKey::from(signing.verifying_key())
            .to_public_key_der()
            .unwrap()
            .into_vec();
        (
            signing,
            base64::engine::general_purpose::STANDARD.encode(der),
        )
    }

    fn headers(signature: &Signature, ts: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let b64 = base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes());
        h.insert(SIGNATURE_HEADER, b64.parse().unwrap());
        h.insert(TIMESTAMP_HEADER, ts.parse().unwrap());
        h
    }

    fn now() -> String {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string()
    }

    #[test]
    fn a_signature_over_timestamp_and_body_verifies_in_either_s_form() {
        let (signing, public) = keys();
        let v = Verifier::new(&public, 300).unwrap();
        let ts = now();
        let body = br#"[{"email":"a@example.org","event":"delivered"}]"#;
        let signed = [ts.as_bytes(), body].concat();
        let sig: Signature = signing.sign(&signed);
        assert!(v.verify(&headers(&sig, &ts), body).is_ok());
        // The same signature with s replaced by n - s.
        let (r, s) = sig.split_scalars();
        let flipped = Signature::from_scalars(r, -*s).unwrap();
        assert_ne!(flipped, sig);
        assert!(v.verify(&headers(&flipped, &ts), body).is_ok());
        let other = br#"[{"email":"b@example.org","event":"delivered"}]"#;
        assert!(matches!(
            v.verify(&headers(&sig, &ts), other),
            Err(Rejection::Forbidden(_))
        ));
    }

    #[test]
    fn a_missing_header_is_unauthenticated_and_an_old_timestamp_forbidden() {
        let (signing, public) = keys();
        let v = Verifier::new(&public, 300).unwrap();
        assert!(matches!(
            v.verify(&HeaderMap::new(), b"[]"),
            Err(Rejection::Unauthenticated(_))
        ));
        let old = (now().parse::<i64>().unwrap() - 3600).to_string();
        let sig: Signature = signing.sign(&[old.as_bytes(), b"[]"].concat());
        assert!(matches!(
            v.verify(&headers(&sig, &old), b"[]"),
            Err(Rejection::Forbidden(m)) if m.contains("max_age")
        ));
    }

    #[test]
    fn a_key_that_is_not_p256_spki_is_a_configuration_error() {
        assert!(Verifier::new("not base64!", 300).is_err());
        assert!(Verifier::new("AAAA", 300).is_err());
    }

    #[test]
    fn events_become_one_notice_each_keyed_by_their_event_id() {
        let body = br#"[
          {"email":"Gone@example.org","event":"bounce","type":"bounce","status":"5.1.1",
           "reason":"550 5.1.1 The email account that you tried to reach does not exist",
           "sg_event_id":"ev-1","smtp-id":"<m1@news.example.com>","whatsup_delivery":42},
          {"email":"rep@example.org","event":"bounce","type":"blocked","status":"5.0.0",
           "reason":"550 rejected","sg_event_id":"ev-2"},
          {"email":"slow@example.org","event":"deferred","response":"451 4.7.1 greylisted, try again in 5 minutes","attempt":"1"},
          {"email":"spam@example.org","event":"spamreport","sg_event_id":"ev-4"},
          {"email":"x@example.org","event":"dropped","reason":"Invalid"},
          {"email":"y@example.org","event":"delivered","sg_event_id":"ev-6"}
        ]"#;
        let (notices, ignored) = parse(body).unwrap();
        assert_eq!(ignored, 1);
        let got: Vec<(&str, Kind, Reason)> = notices
            .iter()
            .map(|n| {
                let r = &n.findings[0].result;
                (r.address.as_str(), r.kind, r.reason)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("gone@example.org", Kind::Hard, Reason::UserUnknown),
                ("rep@example.org", Kind::Soft, Reason::Blocked),
                ("slow@example.org", Kind::Delay, Reason::RateLimited),
                ("spam@example.org", Kind::Complaint, Reason::Complaint),
                ("x@example.org", Kind::Hard, Reason::UserUnknown),
            ]
        );
        assert_eq!(notices[0].hints.delivery.as_deref(), Some("42"));
        assert_eq!(
            notices[0].hints.message_id.as_deref(),
            Some("<m1@news.example.com>")
        );
        assert_eq!(
            notices[0].key,
            hex(&Sha256::digest(b"sendgrid:ev-1".as_slice()))
        );
        // Without an event id, the key is the event's own text: stable
        // across retries of the same batch, distinct between events.
        assert_ne!(notices[2].key, notices[4].key);
        assert_eq!(parse(body).unwrap().0[2].key, notices[2].key);
    }

    #[test]
    fn a_body_that_is_not_an_array_of_events_is_a_bad_request() {
        for bad in [
            &b"{}"[..],
            b"[1]",
            b"[{\"email\":\"a@example.org\"}]",
            b"[{\"event\":\"bounce\"}]",
            b"\xff",
        ] {
            assert!(
                matches!(parse(bad), Err(Rejection::BadRequest(_))),
                "{} was accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
