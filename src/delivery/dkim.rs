//! DKIM signing of outgoing messages (RFC 6376), rsa-sha256 or
//! ed25519-sha256 (RFC 8463), relaxed/relaxed canonicalization.
//!
//! A [`Signer`] is built once from a [`DkimConfig`] (the PEM key is parsed
//! then, not per message) and signs raw messages: CRLF line ends, headers,
//! an empty line, the body. [`Signer::sign`] returns the message with a
//! `DKIM-Signature` header in front.
//!
//! The signature covers [`SIGNED_HEADERS`]. A listed header that is absent
//! from the message is signed as absent, so it cannot be added later without
//! breaking the signature. `From`, `Subject`, `List-Unsubscribe` and
//! `List-Unsubscribe-Post` are listed twice ("oversigned"): a second copy of
//! them prepended in transit also breaks the signature.
//!
//! Keys: RSA in PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8 (`BEGIN PRIVATE
//! KEY`) PEM, 2048 bits or more; Ed25519 in PKCS#8 PEM, as written by
//! `openssl genpkey -algorithm ed25519`. [`Signer::dns_record`] gives the TXT
//! record to publish at [`Signer::dns_name`].
//!
//! Cryptography is `ring` (through mail-auth's `ring` feature): constant-time
//! RSA with blinding, and no C toolchain beyond what `ring` itself needs.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use std::path::Path;

/// The header fields the signature covers, in `h=` order. Repeated names
/// are oversigned (see the module documentation).
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "From",
    "Reply-To",
    "Sender",
    "To",
    "Cc",
    "Subject",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Unsubscribe-Post",
    "List-Archive",
    "List-Help",
    "Feedback-ID",
];

/// The signing algorithm; it must match the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DkimAlgorithm {
    /// `rsa-sha256`, published as `k=rsa`.
    RsaSha256,
    /// `ed25519-sha256` (RFC 8463), published as `k=ed25519`.
    Ed25519Sha256,
}

impl DkimAlgorithm {
    /// The `k=` value of the DNS record.
    pub fn key_type(self) -> &'static str {
        match self {
            DkimAlgorithm::RsaSha256 => "rsa",
            DkimAlgorithm::Ed25519Sha256 => "ed25519",
        }
    }
}

impl std::str::FromStr for DkimAlgorithm {
    type Err = DkimError;

    /// Accepts `rsa-sha256`/`rsa` and `ed25519-sha256`/`ed25519`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rsa-sha256" | "rsa" => Ok(DkimAlgorithm::RsaSha256),
            "ed25519-sha256" | "ed25519" => Ok(DkimAlgorithm::Ed25519Sha256),
            _ => Err(DkimError::UnknownAlgorithm(s.to_string())),
        }
    }
}

/// What a [`Signer`] needs. The key is the PEM text itself; use
/// [`DkimConfig::with_key_file`] to read it from a file.
#[derive(Clone)]
pub struct DkimConfig {
    /// The signing domain, `d=`: the From domain or a parent of it, for
    /// DMARC alignment.
    pub domain: String,
    /// The selector, `s=`: the key is published at
    /// `<selector>._domainkey.<domain>`.
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// The private key, PEM.
    pub private_key_pem: String,
}

impl std::fmt::Debug for DkimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimConfig")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("private_key_pem", &"<redacted>")
            .finish()
    }
}

