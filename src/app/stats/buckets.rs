//! Time buckets in the configured time zone: a [`Grain`] (a minute up to
//! a month), the local start of the bucket an instant falls in, and
//! [`fold`], which sums counts the store grouped by UTC minute or hour into
//! a gap-free run of local buckets.
//!
//! Days, weeks (from Monday) and months start at local midnight, so a
//! Tokyo day is a Tokyo day. Where a zone's clock skips the start of a
//! bucket (a daylight-saving gap), the bucket starts at the first instant
//! that exists; where it repeats, at the earlier one.

use std::collections::BTreeMap;
use std::ops::AddAssign;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, Months, NaiveDate, NaiveDateTime, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// How long a bucket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Grain {
    #[serde(rename = "minute")]
    Minute,
    #[serde(rename = "5min")]
    FiveMinutes,
    #[serde(rename = "15min")]
    QuarterHour,
    #[serde(rename = "hour")]
    Hour,
    #[serde(rename = "day")]
    Day,
    #[serde(rename = "week")]
    Week,
    #[serde(rename = "month")]
    Month,
}

impl Grain {
    /// Every grain, finest first.
    pub const ALL: &'static [Grain] = &[
        Grain::Minute,
        Grain::FiveMinutes,
        Grain::QuarterHour,
        Grain::Hour,
        Grain::Day,
        Grain::Week,
        Grain::Month,
    ];

    /// The word used in URLs and files: `minute`, `5min`, … `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Minute => "minute",
            Grain::FiveMinutes => "5min",
            Grain::QuarterHour => "15min",
            Grain::Hour => "hour",
            Grain::Day => "day",
            Grain::Week => "week",
            Grain::Month => "month",
        }
    }

    pub fn parse(s: &str) -> Option<Grain> {
        Grain::ALL.iter().copied().find(|g| g.as_str() == s)
    }

    /// "per minute", "per 5 minutes", … for headings.
    pub fn per(self) -> &'static str {
        match self {
            Grain::Minute => "per minute",
            Grain::FiveMinutes => "per 5 minutes",
            Grain::QuarterHour => "per 15 minutes",
            Grain::Hour => "per hour",
            Grain::Day => "per day",
            Grain::Week => "per week",
            Grain::Month => "per month",
        }
    }

    /// About how long a bucket lasts (a month as 30 days), to count buckets.
    pub fn approx(self) -> Duration {
        match self {
            Grain::Minute => Duration::minutes(1),
            Grain::FiveMinutes => Duration::minutes(5),
            Grain::QuarterHour => Duration::minutes(15),
            Grain::Hour => Duration::hours(1),
            Grain::Day => Duration::days(1),
            Grain::Week => Duration::weeks(1),
            Grain::Month => Duration::days(30),
        }
    }

    /// The finest of `choices` that covers `span` in at most `max` buckets
    /// (the coarsest one if none does).
    pub fn fitting(choices: &[Grain], span: Duration, max: i64) -> Grain {
        choices
            .iter()
            .copied()
            .find(|g| span.num_seconds() / g.approx().num_seconds().max(1) < max)
            .or_else(|| choices.last().copied())
            .unwrap_or(Grain::Day)
    }

    /// The local start of the bucket `t` falls in.
    pub fn floor(self, t: DateTime<Tz>) -> DateTime<Tz> {
        let n = t.naive_local();
        let date = n.date();
        let clock = |h: u32, m: u32| date.and_hms_opt(h, m, 0).expect("a valid time of day");
        let start = match self {
            Grain::Minute => clock(n.hour(), n.minute()),
            Grain::FiveMinutes => clock(n.hour(), n.minute() / 5 * 5),
            Grain::QuarterHour => clock(n.hour(), n.minute() / 15 * 15),
            Grain::Hour => clock(n.hour(), 0),
            Grain::Day => clock(0, 0),
            Grain::Week => {
                midnight(date - Duration::days(date.weekday().num_days_from_monday() as i64))
            }
            Grain::Month => midnight(date.with_day(1).expect("the first of a month")),
        };
        // A reading skipped by a gap moves later; never past `t` itself.
        at_local(t.timezone(), start).min(t)
    }

    /// The start of the bucket after the one starting at `start`.
    pub fn next(self, start: DateTime<Tz>) -> DateTime<Tz> {
        let n = start.naive_local();
        let after = match self {
            Grain::Month => n
                .checked_add_months(Months::new(1))
                .expect("a month within chrono's range"),
            Grain::Day | Grain::Week => n + self.approx(),
            _ => return start + self.approx(),
        };
        let next = at_local(start.timezone(), after);
        if next > start {
            next
        } else {
            start + self.approx()
        }
    }

    /// How a bucket's start reads in a table: `2025-04-01 09:05` for the
    /// grains under a day, `2025-04-01` for days, `week of 2025-03-31`,
    /// `2025-04` for months.
    pub fn label(self, start: DateTime<Tz>) -> String {
        match self {
            Grain::Day => start.format("%Y-%m-%d").to_string(),
            Grain::Week => format!("week of {}", start.format("%Y-%m-%d")),
            Grain::Month => start.format("%Y-%m").to_string(),
            _ => start.format("%Y-%m-%d %H:%M").to_string(),
        }
    }
}

fn midnight(d: NaiveDate) -> NaiveDateTime {
    d.and_hms_opt(0, 0, 0).expect("midnight")
}

/// The instant a local reading names in `tz`: the earlier of two, or the
/// first that exists after a gap.
fn at_local(tz: Tz, n: NaiveDateTime) -> DateTime<Tz> {
    let mut n = n;
    for _ in 0..48 {
        match tz.from_local_datetime(&n) {
            LocalResult::Single(t) => return t,
            LocalResult::Ambiguous(a, b) => return a.min(b),
            LocalResult::None => n += Duration::minutes(30),
        }
    }
    tz.from_utc_datetime(&n)
}

