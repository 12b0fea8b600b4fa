//! The bounce intake against the real store, on SQLite and on PostgreSQL: a
//! campaign is really sent to the outbox, DSNs are built around the messages
//! it wrote (with their real VERP envelope senders), and the contacts'
//! statuses and audit trails are checked after ingesting them.
//!
//! Forged mail is tried as an attacker would (issue 17): anyone can write
//! to the bounce address, so a complaint or a DSN matched only by what
//! anyone can write (an address, a bare delivery id, a guessed Message-ID)
//! is recorded as unverified and changes nothing, while the same message
//! with the real VERP address, signed header or Message-ID still acts.

use crate::common;

use crate::common::bounces::{
    arf, config, contacts, dsn, header_of, send_campaign, sent_to, status_of, SECRET,
};
use crate::common::{whatsup_ok, TestDb};
use whatsup::bounce::intake::Intake;
use whatsup::store::bounces::UNVERIFIED_ACTION;
use whatsup::store::Store;

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
    assert!(e.verified);
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
    assert_eq!(last.evidence.0["verified"], true);
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
    let (_, _, original) = sent_to(&sent, "moved@example.org");
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
    assert!(e.verified);
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
    // Matched by the address only: recorded, not acted on.
    assert_eq!(first.outcome.events[0].action, UNVERIFIED_ACTION);
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
    let dir = tempfile::tempdir().unwrap();
    let config = config(&db, dir.path());
    contacts(&db, &["full@example.org"]).await;
    let (_, sent) = send_campaign(&db, &config).await;
    let (verp, _, _) = &sent[0];
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    let mut actions = Vec::new();
    for n in 1..=3 {
        let bounce = dsn(
            verp,
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
    // Matched by address (no campaign), as on a site whose relay strips
    // VERP and has opted in.
    config.bounces.act_on_unverified = true;
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

async fn a_complaint_quoting_the_signed_delivery_header_unsubscribes_at_once(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&db, dir.path());
    contacts(&db, &["angry@example.org", "calm@example.org"]).await;
    let (campaign, sent) = send_campaign(&db, &config).await;
    let (_, _, original) = sent_to(&sent, "angry@example.org");
    let signed = header_of(original, "X-Whatsup-Delivery");
    assert!(
        signed.len() >= 24 && signed.parse::<u64>().is_err(),
        "{signed}"
    );
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    // The provider redacts the recipient: only the signed header tells who.
    let complaint = arf(&format!(
        "To: redacted@isp.example.net\r\nSubject: issue\r\nX-Whatsup-Delivery: {signed}"
    ));
    let done = intake.ingest(&complaint, "test", None).await.unwrap();
    let e = &done.outcome.events[0];
    assert_eq!(
        (
            e.kind.as_str(),
            e.matched_by.as_str(),
            e.verified,
            e.action.as_str()
        ),
        ("complaint", "delivery_header", true, "unsubscribed")
    );
    assert_eq!(status_of(&db, "angry@example.org").await, "unsubscribed");
    assert_eq!(status_of(&db, "calm@example.org").await, "active");
    let row = db.store.bounce_by_id(e.event_id).await.unwrap().unwrap();
    assert_eq!(row.campaign_id, Some(campaign));
    assert!(row.verified);
}

/// The delivery row of `email` in `campaign`, as the store has it.
async fn delivery_id(db: &TestDb, campaign: i64, email: &str) -> i64 {
    let contact = db.store.contact(email).await.unwrap().unwrap();
    db.store
        .delivery_of(campaign, contact.id)
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn a_forged_arf_with_an_unsigned_or_altered_delivery_header_changes_no_status(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&db, dir.path());
    contacts(&db, &["victim@example.org", "attacker@example.net"]).await;
    let (campaign, sent) = send_campaign(&db, &config).await;
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    // The attacker received a newsletter: they know their own signed header,
    // and the bare ids of earlier versions were counters.
    let (_, _, theirs) = sent_to(&sent, "attacker@example.net");
    let own = header_of(theirs, "X-Whatsup-Delivery");
    let victim_delivery = delivery_id(&db, campaign, "victim@example.org").await;
    let mut altered = own.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let forgeries = [
        // The bare id of the victim's delivery, with an unrelated To.
        (
            format!("To: someone@unrelated.example.com\r\nX-Whatsup-Delivery: {victim_delivery}"),
            "unsigned_delivery_header",
        ),
        // A signed header changed by one character, naming the victim.
        (
            format!("To: victim@example.org\r\nX-Whatsup-Delivery: {altered}"),
            "address",
        ),
    ];
    for (headers, by) in &forgeries {
        let done = intake.ingest(&arf(headers), "pipe", None).await.unwrap();
        let e = &done.outcome.events[0];
        assert_eq!(e.kind, "complaint", "{headers}");
        assert_eq!(e.matched_by, *by, "{headers}");
        assert!(!e.verified, "{headers}");
        assert_eq!(e.action, UNVERIFIED_ACTION, "{headers}");
        let row = db.store.bounce_by_id(e.event_id).await.unwrap().unwrap();
        assert!(!row.verified);
        assert_eq!(
            status_of(&db, "victim@example.org").await,
            "active",
            "{headers}"
        );
    }
    let victim = db
        .store
        .contact("victim@example.org")
        .await
        .unwrap()
        .unwrap();
    assert!(
        db.store.status_history(victim.id).await.unwrap().len() <= 1,
        "no status event"
    );
    // The attacker's own header in a complaint about the victim's address:
    // the complaint is read as the attacker's (one recipient), whose own
    // status it may change, and the victim's stays.
    let done = intake
        .ingest(
            &arf(&format!(
                "To: victim@example.org\r\nX-Whatsup-Delivery: {own}"
            )),
            "pipe",
            None,
        )
        .await
        .unwrap();
    let e = &done.outcome.events[0];
    assert_eq!(
        (e.matched_by.as_str(), e.verified),
        ("delivery_header", true)
    );
    let attacker = db
        .store
        .contact("attacker@example.net")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.contact_id, Some(attacker.id));
    assert_eq!(status_of(&db, "victim@example.org").await, "active");
    // All of it is visible, by the address each complaint named.
    let report = db.store.bounce_report(&Default::default()).await.unwrap();
    let line = |email: &str| {
        let l = report.iter().find(|r| r.email == email).unwrap();
        (l.complaints, l.unverified)
    };
    assert_eq!(line("victim@example.org"), (2, 1));
    assert_eq!(line("someone@unrelated.example.com"), (1, 1));
    let m = db.store.store_metrics().await.unwrap();
    assert_eq!((m.bounces, m.unverified_bounces), (3, 2));
}

