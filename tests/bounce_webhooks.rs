//! The bounce and complaint webhooks over real HTTP on loopback against the
//! real router, on SQLite and on PostgreSQL. A campaign is really sent to
//! the outbox first, so the webhooks carry the real VERP envelope senders,
//! Message-IDs and `X-Whatsup-Delivery` headers. SNS messages are signed
//! with the throwaway RSA key in `tests/data/webhooks/` (SignatureVersion 2
//! here with ring, version 1 by the committed fixture), SendGrid requests
//! with a P-256 key made from fixed bytes; nothing is fetched from the
//! network (the signing certificate is pinned).

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::common::http::{self, Reply};
use crate::common::TestDb;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use serde_json::{json, Value};
use whatsup::config::{Config, Secret};
use whatsup::store::bounces::BounceRow;
use whatsup::web::Server;

const TOPIC: &str = "arn:aws:sns:test-region-1:123456789012:whatsup-ses";
const CERT_URL: &str =
    "https://sns.test-region-1.amazonaws.test/SimpleNotificationService-test.pem";
const PM_USER: &str = "postmark-hook";
const PM_PASSWORD: &str = "correct horse battery staple";

const CONTACTS: &[&str] = &[
    "gone@example.org",
    "complainer@example.org",
    "sg-bounce@example.org",
    "sg-spam@example.org",
    "sg-slow@example.org",
    "pm-gone@example.org",
    "soft@example.org",
];

/// A message the campaign sent, as the outbox holds it.
struct Sent {
    verp: String,
    message_id: String,
    delivery: String,
}

/// A served store whose contacts were all sent one campaign.
struct Site {
    server: Server,
    db: TestDb,
    campaign: i64,
    sent: Vec<(String, Sent)>,
    sendgrid: SigningKey,
    _outbox: tempfile::TempDir,
}

impl Site {
    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    fn sent(&self, email: &str) -> &Sent {
        &self
            .sent
            .iter()
            .find(|(to, _)| to == email)
            .unwrap_or_else(|| panic!("nothing was sent to {email}"))
            .1
    }

    async fn status(&self, email: &str) -> String {
        self.db.store.contact(email).await.unwrap().unwrap().status
    }

    /// The events recorded for `email`.
    async fn events_for(&self, email: &str) -> Vec<BounceRow> {
        self.db.store.bounces_for_email(email).await.unwrap()
    }

    async fn events(&self) -> usize {
        self.db
            .store
            .list_bounces(&Default::default())
            .await
            .unwrap()
            .len()
    }
}

fn sendgrid_key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32].into()).unwrap()
}

fn sendgrid_public_key(key: &SigningKey) -> String {
    let der = p256::PublicKey::from(key.verifying_key())
        .to_public_key_der()
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(der.as_bytes())
}

fn test_data(rel: &str) -> std::path::PathBuf {
    common::data("webhooks").join(rel)
}

/// The test configuration: outbox with VERP, every webhook on, the SNS
/// certificate pinned and fetching off.
fn config(db: &TestDb, outbox: &std::path::Path, sendgrid: &SigningKey) -> Config {
    let mut c = common::bounces::config(db, outbox);
    c.web.rate_limit_per_second = 0;
    let w = &mut c.webhooks;
    w.ses_topic_arns = vec![TOPIC.into()];
    w.ses_cert_hosts = vec!["sns.*.amazonaws.test".into()];
    w.ses_cert_dir = test_data("certs");
    w.ses_fetch_certs = false;
    w.ses_confirm_subscriptions = false;
    w.sendgrid_public_key = sendgrid_public_key(sendgrid);
    w.postmark_username = PM_USER.into();
    w.postmark_password = Secret::new(PM_PASSWORD);
    c
}

