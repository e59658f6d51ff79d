//! Shutdown, as a stream sees it: bursts finished or cut, live streams ended spread over the
//! drain window, and streams that were waiting when it began.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{event, fixture, parse, rest, status};
use crate::hub::{Delivery, Replay};
use crate::session::Mode;
use crate::sse::SseEvent;

#[tokio::test(start_paused = true)]
async fn a_burst_that_ends_within_the_grace_period_is_finished_on_shutdown() {
    let mut f = fixture(Mode::Burst, 8, Replay::default());
    f.session.next_chunk().await.unwrap();
    f.fanout.deliver(&event(1));
    f.session.next_chunk().await.unwrap();
    let stop = f.shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.cancel();
    });
    let frames = rest(&mut f.session).await;
    // A retry hint at the shutdown, then copies 2 and 3 on time, then the burst's own close.
    assert!(frames[0].1.starts_with(b"retry: "), "{frames:?}");
    assert_eq!(frames[0].0, Duration::from_millis(500));
    let events: Vec<SseEvent> = frames[1..].iter().map(|(_, f)| parse(f)).collect();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(frames[1].0, Duration::from_secs(1));
    assert_eq!(frames[2].0, Duration::from_secs(2));
    assert_eq!(
        (events[2].event.as_str(), status(&events[2]).as_str()),
        ("close", "complete")
    );
    drop(f.session);
    assert_eq!(f.count.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn a_burst_waiting_for_its_event_closes_at_once_on_shutdown() {
    let mut f = fixture(Mode::Burst, 8, Replay::default());
    f.session.next_chunk().await.unwrap();
    f.shutdown.cancel();
    let frames = rest(&mut f.session).await;
    assert_eq!(frames.len(), 1);
    let close = parse(&frames[0].1);
    assert_eq!(
        (close.event.as_str(), status(&close).as_str()),
        ("close", "shutdown")
    );
}

/// Shutdown while a stream already waits for an event (live, or a burst's first): the wait has
/// no future of its own on the token; waking every subscription is what ends it, at once.
#[tokio::test(start_paused = true)]
async fn a_waiting_stream_sees_shutdown_when_the_hub_wakes_it() {
    for mode in [Mode::Live, Mode::Burst] {
        let mut f = fixture(mode, 8, Replay::default());
        f.session.next_chunk().await.unwrap();
        let (stop, fanout) = (f.shutdown.clone(), Arc::clone(&f.fanout));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            stop.cancel();
            fanout.wake_all();
        });
        let start = Instant::now();
        let frame = f.session.next_chunk().await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(700), "{mode:?}");
        let text = String::from_utf8_lossy(&frame).into_owned();
        match mode {
            Mode::Burst => assert_eq!(status(&parse(&frame)), "shutdown", "{text}"),
            _ => assert!(text.starts_with("retry: "), "{text}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn live_streams_end_spread_over_the_drain_window_with_a_retry_hint() {
    let mut ends = Vec::new();
    for _ in 0..20 {
        let mut f = fixture(Mode::Live, 8, Replay::default());
        f.session.next_chunk().await.unwrap();
        f.shutdown.cancel();
        let frames = rest(&mut f.session).await;
        let retry: u64 = std::str::from_utf8(&frames[0].1)
            .unwrap()
            .trim()
            .strip_prefix("retry: ")
            .unwrap()
            .parse()
            .unwrap();
        assert!((2000..4000).contains(&retry), "{retry}");
        let (at, close) = frames.last().unwrap();
        assert_eq!(status(&parse(close)), "shutdown");
        assert!(*at < Duration::from_secs(2), "{at:?}");
        ends.push(*at);
    }
    ends.sort();
    let spread = ends[ends.len() - 1] - ends[0];
    assert!(
        spread > Duration::from_millis(500),
        "ends not spread: {ends:?}"
    );
}
