//! When messages are due.
//!
//! A campaign is sent either at one instant, given as a local date and time
//! in the newsletter's zone (Asia/Tokyo by default), or at a wall-clock time
//! on a date in each recipient's own zone (their organisation's time zone;
//! contacts without one use the newsletter's zone). For the second, each
//! zone's instant is computed once; the campaign starts at the earliest
//! of them, i.e. when the first zone on Earth reaches that time.
//!
//! A local time that does not exist (skipped by a daylight-saving change)
//! moves to the first valid minute after it; an ambiguous one takes the
//! earlier instant.

use std::collections::HashMap;

use anyhow::{anyhow, Result};
use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The zone furthest ahead of UTC (UTC+14): it reaches a local time first.
const EARLIEST_ZONE: Tz = chrono_tz::Pacific::Kiritimati;

/// Parses `YYYY-MM-DD HH:MM` (or with a `T`) as a time in `tz`.
pub fn parse_local(text: &str, tz: Tz) -> Result<DateTime<Utc>> {
    let t = text.trim().replace('T', " ");
    let naive = NaiveDateTime::parse_from_str(&t, "%Y-%m-%d %H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(&t, "%Y-%m-%d %H:%M:%S"))
        .map_err(|_| anyhow!("{text:?}: expected a date and time like 2026-12-01 09:00"))?;
    Ok(resolve(naive, tz))
}

/// Parses a wall-clock time `HH:MM`.
pub fn parse_time(text: &str) -> Result<NaiveTime> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M")
        .map_err(|_| anyhow!("{text:?}: expected a time like 09:00"))
}

/// Parses a date `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| anyhow!("{text:?}: expected a date like 2026-12-01"))
}

/// The instant of a local date and time in a zone.
pub fn resolve(naive: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    let mut n = naive;
    for _ in 0..240 {
        match tz.from_local_datetime(&n) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(a, _) => return a.with_timezone(&Utc),
            LocalResult::None => n += Duration::minutes(1),
        }
    }
    // No zone has a gap of four hours; fall back to reading it as UTC.
    Utc.from_utc_datetime(&naive)
}

/// Due times (Unix ms) for a local-time send: one per zone name in
/// `zones`, plus the key `""` for contacts without a zone (the newsletter's
/// zone). Unknown zone names also get the default.
pub fn local_due_times(
    date: NaiveDate,
    time: NaiveTime,
    zones: &[String],
    default_tz: Tz,
) -> HashMap<String, i64> {
    let at = date.and_time(time);
    let default_ms = resolve(at, default_tz).timestamp_millis();
    let mut out = HashMap::new();
    out.insert(String::new(), default_ms);
    for z in zones {
        let ms = match z.parse::<Tz>() {
            Ok(tz) => resolve(at, tz).timestamp_millis(),
            Err(_) => default_ms,
        };
        out.insert(z.clone(), ms);
    }
    out
}

/// The first instant any zone reaches `time` on `date`.
pub fn earliest(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    resolve(date.and_time(time), EARLIEST_ZONE)
}

/// Exponential backoff with jitter: `base * 2^(attempt-1)`, capped, then
/// scaled by a factor in [0.8, 1.2) drawn from `seed`.
pub fn backoff_ms(attempt: i64, base_secs: u64, max_secs: u64, seed: u64) -> i64 {
    let exp = attempt.clamp(1, 30) as u32 - 1;
    let raw = (base_secs.max(1) as i64).saturating_mul(1i64 << exp.min(20));
    let capped = raw.min(max_secs.max(1) as i64) * 1000;
    // splitmix64 of the seed, as a fraction in [0, 1).
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let frac = (z >> 11) as f64 / (1u64 << 53) as f64;
    (capped as f64 * (0.8 + 0.4 * frac)) as i64
}

/// One slot of a timeline: an instant and who is due then, by zone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Slot {
    /// Unix ms.
    pub due_ms: i64,
    /// Recipients due at this instant.
    pub recipients: i64,
    /// Zone name (`""`: contacts without a zone) and recipients, by name.
    pub zones: Vec<(String, i64)>,
}

/// Groups (instant, zone, recipients) into slots, earliest first; the
/// zones of a slot are sorted by name and counted once each.
pub fn slots(rows: impl IntoIterator<Item = (i64, String, i64)>) -> Vec<Slot> {
    let mut by_time: std::collections::BTreeMap<i64, std::collections::BTreeMap<String, i64>> =
        Default::default();
    for (due, zone, n) in rows {
        *by_time.entry(due).or_default().entry(zone).or_default() += n;
    }
    by_time
        .into_iter()
        .map(|(due_ms, zones)| Slot {
            due_ms,
            recipients: zones.values().sum(),
            zones: zones.into_iter().collect(),
        })
        .collect()
}

/// The timeline of a local-time schedule: when each zone's recipients
/// (`zone_counts`, `""` for contacts without a zone) reach `time` on
/// `date`. Contacts without a zone, and zones that are not IANA names,
/// follow `default_tz`.
pub fn local_timeline(
    date: NaiveDate,
    time: NaiveTime,
    zone_counts: &[(String, i64)],
    default_tz: Tz,
) -> Vec<Slot> {
    let zones: Vec<String> = zone_counts.iter().map(|(z, _)| z.clone()).collect();
    let due = local_due_times(date, time, &zones, default_tz);
    slots(
        zone_counts
            .iter()
            .map(|(z, n)| (due.get(z).copied().unwrap_or(due[""]), z.clone(), *n)),
    )
}

