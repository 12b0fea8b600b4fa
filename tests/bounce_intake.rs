//! The bounce intake against the real store, on SQLite and on PostgreSQL: a
//! campaign is really sent to the outbox, DSNs are built around the messages
//! it wrote (with their real VERP envelope senders), and the contacts'
//! statuses and audit trails are checked after ingesting them.

use crate::common;

use crate::common::bounces::{config, contacts, dsn, send_campaign, status_of, SECRET};
use crate::common::TestDb;
use whatsup::bounce::intake::Intake;

async fn a_hard_bounce_through_verp_marks_the_contact_bounced_with_its_evidence(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&db, dir.path());
    contacts(&db, &["gone@example.org", "fine@example.org"]).await;
    let (campaign, sent) = send_campaign(&db, &config).await;
    let (verp, _, original) = sent
        .iter()
        .find(|(_, to, _)| to == "gone@example.org")
        .expect("a message to gone@example.org");
    assert!(verp.starts_with("bounces+"), "{verp}");
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    let bounce = dsn(
        verp,
        "gone@example.org",
        "5.1.1",
        "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown",
        original,
    );
    let done = intake.ingest(&bounce, "test", None).await.unwrap();
    assert_eq!(done.outcome.events.len(), 1, "{done:?}");
    let e = &done.outcome.events[0];
    assert_eq!(
        (
            e.kind.as_str(),
            e.reason.as_str(),
            e.matched_by.as_str(),
            e.action.as_str()
        ),
        ("hard", "user_unknown", "verp", "bounced")
    );
    assert_eq!(status_of(&db, "gone@example.org").await, "bounced");
    assert_eq!(status_of(&db, "fine@example.org").await, "active");
    let row = db.store.bounce_by_id(e.event_id).await.unwrap().unwrap();
    assert_eq!(row.campaign_id, Some(campaign));
    assert!(row.delivery_id.is_some());
    let contact = db.store.contact("gone@example.org").await.unwrap().unwrap();
    let history = db.store.status_history(contact.id).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(last.new_status, "bounced");
    assert_eq!(last.actor, "bounce:test");
    assert_eq!(last.evidence.0["status"], "5.1.1");
    assert_eq!(last.evidence.0["matched_by"], "verp");
    assert!(last.evidence.0["diagnostic"]
        .as_str()
        .unwrap()
        .contains("User unknown"));
}

async fn without_verp_the_returned_messages_delivery_header_finds_the_campaign(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&db, dir.path());
    contacts(&db, &["moved@example.org", "other@example.org"]).await;
    let (campaign, sent) = send_campaign(&db, &config).await;
    let (_, _, original) = sent
        .iter()
        .find(|(_, to, _)| to == "moved@example.org")
        .unwrap();
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    // Delivered to the plain bounce mailbox, and the DSN names another
    // address (an alias the server expanded).
    let bounce = dsn(
        "bounces@news.example.com",
        "alias-target@example.net",
        "5.1.1",
        "550 5.1.1 no such user",
        original,
    );
    let done = intake.ingest(&bounce, "test", None).await.unwrap();
    let e = &done.outcome.events[0];
    assert_eq!(e.matched_by, "delivery_header", "{done:?}");
    let row = db.store.bounce_by_id(e.event_id).await.unwrap().unwrap();
    assert_eq!(row.campaign_id, Some(campaign));
    assert_eq!(status_of(&db, "moved@example.org").await, "bounced");
}