impl DkimConfig {
    /// A configuration whose key is read from the PEM file at `path`.
    pub fn with_key_file(
        domain: impl Into<String>,
        selector: impl Into<String>,
        algorithm: DkimAlgorithm,
        path: &Path,
    ) -> Result<Self, DkimError> {
        let private_key_pem = std::fs::read_to_string(path).map_err(|e| DkimError::KeyFile {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(DkimConfig {
            domain: domain.into(),
            selector: selector.into(),
            algorithm,
            private_key_pem,
        })
    }
}

/// Why a signer could not be built or a message not signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkimError {
    #[error("unknown DKIM algorithm {0:?}: expected rsa-sha256 or ed25519-sha256")]
    UnknownAlgorithm(String),
    #[error("cannot read the DKIM key file {path}: {message}")]
    KeyFile { path: String, message: String },
    #[error("the DKIM {0} is empty or not a valid DNS label sequence")]
    BadName(&'static str),
    #[error("the DKIM key is not a PEM private key: {0}")]
    NotPem(String),
    #[error("the DKIM key is not a usable {algorithm} key: {message}")]
    BadKey {
        algorithm: &'static str,
        message: String,
    },
    #[error("DKIM signing failed: {0}")]
    Sign(String),
}

/// Signs messages with one key. Cheap to share (`Arc`) between tasks.
pub struct Signer {
    inner: DkimSigner<DkimKey, Done>,
    domain: String,
    selector: String,
    algorithm: DkimAlgorithm,
    /// The `p=` bytes: SubjectPublicKeyInfo DER for RSA, the raw 32-byte key
    /// for Ed25519.
    public_key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Parses the key and prepares the signer.
    pub fn new(config: &DkimConfig) -> Result<Self, DkimError> {
        let domain = config
            .domain
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let selector = config.selector.trim().to_ascii_lowercase();
        if !is_dns_name(&domain) {
            return Err(DkimError::BadName("domain"));
        }
        if !is_dns_name(&selector) {
            return Err(DkimError::BadName("selector"));
        }
        let der = PrivateKeyDer::from_pem_slice(config.private_key_pem.as_bytes())
            .map_err(|e| DkimError::NotPem(e.to_string()))?;
        let bad_key = |message: String| DkimError::BadKey {
            algorithm: config.algorithm.key_type(),
            message,
        };
        let (key, public_key) = match config.algorithm {
            DkimAlgorithm::RsaSha256 => {
                if matches!(der, PrivateKeyDer::Sec1(_)) {
                    return Err(bad_key("an EC (SEC1) key is not an RSA key".into()));
                }
                let key =
                    RsaKey::<Sha256>::from_key_der(der).map_err(|e| bad_key(e.to_string()))?;
                let spki = rsa_spki_from_pkcs1(&key.public_key());
                (DkimKey::Rsa(key), spki)
            }
            DkimAlgorithm::Ed25519Sha256 => {
                let PrivateKeyDer::Pkcs8(pkcs8) = der else {
                    return Err(bad_key("an Ed25519 key must be PKCS#8 PEM".into()));
                };
                let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der())
                    .map_err(|e| bad_key(e.to_string()))?;
                let public_key = key.public_key();
                (DkimKey::Ed25519(key), public_key)
            }
        };
        let inner = DkimSigner::from_key(key)
            .domain(domain.clone())
            .selector(selector.clone())
            .headers(SIGNED_HEADERS.iter().copied())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        Ok(Signer {
            inner,
            domain,
            selector,
            algorithm: config.algorithm,
            public_key,
        })
    }

    /// Signs `message` (CRLF, headers and body) and returns it with the
    /// `DKIM-Signature` header prepended.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DkimError> {
        let signature = self
            .inner
            .sign(message)
            .map_err(|e| DkimError::Sign(e.to_string()))?;
        let mut out = Vec::with_capacity(message.len() + 1024);
        signature.write_header(&mut out);
        out.extend_from_slice(message);
        Ok(out)
    }

    pub fn algorithm(&self) -> DkimAlgorithm {
        self.algorithm
    }

    /// Where the public key is published: `<selector>._domainkey.<domain>`.
    pub fn dns_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// The TXT record value to publish at [`dns_name`](Self::dns_name):
    /// `v=DKIM1; k=rsa; p=…` or `v=DKIM1; k=ed25519; p=…`. An RSA-2048
    /// record is longer than 255 characters, so in a zone file it must be
    /// split into several quoted strings (DNS joins them back together).
    pub fn dns_record(&self) -> String {
        format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm.key_type(),
            STANDARD.encode(&self.public_key)
        )
    }
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Wraps a PKCS#1 `RSAPublicKey` into a `SubjectPublicKeyInfo`, the form
/// `openssl rsa -pubout` prints and every DKIM verifier accepts.
fn rsa_spki_from_pkcs1(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }
    const RSA_ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x03];
    der_length(&mut bit_string, pkcs1.len() + 1);
    bit_string.push(0); // no unused bits
    bit_string.extend_from_slice(pkcs1);

    let mut spki = vec![0x30];
    der_length(&mut spki, RSA_ALGORITHM.len() + bit_string.len());
    spki.extend_from_slice(RSA_ALGORITHM);
    spki.extend_from_slice(&bit_string);
    spki
}

