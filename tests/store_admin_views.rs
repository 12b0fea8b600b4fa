//! The read-only queries behind the operators' admin pages, on SQLite and
//! on PostgreSQL (part of the store conformance suite): recipients by time
//! zone before and after a start, the campaign timeline the app layer
//! builds from them, a contact's deliveries, and paging backwards through
//! contacts.

use crate::common::{self, TestDb};

use whatsup::app::timeline::{self, Plan};
use whatsup::domain::segment::Segment;
use whatsup::domain::ContactStatus;
use whatsup::import::ImportOptions;
use whatsup::store::StatusChange;

const CSV: &str = "email,name,organisation,kind,country,city,region,timezone\n\
a@paris.example.org,Anne,City of Paris,city,FR,Paris,Europe,Europe/Paris\n\
b@paris.example.org,Bruno,City of Paris,city,FR,Paris,Europe,Europe/Paris\n\
c@nyc.example.com,Carla,City of New York,city,US,New York,Americas,America/New_York\n\
d@nyc.example.com,Dan,City of New York,city,US,New York,Americas,America/New_York\n\
e@tokyo.example.org,Emi,Embassy of Nowhere,embassy,JP,Tokyo,Asia,\n\
f@tokyo.example.org,Fumi,Embassy of Nowhere,embassy,JP,Tokyo,Asia,\n";

/// Six contacts in three zones (one without a zone); Dan unsubscribed.
async fn fixture(db: &TestDb) {
    let (_dir, path) = common::temp_csv(CSV);
    let report = common::import(&db.store, &path, &ImportOptions::default()).await;
    assert_eq!(report.created, 6, "{report:?}");
    let change = StatusChange {
        status: ContactStatus::Unsubscribed,
        reason: "asked",
        actor: "test",
        evidence: serde_json::json!({}),
    };
    db.store
        .set_status("d@nyc.example.com", &change, &common::actor())
        .await
        .unwrap();
    common::save_sample_issue(&db.store).await;
}

async fn recipients_are_counted_by_zone_before_and_after_the_start(db: TestDb) {
    fixture(&db).await;
    let s = &db.store;
    let zones = s.matching_by_zone(None).await.unwrap();
    let pairs: Vec<(&str, i64)> = zones.iter().map(|(z, n)| (z.as_str(), *n)).collect();
    assert_eq!(
        pairs,
        [("", 2), ("America/New_York", 1), ("Europe/Paris", 2)],
        "active contacts only, the zoneless under \"\""
    );
    let europe = Segment::parse("region = Europe").unwrap();
    let zones = s.matching_by_zone(Some(&europe)).await.unwrap();
    assert_eq!(zones.len(), 1);
    assert_eq!((zones[0].0.as_str(), zones[0].1), ("Europe/Paris", 2));

    let id = common::draft_campaign(s, "zones", "").await;
    whatsup::send::engine::start(s, &db.config, id, &common::actor())
        .await
        .unwrap()
        .unwrap();
    let progress = s.delivery_zones(id).await.unwrap();
    let totals: Vec<(&str, i64, i64)> = progress
        .iter()
        .map(|z| (z.zone.as_str(), z.total, z.open))
        .collect();
    assert_eq!(totals.len(), 3, "{progress:?}");
    assert_eq!(totals.iter().map(|t| t.1).sum::<i64>(), 5);
    assert!(
        totals.iter().all(|t| t.1 == t.2),
        "all still open: {totals:?}"
    );
    assert!(progress.iter().all(|z| z.sent + z.failed + z.skipped == 0));
}

async fn a_local_time_plan_is_due_at_each_zones_wall_clock_time(db: TestDb) {
    fixture(&db).await;
    let plan = Plan::Local {
        date: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        time: chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
    };
    let t = timeline::planned(&db.store, &db.config, "", plan)
        .await
        .unwrap();
    assert!(!t.started);
    assert_eq!((t.mode, t.recipients), ("local", 5));
    // Tokyo's 09:00 comes first, then Paris's, then New York's.
    let order: Vec<(&str, &str, i64)> = t
        .slots
        .iter()
        .map(|s| (s.zone.as_str(), s.local.as_str(), s.recipients))
        .collect();
    assert_eq!(
        order,
        [
            ("Asia/Tokyo", "2026-12-01 09:00 JST", 2),
            ("Europe/Paris", "2026-12-01 09:00 CET", 2),
            ("America/New_York", "2026-12-01 09:00 EST", 1),
        ]
    );
    assert!(t.slots[0].default_zone && !t.slots[1].default_zone);
    assert_eq!(t.slots[1].home, "2026-12-01 17:00 JST");
    assert!(t.slots.iter().all(|s| s.past), "2026-12-01 is before now");

    // A bad segment is refused with its column.
    let e = timeline::planned(&db.store, &db.config, "regoin = Europe", plan)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("did you mean"), "{e}");
}

async fn a_contacts_deliveries_are_listed_newest_first(db: TestDb) {
    fixture(&db).await;
    let s = &db.store;
    let first = common::draft_campaign(s, "first", "region = Europe").await;
    let second = common::draft_campaign(s, "second", "").await;
    for id in [first, second] {
        whatsup::send::engine::start(s, &db.config, id, &common::actor())
            .await
            .unwrap()
            .unwrap();
    }
    let anne = s.contact("a@paris.example.org").await.unwrap().unwrap();
    let rows = s.contact_deliveries(anne.id, 10).await.unwrap();
    let seen: Vec<(i64, &str, &str)> = rows
        .iter()
        .map(|r| (r.campaign_id, r.campaign_name.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(
        seen,
        [(second, "second", "pending"), (first, "first", "pending")]
    );
    assert_eq!(s.contact_deliveries(anne.id, 1).await.unwrap().len(), 1);
    let dan = s.contact("d@nyc.example.com").await.unwrap().unwrap();
    assert!(s.contact_deliveries(dan.id, 10).await.unwrap().is_empty());
}

async fn paging_backwards_mirrors_paging_forwards(db: TestDb) {
    fixture(&db).await;
    let s = &db.store;
    let emails =
        |v: Vec<whatsup::store::Contact>| v.into_iter().map(|c| c.email).collect::<Vec<_>>();
    let all = emails(s.contact_page(None, None, 100).await.unwrap());
    assert_eq!(all.len(), 6);
    // The two before the fifth address, in address order.
    let before = emails(s.contact_page_before(None, &all[4], 2).await.unwrap());
    assert_eq!(before, all[2..4]);
    let forward = emails(s.contact_page(None, Some(&all[1]), 2).await.unwrap());
    assert_eq!(before, forward);
    assert!(s
        .contact_page_before(None, &all[0], 2)
        .await
        .unwrap()
        .is_empty());
    let city = Segment::parse("kind = city").unwrap();
    let last = emails(s.contact_page_before(Some(&city), "zzz", 10).await.unwrap());
    assert_eq!(
        last,
        [
            "a@paris.example.org",
            "b@paris.example.org",
            "c@nyc.example.com",
            "d@nyc.example.com"
        ]
    );
}

on_both_backends!(
    recipients_are_counted_by_zone_before_and_after_the_start,
    a_local_time_plan_is_due_at_each_zones_wall_clock_time,
    a_contacts_deliveries_are_listed_newest_first,
    paging_backwards_mirrors_paging_forwards,
);
