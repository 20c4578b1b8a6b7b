//! How many connections the HTTP server may hold at once: the process's open-file limit,
//! less the descriptors everything else in the process needs. Every connection is a
//! descriptor, and a server that runs out of them cannot accept, open its data file, or
//! reach an endpoint; so it stops accepting first (actix's `max_concurrent_connections`),
//! and connections past the cap wait in the listen backlog until one closes.
//!
//! Reads the limit (after raising the soft one to the hard one) and decides; opens nothing.

use crate::config::{Backend, Config};

/// Descriptors kept for the process itself, whatever its config: the standard streams,
/// the data file, each runtime's poller and waker (27 descriptors in all on an idle
/// 2-core server), the listener, DNS look-ups (a socket each while one runs), a backup's
/// copy of the data file; with room to spare.
pub const RESERVED_FOR_PROCESS: u64 = 64;

/// Descriptors kept per HTTP worker thread: its runtime's poller and waker, with margin.
pub const RESERVED_PER_WORKER: u64 = 4;

/// Delivery connections kept per attempt allowed in flight (`[delivery] workers`): the
/// attempt's own, and one idle for reuse (the client pools up to `workers` idle
/// connections per host).
pub const DELIVERY_CONNECTIONS_PER_WORKER: u64 = 2;

/// Postgres connections besides the pool (`[store] postgres_pool_size`): the one that
/// `LISTEN`s for other processes' work and the one that holds the advisory lock.
pub const POSTGRES_EXTRA_CONNECTIONS: u64 = 2;

/// The fewest connections the server holds, however low the limit: fewer would make it
/// useless. Below this it may run out of descriptors, and says so at start.
pub const MIN_CONNECTIONS: usize = 16;

/// The most connections one worker holds: actix's own default, for a limit so high it
/// does not bind.
pub const MAX_CONNECTIONS_PER_WORKER: usize = 25_000;

/// What the open-file limit leaves for HTTP connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionBudget {
    /// The open-file limit in force (the soft one); `None` if it could not be read or is
    /// unlimited.
    pub open_files: Option<u64>,
    /// Descriptors kept for the rest of the process.
    pub reserved: u64,
    /// HTTP worker threads.
    pub workers: usize,
    /// The most connections each worker holds at once (actix counts per worker, so the cap
    /// is this times `workers`).
    pub per_worker: usize,
}

impl ConnectionBudget {
    /// The budget under the process's open-file limit now.
    pub fn measure(config: &Config, workers: usize) -> Self {
        Self::for_limit(open_file_limit(), config, workers)
    }

    /// The budget under `open_files` for a server with this config and `workers` HTTP
    /// worker threads.
    pub fn for_limit(open_files: Option<u64>, config: &Config, workers: usize) -> Self {
        let workers = workers.max(1);
        let mut reserved = RESERVED_FOR_PROCESS
            + RESERVED_PER_WORKER * workers as u64
            + DELIVERY_CONNECTIONS_PER_WORKER * config.delivery.workers as u64;
        if config.store.backend == Backend::Postgres {
            reserved += config.store.postgres_pool_size as u64 + POSTGRES_EXTRA_CONNECTIONS;
        }
        let per_worker = match open_files {
            Some(limit) => {
                let total = usize::try_from(limit.saturating_sub(reserved)).unwrap_or(usize::MAX);
                (total.max(MIN_CONNECTIONS) / workers).max(1)
            }
            None => MAX_CONNECTIONS_PER_WORKER,
        };
        Self { open_files, reserved, workers, per_worker: per_worker.min(MAX_CONNECTIONS_PER_WORKER) }
    }

    /// The most connections the server holds at once.
    pub fn total(&self) -> usize {
        self.per_worker * self.workers
    }

    /// Whether the limit is too low for the reserve and [`MIN_CONNECTIONS`]: the server
    /// may then run out of descriptors.
    pub fn too_low(&self) -> bool {
        self.open_files.is_some_and(|limit| limit < self.reserved + MIN_CONNECTIONS as u64)
    }

    /// The budget in a sentence, for the start-up summary.
    pub fn describe(&self) -> String {
        match self.open_files {
            Some(limit) => format!(
                "{} connections at once (open-file limit {limit}, {} kept for the data file, deliveries and the process)",
                self.total(),
                self.reserved
            ),
            None => format!("{} connections at once (no open-file limit)", self.total()),
        }
    }
}

/// The soft open-file limit, `None` if it cannot be read or is unlimited.
fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit only writes the struct passed to it.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
            return None;
        }
        Some(limit.rlim_cur)
    }
    #[cfg(not(unix))]
    None
}

/// Every API client and every delivery connection (in flight or kept alive for reuse) is
/// an open socket, and the soft limit a service manager hands out (1,024 under systemd)
/// runs out long before memory or CPU do. Like Go's runtime, raise the soft limit to the
/// hard one; the hard limit stays the operator's to set.
pub fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit only writes the struct passed to it.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur >= limit.rlim_max {
            return;
        }
        let wanted = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit only reads the struct passed to it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
            tracing::debug!(from = limit.rlim_cur, to = limit.rlim_max, "raised the open file limit");
        } else {
            // An unlimited hard limit cannot be the soft one (the kernel caps it at nr_open).
            let err = std::io::Error::last_os_error();
            tracing::debug!(error = %err, soft = limit.rlim_cur, "kept the open file limit");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_the_limit_less_what_the_process_keeps() {
        let config = Config::default();
        // 1,024 (systemd's default), 2 workers, 64 delivery workers: 64 + 8 + 128 kept.
        let budget = ConnectionBudget::for_limit(Some(1024), &config, 2);
        assert_eq!(budget.reserved, 200);
        assert_eq!((budget.per_worker, budget.total()), (412, 824));
        assert!(!budget.too_low());
        assert!(budget.describe().contains("824 connections"), "{}", budget.describe());

        let mut pg = Config::default();
        pg.store.backend = Backend::Postgres;
        pg.store.postgres_pool_size = 16;
        assert_eq!(ConnectionBudget::for_limit(Some(1024), &pg, 2).reserved, 218);

        // Per worker, rounded down: the total never passes the limit.
        let budget = ConnectionBudget::for_limit(Some(1024), &config, 3);
        assert_eq!((budget.reserved, budget.total()), (204, 819));
    }

    #[test]
    fn a_tiny_limit_keeps_a_floor_and_no_limit_keeps_actix_default() {
        let config = Config::default();
        let budget = ConnectionBudget::for_limit(Some(100), &config, 2);
        assert_eq!(budget.total(), MIN_CONNECTIONS);
        assert!(budget.too_low());
        let budget = ConnectionBudget::for_limit(None, &config, 2);
        assert_eq!(budget.per_worker, MAX_CONNECTIONS_PER_WORKER);
        let budget = ConnectionBudget::for_limit(Some(u64::MAX / 2), &config, 2);
        assert_eq!(budget.per_worker, MAX_CONNECTIONS_PER_WORKER);
    }
}
