//! Unit tests of the whole classifier on small inline messages, and the
//! robustness test that feeds mangled copies of every corpus file.

use super::*;

fn classify_str(s: &str) -> Classification {
    classify(s.as_bytes()).expect("a message")
}

#[test]
fn empty_input_and_input_without_headers_are_errors() {
    assert_eq!(classify(b""), Err(ClassifyError::Empty));
    assert_eq!(classify(b"  \r\n"), Err(ClassifyError::Empty));
    assert!(classify(b"\x00\x01\x02 no header here").is_err());
}

#[test]
fn an_ordinary_message_is_not_a_bounce() {
    let c = classify_str(
        "From: a@example.org\r\nTo: b@example.org\r\nSubject: Lunch\r\n\r\nSee you at noon.\r\n",
    );
    assert!(!c.is_bounce);
    assert_eq!(c.format, Format::None);
    assert!(c.recipients.is_empty());
}

#[test]
fn a_minimal_dsn_gives_a_hard_bounce_with_its_codes() {
    let c = classify_str(concat!(
        "From: MAILER-DAEMON@mx.example.net\r\n",
        "To: bounces+x@example.com\r\n",
        "Subject: Undelivered Mail\r\n",
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n",
        "--b\r\nContent-Type: text/plain\r\n\r\nIt failed.\r\n",
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n",
        "Reporting-MTA: dns; mx.example.net\r\n\r\n",
        "Final-Recipient: rfc822; Gone@Example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n",
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n",
        "--b--\r\n"
    ));
    assert!(c.is_bounce);
    assert_eq!(c.envelope_to.as_deref(), Some("bounces+x@example.com"));
    let r = &c.recipients[0];
    assert_eq!(r.address, "gone@example.org");
    assert_eq!((r.kind, r.reason), (Kind::Hard, Reason::UserUnknown));
    assert_eq!(
        (r.status.as_deref(), r.smtp_code),
        (Some("5.1.1"), Some(550))
    );
    assert_eq!(r.diagnostic.as_deref(), Some("550 5.1.1 user unknown"));
}

#[test]
fn a_bounce_forwarded_as_an_attachment_is_classified_by_the_attachment() {
    let c = classify_str(concat!(
        "From: operator@example.com\r\nTo: bounces@example.com\r\nSubject: Fwd: failure\r\n",
        "Content-Type: multipart/mixed; boundary=\"o\"\r\n\r\n",
        "--o\r\nContent-Type: text/plain\r\n\r\nThis one came to my inbox.\r\n",
        "--o\r\nContent-Type: message/rfc822\r\n\r\n",
        "From: MAILER-DAEMON@mx.example.net\r\nTo: bounces+y@example.com\r\nSubject: failure notice\r\n\r\n",
        "Hi. This is the qmail-send program at mx.example.net.\r\n",
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n",
        "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n",
        "<old@example.org>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n",
        "--o--\r\n"
    ));
    assert!(c.is_bounce);
    assert_eq!(c.envelope_to.as_deref(), Some("bounces+y@example.com"));
    assert_eq!(c.recipients[0].address, "old@example.org");
    assert_eq!(c.recipients[0].kind, Kind::Hard);
}

/// A tiny deterministic generator (xorshift64*), so the test needs no
/// dependency and fails the same way every time.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Every way this test damages a message.
fn mangle(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    match rng.below(6) {
        // Truncate anywhere.
        0 => v.truncate(rng.below(v.len() + 1)),
        // Flip random bytes.
        1 => {
            for _ in 0..1 + rng.below(64) {
                if !v.is_empty() {
                    let i = rng.below(v.len());
                    v[i] = rng.next() as u8;
                }
            }
        }
        // Cut a random slice out.
        2 => {
            let a = rng.below(v.len() + 1);
            let b = a + rng.below(v.len() - a + 1);
            v.drain(a..b);
        }
        // Insert base64-looking garbage and stray boundaries.
        3 => {
            let at = rng.below(v.len() + 1);
            let junk: &[u8] = match rng.below(3) {
                0 => b"\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@!!!===AAAA====\xff\xfe\r\n",
                1 => b"\r\nContent-Type: message/delivery-status; charset=\"x-unknown\"\r\n\r\nFinal-Recipient: ;\r\nStatus: 5.\r\n",
                _ => b"=?utf-8?B?////?= =?iso-2022-jp?Q?=1B$B?= \xc3\x28 \xe2\x82",
            };
            v.splice(at..at, junk.iter().copied());
        }
        // Duplicate a slice many times (deep or repeated structures).
        4 => {
            let a = rng.below(v.len() + 1);
            let b = (a + rng.below(200)).min(v.len());
            let piece = v[a..b].to_vec();
            for _ in 0..rng.below(50) {
                v.splice(a..a, piece.iter().copied());
            }
        }
        // Entirely random bytes.
        _ => v = (0..rng.below(4096)).map(|_| rng.next() as u8).collect(),
    }
    v
}