/// A warning for a start time (Unix ms) far from `now_ms`: more than a day
/// in the past (the campaign would start at once, which a typo such as
/// 1926 for 2026 makes likely unintended) or more than a year ahead.
pub fn far_off_warning(start_ms: i64, now_ms: i64) -> Option<String> {
    const DAY_MS: i64 = 86_400_000;
    if start_ms < now_ms - DAY_MS {
        let days = (now_ms - start_ms) / DAY_MS;
        Some(format!(
            "the start time is {days} days in the past: the campaign starts as soon as a worker \
             runs; check the year"
        ))
    } else if start_ms > now_ms + 365 * DAY_MS {
        let days = (start_ms - now_ms) / DAY_MS;
        Some(format!(
            "the start time is {days} days ahead, more than a year away; check the year"
        ))
    } else {
        None
    }
}

/// Checks an `HH:MM` and a date for a local-time schedule.
pub fn check_local(date: &str, time: &str) -> Result<(NaiveDate, NaiveTime)> {
    Ok((parse_date(date)?, parse_time(time)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_a_day_in_the_past_or_a_year_ahead_are_warned_about() {
        let now = parse_local("2026-12-01 09:00", chrono_tz::Asia::Tokyo)
            .unwrap()
            .timestamp_millis();
        let at = |s: &str| {
            parse_local(s, chrono_tz::Asia::Tokyo)
                .unwrap()
                .timestamp_millis()
        };
        assert_eq!(far_off_warning(at("2026-12-01 10:00"), now), None);
        assert_eq!(far_off_warning(at("2026-11-30 10:00"), now), None);
        assert!(far_off_warning(at("1900-01-01 09:00"), now)
            .unwrap()
            .contains("days in the past"));
        assert!(far_off_warning(at("2099-01-01 09:00"), now)
            .unwrap()
            .contains("more than a year away"));
    }

    #[test]
    fn a_tokyo_time_is_nine_hours_ahead_of_utc() {
        let t = parse_local("2026-12-01 09:00", chrono_tz::Asia::Tokyo).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-01T00:00:00+00:00");
    }

    #[test]
    fn local_due_times_follow_each_zone_and_default_the_unknown() {
        let (d, t) = check_local("2026-12-01", "09:00").unwrap();
        let zones = vec![
            "Europe/Paris".to_string(),
            "America/New_York".to_string(),
            "Not/AZone".to_string(),
        ];
        let due = local_due_times(d, t, &zones, chrono_tz::Asia::Tokyo);
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
        assert_eq!(due["Europe/Paris"], at("2026-12-01T08:00:00Z"));
        assert_eq!(due["America/New_York"], at("2026-12-01T14:00:00Z"));
        assert_eq!(due[""], at("2026-12-01T00:00:00Z"));
        assert_eq!(due["Not/AZone"], due[""]);
        assert!(earliest(d, t).timestamp_millis() <= *due.values().min().unwrap());
    }

    #[test]
    fn a_local_timeline_puts_each_zone_at_its_own_instant_earliest_first() {
        let (d, t) = check_local("2026-12-07", "09:00").unwrap();
        let counts = vec![
            (String::new(), 3),
            ("Asia/Tokyo".to_string(), 5),
            ("Australia/Sydney".to_string(), 2),
            ("Europe/Paris".to_string(), 4),
            ("America/New_York".to_string(), 1),
            ("Asia/Seoul".to_string(), 2),
        ];
        let timeline = local_timeline(d, t, &counts, chrono_tz::Asia::Tokyo);
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
        let got: Vec<(i64, i64, Vec<&str>)> = timeline
            .iter()
            .map(|s| {
                (
                    s.due_ms,
                    s.recipients,
                    s.zones.iter().map(|(z, _)| z.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                // Sydney is UTC+11 in December: 22:00 UTC the day before.
                (at("2026-12-06T22:00:00Z"), 2, vec!["Australia/Sydney"]),
                // Tokyo and Seoul share UTC+9; no zone follows Tokyo.
                (
                    at("2026-12-07T00:00:00Z"),
                    10,
                    vec!["", "Asia/Seoul", "Asia/Tokyo"]
                ),
                (at("2026-12-07T08:00:00Z"), 4, vec!["Europe/Paris"]),
                (at("2026-12-07T14:00:00Z"), 1, vec!["America/New_York"]),
            ]
        );
    }

    #[test]
    fn a_time_skipped_by_daylight_saving_moves_to_the_next_valid_minute() {
        // Paris skipped 02:00-03:00 on 2026-03-29.
        let t = parse_local("2026-03-29 02:30", chrono_tz::Europe::Paris).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-29T01:00:00+00:00");
    }

    #[test]
    fn backoff_grows_exponentially_is_capped_and_jittered_within_twenty_percent() {
        for seed in 0..50 {
            let b1 = backoff_ms(1, 60, 3600, seed);
            assert!((48_000..72_000).contains(&b1), "{b1}");
            let b3 = backoff_ms(3, 60, 3600, seed);
            assert!((192_000..288_000).contains(&b3), "{b3}");
            let b20 = backoff_ms(20, 60, 3600, seed);
            assert!((2_880_000..4_320_000).contains(&b20), "{b20}");
        }
        assert_ne!(backoff_ms(2, 60, 3600, 1), backoff_ms(2, 60, 3600, 2));
    }

    #[test]
    fn malformed_dates_and_times_are_rejected_with_an_example() {
        let e = parse_local("tomorrow", chrono_tz::Asia::Tokyo).unwrap_err();
        assert!(e.to_string().contains("2026-12-01 09:00"));
        assert!(parse_time("9am").is_err());
        assert!(parse_date("2026-13-01").is_err());
    }
}