async fn the_same_message_ingested_twice_is_recorded_once(db: TestDb) {
    let config = config(&db, std::path::Path::new("unused"));
    contacts(&db, &["soft@example.org"]).await;
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    let bounce = dsn(
        "bounces@news.example.com",
        "soft@example.org",
        "5.2.2",
        "552 5.2.2 Mailbox full",
        b"To: soft@example.org\r\nSubject: x\r\n\r\nbody\r\n",
    );
    let first = intake.ingest(&bounce, "test", None).await.unwrap();
    assert!(!first.outcome.duplicate);
    assert_eq!(first.outcome.events[0].action, "counted 1 of 3");
    let second = intake.ingest(&bounce, "test", None).await.unwrap();
    assert!(second.outcome.duplicate);
    assert_eq!(second.outcome.message_ref, first.outcome.message_ref);
    assert!(second.outcome.events.is_empty());
    assert_eq!(
        db.store
            .bounces_for_email("soft@example.org")
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn soft_bounces_bounce_the_contact_only_at_the_threshold(db: TestDb) {
    let config = config(&db, std::path::Path::new("unused"));
    contacts(&db, &["full@example.org"]).await;
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    let mut actions = Vec::new();
    for n in 1..=3 {
        let bounce = dsn(
            "bounces@news.example.com",
            "full@example.org",
            "4.2.2",
            &format!("452 4.2.2 Mailbox full (attempt {n})"),
            b"To: full@example.org\r\n\r\nx\r\n",
        );
        let done = intake.ingest(&bounce, "test", None).await.unwrap();
        assert_eq!(done.outcome.events[0].kind, "soft");
        actions.push(done.outcome.events[0].action.clone());
        let want = if n < 3 { "active" } else { "bounced" };
        assert_eq!(status_of(&db, "full@example.org").await, want, "after {n}");
    }
    assert_eq!(actions, ["counted 1 of 3", "counted 2 of 3", "bounced"]);
    let contact = db.store.contact("full@example.org").await.unwrap().unwrap();
    let last = db.store.status_history(contact.id).await.unwrap();
    let last = last.last().unwrap();
    assert_eq!(last.evidence.0["soft_bounces"], 3);
    assert!(last.reason.contains("3 soft bounces"), "{}", last.reason);
}

async fn a_successful_delivery_between_soft_bounces_restarts_the_count(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&db, dir.path());
    config.bounces.soft_threshold = 2;
    contacts(&db, &["flaky@example.org"]).await;
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    let soft = |n: u32| {
        dsn(
            "bounces@news.example.com",
            "flaky@example.org",
            "4.2.2",
            &format!("452 4.2.2 Mailbox full ({n})"),
            b"To: flaky@example.org\r\n\r\nx\r\n",
        )
    };
    let first = intake.ingest(&soft(1), "test", None).await.unwrap();
    assert_eq!(first.outcome.events[0].action, "counted 1 of 2");
    // A campaign is sent and draws no bounce: a successful delivery.
    send_campaign(&db, &config).await;
    let second = intake.ingest(&soft(2), "test", None).await.unwrap();
    assert_eq!(second.outcome.events[0].action, "counted 1 of 2");
    assert_eq!(status_of(&db, "flaky@example.org").await, "active");
    let third = intake.ingest(&soft(3), "test", None).await.unwrap();
    assert_eq!(third.outcome.events[0].action, "bounced");
}

async fn a_complaint_unsubscribes_at_once(db: TestDb) {
    let config = config(&db, std::path::Path::new("unused"));
    contacts(&db, &["angry@example.org"]).await;
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    let arf = b"From: fbl@isp.example.net\r\nTo: bounces@news.example.com\r\nSubject: complaint\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n\
--F\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n\r\n\
--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: test/1\r\n\
Version: 1\r\nOriginal-Rcpt-To: angry@example.org\r\n\r\n\
--F\r\nContent-Type: text/rfc822-headers\r\n\r\nTo: angry@example.org\r\nSubject: issue\r\n\r\n--F--\r\n";
    let done = intake.ingest(arf, "test", None).await.unwrap();
    let e = &done.outcome.events[0];
    assert_eq!(
        (e.kind.as_str(), e.action.as_str()),
        ("complaint", "unsubscribed")
    );
    assert_eq!(status_of(&db, "angry@example.org").await, "unsubscribed");
}

async fn an_auto_reply_is_recorded_but_changes_nothing(db: TestDb) {
    let config = config(&db, std::path::Path::new("unused"));
    contacts(&db, &["away@example.org"]).await;
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    let reply = b"From: away@example.org\r\nTo: bounces@news.example.com\r\nAuto-Submitted: auto-replied\r\n\
Subject: Automatic reply: WHAT'S UP Tokyo\r\n\r\nI have left the embassy; my successor is at new@example.org.\r\n";
    let done = intake.ingest(reply, "test", None).await.unwrap();
    let e = &done.outcome.events[0];
    assert_eq!(
        (e.kind.as_str(), e.reason.as_str(), e.action.as_str()),
        ("auto_reply", "has_moved", "recorded")
    );
    assert_eq!(status_of(&db, "away@example.org").await, "active");
    let report = db.store.bounce_report(None).await.unwrap();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].last_reason, "has_moved");
    assert!(report[0].last_diagnostic.contains("successor"));
}