async fn site(db: TestDb, tweak: impl FnOnce(&mut Config)) -> Site {
    let outbox = tempfile::tempdir().unwrap();
    let sendgrid = sendgrid_key();
    let mut config = config(&db, outbox.path(), &sendgrid);
    tweak(&mut config);
    common::bounces::contacts(&db, CONTACTS).await;
    let campaign = common::bounces::send_to_outbox(&db, &config, "webhook test").await;
    let sent = read_outbox(outbox.path());
    assert_eq!(sent.len(), CONTACTS.len());
    let server = Server::start(db.store.clone(), config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    Site {
        server,
        db,
        campaign,
        sent,
        sendgrid,
        _outbox: outbox,
    }
}

/// (To, what the message says about itself) for every .eml in the outbox.
fn read_outbox(dir: &std::path::Path) -> Vec<(String, Sent)> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).to_string();
            let head = text.split("\r\n\r\n").next().unwrap().to_string();
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default()
            };
            let bare = |v: String| {
                v.rsplit('<')
                    .next()
                    .unwrap_or(&v)
                    .trim_end_matches('>')
                    .to_string()
            };
            out.push((
                bare(header("To: ")),
                Sent {
                    verp: bare(header("Return-Path: ")),
                    message_id: header("Message-ID: "),
                    delivery: header("X-Whatsup-Delivery: "),
                },
            ));
        }
    }
    out
}

/// POSTs `body` with extra headers.
async fn post(addr: SocketAddr, path: &str, headers: &[(&str, String)], body: &[u8]) -> Reply {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    http::raw(addr, &bytes).await
}

fn json_of(r: &Reply) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

// ---------------------------------------------------------------- SNS / SES

static SNS_COUNTER: AtomicU32 = AtomicU32::new(0);

/// The test key's PKCS #8 DER.
fn rsa_key() -> ring::signature::RsaKeyPair {
    let pem = std::fs::read_to_string(test_data("sns-test-key.pem")).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap()
}

/// SHA256withRSA over the string to sign, written out here independently
/// of the server's implementation.
fn sign_v2(envelope: &mut Value) {
    let names: &[&str] = if envelope["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut data = String::new();
    for name in names {
        if let Some(v) = envelope[*name].as_str() {
            data.push_str(&format!("{name}\n{v}\n"));
        }
    }
    let key = rsa_key();
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        data.as_bytes(),
        &mut sig,
    )
    .unwrap();
    envelope["SignatureVersion"] = "2".into();
    envelope["Signature"] = base64::engine::general_purpose::STANDARD.encode(sig).into();
}

/// An SNS notification carrying `message`, signed.
fn notification(message: &Value, topic: &str, cert_url: &str) -> Value {
    let n = SNS_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut e = json!({
        "Type": "Notification",
        "MessageId": format!("6a1f7f53-0000-4000-8000-{n:012}"),
        "TopicArn": topic,
        "Subject": "Amazon SES Email Event Notification",
        "Message": message.to_string(),
        "Timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "SigningCertURL": cert_url,
        "UnsubscribeURL": "https://sns.test-region-1.amazonaws.test/?Action=Unsubscribe",
    });
    sign_v2(&mut e);
    e
}

/// An SES bounce notification for a message the campaign sent, with the
/// original headers included.
fn ses_bounce(sent: &Sent, to: &str, kind: &str, status: &str, diagnostic: &str) -> Value {
    json!({
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": kind,
            "bounceSubType": "General",
            "bouncedRecipients": [{
                "emailAddress": to,
                "action": "failed",
                "status": status,
                "diagnosticCode": diagnostic,
            }],
            "timestamp": "2026-11-29T07:00:00.000Z",
            "feedbackId": "0100018c-test-bounce",
            "reportingMTA": "dsn; a1-2.smtp-out.test-region-1.amazonses.test",
        },
        "mail": {
            "timestamp": "2026-11-29T06:59:00.000Z",
            "source": sent.verp,
            "messageId": "0100018c-ses-own-id",
            "destination": [to],
            "headersTruncated": false,
            "headers": [
                {"name": "X-Whatsup-Delivery", "value": sent.delivery},
                {"name": "Message-ID", "value": sent.message_id},
            ],
            "commonHeaders": {"messageId": sent.message_id},
        },
    })
}

