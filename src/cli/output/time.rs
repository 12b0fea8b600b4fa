//! Times for people: every time a command shows is in `general.timezone`
//! with the zone named (`2026-12-07 09:00 JST`), or in UTC with `--utc`.
//! JSON output keeps RFC 3339 with its offset and is not formatted here.

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;

use super::settings;

/// How times are shown: the office's zone, or UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub tz: Tz,
    pub utc: bool,
}

impl Clock {
    /// The zone times are shown in.
    pub fn zone(&self) -> Tz {
        if self.utc {
            chrono_tz::UTC
        } else {
            self.tz
        }
    }

    /// `2026-12-07 09:00 JST`.
    pub fn minutes(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.zone())
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    }

    /// `2026-12-07 09:00:05 JST`, for histories where seconds tell events apart.
    pub fn seconds(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.zone())
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }

    /// `2026-12-07`: the date in the shown zone (name the zone in the
    /// column header: [`Clock::zone_name`]).
    pub fn date(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.zone()).format("%Y-%m-%d").to_string()
    }

    /// The IANA name of the shown zone, for column headers.
    pub fn zone_name(&self) -> &'static str {
        self.zone().name()
    }
}

/// The clock of this run (`general.timezone`, or UTC with `--utc`).
pub fn clock() -> Clock {
    settings().clock
}

/// `2026-12-07 09:00 JST`.
pub fn when(t: DateTime<Utc>) -> String {
    clock().minutes(t)
}

/// `2026-12-07 09:00:05 JST`.
pub fn when_secs(t: DateTime<Utc>) -> String {
    clock().seconds(t)
}

/// A Unix time in milliseconds, shown like [`when`].
pub fn when_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(when)
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// The date of `t` in the shown zone.
pub fn date(t: DateTime<Utc>) -> String {
    clock().date(t)
}

/// A header naming the zone: `SINCE (Asia/Tokyo)`.
pub fn header(name: &str) -> String {
    format!("{name} ({})", clock().zone_name())
}

/// A time for JSON: RFC 3339 with the shown zone's offset
/// (`2026-12-07T09:00:00+09:00`).
pub fn rfc3339_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.with_timezone(&clock().zone()).to_rfc3339())
        .unwrap_or_default()
}

/// Parses `--since`: a date (midnight in the shown zone), an RFC 3339
/// time, or an age (`7d`, `24h`, `30m`).
pub fn parse_since(s: &str) -> anyhow::Result<DateTime<Utc>> {
    since_at(s, clock().zone(), Utc::now())
}

fn since_at(s: &str, zone: Tz, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let midnight = d.and_hms_opt(0, 0, 0).expect("midnight");
        // The earliest midnight where a zone's clocks skip or repeat it.
        return zone
            .from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| anyhow::anyhow!("--since {s:?}: no midnight on that date in {zone}"));
    }
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = n.parse().map_err(|_| {
        anyhow::anyhow!(
            "--since {s:?}: expected a date (2026-11-01), an RFC 3339 time or an age (7d, 24h, 30m)"
        )
    })?;
    let age = match unit {
        "d" => chrono::Duration::days(n),
        "h" => chrono::Duration::hours(n),
        "m" => chrono::Duration::minutes(n),
        _ => anyhow::bail!("--since {s:?}: the age's unit must be d, h or m"),
    };
    Ok(now - age)
}

/// The timestamps of log lines for people: `2026-12-07 09:00:05.123 JST`.
#[derive(Debug, Clone, Copy)]
pub struct LogClock(pub Clock);

impl tracing_subscriber::fmt::time::FormatTime for LogClock {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(
            w,
            "{}",
            Utc::now()
                .with_timezone(&self.0.zone())
                .format("%Y-%m-%d %H:%M:%S%.3f %Z")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_show_in_the_office_zone_with_its_name_or_in_utc() {
        let t = Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 5).unwrap();
        let tokyo = Clock {
            tz: chrono_tz::Asia::Tokyo,
            utc: false,
        };
        assert_eq!(tokyo.minutes(t), "2026-12-07 09:00 JST");
        assert_eq!(tokyo.seconds(t), "2026-12-07 09:00:05 JST");
        assert_eq!(tokyo.zone_name(), "Asia/Tokyo");
        let utc = Clock { utc: true, ..tokyo };
        assert_eq!(utc.minutes(t), "2026-12-07 00:00 UTC");
        assert_eq!(utc.zone_name(), "UTC");
        let sydney = Clock {
            tz: chrono_tz::Australia::Sydney,
            utc: false,
        };
        assert_eq!(sydney.minutes(t), "2026-12-07 11:00 AEDT");
        assert_eq!(
            sydney.date(Utc.with_ymd_and_hms(2026, 12, 6, 20, 0, 0).unwrap()),
            "2026-12-07"
        );
    }

    #[test]
    fn since_takes_a_date_in_the_shown_zone_a_time_or_an_age() {
        let now = Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).unwrap();
        let tokyo = chrono_tz::Asia::Tokyo;
        assert_eq!(
            since_at("2026-11-01", tokyo, now).unwrap(),
            Utc.with_ymd_and_hms(2026, 10, 31, 15, 0, 0).unwrap()
        );
        assert_eq!(
            since_at("2026-11-01", chrono_tz::UTC, now).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            since_at("2026-11-01T09:00:00+09:00", chrono_tz::UTC, now).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            since_at(" 7d ", tokyo, now).unwrap(),
            now - chrono::Duration::days(7)
        );
        assert_eq!(
            since_at("30m", tokyo, now).unwrap(),
            now - chrono::Duration::minutes(30)
        );
        let e = since_at("7w", tokyo, now).unwrap_err().to_string();
        assert!(e.contains("unit must be d, h or m"), "{e}");
        let e = since_at("last week", tokyo, now).unwrap_err().to_string();
        assert!(e.contains("expected a date"), "{e}");
    }
}
