//! The jobs of born queue entries ([`crate::store::model::Born`]) the scheduler keeps
//! until it sends them, so an attempt the writer just committed is sent as committed,
//! without reading it back.
//!
//! A job is a snapshot: its endpoint may change after it was born (in another process,
//! or while the publish that made it was being written). A kept job is therefore used
//! only within [`BORN_JOB_TTL_MS`] of reaching the scheduler, the same bound on staleness
//! wherever the change came from; past it, the job is read again. The engine's own
//! endpoint and application changes drop every kept job at once ([`BornJobs::clear`]).
//! They are bounded in memory by [`BORN_JOB_BYTES`]; a job that does not fit is read when
//! its turn comes.
//!
//! Kept only until the next pass (as before 2026-12-07), a burst on Postgres read 59% of
//! its attempts back: the writer commits hundreds of first attempts at once to one
//! endpoint, which sends them over the next tens of milliseconds.

use std::collections::{HashMap, VecDeque};

use crate::ids::DeliveryId;
use crate::store::model::{EndpointRecord, Job};

/// How long after its birth a kept job may be sent as it is, in ms.
pub(super) const BORN_JOB_TTL_MS: u64 = 100;

/// The most bytes kept jobs may hold, as [`size_of`] counts them.
pub(super) const BORN_JOB_BYTES: usize = 4 << 20;

/// What a job holds besides its payload and the endpoint's texts counted by
/// [`endpoint_bytes`] (the attempt record, the endpoint's fixed fields), roughly.
const JOB_OVERHEAD_BYTES: usize = 1024;

/// Whether a job born at `born_ms` may still be sent at `now_ms` (not if the clock went
/// back past its birth: its age is then unknown).
fn fresh(born_ms: u64, now_ms: u64) -> bool {
    born_ms <= now_ms && now_ms <= born_ms + BORN_JOB_TTL_MS
}

/// A job kept, with the time it was born and what it counts against [`BORN_JOB_BYTES`].
struct Kept {
    job: Job,
    born_ms: u64,
    size: usize,
}

/// Born jobs kept for sending.
#[derive(Default)]
pub(super) struct BornJobs {
    jobs: HashMap<DeliveryId, Kept>,
    /// The ids kept, oldest first, with their birth: what [`BornJobs::expire`] looks at
    /// (an id given or forgotten since is skipped there).
    ages: VecDeque<(u64, DeliveryId)>,
    bytes: usize,
}

/// What a job counts against [`BORN_JOB_BYTES`]: its payload, and its copy of the
/// endpoint, whose transformations (every saved version) and certificate may be far
/// larger than the payload.
fn size_of(job: &Job) -> usize {
    JOB_OVERHEAD_BYTES + job.body.as_ref().map_or(0, Vec::len) + job.endpoint.as_ref().map_or(0, endpoint_bytes)
}

/// The endpoint's variable-length texts, in bytes (no allocation: a sum of lengths).
fn endpoint_bytes(endpoint: &EndpointRecord) -> usize {
    let texts = |list: &mut dyn Iterator<Item = &String>| list.map(String::len).sum::<usize>();
    let transformation = endpoint
        .transformation
        .as_ref()
        .map_or(0, |t| std::iter::once(&t.current).chain(&t.earlier).map(|v| v.code.len() + v.saved_by.len()).sum());
    endpoint.url.len()
        + texts(&mut endpoint.enabled_events.iter())
        + texts(&mut endpoint.labels.iter())
        + texts(&mut endpoint.metadata.iter().flat_map(|(k, v)| [k, v]))
        + texts(&mut endpoint.headers.iter().flat_map(|(k, v)| [k, v]))
        + endpoint.description.as_ref().map_or(0, String::len)
        + endpoint.client_certificate.as_ref().map_or(0, |c| c.certificate.len() + 256)
        + endpoint.secrets.len() * 128
        + transformation
}

impl BornJobs {
    /// Keeps `job`, born at `now_ms`, if there is room for it; `false`: it was not kept.
    /// A job kept before of the same attempt goes either way (it is older than this one),
    /// and its room counts for this one.
    pub(super) fn keep(&mut self, id: DeliveryId, job: Job, now_ms: u64) -> bool {
        self.remove(id);
        let size = size_of(&job);
        if self.bytes + size > BORN_JOB_BYTES {
            return false;
        }
        self.bytes += size;
        self.jobs.insert(id, Kept { job, born_ms: now_ms, size });
        self.ages.push_back((now_ms, id));
        true
    }

    /// The kept job of `id`, if still fresh at `now_ms`; either way it is kept no longer.
    pub(super) fn take(&mut self, id: DeliveryId, now_ms: u64) -> Option<Job> {
        let kept = self.remove(id)?;
        fresh(kept.born_ms, now_ms).then_some(kept.job)
    }

    /// Drops the job of `id`, if kept (its entry left memory).
    pub(super) fn forget(&mut self, id: DeliveryId) {
        self.remove(id);
    }