async fn post_sns(s: &Site, envelope: &Value) -> Reply {
    post(
        s.addr(),
        "/webhooks/ses",
        &[
            ("Content-Type", "text/plain; charset=UTF-8".into()),
            (
                "x-amz-sns-message-type",
                envelope["Type"].as_str().unwrap().into(),
            ),
        ],
        envelope.to_string().as_bytes(),
    )
    .await
}

async fn a_signed_ses_bounce_marks_the_contact_bounced_with_reason_status_and_diagnostic(
    db: TestDb,
) {
    let s = site(db, |_| {}).await;
    let sent = s.sent("gone@example.org");
    let message = ses_bounce(
        sent,
        "gone@example.org",
        "Permanent",
        "5.1.1",
        "smtp; 550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown",
    );
    let r = post_sns(&s, &notification(&message, TOPIC, CERT_URL)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json_of(&r)["recorded"], 1);
    assert_eq!(s.status("gone@example.org").await, "bounced");
    let rows = s.events_for("gone@example.org").await;
    assert_eq!(rows.len(), 1);
    let e = &rows[0];
    assert_eq!(
        (
            e.kind.as_str(),
            e.reason.as_str(),
            e.status.as_str(),
            e.source.as_str(),
            e.matched_by.as_str(),
            e.action.as_str()
        ),
        ("hard", "user_unknown", "5.1.1", "ses", "verp", "bounced")
    );
    assert!(e.diagnostic.contains("User unknown"), "{}", e.diagnostic);
    assert!(e.verified);
    assert_eq!(e.campaign_id, Some(s.campaign));
    let contact =
        s.db.store
            .contact("gone@example.org")
            .await
            .unwrap()
            .unwrap();
    let delivery =
        s.db.store
            .delivery_of(s.campaign, contact.id)
            .await
            .unwrap();
    assert_eq!(e.delivery_id, delivery.map(|d| d.id));
    // The header the message carried is a signed token, not the row's id.
    assert!(sent.delivery.parse::<i64>().is_err(), "{}", sent.delivery);
    let last = s.db.store.status_history(contact.id).await.unwrap();
    let last = last.last().unwrap();
    assert_eq!(last.actor, "bounce:ses");
    assert_eq!(last.evidence.0["status"], "5.1.1");
    // Nobody else changed.
    assert_eq!(s.status("soft@example.org").await, "active");
}

async fn a_signed_ses_complaint_with_signature_version_1_unsubscribes_the_contact(db: TestDb) {
    let s = site(db, |_| {}).await;
    let body = std::fs::read(test_data("ses-complaint-v1.json")).unwrap();
    let r = post(s.addr(), "/webhooks/ses", &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.status("complainer@example.org").await, "unsubscribed");
    let rows = s.events_for("complainer@example.org").await;
    assert_eq!(
        (
            rows[0].kind.as_str(),
            rows[0].reason.as_str(),
            rows[0].matched_by.as_str()
        ),
        ("complaint", "complaint", "address")
    );
    // Matched by the address, yet verified: the SNS signature vouches for
    // the provider's report.
    assert!(rows[0].verified);
    assert_eq!(rows[0].action, "unsubscribed");
    assert!(
        rows[0].diagnostic.contains("abuse"),
        "{}",
        rows[0].diagnostic
    );
}

