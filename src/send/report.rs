//! What a worker tells its operators: tracing events at info level (warn
//! for what needs a person), each with an `event` field for machines and a
//! sentence for people. With `--log-format json` they become one JSON
//! object a line for journald or Loki.
//!
//! | event | when | fields |
//! |---|---|---|
//! | `campaign.started` | recipients frozen, every message rendered once by the send gate | `campaign`, `recipients`, `render_secs` |
//! | `campaign.progress` | every 10% and at least every minute while sending | `campaign`, `done`, `total`, `percent`, `sent`, `failed`, `retry`, `rate` (messages/s), `eta_secs`, `finish_at` |
//! | `campaign.retries` | a batch's temporary failures were queued again | `campaign`, `retries`, `next_due` |
//! | `campaign.blocked` | the hourly or daily ceiling holds messages back (info), or the send gate blocked the campaign: nothing is sent until a person acts (warn) | `campaign`, `held`, `until` (ceiling) or `reason` (gate) |
//! | `campaign.not_approved` | a due campaign waits for its approval (warn, once) | `campaign`, `reason` |
//! | `campaign.paused` | paused by an operator or by the error rate | `campaign`, `reason`, `by` |
//! | `campaign.stopped` | cancelled, or another state that is not running | `campaign`, `state`, `reason`, `by` |
//! | `campaign.finished` | every recipient done | `campaign`, `sent`, `failed`, `skipped`, `total` |
//! | `campaign.waiting_for_relay` | no relay can be reached: messages wait, attempts are not used up | `campaign`, `reason` |
//! | `campaign.relay_back` | the relay answers again | `campaign` |
//! | `relay.down` | an SMTP relay cannot be reached and is passed over for a while | `server`, `error`, `retry_in_secs` |
//! | `relay.up` | a relay that was down accepted a connection again | `server` |
//!
//! Times in the sentences are in `general.timezone` (set by [`set_zone`]);
//! the fields carry RFC 3339 with the offset.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;

use crate::domain::DeliveryStatus;
use crate::store::campaigns::{Campaign, Counts, Outcome};

/// A progress event at least this often while messages go out.
const EVERY: Duration = Duration::from_secs(60);

static ZONE: OnceLock<Tz> = OnceLock::new();

/// The zone of times in log sentences (the first call wins).
pub fn set_zone(tz: Tz) {
    let _ = ZONE.set(tz);
}

fn zone() -> Tz {
    ZONE.get().copied().unwrap_or(chrono_tz::Asia::Tokyo)
}