#[test]
fn mangled_copies_of_every_corpus_file_never_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bounces");
    let mut files: Vec<_> = ["", "mta", "layouts"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(dir.join(sub)).expect("a corpus directory"))
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    assert!(files.len() >= 90, "the corpus has {} files", files.len());
    let mut rng = Rng(0x5eed_b0b5_1234_abcd);
    let mut classified = 0;
    for file in &files {
        let bytes = std::fs::read(file).expect("a corpus file");
        for _ in 0..60 {
            let mangled = mangle(&mut rng, &bytes);
            if let Ok(c) = classify(&mangled) {
                classified += 1;
                // Whatever came out must serialise.
                serde_json::to_string(&c).expect("serialisable");
            }
        }
    }
    assert!(
        classified > files.len() * 10,
        "only {classified} mangled messages parsed at all"
    );
}

#[test]
fn a_message_bigger_than_the_scan_limit_is_read_only_up_to_the_limit() {
    let mut big = b"From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail\r\n\r\n<a@example.org>: host mx.example.org said: 550 5.1.1 user unknown\r\n\r\n".to_vec();
    big.resize(big.len() + 3 * MAX_SCAN_BYTES, b'x');
    let c = classify(&big).expect("a message");
    assert_eq!(c.recipients.len(), 1);
}

#[test]
fn an_address_whose_local_part_is_a_word_of_the_exclusions_is_still_found() {
    let c = classify_str(concat!(
        "From: MAILER-DAEMON@mx.example.net\r\nSubject: Undeliverable mail\r\n\r\n",
        "Your message to contact@example.org could not be delivered.\r\n",
        "550 5.1.1 mailbox unavailable\r\n"
    ));
    assert_eq!(c.recipients.len(), 1, "{c:?}");
    assert_eq!(c.recipients[0].address, "contact@example.org");
    assert_eq!(c.recipients[0].kind, Kind::Hard);
}

#[test]
fn a_google_groups_rejection_marked_auto_replied_is_a_bounce_for_x_failed_recipients() {
    let c = classify_str(concat!(
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.example.com>\r\n",
        "Auto-Submitted: auto-replied\r\n",
        "X-Failed-Recipients: friends@groups.example.com\r\n",
        "Subject: Delivery Status Notification (Failure)\r\n\r\n",
        "Hello news@news.example.com,\r\n\r\n",
        "The group you tried to contact (friends) may not exist, or you may not have permission to post messages to the group.\r\n"
    ));
    assert!(c.is_bounce);
    assert_eq!(c.format, Format::Text);
    assert_eq!(c.recipients.len(), 1);
    assert_eq!(c.recipients[0].address, "friends@groups.example.com");
    assert_eq!(
        (c.recipients[0].kind, c.recipients[0].reason),
        (Kind::Soft, Reason::Policy)
    );
}

#[test]
fn a_challenge_response_hold_and_an_apple_unsubscribe_are_not_bounces() {
    let challenge = classify_str(concat!(
        "From: verify@challenge.example.net\r\nSubject: Please verify\r\n",
        "Return-Path: <>\r\n\r\n",
        "Your message to mayor@challenge.example.net is held: the sender is not pre-approved.\r\n"
    ));
    assert!(!challenge.is_bounce);
    assert_eq!(challenge.format, Format::AutoReply);
    let apple = classify_str(concat!(
        "From: reader@mac.example.com\r\nTo: unsubscribe@news.example.com\r\n",
        "Subject: Unsubscribe\r\nAuto-Submitted: auto-generated\r\n",
        "X-Apple-Unsubscribe: true\r\n\r\n",
        "This message was automatically generated by Mail.\r\n"
    ));
    assert!(!apple.is_bounce);
    assert_eq!(apple.format, Format::None);
}

#[test]
fn an_ses_notification_in_the_body_is_read_like_the_webhook() {
    let c = classify_str(concat!(
        "From: no-reply@sns.example.com\r\nSubject: AWS Notification Message\r\n\r\n",
        "{\"notificationType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Transient\",",
        "\"bounceSubType\":\"MailboxFull\",\"bouncedRecipients\":[{\"emailAddress\":\"A@example.org\"}]},",
        "\"mail\":{\"source\":\"news@news.example.com\"}}\r\n"
    ));
    assert!(c.is_bounce);
    assert_eq!(c.recipients.len(), 1);
    assert_eq!(c.recipients[0].address, "a@example.org");
    assert_eq!(
        (c.recipients[0].kind, c.recipients[0].reason),
        (Kind::Soft, Reason::MailboxFull)
    );
}

#[test]
fn a_dsn_whose_boundary_matches_nothing_is_read_from_the_body() {
    let c = classify_str(concat!(
        "From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail\r\n",
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"nope\"\r\n\r\n",
        "--other\r\nContent-Type: message/delivery-status\r\n\r\n",
        "Reporting-MTA: dns; mx.example.net\r\n\r\n",
        "Original-Recipient: rfc822;sent.to@example.org\r\n",
        "Final-Recipient: x400; /G=Someone/O=Example/\r\nAction: failed\r\nStatus: 5.1.1\r\n",
        "Final-Recipient: rfc822; second@example.org\r\nAction: failed\r\nStatus: 5.2.2\r\n",
        "--other--\r\n"
    ));
    assert!(c.is_bounce);
    let got: Vec<(&str, Kind)> = c
        .recipients
        .iter()
        .map(|r| (r.address.as_str(), r.kind))
        .collect();
    assert_eq!(
        got,
        vec![
            ("sent.to@example.org", Kind::Hard),
            ("second@example.org", Kind::Soft)
        ]
    );
}
