//! An app's share of the host's CPU (`cpu_share`): a token bucket of epoch
//! ticks, refilled at the app's share of real time. A guest is charged a
//! token each time it has run through a tick; when the app's bucket is
//! empty, its guests pause (their instances stay, their CPU goes to others)
//! until it refills. Short requests are charged in proportion to the time
//! they run, since a tick boundary falls inside them that often, plus a
//! fixed cost for the host's own work on each.

use super::engine::EPOCH_TICK;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Tokens an app may bank: a quarter of a second of its share, so a burst
/// after a quiet spell is short.
const BURST: Duration = Duration::from_millis(250);

/// What the host spends on a request or event besides running the guest:
/// a fresh instance, the protocol, the log line (about 50 µs here).
const REQUEST_COST: Duration = Duration::from_micros(50);

/// One app's bucket of CPU ticks.
#[derive(Debug)]
pub(crate) struct CpuShare {
    /// Ticks per second of real time the app may run (its share of one
    /// core, in ticks).
    rate: f64,
    capacity: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl CpuShare {
    /// A share of `cores` cores (0.5 is half of one core's time).
    pub(crate) fn new(cores: f64) -> Arc<Self> {
        let ticks_per_second = 1.0 / EPOCH_TICK.as_secs_f64();
        let rate = (cores * ticks_per_second).max(1.0);
        let capacity = (rate * BURST.as_secs_f64()).max(1.0);
        Arc::new(CpuShare {
            rate,
            capacity,
            bucket: Mutex::new(Bucket {
                tokens: capacity,
                refilled: Instant::now(),
            }),
        })
    }

    /// Charge one tick now: `None` if the app may go on, else how long it
    /// must pause for the bucket to hold the tick.
    pub(crate) fn charge(&self, now: Instant) -> Option<Duration> {
        self.charge_ticks(now, 1.0)
    }

    /// Charge the host's own work for one request or event (instantiation,
    /// the protocol around it), which no tick measures.
    pub(crate) fn charge_request(&self, now: Instant) -> Option<Duration> {
        self.charge_ticks(now, REQUEST_COST.as_secs_f64() / EPOCH_TICK.as_secs_f64())
    }

    fn charge_ticks(&self, now: Instant, ticks: f64) -> Option<Duration> {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.capacity);
        bucket.refilled = now;
        bucket.tokens -= ticks;
        if bucket.tokens >= 0.0 {
            None
        } else {
            // The tick is owed: pause until the bucket has paid for it.
            Some(Duration::from_secs_f64(-bucket.tokens / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_rate_holds() {
        let share = CpuShare::new(0.1);
        let start = Instant::now();
        let free = (0..100)
            .take_while(|_| share.charge(start).is_none())
            .count();
        let expected = (0.1 / EPOCH_TICK.as_secs_f64() * BURST.as_secs_f64()) as usize;
        assert_eq!(free, expected.max(1), "the burst, then a pause");
        let pause = share.charge(start).expect("owed");
        assert!(pause > Duration::ZERO);
    }

    #[test]
    fn time_refills_the_bucket_at_the_share() {
        let share = CpuShare::new(1.0);
        let start = Instant::now();
        while share.charge(start).is_none() {}
        // One core's share refills one tick per tick of real time.
        let later = start + EPOCH_TICK * 4;
        let allowed = (0..10)
            .take_while(|_| share.charge(later).is_none())
            .count();
        assert!((2..=4).contains(&allowed), "{allowed}");
    }
}