/// `2026-12-07 09:00:05 JST`.
fn when(t: DateTime<Utc>) -> String {
    t.with_timezone(&zone())
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

fn when_ms(ms: i64) -> (String, String) {
    let t = Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
    (when(t), t.with_timezone(&zone()).to_rfc3339())
}

/// A campaign's recipients were frozen and it is running.
pub fn started(campaign: i64, recipients: i64, render_secs: f64) {
    tracing::info!(
        event = "campaign.started",
        campaign,
        recipients,
        render_secs,
        "campaign {campaign} started: {recipients} recipients, every message rendered in \
         {render_secs:.2} s"
    );
}

/// The send gate blocked the campaign: nothing is sent until a person
/// fixes the issue or overrides the check.
pub fn blocked(campaign: i64, reason: &str) {
    tracing::warn!(
        event = "campaign.blocked",
        campaign,
        reason,
        "campaign {campaign} blocked, nothing sent: {reason}"
    );
}

/// Every recipient is done.
pub fn finished(campaign: i64, counts: &Counts) {
    tracing::info!(
        event = "campaign.finished",
        campaign,
        sent = counts.sent,
        failed = counts.failed,
        skipped = counts.skipped,
        total = counts.total(),
        "campaign {campaign} finished: {} sent, {} failed, {} skipped of {}",
        counts.sent,
        counts.failed,
        counts.skipped,
        counts.total()
    );
}

/// The campaign stopped running: paused (by whom and why), cancelled, or
/// any other state that is not `running`.
pub fn stopped(c: &Campaign) {
    let reason = c.state_reason.as_str();
    if c.state == "paused" {
        tracing::info!(
            event = "campaign.paused",
            campaign = c.id,
            reason,
            "campaign {} paused: {reason}",
            c.id
        );
    } else if c.state == "blocked" {
        blocked(c.id, reason);
    } else {
        tracing::info!(
            event = "campaign.stopped",
            campaign = c.id,
            state = c.state.as_str(),
            reason,
            "campaign {} is {}: {reason}",
            c.id,
            c.state
        );
    }
}

/// A due campaign waits for its approval: it starts once approved.
pub fn not_approved(campaign: i64, reason: &str) {
    tracing::warn!(
        event = "campaign.not_approved",
        campaign,
        reason,
        "campaign {campaign} is due but waits for its approval: {reason}"
    );
}

/// The worker paused the campaign itself (error rate, a start or send
/// error): a warning, since a person must look.
pub fn paused_by_worker(campaign: i64, reason: &str) {
    tracing::warn!(
        event = "campaign.paused",
        campaign,
        reason,
        by = "worker",
        "campaign {campaign} paused: {reason}"
    );
}

/// The reply recorded on a message a sending ceiling held back.
pub const CEILING_REPLY: &str = "waiting: the hourly or daily sending ceiling is reached";

/// The campaign waits for its relay (the first failed connection of an
/// outage): a warning, since a person may have to look.
pub fn waiting_for_relay(campaign: i64, reason: &str) {
    tracing::warn!(
        event = "campaign.waiting_for_relay",
        campaign,
        reason,
        "campaign {campaign} waits for its relay: {reason}"
    );
}

/// The relay answers again and the campaign goes on.
pub fn relay_back(campaign: i64) {
    tracing::info!(
        event = "campaign.relay_back",
        campaign,
        "campaign {campaign}: the relay answers again; sending goes on"
    );
}

/// What a recorded batch tells: temporary failures queued again, and
/// messages held back by a sending ceiling.
pub fn recorded(campaign: i64, outcomes: &[Outcome]) {
    let retry = |o: &&Outcome| o.status == DeliveryStatus::Retry;
    let retries: Vec<i64> = outcomes
        .iter()
        .filter(retry)
        .filter(|o| o.uncounted == 0)
        .filter_map(|o| o.due_ms)
        .collect();
    if let Some(&next) = retries.iter().min() {
        let (shown, rfc) = when_ms(next);
        tracing::info!(
            event = "campaign.retries",
            campaign,
            retries = retries.len(),
            next_due = rfc.as_str(),
            "campaign {campaign}: {} temporary failure{} will be retried, the first at {shown}",
            retries.len(),
            if retries.len() == 1 { "" } else { "s" }
        );
    }
    let held: Vec<i64> = outcomes
        .iter()
        .filter(retry)
        .filter(|o| o.uncounted > 0 && o.reply == CEILING_REPLY)
        .filter_map(|o| o.due_ms)
        .collect();
    if let Some(&until) = held.iter().min() {
        let (shown, rfc) = when_ms(until);
        tracing::warn!(
            event = "campaign.blocked",
            campaign,
            held = held.len(),
            until = rfc.as_str(),
            "campaign {campaign} blocked: the hourly or daily sending ceiling holds {} messages \
             until {shown}",
            held.len()
        );
    }
}

/// A relay failed and is passed over for `retry_in`.
pub fn relay_down(server: &str, error: &str, retry_in: Duration) {
    tracing::warn!(
        event = "relay.down",
        server,
        error,
        retry_in_secs = retry_in.as_secs(),
        "relay {server} is down ({error}); trying it again in {} s",
        retry_in.as_secs()
    );
}

/// A relay that was down accepted a message again.
pub fn relay_up(server: &str) {
    tracing::info!(event = "relay.up", server, "relay {server} is back up");
}

/// One progress report.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub campaign: i64,
    pub done: i64,
    pub total: i64,
    pub percent: i64,
    pub counts: Counts,
    /// Messages done per second since this worker began on the campaign.
    pub rate: f64,
    /// Seconds until every open message is done at that rate.
    pub eta_secs: Option<u64>,
}

impl Progress {
    fn log(&self) {
        let rate = (self.rate * 10.0).round() / 10.0;
        let finish = self
            .eta_secs
            .map(|s| Utc::now() + chrono::Duration::seconds(s as i64));
        let finish_at = finish
            .map(|t| t.with_timezone(&zone()).to_rfc3339())
            .unwrap_or_default();
        let about = finish
            .map(|t| format!(", finishing about {}", when(t)))
            .unwrap_or_default();
        tracing::info!(
            event = "campaign.progress",
            campaign = self.campaign,
            done = self.done,
            total = self.total,
            percent = self.percent,
            sent = self.counts.sent,
            failed = self.counts.failed,
            retry = self.counts.retry,
            rate,
            eta_secs = self.eta_secs,
            finish_at = finish_at.as_str(),
            "campaign {}: {} of {} done ({}%), {} failed, {} to retry, {}/s{about}",
            self.campaign,
            self.done,
            self.total,
            self.percent,
            self.counts.failed,
            self.counts.retry,
            rate
        );
    }
}

