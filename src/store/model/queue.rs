//! The queue: which attempt is due when, and what the engine needs to make it.

use crate::ids::{AppId, DeliveryId, EndpointId};

use super::Job;

/// A place in the queue: an attempt and when it is due. Keys order by due time, then by
/// attempt id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueKey {
    pub(crate) due_ms: u64,
    pub(crate) attempt: u128,
}

impl QueueKey {
    pub(crate) fn new(due_ms: u64, attempt: DeliveryId) -> Self {
        Self { due_ms, attempt: attempt.as_u128() }
    }

    pub(crate) fn from_row((due_ms, attempt): (u64, u128)) -> Self {
        Self { due_ms, attempt }
    }

    pub(crate) fn row(self) -> (u64, u128) {
        (self.due_ms, self.attempt)
    }

    /// When the attempt is due, in Unix ms.
    pub fn due_ms(self) -> u64 {
        self.due_ms
    }

    /// The attempt this entry sends.
    pub fn attempt(self) -> DeliveryId {
        DeliveryId(self.attempt)
    }

    /// The key just before this one, so a scan "after" it includes this key; `None` for
    /// the very first key.
    pub fn just_before(self) -> Option<QueueKey> {
        match (self.due_ms, self.attempt) {
            (0, 0) => None,
            (due, 0) => Some(QueueKey { due_ms: due - 1, attempt: u128::MAX }),
            (due, id) => Some(QueueKey { due_ms: due, attempt: id - 1 }),
        }
    }

    /// The first row a scan that starts after `after` (exclusive) reads.
    pub(crate) fn first_row_after(after: Option<QueueKey>) -> (u64, u128) {
        match after {
            Some(QueueKey { due_ms, attempt: u128::MAX }) => (due_ms.saturating_add(1), 0),
            Some(QueueKey { due_ms, attempt }) => (due_ms, attempt + 1),
            None => (0, 0),
        }
    }
}

/// Queue entries a write put on the queue (or moved earlier): what the scheduler must
/// hear about. Only the delivery engine reads them, and it wakes its scheduler with them;
/// dropping one unread leaves its entries for the scheduler's next full scan (the born
/// ones of a shared queue once their claim lapses).
#[derive(Debug, Default, Clone)]
#[must_use = "the delivery engine must hear of scheduled attempts"]
pub struct Scheduled {
    /// Every entry, born or not.
    keys: Vec<QueueKey>,
    /// Those of `keys` that are born, with their jobs.
    born: Vec<Born>,
}

/// A first attempt due at once, handed to this process's scheduler with what making it
/// needs, as the write that queued it committed it: the scheduler sends it without reading
/// the queue or the job back. On a shared queue the write claimed it for this process.
#[derive(Debug, Clone)]
pub struct Born {
    /// Its queue entry.
    pub entry: DueEntry,
    /// The attempt, its endpoint and payload, as committed.
    pub job: Job,
}

/// Two are equal when they hold the same entries.
impl PartialEq for Scheduled {
    fn eq(&self, other: &Scheduled) -> bool {
        self.keys == other.keys
    }
}

impl Eq for Scheduled {}

impl Scheduled {
    pub(crate) fn push(&mut self, key: QueueKey) {
        self.keys.push(key);
    }

    /// Notes that an entry already pushed is born ([`Born`]).
    pub(crate) fn push_born(&mut self, born: Born) {
        debug_assert!(self.keys.contains(&born.entry.key), "a born entry is one of the entries");
        self.born.push(born);
    }

    /// Adds another write's entries.
    pub fn extend(&mut self, other: Scheduled) {
        self.keys.extend(other.keys);
        self.born.extend(other.born);
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The earliest entry, where the scheduler must look again from.
    pub fn earliest(&self) -> Option<QueueKey> {
        self.keys.iter().min().copied()
    }

    /// The entries.
    pub fn keys(&self) -> &[QueueKey] {
        &self.keys
    }

    /// The born entries, taken out (they stay among the entries).
    pub fn take_born(&mut self) -> Vec<Born> {
        std::mem::take(&mut self.born)
    }
}

/// A queue entry due for dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueEntry {
    /// Its queue key.
    pub key: QueueKey,
    /// The endpoint it goes to.
    pub endpoint: EndpointId,
    /// The endpoint's application.
    pub app: AppId,
}
