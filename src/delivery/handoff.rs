//! A queue into one of the engine's threads that sleeps without spinning.
//!
//! crossbeam's channels spin and call `sched_yield` before a receiver sleeps. For the
//! threads that wait on many small hand-offs at low rates (the scheduler, woken for every
//! finished attempt, and the writer) that spinning was a measurable share of the CPU per
//! delivery at paced load (perf, W3: `sched_yield` alone was 4.6% of samples).
//! Here a receiver takes a mutex and sleeps on a condition variable: a hand-off costs one
//! futex wake, and only when the receiver is asleep.
//!
//! Like a channel, the queue closes for its receiver once every sender is dropped (what is
//! queued is still received first), and for senders once the receiver is dropped. Each
//! queue has one receiver: these threads are single consumers.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Creates a queue: its first sender and its first receiver.
pub(crate) fn handoff<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State { items: VecDeque::new(), senders: 1, receiver: true, sleeping: false }),
        arrived: Condvar::new(),
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Signalled when an item arrives or the last sender goes.
    arrived: Condvar,
}

struct State<T> {
    items: VecDeque<T>,
    senders: usize,
    /// Whether the receiver is still there.
    receiver: bool,
    /// Whether the receiver waits on `arrived`; a send wakes it only then.
    sleeping: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding the lock, but a poisoned queue is still a queue.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending side; cheap to clone.
pub(crate) struct Sender<T>(Arc<Shared<T>>);

/// The receiving side; there is one.
pub(crate) struct Receiver<T>(Arc<Shared<T>>);

/// Why [`Receiver::recv_timeout`] came back without an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecvTimeoutError {
    /// Nothing arrived in time.
    Timeout,
    /// Every sender is gone and the queue is empty.
    Disconnected,
}

impl<T> Sender<T> {
    /// Queues `item`; gives it back if the receiver is gone.
    pub(crate) fn send(&self, item: T) -> Result<(), T> {
        let mut state = self.0.lock();
        if !state.receiver {
            return Err(item);
        }
        state.items.push_back(item);
        let wake = state.sleeping;
        drop(state);
        if wake {
            self.0.arrived.notify_one();
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Sender(Arc::clone(&self.0))
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.senders -= 1;
        if state.senders == 0 {
            drop(state);
            self.0.arrived.notify_all();
        }
    }
}

impl<T> Receiver<T> {
    /// The next item, waiting as long as it takes; `None` once every sender is gone and
    /// the queue is empty.
    pub(crate) fn recv(&self) -> Option<T> {
        self.wait(None).ok()
    }

    /// The next item, waiting at most `timeout`.
    pub(crate) fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.wait(Some(Instant::now() + timeout))
    }

    /// Up to `max` items that are already queued, without waiting.
    pub(crate) fn take_queued(&self, max: usize) -> Vec<T> {
        let mut state = self.0.lock();
        let n = state.items.len().min(max);
        state.items.drain(..n).collect()
    }

    fn wait(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let mut state = self.0.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                return Ok(item);
            }
            if state.senders == 0 {
                return Err(RecvTimeoutError::Disconnected);
            }
            state.sleeping = true;
            state = match deadline {
                None => self.0.arrived.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        state.sleeping = false;
                        return Err(RecvTimeoutError::Timeout);
                    }
                    self.0.arrived.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0
                }
            };
            state.sleeping = false;
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.0.lock().receiver = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_from_many_senders_arrive_once_each_in_their_sending_order() {
        let (tx, rx) = handoff::<(u32, u32)>();
        let senders: Vec<_> = (0..4)
            .map(|sender| {
                let tx = tx.clone();
                std::thread::spawn(move || (0..2_500).for_each(|n| tx.send((sender, n)).unwrap()))
            })
            .collect();
        drop(tx);
        let got: Vec<(u32, u32)> = std::iter::from_fn(|| rx.recv()).collect();
        for sender in senders {
            sender.join().unwrap();
        }
        for sender in 0..4 {
            let mine: Vec<u32> = got.iter().filter(|(s, _)| *s == sender).map(|(_, n)| *n).collect();
            assert_eq!(mine, (0..2_500).collect::<Vec<u32>>(), "sender {sender}: every item once, in order");
        }
        assert_eq!(got.len(), 10_000);
    }

    #[test]
    fn closes_when_the_other_side_is_gone_after_what_is_queued() {
        let (tx, rx) = handoff::<&str>();
        let second = tx.clone();
        tx.send("a").unwrap();
        drop(tx);
        second.send("b").unwrap();
        drop(second);
        assert_eq!(rx.take_queued(1), vec!["a"]);
        assert_eq!(rx.recv(), Some("b"));
        assert_eq!(rx.recv(), None);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Err(RecvTimeoutError::Disconnected));

        let (tx, rx) = handoff::<&str>();
        drop(rx);
        assert_eq!(tx.send("c"), Err("c"));
    }

    #[test]
    fn a_timed_wait_ends_at_its_deadline_or_when_an_item_arrives() {
        let (tx, rx) = handoff::<u8>();
        let started = Instant::now();
        assert_eq!(rx.recv_timeout(Duration::from_millis(50)), Err(RecvTimeoutError::Timeout));
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(rx.recv_timeout(Duration::ZERO), Err(RecvTimeoutError::Timeout));

        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(7).unwrap();
            tx
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Ok(7));
        drop(sender.join().unwrap());
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Err(RecvTimeoutError::Disconnected));
    }
}