async fn a_tampered_ses_body_or_signature_is_forbidden_and_records_nothing(db: TestDb) {
    let s = site(db, |_| {}).await;
    let sent = s.sent("gone@example.org");
    let message = ses_bounce(
        sent,
        "gone@example.org",
        "Permanent",
        "5.1.1",
        "550 5.1.1 unknown",
    );
    let good = notification(&message, TOPIC, CERT_URL);

    let mut tampered = good.clone();
    let forged = ses_bounce(
        s.sent("soft@example.org"),
        "soft@example.org",
        "Permanent",
        "5.1.1",
        "550 5.1.1 unknown",
    );
    tampered["Message"] = forged.to_string().into();
    let r = post_sns(&s, &tampered).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(json_of(&r)["error"].as_str().unwrap().contains("signature"));

    let mut bad_sig = good.clone();
    let mut sig = base64::engine::general_purpose::STANDARD
        .decode(good["Signature"].as_str().unwrap())
        .unwrap();
    sig[17] ^= 0x01;
    bad_sig["Signature"] = base64::engine::general_purpose::STANDARD.encode(sig).into();
    assert_eq!(post_sns(&s, &bad_sig).await.status, 403);

    let mut downgraded = good.clone();
    downgraded["SignatureVersion"] = "1".into();
    assert_eq!(post_sns(&s, &downgraded).await.status, 403);

    let other_topic = notification(
        &message,
        "arn:aws:sns:test-region-1:999999999999:other",
        CERT_URL,
    );
    let r = post_sns(&s, &other_topic).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("ses_topic_arns"), "{}", r.body);

    assert_eq!(s.events().await, 0);
    assert_eq!(s.status("gone@example.org").await, "active");
    assert_eq!(s.status("soft@example.org").await, "active");
}

