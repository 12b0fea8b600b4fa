//! Amazon SNS HTTP(S) deliveries: the JSON envelope, its signature, and the
//! signing certificates.
//!
//! Verification follows the SNS documentation ("Verifying the signatures of
//! Amazon SNS messages"):
//!
//! 1. the envelope's `Type` is `Notification`, `SubscriptionConfirmation` or
//!    `UnsubscribeConfirmation`, and its `TopicArn` is one of
//!    `webhooks.ses_topic_arns` (checked first: a topic of someone else's
//!    account may be signed perfectly well);
//! 2. `SigningCertURL` is `https://`, on the default port, without user
//!    info or query, on a host matching one of `webhooks.ses_cert_hosts`
//!    (`sns.*.amazonaws.com`, where `*` is one DNS label);
//! 3. the certificate is read from the pinned directory
//!    (`webhooks.ses_cert_dir/HOST/PATH`) if it is there, else fetched over
//!    HTTPS when `webhooks.ses_fetch_certs` is on; either way it is kept in
//!    memory by URL. It must be an RSA certificate within its validity
//!    period;
//! 4. the signature (`Signature`, base64) is checked over the string to
//!    sign ([`string_to_sign`]): SHA1withRSA for `SignatureVersion` 1,
//!    SHA256withRSA for 2 (PKCS #1 v1.5, at least 2048-bit keys).
//!
//! The string to sign is `Name\nvalue\n` for each field, in this order:
//! `Message`, `MessageId`, `Subject` (only if present), `Timestamp`,
//! `TopicArn`, `Type` for a notification; `Message`, `MessageId`,
//! `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`, `Type` for the two
//! confirmations.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::Uri;
use base64::Engine;
use serde::Deserialize;
use x509_cert::der::DecodePem;

use super::fetch::{FetchError, Https};
use super::Rejection;

/// At most this many certificates are kept in memory; past that the cache
/// starts over (SNS uses one or two per region at a time).
const MAX_CACHED: usize = 64;

/// A signing certificate is at most this large.
pub const MAX_CERT_BYTES: usize = 64 * 1024;

/// The SNS envelope. Unknown fields are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "MessageId")]
    pub message_id: String,
    #[serde(rename = "TopicArn")]
    pub topic_arn: String,
    #[serde(rename = "Subject", default)]
    pub subject: Option<String>,
    #[serde(rename = "Message")]
    pub message: String,
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    #[serde(rename = "SignatureVersion")]
    pub signature_version: String,
    #[serde(rename = "Signature")]
    pub signature: String,
    #[serde(rename = "SigningCertURL", alias = "SigningCertUrl")]
    pub signing_cert_url: String,
    #[serde(rename = "SubscribeURL", alias = "SubscribeUrl", default)]
    pub subscribe_url: Option<String>,
    #[serde(rename = "Token", default)]
    pub token: Option<String>,
}

/// The three kinds of SNS delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

impl Envelope {
    /// Parses the body; a clear 400 if it is not an SNS envelope.
    pub fn parse(body: &[u8]) -> Result<Envelope, Rejection> {
        serde_json::from_slice(body)
            .map_err(|e| Rejection::BadRequest(format!("not an SNS message: {e}")))
    }