/// A hand-written DSN, from an unrelated domain, naming a real contact.
fn forged_dsn(rcpt: &str, original: &str) -> Vec<u8> {
    format!(
        "From: postmaster@unrelated.example.com\r\nTo: bounces@news.example.com\r\n\
         Subject: Delivery Status Notification (Failure)\r\nMessage-Id: <{}.x@unrelated.example.com>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"R\"\r\n\r\n\
         --R\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n\r\n\
         --R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.unrelated.example.com\r\n\r\n\
         Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n\
         --R\r\nContent-Type: text/rfc822-headers\r\n\r\n{original}\r\n\r\n--R--\r\n",
        original.len()
    )
    .into_bytes()
}

async fn a_forged_dsn_naming_a_contacts_address_changes_no_status_and_is_listed_as_unverified(
    db: TestDb,
) {
    let config = config(&db, std::path::Path::new("unused"));
    contacts(&db, &["real@example.org"]).await;
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    let forged = forged_dsn("real@example.org", "To: real@example.org\r\nSubject: x");
    let done = intake.ingest(&forged, "pipe", None).await.unwrap();
    let e = &done.outcome.events[0];
    assert_eq!(
        (
            e.kind.as_str(),
            e.reason.as_str(),
            e.matched_by.as_str(),
            e.verified
        ),
        ("hard", "user_unknown", "address", false)
    );
    assert_eq!(e.action, UNVERIFIED_ACTION);
    assert_eq!(status_of(&db, "real@example.org").await, "active");
    // `bounces list`, `bounces show` and `bounces report` show it as such.
    let run = |args: &[&str]| whatsup_ok(&db.url, args);
    let list = run(&["bounces", "list"]);
    assert!(list.contains("address (unverified)"), "{list}");
    assert!(list.contains(UNVERIFIED_ACTION), "{list}");
    assert!(list.contains("1 unverified"), "{list}");
    let show = run(&["bounces", "show", "real@example.org"]);
    assert!(show.contains("matched by address (unverified)"), "{show}");
    let report = run(&["bounces", "report"]);
    assert!(report.contains("1h 0s 0c, 1 unverified"), "{report}");
    let json: serde_json::Value =
        serde_json::from_str(&run(&["bounces", "list", "--json"])).unwrap();
    assert_eq!(json[0]["verified"], false, "{json}");
}

