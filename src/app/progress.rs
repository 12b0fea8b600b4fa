//! A campaign's progress as its admin page and the API show it: the
//! deliveries by status (sent, failed, waiting for a retry, still to go),
//! the state, whether it is waiting for an unreachable relay, and the
//! rate, measured by whoever watches ([`RateMeter`]) from successive
//! readings, so that reading it costs one grouped count and nothing is
//! stored for it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::error::AppError;
use crate::domain::CampaignState;
use crate::store::campaigns::Counts;
use crate::store::Store;

/// One reading of a campaign's progress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub campaign_id: i64,
    /// draft, scheduled, running, paused, finished or cancelled
    pub state: String,
    pub state_reason: String,
    pub counts: Counts,
    pub total: i64,
    /// Sent, failed or skipped.
    pub done: i64,
    /// Whole percent of `total` done (0 with no deliveries).
    pub percent: i64,
    /// Messages sent per minute over the last readings (None until two
    /// readings some seconds apart exist, or when not running).
    pub rate_per_minute: Option<i64>,
    /// Since when (Unix ms) the relay could not be reached, if it cannot.
    pub waiting_since_ms: Option<i64>,
    pub waiting_reason: String,
    /// Finished or cancelled: nothing more will change.
    pub over: bool,
}

/// Reads a campaign's progress now (without a rate).
pub async fn read(store: &Store, id: i64) -> Result<Progress, AppError> {
    let c = store.campaign_or_err(id).await?;
    let counts = store.delivery_counts(id).await?;
    let state = c.state()?;
    let total = counts.total();
    Ok(Progress {
        campaign_id: id,
        state: c.state.clone(),
        state_reason: c.state_reason.clone(),
        counts,
        total,
        done: counts.done(),
        percent: (counts.done() * 100).checked_div(total).unwrap_or(0),
        rate_per_minute: None,
        waiting_since_ms: c.waiting_since_ms,
        waiting_reason: c.waiting_reason.clone(),
        over: matches!(state, CampaignState::Finished | CampaignState::Cancelled),
    })
}

/// Measures the sending rate from successive readings of the sent count,
/// over a sliding window.
#[derive(Debug, Clone)]
pub struct RateMeter {
    window: Duration,
    samples: VecDeque<(Instant, i64)>,
}

impl Default for RateMeter {
    fn default() -> Self {
        RateMeter::new(Duration::from_secs(30))
    }
}

impl RateMeter {
    pub fn new(window: Duration) -> RateMeter {
        RateMeter {
            window,
            samples: VecDeque::new(),
        }
    }

    /// Adds a reading taken at `at` and returns the rate per minute over
    /// the window, once the readings span at least a second.
    pub fn observe(&mut self, at: Instant, sent: i64) -> Option<i64> {
        self.samples.push_back((at, sent));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| at.duration_since(*t) > self.window)
        {
            self.samples.pop_front();
        }
        let (t0, s0) = *self.samples.front()?;
        let span = at.duration_since(t0).as_secs_f64();
        if span < 1.0 {
            return None;
        }
        Some((((sent - s0).max(0) as f64) * 60.0 / span).round() as i64)
    }

    /// Reads the progress and adds the rate (while running).
    pub async fn read(&mut self, store: &Store, id: i64) -> Result<Progress, AppError> {
        let mut p = read(store, id).await?;
        let rate = self.observe(Instant::now(), p.counts.sent);
        if p.state == "running" {
            p.rate_per_minute = rate;
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_the_sent_count_over_the_window_per_minute() {
        let mut m = RateMeter::new(Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(m.observe(t, 0), None, "one reading is no rate");
        assert_eq!(m.observe(t + Duration::from_millis(500), 5), None);
        assert_eq!(m.observe(t + Duration::from_secs(2), 20), Some(600));
        // Readings older than the window drop out.
        assert_eq!(m.observe(t + Duration::from_secs(11), 20), Some(0));
        assert_eq!(m.observe(t + Duration::from_secs(14), 50), Some(600));
    }
}