async fn a_certificate_url_that_is_not_https_on_an_allowed_host_is_refused(db: TestDb) {
    // Every host below has the test certificate pinned, so only the URL
    // check can refuse them.
    let pins = tempfile::tempdir().unwrap();
    let cert = std::fs::read(test_data(
        "certs/sns.test-region-1.amazonaws.test/SimpleNotificationService-test.pem",
    ))
    .unwrap();
    for host in [
        "sns.test-region-1.amazonaws.test",
        "evil.example.test",
        "sns.test-region-1.amazonaws.test.evil.example",
    ] {
        std::fs::create_dir_all(pins.path().join(host)).unwrap();
        std::fs::write(
            pins.path()
                .join(host)
                .join("SimpleNotificationService-test.pem"),
            &cert,
        )
        .unwrap();
    }
    let dir = pins.path().to_path_buf();
    let s = site(db, move |c| c.webhooks.ses_cert_dir = dir).await;
    let sent = s.sent("gone@example.org");
    let message = ses_bounce(
        sent,
        "gone@example.org",
        "Permanent",
        "5.1.1",
        "550 5.1.1 unknown",
    );
    for url in [
        "https://evil.example.test/SimpleNotificationService-test.pem",
        "https://sns.test-region-1.amazonaws.test.evil.example/SimpleNotificationService-test.pem",
        "http://sns.test-region-1.amazonaws.test/SimpleNotificationService-test.pem",
        "https://sns.test-region-1.amazonaws.test:8443/SimpleNotificationService-test.pem",
        "https://sns.test-region-1.amazonaws.test/../SimpleNotificationService-test.pem",
    ] {
        let r = post_sns(&s, &notification(&message, TOPIC, url)).await;
        assert_eq!(r.status, 403, "{url}: {}", r.body);
    }
    // A certificate on an allowed host that is not pinned, with fetching off.
    let r = post_sns(
        &s,
        &notification(
            &message,
            TOPIC,
            "https://sns.test-region-1.amazonaws.test/SimpleNotificationService-other.pem",
        ),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("not pinned"), "{}", r.body);
    assert_eq!(s.events().await, 0);
    // The right URL still works.
    let r = post_sns(&s, &notification(&message, TOPIC, CERT_URL)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn malformed_sns_and_ses_bodies_are_clear_bad_requests(db: TestDb) {
    let s = site(db, |_| {}).await;
    let r = post(s.addr(), "/webhooks/ses", &[], b"{not json").await;
    assert_eq!(r.status, 400);
    assert!(json_of(&r)["error"]
        .as_str()
        .unwrap()
        .contains("not an SNS message"));
    // Signed correctly, but the Message is not an SES notification.
    let r = post_sns(&s, &notification(&json!("hello"), TOPIC, CERT_URL)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("not an SES notification"), "{}", r.body);
    let r = post_sns(
        &s,
        &notification(
            &json!({"notificationType": "Bounce", "mail": {}}),
            TOPIC,
            CERT_URL,
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // A delivery is acknowledged and not recorded.
    let r = post_sns(
        &s,
        &notification(
            &json!({"notificationType": "Delivery", "delivery": {}, "mail": {}}),
            TOPIC,
            CERT_URL,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json_of(&r)["ignored"], 1);
    assert_eq!(s.events().await, 0);
}

async fn a_subscription_confirmation_is_verified_and_logged_when_fetching_is_off(db: TestDb) {
    let s = site(db, |_| {}).await;
    let confirmation = |url: &str| {
        let mut e = json!({
            "Type": "SubscriptionConfirmation",
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
            "TopicArn": TOPIC,
            "Message": format!("You have chosen to subscribe to the topic {TOPIC}. To confirm the subscription, visit the SubscribeURL included in this message."),
            "SubscribeURL": url,
            "Timestamp": "2026-11-29T07:00:00.000Z",
            "SigningCertURL": CERT_URL,
        });
        sign_v2(&mut e);
        e
    };
    let ok = confirmation(
        "https://sns.test-region-1.amazonaws.test/?Action=ConfirmSubscription&TopicArn=x&Token=2336",
    );
    let r = post_sns(&s, &ok).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let elsewhere = confirmation("https://evil.example.test/?Action=ConfirmSubscription");
    let r = post_sns(&s, &elsewhere).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("SubscribeURL"), "{}", r.body);
    assert_eq!(s.events().await, 0);
}

// ------------------------------------------------------------------ SendGrid

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn post_sendgrid(s: &Site, body: &[u8], timestamp: i64) -> Reply {
    let ts = timestamp.to_string();
    let signed = [ts.as_bytes(), body].concat();
    let sig: Signature = s.sendgrid.sign(&signed);
    let sig = base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes());
    post(
        s.addr(),
        "/webhooks/sendgrid",
        &[
            ("Content-Type", "application/json".into()),
            ("X-Twilio-Email-Event-Webhook-Signature", sig),
            ("X-Twilio-Email-Event-Webhook-Timestamp", ts),
        ],
        body,
    )
    .await
}

fn sendgrid_batch(s: &Site) -> Vec<u8> {
    let bounce = s.sent("sg-bounce@example.org");
    json!([
        {"email": "sg-bounce@example.org", "timestamp": now_secs(), "event": "bounce",
         "type": "bounce", "status": "5.1.1",
         "reason": "550 5.1.1 The email account that you tried to reach does not exist",
         "sg_event_id": "c2ctZXZlbnQtMQ", "sg_message_id": "sg.1",
         "smtp-id": bounce.message_id},
        {"email": "sg-spam@example.org", "timestamp": now_secs(), "event": "spamreport",
         "sg_event_id": "c2ctZXZlbnQtMg", "sg_message_id": "sg.2"},
        {"email": "sg-slow@example.org", "timestamp": now_secs(), "event": "deferred",
         "response": "450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered",
         "attempt": "2", "sg_event_id": "c2ctZXZlbnQtMw", "sg_message_id": "sg.3"},
        {"email": "soft@example.org", "timestamp": now_secs(), "event": "delivered",
         "sg_event_id": "c2ctZXZlbnQtNA"}
    ])
    .to_string()
    .into_bytes()
}

async fn a_signed_sendgrid_batch_records_a_bounce_a_complaint_and_a_delay(db: TestDb) {
    let s = site(db, |_| {}).await;
    let r = post_sendgrid(&s, &sendgrid_batch(&s), now_secs()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let summary = json_of(&r);
    assert_eq!(
        (
            &summary["recorded"],
            &summary["events"],
            &summary["ignored"]
        ),
        (&json!(3), &json!(3), &json!(1))
    );
    assert_eq!(s.status("sg-bounce@example.org").await, "bounced");
    assert_eq!(s.status("sg-spam@example.org").await, "unsubscribed");
    assert_eq!(s.status("sg-slow@example.org").await, "active");
    assert_eq!(s.status("soft@example.org").await, "active");
    let row = |email: &'static str| {
        let s = &s;
        async move { s.events_for(email).await.remove(0) }
    };
    let b = row("sg-bounce@example.org").await;
    assert_eq!(
        (
            b.kind.as_str(),
            b.reason.as_str(),
            b.status.as_str(),
            b.matched_by.as_str()
        ),
        ("hard", "user_unknown", "5.1.1", "message_id")
    );
    assert_eq!(b.campaign_id, Some(s.campaign));
    let c = row("sg-spam@example.org").await;
    assert_eq!(
        (c.kind.as_str(), c.source.as_str()),
        ("complaint", "sendgrid")
    );
    let d = row("sg-slow@example.org").await;
    assert_eq!(
        (
            d.kind.as_str(),
            d.reason.as_str(),
            d.status.as_str(),
            d.action.as_str()
        ),
        ("delay", "rate_limited", "4.2.1", "recorded")
    );
}

async fn a_stale_unsigned_or_forged_sendgrid_request_is_refused(db: TestDb) {
    let s = site(db, |_| {}).await;
    let body = sendgrid_batch(&s);
    let r = post_sendgrid(&s, &body, now_secs() - 3600).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("sendgrid_max_age_secs"), "{}", r.body);
    let r = post(s.addr(), "/webhooks/sendgrid", &[], &body).await;
    assert_eq!(r.status, 401, "{}", r.body);
    // Signed by another key.
    let other = SigningKey::from_bytes(&[9u8; 32].into()).unwrap();
    let ts = now_secs().to_string();
    let sig: Signature = other.sign(&[ts.as_bytes(), &body].concat());
    let r = post(
        s.addr(),
        "/webhooks/sendgrid",
        &[
            (
                "X-Twilio-Email-Event-Webhook-Signature",
                base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes()),
            ),
            ("X-Twilio-Email-Event-Webhook-Timestamp", ts),
        ],
        &body,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Signed correctly, but not events.
    let r = post_sendgrid(&s, br#"{"event":"bounce"}"#, now_secs()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(s.events().await, 0);
    assert_eq!(s.status("sg-bounce@example.org").await, "active");
}

// ------------------------------------------------------------------ Postmark

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

async fn a_postmark_hard_bounce_with_the_right_credentials_bounces_the_contact_and_wrong_ones_get_401(
    db: TestDb,
) {
    let s = site(db, |_| {}).await;
    let sent = s.sent("pm-gone@example.org");
    let body = json!({
        "RecordType": "Bounce", "MessageStream": "outbound", "ID": 4323372036854775807u64,
        "Type": "HardBounce", "TypeCode": 1, "Name": "Hard bounce", "Tag": "",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {"whatsup_delivery": sent.delivery},
        "ServerID": 23, "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": "PM-Gone@example.org", "From": "whatsup@news.example.com",
        "BouncedAt": "2026-11-29T07:00:00Z", "DumpAvailable": false, "Inactive": true,
        "CanActivate": true, "Subject": "WHAT'S UP Tokyo"
    })
    .to_string();
    for auth in [
        None,
        Some(basic(PM_USER, "wrong password")),
        Some(basic("someone", PM_PASSWORD)),
        Some(format!("Bearer {PM_PASSWORD}")),
    ] {
        let headers: Vec<(&str, String)> = auth.into_iter().map(|a| ("Authorization", a)).collect();
        let r = post(s.addr(), "/webhooks/postmark", &headers, body.as_bytes()).await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    }
    assert_eq!(s.events().await, 0);
    assert_eq!(s.status("pm-gone@example.org").await, "active");

    let r = post(
        s.addr(),
        "/webhooks/postmark",
        &[("Authorization", basic(PM_USER, PM_PASSWORD))],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.status("pm-gone@example.org").await, "bounced");
    let rows = s.events_for("pm-gone@example.org").await;
    assert_eq!(
        (
            rows[0].kind.as_str(),
            rows[0].reason.as_str(),
            rows[0].status.as_str(),
            rows[0].matched_by.as_str(),
            rows[0].source.as_str()
        ),
        (
            "hard",
            "user_unknown",
            "5.1.1",
            "delivery_header",
            "postmark"
        )
    );
    assert!(
        rows[0].diagnostic.starts_with("smtp;550 5.1.1"),
        "{}",
        rows[0].diagnostic
    );
}

// ------------------------------------------------------------ replay, config

async fn replaying_the_same_body_records_no_second_event(db: TestDb) {
    let s = site(db, |_| {}).await;
    // A soft bounce: a second event would count towards the threshold.
    let sent = s.sent("soft@example.org");
    let message = ses_bounce(
        sent,
        "soft@example.org",
        "Transient",
        "4.2.2",
        "smtp; 452 4.2.2 mailbox full",
    );
    let envelope = notification(&message, TOPIC, CERT_URL);
    let first = post_sns(&s, &envelope).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(json_of(&first)["recorded"], 1);
    let again = post_sns(&s, &envelope).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        (
            json_of(&again)["recorded"].clone(),
            json_of(&again)["duplicates"].clone()
        ),
        (json!(0), json!(1))
    );
    let rows = s.events_for("soft@example.org").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].action, "counted 1 of 3");

    let batch = sendgrid_batch(&s);
    assert_eq!(post_sendgrid(&s, &batch, now_secs()).await.status, 200);
    // A retry of the batch is signed again with a new timestamp; the events
    // are the same.
    let r = post_sendgrid(&s, &batch, now_secs()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json_of(&r)["duplicates"], 3);
    assert_eq!(s.events().await, 1 + 3);
}