    pub fn kind(&self) -> Result<Kind, Rejection> {
        match self.kind.as_str() {
            "Notification" => Ok(Kind::Notification),
            "SubscriptionConfirmation" => Ok(Kind::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Ok(Kind::UnsubscribeConfirmation),
            other => Err(Rejection::BadRequest(format!(
                "unknown SNS message Type {other:?}"
            ))),
        }
    }
}

/// The string SNS signs for this envelope.
pub fn string_to_sign(e: &Envelope) -> Result<String, Rejection> {
    let mut out = String::with_capacity(e.message.len() + 512);
    let mut field = |name: &str, value: &str| {
        out.push_str(name);
        out.push('\n');
        out.push_str(value);
        out.push('\n');
    };
    match e.kind()? {
        Kind::Notification => {
            field("Message", &e.message);
            field("MessageId", &e.message_id);
            if let Some(subject) = &e.subject {
                field("Subject", subject);
            }
            field("Timestamp", &e.timestamp);
            field("TopicArn", &e.topic_arn);
            field("Type", &e.kind);
        }
        Kind::SubscriptionConfirmation | Kind::UnsubscribeConfirmation => {
            let missing = |name: &str| Rejection::BadRequest(format!("{} without {name}", e.kind));
            let url = e
                .subscribe_url
                .as_deref()
                .ok_or_else(|| missing("SubscribeURL"))?;
            let token = e.token.as_deref().ok_or_else(|| missing("Token"))?;
            field("Message", &e.message);
            field("MessageId", &e.message_id);
            field("SubscribeURL", url);
            field("Timestamp", &e.timestamp);
            field("Token", token);
            field("TopicArn", &e.topic_arn);
            field("Type", &e.kind);
        }
    }
    Ok(out)
}

/// Whether `host` matches `pattern`, label by label, case-insensitively;
/// a `*` label matches one non-empty label of letters, digits and `-`.
pub fn host_matches(host: &str, pattern: &str) -> bool {
    let host: Vec<&str> = host.split('.').collect();
    let pattern: Vec<&str> = pattern.trim().split('.').collect();
    host.len() == pattern.len()
        && host.iter().zip(&pattern).all(|(h, p)| {
            if *p == "*" {
                !h.is_empty()
                    && h.len() <= 63
                    && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            } else {
                !h.is_empty() && h.eq_ignore_ascii_case(p)
            }
        })
}

/// Checks that `url` is `https://` on an allowed host and the default
/// port, with no user info; `allow_query` for the SubscribeURL.
pub fn check_url(url: &str, hosts: &[String], allow_query: bool) -> Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("{url:?} is not https"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{url:?} has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("{url:?} has user info"));
    }
    if authority.port_u16().is_some_and(|p| p != 443) {
        return Err(format!("{url:?} is not on port 443"));
    }
    let host = authority.host();
    if !hosts.iter().any(|p| host_matches(host, p)) {
        return Err(format!(
            "the host {host:?} is not one of webhooks.ses_cert_hosts"
        ));
    }
    if !allow_query && uri.query().is_some() {
        return Err(format!("{url:?} has a query"));
    }
    Ok(uri)
}

/// The public key of a signing certificate.
#[derive(Debug)]
pub struct SigningKey {
    /// PKCS #1 RSAPublicKey, DER.
    rsa: Vec<u8>,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl SigningKey {
    /// Reads a PEM certificate; only RSA keys are accepted.
    pub fn from_pem(pem: &[u8]) -> Result<SigningKey, String> {
        let cert = x509_cert::Certificate::from_pem(pem)
            .map_err(|e| format!("not a PEM certificate: {e}"))?;
        let tbs = &cert.tbs_certificate;
        let spki = &tbs.subject_public_key_info;
        const RSA_ENCRYPTION: x509_cert::der::oid::ObjectIdentifier =
            x509_cert::der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
        if spki.algorithm.oid != RSA_ENCRYPTION {
            return Err(format!(
                "the certificate's key is not RSA ({})",
                spki.algorithm.oid
            ));
        }
        let rsa = spki
            .subject_public_key
            .as_bytes()
            .ok_or("the certificate's key is not a whole number of bytes")?
            .to_vec();
        Ok(SigningKey {
            rsa,
            not_before: UNIX_EPOCH + tbs.validity.not_before.to_unix_duration(),
            not_after: UNIX_EPOCH + tbs.validity.not_after.to_unix_duration(),
        })
    }

    /// Whether the certificate is valid at `now`.
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// Verifies `signature` over `data` for SNS `SignatureVersion` `version`.
    pub fn verify(&self, version: &str, data: &[u8], signature: &[u8]) -> Result<(), String> {
        use ring::signature::{
            UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            RSA_PKCS1_2048_8192_SHA256,
        };
        let algorithm = match version {
            "1" => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            "2" => &RSA_PKCS1_2048_8192_SHA256,
            other => return Err(format!("SignatureVersion {other:?} is not 1 or 2")),
        };
        UnparsedPublicKey::new(algorithm, &self.rsa)
            .verify(data, signature)
            .map_err(|_| "the signature does not match".to_string())
    }
}

/// Signing certificates by URL: pinned files, then HTTPS, kept in memory.
#[derive(Debug)]
pub struct CertStore {
    dir: Option<PathBuf>,
    fetch: Option<Https>,
    cache: Mutex<HashMap<String, Arc<SigningKey>>>,
}

/// Why no certificate could be had.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Not pinned, and fetching is off: the message cannot be verified.
    #[error("the certificate {0} is not pinned in webhooks.ses_cert_dir and fetching is off")]
    NotPinned(String),
    /// Fetching failed: worth trying again later.
    #[error("fetching the certificate {0}: {1}")]
    Fetch(String, FetchError),
    /// The pinned file could not be read: worth trying again later.
    #[error("reading the pinned certificate {0}: {1}")]
    Read(String, std::io::Error),
    /// What was found is not a usable certificate.
    #[error("the certificate {0}: {1}")]
    Invalid(String, String),
}

