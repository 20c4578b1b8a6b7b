//! Where time comes from. Production reads the system clock; tests give the engine a
//! manual clock and advance it, instead of sleeping and hoping something did not happen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The current time in Unix seconds, the unit of every timestamp in the API.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The current time in Unix milliseconds, the unit of the delivery queue.
pub fn unix_now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Something to call when a manual clock moves: what sleeps until a time must look again.
type Waker = Box<dyn Fn() + Send + Sync>;

/// The time the engine, the store's callers and the API share. Cheap to clone; clones
/// show the same time.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

/// A clock that moves only when told to.
#[derive(Default)]
struct Manual {
    now_ms: AtomicU64,
    wakers: Mutex<Vec<Waker>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock that stands at `start_ms` (Unix ms) until [`Clock::advance`] moves it.
    pub fn manual(start_ms: u64) -> Self {
        Self { manual: Some(Arc::new(Manual { now_ms: AtomicU64::new(start_ms), wakers: Mutex::default() })) }
    }

    /// The current time in Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        match &self.manual {
            Some(manual) => manual.now_ms.load(Ordering::Acquire),
            None => unix_now_ms(),
        }
    }

    /// The current time in Unix seconds.
    pub fn now(&self) -> i64 {
        (self.now_ms() / 1000) as i64
    }

    /// Whether this clock moves only when told to.
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Moves a manual clock forward and wakes whatever waits on it. The system clock
    /// cannot be moved: on it this does nothing.
    pub fn advance(&self, by: Duration) {
        if let Some(manual) = &self.manual {
            manual.now_ms.fetch_add(by.as_millis() as u64, Ordering::AcqRel);
            for wake in manual.wakers.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                wake();
            }
        }
    }

    /// Registers `wake` to be called whenever a manual clock moves (threads that sleep
    /// until a due time use it to look again). Nothing happens on the system clock.
    pub fn on_advance(&self, wake: impl Fn() + Send + Sync + 'static) {
        if let Some(manual) = &self.manual {
            manual.wakers.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(wake));
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.manual {
            Some(_) => write!(f, "Clock::manual({})", self.now_ms()),
            None => f.write_str("Clock::system()"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_wakes_its_sleepers() {
        let clock = Clock::manual(1_000);
        let woken = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&woken);
        clock.on_advance(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(clock.now_ms(), 1_000);
        let copy = clock.clone();
        clock.advance(Duration::from_secs(2));
        assert_eq!(copy.now_ms(), 3_000, "clones share the time");
        assert_eq!(copy.now(), 3);
        assert_eq!(woken.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_system_clock_follows_the_wall_clock() {
        let clock = Clock::system();
        let before = unix_now_ms();
        let now = clock.now_ms();
        assert!(now >= before && now - before < 5_000);
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now_ms() < before + 3_600_000, "advance does not move the system clock");
    }
}