async fn webhooks_that_are_not_configured_are_not_served(db: TestDb) {
    let s = site(db, |c| c.webhooks = Default::default()).await;
    for path in ["/webhooks/ses", "/webhooks/sendgrid", "/webhooks/postmark"] {
        let r = post(s.addr(), path, &[], b"{}").await;
        assert_eq!(r.status, 404, "{path}");
    }
}

async fn a_body_over_the_limit_is_refused_with_413(db: TestDb) {
    let s = site(db, |c| c.webhooks.max_body_bytes = 4096).await;
    let body = vec![b' '; 8192];
    let r = post(
        s.addr(),
        "/webhooks/postmark",
        &[("Authorization", basic(PM_USER, PM_PASSWORD))],
        &body,
    )
    .await;
    assert_eq!(r.status, 413);
}

async fn a_database_failure_answers_503_so_the_provider_retries(db: TestDb) {
    let s = site(db, |_| {}).await;
    let body = json!({"RecordType": "Bounce", "Type": "HardBounce", "TypeCode": 1,
                      "Email": "pm-gone@example.org", "Details": "550 5.1.1 no such user"})
    .to_string();
    s.db.store.close().await;
    let r = post(
        s.addr(),
        "/webhooks/postmark",
        &[("Authorization", basic(PM_USER, PM_PASSWORD))],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("60"));
    assert!(
        !r.body.contains("pool"),
        "internal details leaked: {}",
        r.body
    );
}

on_both_backends!(
    a_signed_ses_bounce_marks_the_contact_bounced_with_reason_status_and_diagnostic,
    a_signed_ses_complaint_with_signature_version_1_unsubscribes_the_contact,
    a_tampered_ses_body_or_signature_is_forbidden_and_records_nothing,
    a_certificate_url_that_is_not_https_on_an_allowed_host_is_refused,
    malformed_sns_and_ses_bodies_are_clear_bad_requests,
    a_subscription_confirmation_is_verified_and_logged_when_fetching_is_off,
    a_signed_sendgrid_batch_records_a_bounce_a_complaint_and_a_delay,
    a_stale_unsigned_or_forged_sendgrid_request_is_refused,
    a_postmark_hard_bounce_with_the_right_credentials_bounces_the_contact_and_wrong_ones_get_401,
    replaying_the_same_body_records_no_second_event,
    webhooks_that_are_not_configured_are_not_served,
    a_body_over_the_limit_is_refused_with_413,
    a_database_failure_answers_503_so_the_provider_retries,
);