impl CertStore {
    pub fn new(dir: Option<PathBuf>, fetch: Option<Https>) -> CertStore {
        CertStore {
            dir,
            fetch,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The key of the certificate at `uri` (already checked with
    /// [`check_url`]), valid now.
    pub async fn key(&self, uri: &Uri) -> Result<Arc<SigningKey>, CertError> {
        let url = uri.to_string();
        let now = SystemTime::now();
        if let Some(key) = self.cached(&url) {
            if key.is_valid_at(now) {
                return Ok(key);
            }
            self.lock().remove(&url);
            return Err(CertError::Invalid(url, "expired or not yet valid".into()));
        }
        let pem = match self.pinned_path(uri) {
            Some(path) => match tokio::fs::read(&path).await {
                Ok(pem) => Some(pem),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(CertError::Read(path.display().to_string(), e)),
            },
            None => None,
        };
        let pem = match (pem, &self.fetch) {
            (Some(pem), _) => pem,
            (None, None) => return Err(CertError::NotPinned(url)),
            (None, Some(client)) => {
                let got = client
                    .get(uri)
                    .await
                    .map_err(|e| CertError::Fetch(url.clone(), e))?;
                if got.status != 200 {
                    return Err(CertError::Invalid(
                        url,
                        format!("the server answered {}", got.status),
                    ));
                }
                got.body.to_vec()
            }
        };
        let key = SigningKey::from_pem(&pem).map_err(|e| CertError::Invalid(url.clone(), e))?;
        if !key.is_valid_at(now) {
            return Err(CertError::Invalid(url, "expired or not yet valid".into()));
        }
        let key = Arc::new(key);
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(url, key.clone());
        Ok(key)
    }

    fn cached(&self, url: &str) -> Option<Arc<SigningKey>> {
        self.lock().get(url).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<SigningKey>>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `<dir>/HOST/PATH` for a URL whose path segments are plain names.
    fn pinned_path(&self, uri: &Uri) -> Option<PathBuf> {
        pinned_path(self.dir.as_deref()?, uri)
    }
}

/// `<dir>/HOST/PATH` for `uri`, or `None` if a path segment is empty, `.`,
/// `..` or has characters other than letters, digits, `.`, `_` and `-`.
pub fn pinned_path(dir: &Path, uri: &Uri) -> Option<PathBuf> {
    let host = uri.host()?.to_ascii_lowercase();
    let mut path = dir.join(host);
    for segment in uri.path().trim_start_matches('/').split('/') {
        let plain = !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !plain {
            return None;
        }
        path.push(segment);
    }
    Some(path)
}

/// The complete check of one envelope: topic, certificate URL, certificate,
/// signature. `Ok` means the envelope is authentic.
pub async fn verify(
    e: &Envelope,
    topics: &[String],
    hosts: &[String],
    certs: &CertStore,
) -> Result<(), Rejection> {
    let data = string_to_sign(e)?;
    if !topics.iter().any(|t| t == &e.topic_arn) {
        return Err(Rejection::Forbidden(format!(
            "the topic {} is not in webhooks.ses_topic_arns",
            e.topic_arn
        )));
    }
    if !matches!(e.signature_version.as_str(), "1" | "2") {
        return Err(Rejection::Forbidden(format!(
            "SignatureVersion {:?} is not supported",
            e.signature_version
        )));
    }
    let uri = check_url(&e.signing_cert_url, hosts, false)
        .map_err(|why| Rejection::Forbidden(format!("SigningCertURL refused: {why}")))?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(e.signature.trim())
        .map_err(|_| Rejection::Forbidden("the Signature is not base64".into()))?;
    let key = certs.key(&uri).await.map_err(|err| match err {
        CertError::Fetch(..) | CertError::Read(..) => Rejection::Unavailable(err.to_string()),
        CertError::NotPinned(_) | CertError::Invalid(..) => Rejection::Forbidden(err.to_string()),
    })?;
    key.verify(&e.signature_version, data.as_bytes(), &signature)
        .map_err(Rejection::Forbidden)
}

/// How long a fetch of a certificate or a SubscribeURL may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(kind: &str) -> Envelope {
        Envelope {
            kind: kind.into(),
            message_id: "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324".into(),
            topic_arn: "arn:aws:sns:us-west-2:123456789012:MyTopic".into(),
            subject: None,
            message: "{\"notificationType\":\"Bounce\"}".into(),
            timestamp: "2012-05-02T00:54:06.655Z".into(),
            signature_version: "1".into(),
            signature: String::new(),
            signing_cert_url: String::new(),
            subscribe_url: None,
            token: None,
        }
    }

    #[test]
    fn a_notification_signs_message_id_timestamp_topic_and_type_in_order() {
        let e = envelope("Notification");
        assert_eq!(
            string_to_sign(&e).unwrap(),
            "Message\n{\"notificationType\":\"Bounce\"}\n\
             MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n\
             Timestamp\n2012-05-02T00:54:06.655Z\n\
             TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\n\
             Type\nNotification\n"
        );
    }

    #[test]
    fn a_notification_with_a_subject_signs_it_between_message_id_and_timestamp() {
        let mut e = envelope("Notification");
        e.subject = Some("Amazon SES Email Event Notification".into());
        let s = string_to_sign(&e).unwrap();
        assert!(
            s.contains(
                "MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n\
                 Subject\nAmazon SES Email Event Notification\nTimestamp\n"
            ),
            "{s}"
        );
    }

    #[test]
    fn a_subscription_confirmation_signs_the_subscribe_url_and_token() {
        let mut e = envelope("SubscriptionConfirmation");
        e.message = "You have chosen to subscribe to the topic".into();
        e.subscribe_url = Some("https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn&Token=t0k".into());
        e.token = Some("t0k".into());
        // A Subject is never part of a confirmation's string to sign.
        e.subject = Some("ignored".into());
        assert_eq!(
            string_to_sign(&e).unwrap(),
            "Message\nYou have chosen to subscribe to the topic\n\
             MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n\
             SubscribeURL\nhttps://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn&Token=t0k\n\
             Timestamp\n2012-05-02T00:54:06.655Z\n\
             Token\nt0k\n\
             TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\n\
             Type\nSubscriptionConfirmation\n"
        );
    }

    #[test]
    fn a_confirmation_without_its_token_or_an_unknown_type_is_a_bad_request() {
        let mut e = envelope("UnsubscribeConfirmation");
        e.subscribe_url = Some("https://sns.us-west-2.amazonaws.com/".into());
        assert!(matches!(string_to_sign(&e), Err(Rejection::BadRequest(m)) if m.contains("Token")));
        assert!(matches!(
            string_to_sign(&envelope("Gossip")),
            Err(Rejection::BadRequest(_))
        ));
    }

    #[test]
    fn only_one_label_stands_for_the_star_in_a_host_pattern() {
        let p = "sns.*.amazonaws.com";
        assert!(host_matches("sns.eu-west-1.amazonaws.com", p));
        assert!(host_matches("SNS.US-EAST-1.AMAZONAWS.COM", p));
        assert!(!host_matches("sns.amazonaws.com", p));
        assert!(!host_matches("sns.a.b.amazonaws.com", p));
        assert!(!host_matches("sns.eu-west-1.amazonaws.com.evil.example", p));
        assert!(!host_matches("sns.eu_west.amazonaws.com", p));
        assert!(!host_matches("evil.example", p));
    }

    #[test]
    fn a_certificate_url_must_be_https_on_an_allowed_host_without_tricks() {
        let hosts = vec!["sns.*.amazonaws.com".to_string()];
        let ok = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem";
        assert!(check_url(ok, &hosts, false).is_ok());
        for bad in [
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com:8443/cert.pem",
            "https://sns.us-east-1.amazonaws.com@evil.example/cert.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/cert.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
            "https://sns.us-east-1.amazonaws.com/cert.pem?x=1",
            "not a url",
        ] {
            assert!(check_url(bad, &hosts, false).is_err(), "{bad} was accepted");
        }
        assert!(check_url(
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=x",
            &hosts,
            true
        )
        .is_ok());
    }

    #[test]
    fn a_pinned_path_never_leaves_the_directory() {
        let dir = Path::new("/pins");
        let uri: Uri = "https://sns.x-1.amazonaws.com/a/SimpleNotificationService-1.pem"
            .parse()
            .unwrap();
        assert_eq!(
            pinned_path(dir, &uri).unwrap(),
            Path::new("/pins/sns.x-1.amazonaws.com/a/SimpleNotificationService-1.pem")
        );
        for bad in [
            "https://sns.x-1.amazonaws.com/../etc/passwd",
            "https://sns.x-1.amazonaws.com/a/%2e%2e/b",
            "https://sns.x-1.amazonaws.com/",
            "https://sns.x-1.amazonaws.com/a//b",
        ] {
            let uri: Uri = bad.parse().unwrap();
            assert_eq!(pinned_path(dir, &uri), None, "{bad}");
        }
    }

    fn data(rel: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/webhooks")
                .join(rel),
        )
        .unwrap()
    }

    const TEST_CERT: &str =
        "certs/sns.test-region-1.amazonaws.test/SimpleNotificationService-test.pem";

    #[test]
    fn a_version_1_signature_made_by_another_implementation_verifies() {
        let e = Envelope::parse(&data("ses-complaint-v1.json")).unwrap();
        let key = SigningKey::from_pem(&data(TEST_CERT)).unwrap();
        let signature = base64::engine::general_purpose::STANDARD
            .decode(&e.signature)
            .unwrap();
        let signed = string_to_sign(&e).unwrap();
        assert!(key.verify("1", signed.as_bytes(), &signature).is_ok());
        // Not as version 2, and not with one byte of the message changed.
        assert!(key.verify("2", signed.as_bytes(), &signature).is_err());
        let mut tampered = e.clone();
        tampered.message = tampered.message.replace("abuse", "abusf");
        let signed = string_to_sign(&tampered).unwrap();
        assert!(key.verify("1", signed.as_bytes(), &signature).is_err());
    }

    #[test]
    fn a_certificate_that_is_not_pem_or_not_rsa_is_refused() {
        assert!(SigningKey::from_pem(b"hello").is_err());
        // A throwaway self-signed P-256 certificate.
        const EC_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBejCCASGgAwIBAgIUUG2r7Kfp9L+bRCj/ScWQiR47iJcwCgYIKoZIzj0EAwIw
EjEQMA4GA1UEAwwHZWMudGVzdDAgFw0yNjExMjkwNzMzNThaGA8yMTI2MTEwNTA3
MzM1OFowEjEQMA4GA1UEAwwHZWMudGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABDrNYyIfmtXWGiglu2FZrgfi3tM8znGA3LABT1eEGkE/CfwJNPMN48bn3fU6
94adimwsUtO2Hfe2LrflyyIu4m+jUzBRMB0GA1UdDgQWBBTqvY/lmjV37mfXeTQ2
zxOikEk8UzAfBgNVHSMEGDAWgBTqvY/lmjV37mfXeTQ2zxOikEk8UzAPBgNVHRMB
Af8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIF9xbZjBx+HSBPESqhF936WuMhEZ
vo+gFC9zY8d3nqGgAiAx0rT57FYi7ZbEu1eyTnelzxHtTr7wVry3BCsJ19X5cA==
-----END CERTIFICATE-----
";
        let err = SigningKey::from_pem(EC_CERT.as_bytes()).unwrap_err();
        assert!(err.contains("not RSA"), "{err}");
        let key = SigningKey::from_pem(&data(TEST_CERT)).unwrap();
        assert!(key.is_valid_at(SystemTime::now()));
        assert!(!key.is_valid_at(UNIX_EPOCH));
        assert!(key.verify("3", b"x", b"y").is_err());
        assert!(key.verify("2", b"x", &[0u8; 256]).is_err());
    }
}
