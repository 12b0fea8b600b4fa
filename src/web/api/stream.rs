//! Server-sent events made by polling: a reading at once, then one every
//! period, sent only when it changed, until the reading says it is over,
//! the reader fails, or the server stops. Jobs and campaign progress are
//! streamed this way.

use std::future::Future;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

/// One reading: the event's data (JSON) and whether it is the last.
pub type Reading = Option<(String, bool)>;

/// Streams `event` events with the data `poll` reads from `state`: at
/// once and every `period`, each only when it differs from the one before;
/// ends after a reading marked last, when a reading fails (`None`), or
/// when `closing` turns true.
pub fn polled<S, F, Fut>(
    event: &'static str,
    period: Duration,
    closing: watch::Receiver<bool>,
    state: S,
    poll: F,
) -> Response
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (S, Reading)> + Send + 'static,
{
    struct Cursor<S> {
        state: Option<S>,
        last: Option<String>,
        first: bool,
        closing: watch::Receiver<bool>,
    }
    let start = Cursor {
        state: Some(state),
        last: None,
        first: true,
        closing,
    };
    let poll = std::sync::Arc::new(poll);
    let stream = futures_util::stream::unfold(start, move |mut cur| {
        let poll = poll.clone();
        async move {
            loop {
                let state = cur.state.take()?;
                if !cur.first {
                    tokio::select! {
                        _ = tokio::time::sleep(period) => {}
                        _ = cur.closing.changed() => return None,
                    }
                    if *cur.closing.borrow() {
                        return None;
                    }
                }
                cur.first = false;
                let (state, reading) = poll(state).await;
                let (data, over) = reading?;
                if !over {
                    cur.state = Some(state);
                }
                if cur.last.as_deref() == Some(data.as_str()) && !over {
                    continue;
                }
                cur.last = Some(data.clone());
                let e = Event::default().event(event).data(data);
                return Some((Ok::<_, std::convert::Infallible>(e), cur));
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