/// Sets `email`'s delivery in `campaign` to an old, sequential Message-ID,
/// as versions before random ones wrote them.
async fn set_message_id(db: &TestDb, campaign: i64, email: &str, message_id: &str) {
    let id = delivery_id(db, campaign, email).await;
    let sql = "UPDATE deliveries SET message_id = $1 WHERE id = $2";
    let n = match &db.store {
        Store::Sqlite(p) => sqlx::query(sql)
            .bind(message_id)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
        Store::Postgres(p) => sqlx::query(sql)
            .bind(message_id)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
    };
    assert_eq!(n.unwrap(), 1);
}

async fn a_message_id_guessed_from_a_received_one_changes_no_status(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&db, dir.path());
    contacts(
        &db,
        &[
            "victim@example.org",
            "attacker@example.net",
            "third@example.org",
        ],
    )
    .await;
    let (campaign, sent) = send_campaign(&db, &config).await;
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    let id_of = |email: &str| {
        let (_, _, m) = sent.iter().find(|(_, to, _)| to == email).unwrap();
        header_of(m, "Message-ID")
    };
    let theirs = id_of("attacker@example.net");
    let victims = id_of("victim@example.org");
    // 128 random bits each: nothing to count from.
    let local = theirs
        .trim_matches(['<', '>'])
        .split('@')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(local.len(), 32, "{theirs}");
    assert!(local.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(theirs[..12], victims[..12]);
    // Guesses from the received one: its neighbours, as for a counter.
    let n = u128::from_str_radix(&local, 16).unwrap();
    let domain = theirs.rsplit('@').next().unwrap().trim_end_matches('>');
    for guess in [n.wrapping_add(1), n.wrapping_sub(1), n.wrapping_add(2)] {
        let mid = format!("<{guess:032x}@{domain}>");
        assert_ne!(mid, victims);
        let forged = forged_dsn(
            "victim@example.org",
            &format!("Message-ID: {mid}\r\nTo: victim@example.org"),
        );
        let done = intake.ingest(&forged, "pipe", None).await.unwrap();
        assert_eq!(done.outcome.events.len(), 1, "{done:?}");
        let e = &done.outcome.events[0];
        assert_eq!(
            (e.matched_by.as_str(), e.verified),
            ("address", false),
            "{mid}"
        );
        assert_eq!(e.action, UNVERIFIED_ACTION);
    }
    assert_eq!(status_of(&db, "victim@example.org").await, "active");

    // Deliveries from before random Message-IDs had sequential ones, which
    // could be guessed: a match by one of those is not verified either.
    let old = "<18c2f4a9e1b2c3d4e5.17.214@news.example.com>";
    set_message_id(&db, campaign, "third@example.org", old).await;
    let forged = forged_dsn(
        "third@example.org",
        &format!("Message-ID: {old}\r\nTo: third@example.org"),
    );
    let done = intake.ingest(&forged, "pipe", None).await.unwrap();
    let e = &done.outcome.events[0];
    assert_eq!(
        (e.matched_by.as_str(), e.verified),
        ("old_message_id", false)
    );
    assert_eq!(e.action, UNVERIFIED_ACTION);
    assert_eq!(status_of(&db, "third@example.org").await, "active");
}

async fn a_genuine_bounce_matched_by_its_random_message_id_still_acts(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&db, dir.path());
    contacts(&db, &["gone@example.org", "fine@example.org"]).await;
    let (campaign, sent) = send_campaign(&db, &config).await;
    let (_, _, original) = sent_to(&sent, "gone@example.org");
    let mid = header_of(original, "Message-ID");
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    // The relay stripped VERP and the bounce quotes only the Message-ID
    // (and names the address the alias expanded to).
    let dsn = forged_dsn(
        "expanded@example.net",
        &format!("Message-ID: {mid}\r\nTo: gone@example.org"),
    );
    let done = intake.ingest(&dsn, "pipe", None).await.unwrap();
    let e = &done.outcome.events[0];
    assert_eq!(
        (e.matched_by.as_str(), e.verified, e.action.as_str()),
        ("message_id", true, "bounced")
    );
    let row = db.store.bounce_by_id(e.event_id).await.unwrap().unwrap();
    assert_eq!(row.campaign_id, Some(campaign));
    assert_eq!(status_of(&db, "gone@example.org").await, "bounced");
    assert_eq!(status_of(&db, "fine@example.org").await, "active");
}