/// One local bucket and what was counted in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket<T> {
    pub start: DateTime<Tz>,
    /// The start as a table reads it ([`Grain::label`]).
    pub label: String,
    pub value: T,
}

/// Sums `points` (UTC instants with counts) into consecutive local buckets
/// of `grain` from the bucket of `from` (or of the first point) to the
/// bucket of `to` (or of the last point); buckets without a point hold
/// `T::default()`. At most `max` buckets are made: if the span needs more,
/// the earliest are dropped and their points are left out.
pub fn fold<T>(
    points: &[(DateTime<Utc>, T)],
    tz: Tz,
    grain: Grain,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    max: usize,
) -> Vec<Bucket<T>>
where
    T: Default + Copy + AddAssign,
{
    let first = from.or_else(|| points.iter().map(|p| p.0).min());
    let last = to.or_else(|| points.iter().map(|p| p.0).max());
    let (Some(first), Some(last)) = (first, last) else {
        return Vec::new();
    };
    let mut sums: BTreeMap<i64, T> = BTreeMap::new();
    for (at, value) in points {
        let key = grain.floor(at.with_timezone(&tz)).timestamp();
        *sums.entry(key).or_default() += *value;
    }
    let end = grain.floor(last.with_timezone(&tz));
    let mut starts = Vec::new();
    let mut start = grain.floor(first.with_timezone(&tz));
    while start <= end {
        starts.push(start);
        start = grain.next(start);
    }
    let skip = starts.len().saturating_sub(max.max(1));
    starts
        .into_iter()
        .skip(skip)
        .map(|start| Bucket {
            label: grain.label(start),
            value: sums.get(&start.timestamp()).copied().unwrap_or_default(),
            start,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const TOKYO: Tz = chrono_tz::Asia::Tokyo;

    #[test]
    fn a_tokyo_day_starts_at_tokyo_midnight_not_at_utc_midnight() {
        // 23:30 UTC on 31 March is 08:30 on 1 April in Tokyo.
        let t = utc("2025-03-31T23:30:00Z").with_timezone(&TOKYO);
        let day = Grain::Day.floor(t);
        assert_eq!(day.to_rfc3339(), "2025-04-01T00:00:00+09:00");
        assert_eq!(Grain::Day.label(day), "2025-04-01");
        assert_eq!(
            Grain::Week.floor(t).to_rfc3339(),
            "2025-03-31T00:00:00+09:00"
        );
        assert_eq!(Grain::Month.label(Grain::Month.floor(t)), "2025-04");
        assert_eq!(
            Grain::QuarterHour.floor(t).to_rfc3339(),
            "2025-04-01T08:30:00+09:00"
        );
    }

    #[test]
    fn folding_sums_points_into_their_buckets_and_fills_the_gaps_with_zero() {
        let points = [
            (utc("2025-04-01T00:01:00Z"), 2i64),
            (utc("2025-04-01T00:04:00Z"), 3),
            (utc("2025-04-01T00:17:00Z"), 1),
        ];
        let b = fold(&points, TOKYO, Grain::FiveMinutes, None, None, 100);
        let got: Vec<(String, i64)> = b.iter().map(|b| (b.label.clone(), b.value)).collect();
        assert_eq!(
            got,
            [
                ("2025-04-01 09:00".to_string(), 5),
                ("2025-04-01 09:05".to_string(), 0),
                ("2025-04-01 09:10".to_string(), 0),
                ("2025-04-01 09:15".to_string(), 1),
            ]
        );
        let capped = fold(&points, TOKYO, Grain::Minute, None, None, 3);
        assert_eq!(capped.len(), 3);
        assert_eq!(capped.last().unwrap().label, "2025-04-01 09:17");
        assert!(fold::<i64>(&[], TOKYO, Grain::Day, None, None, 10).is_empty());
    }

    #[test]
    fn months_and_daylight_saving_days_have_their_local_length() {
        let ny: Tz = chrono_tz::America::New_York;
        // 9 March 2025: clocks go from 02:00 to 03:00; the day is 23 hours.
        let day = Grain::Day.floor(utc("2025-03-09T12:00:00Z").with_timezone(&ny));
        let next = Grain::Day.next(day);
        assert_eq!(next.to_rfc3339(), "2025-03-10T00:00:00-04:00");
        assert_eq!((next - day).num_hours(), 23);
        let feb = Grain::Month.floor(utc("2024-02-10T00:00:00Z").with_timezone(&TOKYO));
        assert_eq!(
            Grain::Month.next(feb).to_rfc3339(),
            "2024-03-01T00:00:00+09:00"
        );
        // Santiago skips midnight when summer time starts (7 September 2025).
        let scl: Tz = chrono_tz::America::Santiago;
        let t = utc("2025-09-07T12:00:00Z").with_timezone(&scl);
        let start = Grain::Day.floor(t);
        assert!(
            start <= t && start.date_naive() == t.date_naive(),
            "{start}"
        );
    }

    #[test]
    fn the_grain_chosen_is_the_finest_that_fits() {
        let fine = [Grain::Minute, Grain::FiveMinutes, Grain::Hour];
        assert_eq!(
            Grain::fitting(&fine, Duration::minutes(30), 60),
            Grain::Minute
        );
        assert_eq!(
            Grain::fitting(&fine, Duration::hours(3), 60),
            Grain::FiveMinutes
        );
        assert_eq!(Grain::fitting(&fine, Duration::days(30), 60), Grain::Hour);
        for g in Grain::ALL {
            assert_eq!(Grain::parse(g.as_str()), Some(*g));
        }
    }
}