/// Decides when a campaign's progress is reported: each time it crosses
/// a tenth of the total, and at least every minute while it moves.
#[derive(Debug)]
pub struct Reporter {
    campaign: i64,
    began: Option<(Instant, i64)>,
    last_tenth: i64,
    last_at: Option<Instant>,
    last_done: i64,
}

impl Reporter {
    pub fn new(campaign: i64) -> Reporter {
        Reporter {
            campaign,
            began: None,
            last_tenth: -1,
            last_at: None,
            last_done: -1,
        }
    }

    /// Logs a progress event when one is due.
    pub fn update(&mut self, counts: &Counts) {
        if let Some(p) = self.update_at(counts, Instant::now()) {
            p.log();
        }
    }

    /// The progress report due at `now` for `counts`, if any.
    pub fn update_at(&mut self, counts: &Counts, now: Instant) -> Option<Progress> {
        let total = counts.total();
        let done = counts.done();
        let &mut (began_at, began_done) = self.began.get_or_insert((now, done));
        if total == 0 {
            return None;
        }
        let tenth = done * 10 / total;
        if self.last_tenth < 0 {
            // The first sight of the campaign: where it stands.
            self.last_tenth = tenth;
            self.last_done = done;
        }
        let moved = done != self.last_done;
        let crossed = tenth > self.last_tenth;
        let minute = self
            .last_at
            .map_or(true, |t| now.duration_since(t) >= EVERY);
        if !(moved && (crossed || minute)) {
            return None;
        }
        self.last_tenth = tenth;
        self.last_at = Some(now);
        self.last_done = done;
        let secs = now.duration_since(began_at).as_secs_f64();
        let rate = if secs > 0.0 {
            (done - began_done).max(0) as f64 / secs
        } else {
            0.0
        };
        let open = counts.open();
        let eta_secs = (rate > 0.0).then(|| (open as f64 / rate).ceil() as u64);
        Some(Progress {
            campaign: self.campaign,
            done,
            total,
            percent: done * 100 / total,
            counts: *counts,
            rate,
            eta_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(sent: i64, pending: i64) -> Counts {
        Counts {
            sent,
            pending,
            ..Counts::default()
        }
    }

    #[test]
    fn progress_is_reported_at_each_tenth_and_at_least_every_minute() {
        let t0 = Instant::now();
        let mut r = Reporter::new(7);
        // 1,000 recipients, 5 done a second: a report at the first sight,
        // then at 100, 200, ... and once a minute in between only if the
        // tenths are further apart than a minute.
        let mut reports = Vec::new();
        for second in 0..=200u64 {
            let sent = (second as i64 * 5).min(1000);
            let at = t0 + Duration::from_secs(second);
            if let Some(p) = r.update_at(&counts(sent, 1000 - sent), at) {
                reports.push((second, p));
            }
        }
        let seconds: Vec<u64> = reports.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            seconds,
            [1, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200],
            "{reports:#?}"
        );
        let (_, last) = reports.last().unwrap();
        assert_eq!((last.done, last.percent), (1000, 100));
        let (_, mid) = &reports[5];
        assert_eq!(mid.percent, 50);
        assert!((mid.rate - 5.0).abs() < 0.01, "{mid:?}");
        assert_eq!(mid.eta_secs, Some(100));
    }

    #[test]
    fn a_slow_campaign_reports_every_minute_while_it_moves_and_not_while_it_waits() {
        let t0 = Instant::now();
        let mut r = Reporter::new(8);
        let mut at = |s: u64, sent: i64| {
            r.update_at(&counts(sent, 100_000 - sent), t0 + Duration::from_secs(s))
                .map(|p| p.done)
        };
        assert_eq!(at(0, 0), None, "nothing done yet");
        assert_eq!(at(1, 10), Some(10));
        assert_eq!(at(30, 300), None);
        assert_eq!(at(61, 610), Some(610));
        // Waiting (nothing moves) for ten minutes: silence.
        assert_eq!(at(700, 610), None);
        assert_eq!(at(701, 620), Some(620));
    }
}