async fn unverified_soft_bounces_do_not_count_towards_the_threshold(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&db, dir.path());
    config.bounces.soft_threshold = 2;
    contacts(&db, &["full@example.org"]).await;
    let (_, sent) = send_campaign(&db, &config).await;
    let (verp, _, _) = &sent[0];
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    let soft = |to: &str, n: u32| {
        dsn(
            to,
            "full@example.org",
            "4.2.2",
            &format!("452 4.2.2 Mailbox full ({n})"),
            b"To: full@example.org\r\n\r\nx\r\n",
        )
    };
    // Two forged soft bounces by address first …
    for n in 1..=2 {
        let done = intake
            .ingest(&soft("bounces@news.example.com", n), "pipe", None)
            .await
            .unwrap();
        assert_eq!(done.outcome.events[0].action, UNVERIFIED_ACTION);
    }
    // … do not make one genuine soft bounce reach the threshold.
    let done = intake.ingest(&soft(verp, 3), "pipe", None).await.unwrap();
    assert_eq!(done.outcome.events[0].action, "counted 1 of 2");
    assert_eq!(status_of(&db, "full@example.org").await, "active");
    let done = intake.ingest(&soft(verp, 4), "pipe", None).await.unwrap();
    assert_eq!(done.outcome.events[0].action, "bounced");
}

async fn with_act_on_unverified_a_match_by_address_acts_as_before(db: TestDb) {
    let mut config = config(&db, std::path::Path::new("unused"));
    config.bounces.act_on_unverified = true;
    contacts(&db, &["real@example.org"]).await;
    let intake = Intake::from_config(db.store.clone(), &config).unwrap();
    let forged = forged_dsn("real@example.org", "To: real@example.org");
    let done = intake.ingest(&forged, "pipe", None).await.unwrap();
    let e = &done.outcome.events[0];
    assert_eq!(
        (e.matched_by.as_str(), e.verified, e.action.as_str()),
        ("address", false, "bounced")
    );
    assert_eq!(status_of(&db, "real@example.org").await, "bounced");
    let contact = db.store.contact("real@example.org").await.unwrap().unwrap();
    let last = db.store.status_history(contact.id).await.unwrap();
    assert_eq!(last.last().unwrap().evidence.0["verified"], false);
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
    let report = db.store.bounce_report(&Default::default()).await.unwrap();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].last_reason, "has_moved");
    assert!(report[0].last_diagnostic.contains("successor"));
}

async fn an_unsubscribe_request_by_mail_is_honoured_by_token_and_only_recorded_by_sender(
    db: TestDb,
) {
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
    assert!(done.outcome.events[0].verified);
    // Without a token, only the sender's address, which anyone can write:
    // recorded for the operator, not acted on.
    let by_sender = b"From: A <a@example.org>\r\nTo: unsubscribe@news.example.com\r\n\
Subject: unsubscribe\r\n\r\n\r\n";
    let done = intake.ingest(by_sender, "test", None).await.unwrap();
    let e = &done.outcome.events[0];
    assert_eq!((e.matched_by.as_str(), e.verified), ("from", false));
    assert_eq!(e.action, UNVERIFIED_ACTION);
    assert_eq!(status_of(&db, "a@example.org").await, "active");
}

async fn a_reply_to_the_sent_list_unsubscribe_mailto_unsubscribes_its_recipient(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&db, dir.path());
    contacts(&db, &["leaving@example.org", "staying@example.org"]).await;
    let (_, sent) = send_campaign(&db, &config).await;
    let (_, _, original) = sent_to(&sent, "leaving@example.org");
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
    a_complaint_quoting_the_signed_delivery_header_unsubscribes_at_once,
    a_forged_arf_with_an_unsigned_or_altered_delivery_header_changes_no_status,
    a_forged_dsn_naming_a_contacts_address_changes_no_status_and_is_listed_as_unverified,
    a_message_id_guessed_from_a_received_one_changes_no_status,
    a_genuine_bounce_matched_by_its_random_message_id_still_acts,
    unverified_soft_bounces_do_not_count_towards_the_threshold,
    with_act_on_unverified_a_match_by_address_acts_as_before,
    an_auto_reply_is_recorded_but_changes_nothing,
    an_unsubscribe_request_by_mail_is_honoured_by_token_and_only_recorded_by_sender,
    a_reply_to_the_sent_list_unsubscribe_mailto_unsubscribes_its_recipient,
    unreadable_and_oversized_input_is_refused_as_permanent,
);