fn der_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey;
    use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
    use mail_auth::{
        AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
    };
    use std::borrow::Borrow;
    use std::collections::HashMap;
    use std::hash::Hash;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Instant;

    fn key_path(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/dkim")
            .join(name)
    }

    fn signer(algorithm: DkimAlgorithm, key_file: &str) -> Signer {
        let config =
            DkimConfig::with_key_file("example.org", "news", algorithm, &key_path(key_file))
                .unwrap();
        Signer::new(&config).unwrap()
    }

    fn rsa() -> Signer {
        signer(DkimAlgorithm::RsaSha256, "rsa2048.pem")
    }

    fn ed25519() -> Signer {
        signer(DkimAlgorithm::Ed25519Sha256, "ed25519.pem")
    }

    /// A newsletter as composition produces it: multipart/alternative, the
    /// bulk-sender headers, CRLF line ends.
    fn newsletter() -> Vec<u8> {
        let text = "Dear reader,\r\n\r\nThe spring issue is out.  Read it at\r\nhttps://news.example.org/issues/12\r\n";
        let html = "<!doctype html>\r\n<html><body><p>Dear reader,</p>\r\n<p>The spring issue is out.</p></body></html>\r\n";
        format!(
            "From: Example City News <news@example.org>\r\n\
             Reply-To: editor@example.org\r\n\
             To: reader@example.com\r\n\
             Subject: Spring issue: festivals, exchanges\r\n\
             \tand a new sister city\r\n\
             Date: Sat, 28 Nov 2026 09:00:00 +0900\r\n\
             Message-ID: <c12.r4711@example.org>\r\n\
             MIME-Version: 1.0\r\n\
             List-Id: Example City News <news.example.org>\r\n\
             List-Unsubscribe: <https://news.example.org/u/AQEBwMQHKg>, <mailto:unsubscribe@example.org?subject=AQEBwMQHKg>\r\n\
             List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\
             Feedback-ID: 12:newsletter:whatsup\r\n\
             Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
             \r\n\
             --b1\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\
             \r\n\
             {text}\
             --b1\r\n\
             Content-Type: text/html; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\
             \r\n\
             {html}\
             --b1--\r\n"
        )
        .into_bytes()
    }

    /// A TXT "cache" holding the published key record, so that verification
    /// never asks DNS.
    struct PublishedKeys(HashMap<Box<str>, Txt>);

    impl ResolverCache<Box<str>, Txt> for PublishedKeys {
        fn get<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.get(name).cloned()
        }

        fn remove<Q>(&self, _: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            None
        }

        fn insert(&self, _: Box<str>, _: Txt, _: Instant) {}
    }

    /// Verifies every DKIM signature of `message` against the records the
    /// signers publish, offline.
    fn verify(message: &[u8], published: &[&Signer]) -> Vec<DkimResult> {
        let keys = PublishedKeys(
            published
                .iter()
                .map(|s| {
                    let record = DomainKey::parse(s.dns_record().as_bytes()).unwrap();
                    (
                        format!("{}.", s.dns_name()).into_boxed_str(),
                        Txt::DomainKey(Arc::new(record)),
                    )
                })
                .collect(),
        );
        let parsed = AuthenticatedMessage::parse(message).expect("message parses");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            // No name servers: a lookup that misses the published keys fails
            // instead of going to the network.
            let authenticator = MessageAuthenticator::new(
                ResolverConfig::from_parts(None, vec![], vec![]),
                ResolverOpts::default(),
            )
            .unwrap();
            authenticator
                .verify_dkim(Parameters::new(&parsed).with_txt_cache(&keys))
                .await
                .iter()
                .map(|output| output.result().clone())
                .collect()
        })
    }

    #[test]
    fn an_rsa_signed_newsletter_verifies_against_the_published_key() {
        let signer = rsa();
        let signed = signer.sign(&newsletter()).unwrap();
        assert!(signed.starts_with(b"DKIM-Signature: "));
        assert!(signed.ends_with(&newsletter()));
        let header = String::from_utf8_lossy(&signed[..signed.len() - newsletter().len()]);
        assert!(header.contains("a=rsa-sha256"), "{header}");
        assert!(header.contains("c=relaxed/relaxed"), "{header}");
        assert!(header.contains("d=example.org"), "{header}");
        assert!(header.contains("s=news"), "{header}");
        assert_eq!(verify(&signed, &[&signer]), vec![DkimResult::Pass]);
    }

    #[test]
    fn an_ed25519_signed_newsletter_verifies_against_the_published_key() {
        let signer = ed25519();
        let signed = signer.sign(&newsletter()).unwrap();
        let header = String::from_utf8_lossy(&signed[..signed.len() - newsletter().len()]);
        assert!(header.contains("a=ed25519-sha256"), "{header}");
        assert_eq!(verify(&signed, &[&signer]), vec![DkimResult::Pass]);
    }

    #[test]
    fn a_pkcs1_rsa_key_signs_like_its_pkcs8_form() {
        let pkcs1 = signer(DkimAlgorithm::RsaSha256, "rsa2048-pkcs1.pem");
        assert_eq!(pkcs1.dns_record(), rsa().dns_record());
        let signed = pkcs1.sign(&newsletter()).unwrap();
        assert_eq!(verify(&signed, &[&pkcs1]), vec![DkimResult::Pass]);
    }

    #[test]
    fn the_signature_covers_the_bulk_sender_headers() {
        let signed = rsa().sign(&newsletter()).unwrap();
        let header = String::from_utf8_lossy(&signed[..signed.len() - newsletter().len()]);
        let h = header
            .split(';')
            .map(|tag| tag.split_whitespace().collect::<String>())
            .find_map(|tag| tag.strip_prefix("h=").map(str::to_ascii_lowercase))
            .unwrap();
        let signed_names: Vec<&str> = h.split(':').collect();
        for name in [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "list-id",
            "list-unsubscribe",
            "list-unsubscribe-post",
            "mime-version",
            "content-type",
            "feedback-id",
            "reply-to",
        ] {
            assert!(signed_names.contains(&name), "{name} not in h={h}");
        }
        // Oversigned: one real From, one empty one.
        assert_eq!(signed_names.iter().filter(|n| **n == "from").count(), 2);
    }

    #[test]
    fn a_tampered_body_fails_verification() {
        for signer in [rsa(), ed25519()] {
            let signed = signer.sign(&newsletter()).unwrap();
            let tampered = String::from_utf8(signed)
                .unwrap()
                .replace("spring issue is out", "spring issue is OUT");
            let results = verify(tampered.as_bytes(), &[&signer]);
            assert_eq!(results.len(), 1);
            assert_ne!(results[0], DkimResult::Pass, "{:?}", signer.algorithm());
        }
    }

    #[test]
    fn a_tampered_or_added_header_fails_verification() {
        let signer = ed25519();
        let signed = String::from_utf8(signer.sign(&newsletter()).unwrap()).unwrap();
        let changed_subject = signed.replace("Spring issue", "Urgent issue");
        assert_ne!(
            verify(changed_subject.as_bytes(), &[&signer]),
            vec![DkimResult::Pass]
        );
        // A second From prepended in transit (after the signature).
        let extra_from = signed.replacen(
            "From: Example",
            "From: attacker@example.net\r\nFrom: Example",
            1,
        );
        assert_ne!(
            verify(extra_from.as_bytes(), &[&signer]),
            vec![DkimResult::Pass]
        );
        // A Reply-To-less message cannot gain one.
        let without_reply_to = String::from_utf8(newsletter())
            .unwrap()
            .replace("Reply-To: editor@example.org\r\n", "");
        let signed = String::from_utf8(signer.sign(without_reply_to.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            verify(signed.as_bytes(), &[&signer]),
            vec![DkimResult::Pass]
        );
        let added = signed.replacen(
            "To: reader",
            "Reply-To: attacker@example.net\r\nTo: reader",
            1,
        );
        assert_ne!(verify(added.as_bytes(), &[&signer]), vec![DkimResult::Pass]);
    }

    #[test]
    fn relaxed_canonicalization_tolerates_whitespace_changes_in_transit() {
        let signer = rsa();
        let signed = String::from_utf8(signer.sign(&newsletter()).unwrap()).unwrap();
        let rewrapped = signed
            .replace("Subject: Spring issue:", "Subject:   Spring issue:")
            .replace("is out.  Read", "is out. Read")
            .replace("--b1--\r\n", "--b1--  \r\n\r\n\r\n");
        assert_eq!(
            verify(rewrapped.as_bytes(), &[&signer]),
            vec![DkimResult::Pass]
        );
    }

    #[test]
    fn a_signature_does_not_verify_against_another_key() {
        let signed = rsa().sign(&newsletter()).unwrap();
        let other = signer(DkimAlgorithm::RsaSha256, "rsa2048-other.pem");
        assert_ne!(other.dns_record(), rsa().dns_record());
        assert_ne!(verify(&signed, &[&other]), vec![DkimResult::Pass]);
    }

    #[test]
    fn the_dns_record_publishes_the_same_key_as_openssl() {
        for (signer, public_pem, key_type) in [
            (rsa(), "rsa2048.pub.pem", "rsa"),
            (ed25519(), "ed25519.pub.pem", "ed25519"),
        ] {
            let pem = std::fs::read_to_string(key_path(public_pem)).unwrap();
            let spki: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            let expected = if key_type == "rsa" {
                spki
            } else {
                // The record carries the raw 32-byte key: the SPKI's tail.
                let der = STANDARD.decode(spki).unwrap();
                STANDARD.encode(&der[der.len() - 32..])
            };
            assert_eq!(
                signer.dns_record(),
                format!("v=DKIM1; k={key_type}; p={expected}")
            );
            assert_eq!(signer.dns_name(), "news._domainkey.example.org");
        }
    }

    #[test]
    fn a_key_of_the_wrong_algorithm_or_no_key_is_refused_clearly() {
        let ed_pem = std::fs::read_to_string(key_path("ed25519.pem")).unwrap();
        let rsa_pem = std::fs::read_to_string(key_path("rsa2048.pem")).unwrap();
        let config = |algorithm, pem: &str| DkimConfig {
            domain: "example.org".into(),
            selector: "news".into(),
            algorithm,
            private_key_pem: pem.to_string(),
        };
        assert!(matches!(
            Signer::new(&config(DkimAlgorithm::RsaSha256, &ed_pem)),
            Err(DkimError::BadKey {
                algorithm: "rsa",
                ..
            })
        ));
        assert!(matches!(
            Signer::new(&config(DkimAlgorithm::Ed25519Sha256, &rsa_pem)),
            Err(DkimError::BadKey {
                algorithm: "ed25519",
                ..
            })
        ));
        assert!(matches!(
            Signer::new(&config(DkimAlgorithm::RsaSha256, "not a key")),
            Err(DkimError::NotPem(_))
        ));
        let mut bad_selector = config(DkimAlgorithm::RsaSha256, &rsa_pem);
        bad_selector.selector = "two words".into();
        assert_eq!(
            Signer::new(&bad_selector).unwrap_err(),
            DkimError::BadName("selector")
        );
        let missing = DkimConfig::with_key_file(
            "example.org",
            "news",
            DkimAlgorithm::RsaSha256,
            &key_path("missing.pem"),
        );
        assert!(matches!(missing, Err(DkimError::KeyFile { .. })));
    }

    #[test]
    fn debug_output_never_shows_the_private_key() {
        let pem = std::fs::read_to_string(key_path("ed25519.pem")).unwrap();
        let config = DkimConfig {
            domain: "example.org".into(),
            selector: "news".into(),
            algorithm: DkimAlgorithm::Ed25519Sha256,
            private_key_pem: pem.clone(),
        };
        let body: String = pem.lines().nth(1).unwrap().to_string();
        assert!(!format!("{config:?}").contains(&body));
        assert!(!format!("{:?}", Signer::new(&config).unwrap()).contains(&body));
    }

    #[test]
    fn algorithm_names_parse_from_configuration_text() {
        assert_eq!("rsa-sha256".parse(), Ok(DkimAlgorithm::RsaSha256));
        assert_eq!("Ed25519".parse(), Ok(DkimAlgorithm::Ed25519Sha256));
        assert!("rsa-sha1".parse::<DkimAlgorithm>().is_err());
    }

    /// Also prints how long one signature of a 10 KiB message takes (no
    /// timing is asserted; ring's signing code is fast even in a debug
    /// build, 0.4 s for all 400 here). To see the figures:
    /// `cargo test --release --lib delivery::dkim -- --nocapture`.
    #[test]
    fn a_10_kib_message_signs_and_verifies_and_the_signing_time_is_printed() {
        let mut message = newsletter();
        message.truncate(message.len() - "--b1--\r\n".len());
        while message.len() < 10 * 1024 {
            message.extend_from_slice(b"Lorem ipsum dolor sit amet, consectetur adipiscing.\r\n");
        }
        message.extend_from_slice(b"--b1--\r\n");
        for signer in [rsa(), ed25519()] {
            let rounds = 200;
            let start = Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(signer.sign(&message).unwrap());
            }
            let micros = start.elapsed().as_micros() / rounds;
            println!("{:?}: {micros} µs per 10 KiB message", signer.algorithm());
            let signed = signer.sign(&message).unwrap();
            assert_eq!(verify(&signed, &[&signer]), vec![DkimResult::Pass]);
        }
    }
}
