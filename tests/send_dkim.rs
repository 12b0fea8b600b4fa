//! DKIM on the wire: a campaign is signed with ed25519-sha256 and with
//! rsa-sha256, sent through smtp-sink, and every message as the server
//! received it is verified with mail-auth against the configured key's
//! public record, offline (the record is served from a TXT cache, never DNS).

use crate::common;

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::common::sink::{self, Sink};
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};
use whatsup::config::Secret;
use whatsup::delivery::dkim::{DkimConfig, Signer};
use whatsup::import::ImportOptions;
use whatsup::send::engine::{self, RunEnd};
use whatsup::send::worker::Worker;

/// The published key record, served without DNS.
struct Published(HashMap<Box<str>, Txt>);

impl ResolverCache<Box<str>, Txt> for Published {
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

async fn campaign_signed_with(algorithm: &str, key: &str) {
    if !sink::available() {
        return;
    }
    let db = common::sqlite().await;
    let sink = Sink::start(&[]);
    let mut csv = String::from("email,name,organisation,kind,country\n");
    for i in 0..5 {
        csv.push_str(&format!(
            "dkim{i}@example.com,Reader {i},City {i},city,FR\n"
        ));
    }
    let (_d, path) = common::temp_csv(csv);
    common::import(&db.store, &path, &ImportOptions::default()).await;
    common::save_sample_issue(&db.store).await;
    let key_file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/dkim")
        .join(key);
    let mut config = db.config.clone();
    config.smtp.host = "127.0.0.1".into();
    config.smtp.port = sink.port;
    config.sending.transport = "smtp".into();
    config.security.token_secret = Secret::new("dkim-test-secret-0123456789abcdef0123456789");
    config.dkim.enabled = true;
    config.dkim.domain = "example.org".into();
    config.dkim.selector = "news".into();
    config.dkim.algorithm = algorithm.into();
    config.dkim.key_file = key_file.clone();
    let id = common::draft_campaign(&db.store, "dkim", "").await;
    engine::start(&db.store, &config, id, &crate::common::actor())
        .await
        .unwrap();
    let mut w = Worker::new(db.store.clone(), config.clone()).unwrap();
    let end = w
        .send_campaign(id, &AtomicBool::new(false), |_| {})
        .await
        .unwrap();
    assert_eq!(end, RunEnd::Finished);

    let signer = Signer::new(
        &DkimConfig::with_key_file("example.org", "news", algorithm.parse().unwrap(), &key_file)
            .unwrap(),
    )
    .unwrap();
    let record = DomainKey::parse(signer.dns_record().as_bytes()).unwrap();
    let keys = Published(
        [(
            format!("{}.", signer.dns_name()).into_boxed_str(),
            Txt::DomainKey(Arc::new(record)),
        )]
        .into_iter()
        .collect(),
    );
    let auth = MessageAuthenticator::new(
        ResolverConfig::from_parts(None, vec![], vec![]),
        ResolverOpts::default(),
    )
    .unwrap();
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 5);
    for m in msgs {
        // smtp-sink stores lines with LF; the wire had CRLF.
        let wire = m.text.replace("\r\n", "\n").replace('\n', "\r\n");
        let header = m.header("DKIM-Signature").expect("signed");
        assert!(header.contains("d=example.org"), "{header}");
        let expected_a = if algorithm == "rsa" {
            "a=rsa-sha256"
        } else {
            "a=ed25519-sha256"
        };
        assert!(header.contains(expected_a), "{header}");
        for h in [
            "list-unsubscribe",
            "list-unsubscribe-post",
            "list-id",
            "message-id",
            "from",
        ] {
            let signed = header.to_ascii_lowercase();
            assert!(signed.contains(h), "{h} is signed: {header}");
        }
        let parsed = AuthenticatedMessage::parse(wire.as_bytes()).expect("parses");
        let results: Vec<DkimResult> = auth
            .verify_dkim(Parameters::new(&parsed).with_txt_cache(&keys))
            .await
            .iter()
            .map(|o| o.result().clone())
            .collect();
        assert_eq!(results, vec![DkimResult::Pass], "message to {}", m.rcpt_to);
    }
}

#[tokio::test]
async fn messages_signed_with_ed25519_verify_against_the_configured_key() {
    campaign_signed_with("ed25519", "ed25519.pem").await;
}

#[tokio::test]
async fn messages_signed_with_rsa_2048_verify_against_the_configured_key() {
    campaign_signed_with("rsa", "rsa2048.pem").await;
}
