//! Decoded investigations kept between reads: a per-process cache in front of the read model
//! ([`crate::snapshot`]).
//!
//! Every read still fetches the investigation row and its snapshot from the database; the
//! cache only saves decoding the snapshot and assembling the domain value again. An entry is
//! reused only when the row and the snapshot just read are *exactly* (byte for byte) the ones
//! it was built from, and the commissions just read are the ones it shows, so the database
//! alone decides what is current: a command of another process or replica, a restore or a
//! hand edit shows at the next read, with nothing to invalidate. What it holds is a pure
//! function of those inputs and the calendar (`investigations::assemble`).
//!
//! Bounded by a number of entries (`--read-cache-entries`; 0 switches it off); the least
//! recently used entry makes room. An entry is roughly 50 KB at the benchmark's sizes (an
//! estimate: the snapshot's text, 17 KB on average, plus the decoded rows and domain value).

use crate::entity::{investigation, investigation_snapshot};
use crate::investigations::Loaded;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// The default number of entries: a few dashboards' pages (50 each) with room to spare.
pub const DEFAULT_ENTRIES: usize = 256;

#[derive(Debug)]
pub struct ReadCache {
    capacity: usize,
    entries: Mutex<Entries>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct Entries {
    by_id: HashMap<Uuid, Entry>,
    /// A counter of lookups: an entry's `used` is the value when it was last used.
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    /// What it was built from, besides `loaded.row`.
    snapshot: investigation_snapshot::Model,
    loaded: Arc<Loaded>,
    used: u64,
}

impl Default for ReadCache {
    fn default() -> Self {
        ReadCache::new(DEFAULT_ENTRIES)
    }
}

impl ReadCache {
    pub fn new(capacity: usize) -> ReadCache {
        ReadCache {
            capacity,
            entries: Mutex::new(Entries::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The investigation built from exactly this row and snapshot, if it is kept. The caller
    /// still checks its commissions ([`Loaded::commissions`]) against those it read.
    pub(crate) fn get(
        &self,
        row: &investigation::Model,
        snapshot: &investigation_snapshot::Model,
    ) -> Option<Arc<Loaded>> {
        if self.capacity == 0 {
            return None;
        }
        let mut entries = self.lock();
        entries.clock += 1;
        let clock = entries.clock;
        let found = entries
            .by_id
            .get_mut(&row.id)
            .filter(|entry| entry.loaded.row == *row && entry.snapshot == *snapshot)
            .map(|entry| {
                entry.used = clock;
                entry.loaded.clone()
            });
        drop(entries);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps what was built from this row and snapshot, replacing what was kept for the
    /// investigation before and, when full, the least recently used entry.
    pub(crate) fn put(&self, snapshot: investigation_snapshot::Model, loaded: Arc<Loaded>) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        let id = loaded.row.id;
        if entries.by_id.len() >= self.capacity && !entries.by_id.contains_key(&id) {
            let oldest = entries
                .by_id
                .iter()
                .min_by_key(|(_, entry)| entry.used)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                entries.by_id.remove(&oldest);
            }
        }
        let used = entries.clock;
        entries.by_id.insert(
            id,
            Entry {
                snapshot,
                loaded,
                used,
            },
        );
    }

    /// Drops what is kept for the investigation (a command is about to change it).
    pub(crate) fn forget(&self, id: Uuid) {
        self.lock().by_id.remove(&id);
    }

    /// Lookups that found a reusable entry, and those that did not, since start.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Entries kept now.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave an entry half-written (each change is
        // one map operation), so a poisoned lock is safe to use.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
