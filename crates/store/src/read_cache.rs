//! Decoded investigations kept between reads: a per-process cache in front of the read model
//! ([`crate::snapshot`]).
//!
//! Every read still fetches the investigation row and its snapshot's format and digest (the
//! SHA-256 of its body) from the database; the cache saves fetching the body, decoding it and
//! assembling the domain value again. An entry is reused only when the row just read is
//! *exactly* the one it was built from, the snapshot's format and digest are those of the body
//! it was built from, and the commissions just read are the ones it shows, so the database
//! alone decides what is current: a command of another process or replica or a restore shows
//! at the next read, with nothing to invalidate. What it holds is a pure function of those
//! inputs and the calendar (`investigations::assemble`).
//!
//! Bounded by a number of entries (`--read-cache-entries`; 0 switches it off); the least
//! recently used entry makes room. An entry is roughly 35 KB at the benchmark's sizes (an
//! estimate: the decoded rows and the domain value; the snapshot's text is not kept).

use crate::entity::investigation;
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
    snapshot: KeptSnapshot,
    loaded: Arc<Loaded>,
    used: u64,
}

/// The snapshot an entry was built from: its format and digest, which reads compare. Its body
/// is not kept (17 KB on average at the benchmark's sizes, a third of an entry): a value whose
/// commissions have changed since is read again with its body (`investigations::load_rows`).
#[derive(Debug)]
pub(crate) struct KeptSnapshot {
    pub format: i32,
    pub digest: Vec<u8>,
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

    /// The investigation built from exactly this row and a snapshot of this format and digest,
    /// if it is kept. The caller still checks its commissions ([`Loaded::commissions`]) against
    /// those it read.
    pub(crate) fn get(
        &self,
        row: &investigation::Model,
        format: i32,
        digest: &[u8],
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
            .filter(|entry| {
                entry.loaded.row == *row
                    && entry.snapshot.format == format
                    && entry.snapshot.digest == digest
            })
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
    pub(crate) fn put(&self, snapshot: KeptSnapshot, loaded: Arc<Loaded>) {
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
