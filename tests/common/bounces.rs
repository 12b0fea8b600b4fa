//! Bounces for the intake tests: a campaign really sent to the outbox, and
//! DSNs built around the messages it wrote (with their real VERP envelope
//! senders).

use std::sync::atomic::AtomicBool;

use super::TestDb;
use whatsup::config::{Config, Secret};
use whatsup::import::ImportOptions;
use whatsup::send::engine::{self, RunEnd};
use whatsup::send::worker::Worker;
use whatsup::store::campaigns::NewCampaign;

pub const SECRET: &str = "bounce-intake-test-secret-long-enough-0123456789";

/// A config that sends to an outbox in the test's directory, with VERP.
pub fn config(db: &TestDb, outbox: &std::path::Path) -> Config {
    let mut c = db.config.clone();
    c.sending.transport = "outbox".into();
    c.sending.outbox_dir = outbox.to_path_buf();
    c.sending.bounce_address = "bounces@news.example.com".into();
    c.security.token_secret = Secret::new(SECRET);
    c.newsletter.unsubscribe_mailto = "unsubscribe@news.example.com".into();
    c
}

pub async fn contacts(db: &TestDb, emails: &[&str]) {
    let mut csv = String::from("email,name,title,organisation,kind,country,timezone\n");
    for e in emails {
        csv.push_str(&format!(
            "{e},Someone,Counsellor,Embassy of Testland,embassy,FR,Europe/Paris\n"
        ));
    }
    let (_dir, path) = super::temp_csv(csv);
    let report = super::import(&db.store, &path, &ImportOptions::default()).await;
    assert_eq!(report.created, emails.len() as u64, "{report:?}");
}

/// Sends issue 214, as campaign `name`, to every contact through the
/// outbox, to the end; returns the campaign id.
pub async fn send_to_outbox(db: &TestDb, config: &Config, name: &str) -> i64 {
    super::save_sample_issue(&db.store).await;
    let id = db
        .store
        .create_campaign(&NewCampaign {
            name,
            issue_number: 214,
            segment: "",
            from_name: "WHAT'S UP Tokyo",
            from_address: "whatsup@news.example.com",
            reply_to: "",
            transport: "outbox",
            actor: &crate::common::actor(),
        })
        .await
        .unwrap();
    engine::start(&db.store, config, id, &crate::common::actor())
        .await
        .unwrap()
        .unwrap();
    let mut w = Worker::new(db.store.clone(), config.clone()).unwrap();
    let end = w
        .send_campaign(id, &AtomicBool::new(false), |_| {})
        .await
        .unwrap();
    assert_eq!(end, RunEnd::Finished);
    id
}

/// Sends issue 214 to every contact through the outbox; returns the
/// campaign id and the messages written, as (Return-Path, To, bytes).
pub async fn send_campaign(db: &TestDb, config: &Config) -> (i64, Vec<(String, String, Vec<u8>)>) {
    let id = send_to_outbox(db, config, "bounce test").await;
    let mut out = Vec::new();
    for entry in walk(&config.sending.outbox_dir) {
        let bytes = std::fs::read(&entry).unwrap();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let header = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| {
                    v.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string()
                })
                .unwrap_or_default()
        };
        let to = header("To: ");
        let to = to
            .rsplit('<')
            .next()
            .unwrap_or(&to)
            .trim_end_matches('>')
            .to_string();
        out.push((header("Return-Path: "), to, bytes));
    }
    assert!(!out.is_empty(), "the outbox is empty");
    (id, out)
}

/// The message of `sent` (as [`send_campaign`] returns them) to `email`:
/// (Return-Path, To, bytes).
pub fn sent_to<'a>(
    sent: &'a [(String, String, Vec<u8>)],
    email: &str,
) -> &'a (String, String, Vec<u8>) {
    sent.iter()
        .find(|(_, to, _)| to == email)
        .unwrap_or_else(|| panic!("nothing was sent to {email}"))
}

pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "eml") {
            files.push(p);
        }
    }
    files
}

/// A Postfix-shaped DSN for `rcpt`, delivered to `to`, returning `original`.
pub fn dsn(to: &str, rcpt: &str, status: &str, diagnostic: &str, original: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "Return-Path: <>\r\nDelivered-To: {to}\r\nFrom: MAILER-DAEMON@mx.news.example.com (Mail Delivery System)\r\n\
         To: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         Message-Id: <{}.dsn@mx.news.example.com>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not\r\n\
         be delivered to one or more recipients.\r\n\r\n<{rcpt}>: host mx.example.org said: {diagnostic}\r\n\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.news.example.com\r\n\r\n\
         Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: {status}\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\r\n--B\r\nContent-Type: message/rfc822\r\n\r\n",
        diagnostic.len() ^ original.len()
    )
    .into_bytes();
    m.extend_from_slice(original);
    m.extend_from_slice(b"\r\n--B--\r\n");
    m
}

pub async fn status_of(db: &TestDb, email: &str) -> String {
    db.store.contact(email).await.unwrap().unwrap().status
}

/// The value of header `name` in a message (its first line only).
pub fn header_of(message: &[u8], name: &str) -> String {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let prefix = format!("{name}: ");
    head.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {name} header"))
        .trim()
        .to_string()
}

/// An RFC 5965 complaint (`Feedback-Type: abuse`) from a mailbox provider's
/// feedback loop, delivered to the plain bounce mailbox, quoting `headers`
/// of the reported message (without an Original-Rcpt-To, as providers
/// often redact it).
pub fn arf(headers: &str) -> Vec<u8> {
    format!(
        "From: fbl@isp.example.net\r\nTo: bounces@news.example.com\r\nSubject: complaint\r\n\
         Message-Id: <{}.arf@isp.example.net>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n\
         --F\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n\r\n\
         --F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n\
         User-Agent: test/1\r\nVersion: 1\r\n\r\n\
         --F\r\nContent-Type: text/rfc822-headers\r\n\r\n{headers}\r\n\r\n--F--\r\n",
        headers.len()
    )
    .into_bytes()
}