    fn remove(&mut self, id: DeliveryId) -> Option<Kept> {
        let kept = self.jobs.remove(&id)?;
        self.bytes -= kept.size;
        Some(kept)
    }

    /// Drops the jobs too old to send at `now_ms`: the oldest, until one is fresh, so a
    /// pass pays only for what expired.
    pub(super) fn expire(&mut self, now_ms: u64) {
        while let Some(&(born_ms, id)) = self.ages.front() {
            if fresh(born_ms, now_ms) {
                return;
            }
            self.ages.pop_front();
            // Gone already if it was given or forgotten; kept again since if born later
            // (its newer age is further back in the queue).
            if self.jobs.get(&id).is_some_and(|kept| kept.born_ms == born_ms) {
                self.remove(id);
            }
        }
    }

    /// Drops every kept job (what they hold may have changed).
    pub(super) fn clear(&mut self) {
        self.jobs.clear();
        self.ages.clear();
        self.bytes = 0;
    }

    /// How many jobs are kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.jobs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AppId, EventId};
    use crate::mode::Mode;
    use crate::store::model::{AttemptRecord, Owner};

    fn job(body: usize) -> Job {
        let owner = Owner { app: AppId(1), mode: Mode::Test };
        let endpoint = EndpointRecord::for_test(owner, "http://127.0.0.1:9/", "*");
        let attempt = AttemptRecord::pending(&endpoint, EventId::new(), "a.x", 1, 0);
        Job { attempt, endpoint: Some(endpoint), body: Some(vec![b'x'; body]), trace: None }
    }

    #[test]
    fn a_kept_job_is_given_once_while_fresh_and_the_memory_bound_holds() {
        let mut born = BornJobs::default();
        let (a, b) = (DeliveryId::new(), DeliveryId::new());
        assert!(born.keep(a, job(100), 1_000));
        assert!(born.keep(b, job(100), 1_000));
        assert!(born.take(a, 1_000 + BORN_JOB_TTL_MS).is_some(), "fresh up to the bound");
        assert!(born.take(a, 1_000).is_none(), "given once");
        assert!(born.take(b, 1_001 + BORN_JOB_TTL_MS).is_none(), "too old: read again");
        assert!(born.keep(b, job(100), 1_000));
        assert!(born.take(b, 999).is_none(), "the clock went back: its age is unknown");
        assert_eq!((born.len(), born.bytes), (0, 0));

        // Payloads past the bound are not kept.
        let big = BORN_JOB_BYTES - size_of(&job(0)) - 10;
        assert!(born.keep(a, job(big), 0));
        assert!(!born.keep(b, job(100), 0), "no room");
        born.clear();
        assert!(born.keep(b, job(100), 0), "room again once cleared");
        // The endpoint's copy counts (its headers here): a large one fills the room alone.
        let mut heavy = job(0);
        let endpoint = heavy.endpoint.as_mut().unwrap();
        endpoint.headers.insert("x-padding".into(), "p".repeat(BORN_JOB_BYTES));
        assert!(!born.keep(DeliveryId::new(), heavy, 0), "its endpoint is counted, not only its payload");

        // Expired: what grew old, oldest first; forgotten: what left memory.
        let (c, d) = (DeliveryId::new(), DeliveryId::new());
        assert!(born.keep(c, job(100), 50));
        assert!(born.keep(d, job(100), 60));
        born.expire(50 + BORN_JOB_TTL_MS);
        assert_eq!(born.len(), 2, "b (born at 0) is too old; c and d are kept");
        born.expire(51 + BORN_JOB_TTL_MS);
        assert_eq!(born.len(), 1, "c too");
        born.forget(d);
        assert_eq!((born.len(), born.bytes), (0, 0), "d left memory");
        born.expire(u64::MAX - BORN_JOB_TTL_MS);
        assert!(born.ages.is_empty(), "ids given or forgotten leave the age queue as they come up");

        // Kept again later: its first age expires without taking the newer job.
        assert!(born.keep(c, job(100), 1_000));
        assert!(born.keep(c, job(100), 1_050));
        born.expire(1_001 + BORN_JOB_TTL_MS);
        assert!(born.take(c, 1_001 + BORN_JOB_TTL_MS).is_some(), "the job kept at 1,050 is fresh");

        // Kept again with the room full: the older job's room is the newer one's.
        born.clear();
        let nearly_all = BORN_JOB_BYTES - size_of(&job(0)) - 10;
        assert!(born.keep(c, job(nearly_all), 0));
        assert!(born.keep(c, job(nearly_all), 10), "replaces the job it makes room for");
        assert_eq!((born.len(), born.bytes), (1, size_of(&job(nearly_all))));
        // Kept again with no room even so: the older job is not kept either.
        assert!(!born.keep(c, job(BORN_JOB_BYTES), 20));
        assert_eq!((born.len(), born.bytes), (0, 0), "no stale job left in its place");
    }
}