async fn an_unsubscribe_request_by_mail_is_honoured_by_token_or_sender(db: TestDb) {
    let config = config(&db, std::path::Path::new("unused"));
    contacts(&db, &["a@example.org", "b@example.org"]).await;
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    let b = db.store.contact("b@example.org").await.unwrap().unwrap();
    let keys = whatsup::delivery::tokens::TokenKeys::new(SECRET, &[]).unwrap();
    let token = keys.sign(&whatsup::delivery::tokens::Claims {
        purpose: whatsup::delivery::tokens::Purpose::Unsubscribe,
        contact_id: b.id as u64,
        campaign_id: 0,
    });
    // Sent from a different address (a colleague's client), with the token.
    let by_token = format!(
        "From: colleague@example.net\r\nTo: unsubscribe@news.example.com\r\n\
         Subject: unsubscribe {token}\r\n\r\nplease\r\n"
    );
    let done = intake
        .ingest(by_token.as_bytes(), "test", None)
        .await
        .unwrap();
    assert!(done.unsubscribe_request);
    assert_eq!(done.outcome.events[0].matched_by, "token");
    assert_eq!(status_of(&db, "b@example.org").await, "unsubscribed");
    // Without a token, the sender's own address.
    let by_sender = b"From: A <a@example.org>\r\nTo: unsubscribe@news.example.com\r\n\
Subject: unsubscribe\r\n\r\n\r\n";
    let done = intake.ingest(by_sender, "test", None).await.unwrap();
    assert_eq!(done.outcome.events[0].matched_by, "from");
    assert_eq!(status_of(&db, "a@example.org").await, "unsubscribed");
}

async fn a_reply_to_the_sent_list_unsubscribe_mailto_unsubscribes_its_recipient(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&db, dir.path());
    contacts(&db, &["leaving@example.org", "staying@example.org"]).await;
    let (_, sent) = send_campaign(&db, &config).await;
    let (_, _, original) = sent
        .iter()
        .find(|(_, to, _)| to == "leaving@example.org")
        .unwrap();
    // What a mail client does with the header: mail the address, with the
    // subject the mailto URL gives (here from a colleague's address).
    let text = String::from_utf8_lossy(original);
    let mailto = text
        .split("<mailto:")
        .nth(1)
        .and_then(|rest| rest.split('>').next())
        .expect("a List-Unsubscribe mailto");
    let (address, query) = mailto.split_once('?').expect("a subject in the mailto");
    assert_eq!(address, "unsubscribe@news.example.com");
    let subject = query.strip_prefix("subject=").unwrap().replace("%20", " ");
    let reply =
        format!("From: colleague@example.net\r\nTo: {address}\r\nSubject: {subject}\r\n\r\n\r\n");
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    let done = intake
        .ingest(reply.as_bytes(), "test", Some(address))
        .await
        .unwrap();
    assert!(done.unsubscribe_request, "{done:?}");
    assert_eq!(done.outcome.events[0].matched_by, "token");
    assert_eq!(status_of(&db, "leaving@example.org").await, "unsubscribed");
    assert_eq!(status_of(&db, "staying@example.org").await, "active");
}

async fn unreadable_and_oversized_input_is_refused_as_permanent(db: TestDb) {
    let mut config = config(&db, std::path::Path::new("unused"));
    config.bounces.max_message_bytes = 1000;
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    let err = intake.ingest(b"", "test", None).await.unwrap_err();
    assert!(err.is_permanent(), "{err}");
    let err = intake
        .ingest(&[b'x'; 2000], "test", None)
        .await
        .unwrap_err();
    assert!(err.is_permanent());
    assert!(err.to_string().contains("2000 bytes"), "{err}");
}

on_both_backends!(
    a_hard_bounce_through_verp_marks_the_contact_bounced_with_its_evidence,
    without_verp_the_returned_messages_delivery_header_finds_the_campaign,
    the_same_message_ingested_twice_is_recorded_once,
    soft_bounces_bounce_the_contact_only_at_the_threshold,
    a_successful_delivery_between_soft_bounces_restarts_the_count,
    a_complaint_unsubscribes_at_once,
    an_auto_reply_is_recorded_but_changes_nothing,
    an_unsubscribe_request_by_mail_is_honoured_by_token_or_sender,
    a_reply_to_the_sent_list_unsubscribe_mailto_unsubscribes_its_recipient,
    unreadable_and_oversized_input_is_refused_as_permanent,
);
