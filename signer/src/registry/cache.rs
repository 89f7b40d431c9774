//! A hot cache in front of registry lookups (moka), so that lookups stay fast with tens of
//! millions of numbers. Negative answers are cached too; status changes made through
//! [`CachedRegistry::set_status`] invalidate the entry, and every entry expires after a TTL so
//! changes made by another process (an import) are seen within it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::sync::Cache;

use super::store::{NumberRecord, NumberStatus, Registry};
use crate::error::SignerError;

/// A registry shared by request handlers, with a cache.
pub struct CachedRegistry {
    registry: Mutex<Registry>,
    cache: Cache<String, Option<Arc<NumberRecord>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for CachedRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedRegistry")
            .field("entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl CachedRegistry {
    /// Wraps `registry` with a cache of at most `capacity` numbers kept for `ttl`.
    pub fn new(registry: Registry, capacity: u64, ttl: Duration) -> Self {
        Self {
            registry: Mutex::new(registry),
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Looks a canonical number up, from the cache when possible.
    pub fn lookup(&self, tn: &str) -> Result<Option<Arc<NumberRecord>>, SignerError> {
        if let Some(found) = self.cache.get(tn) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(found);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let registry = self
            .registry
            .lock()
            .map_err(|_| SignerError::Config("registry lock poisoned".into()))?;
        let found = registry.lookup(tn)?.map(Arc::new);
        // Inserted under the lock, so that an invalidation by another writer of the database
        // ([`CachedRegistry::invalidate`]) cannot be overtaken by an answer read before it.
        self.cache.insert(tn.to_owned(), found.clone());
        drop(registry);
        Ok(found)
    }

    /// Drops `tns` from the cache (all entries when `tns` is `None`) after another connection
    /// changed the database: later lookups read what it wrote.
    pub fn invalidate(&self, tns: Option<&[String]>) -> Result<(), SignerError> {
        let _registry = self
            .registry
            .lock()
            .map_err(|_| SignerError::Config("registry lock poisoned".into()))?;
        match tns {
            Some(tns) => tns.iter().for_each(|tn| self.cache.invalidate(tn)),
            None => self.cache.invalidate_all(),
        }
        Ok(())
    }

    /// Changes a number's status and drops it from the cache.
    pub fn set_status(
        &self,
        tn: &str,
        status: NumberStatus,
        actor: &str,
        now: u64,
    ) -> Result<NumberRecord, SignerError> {
        let registry = self
            .registry
            .lock()
            .map_err(|_| SignerError::Config("registry lock poisoned".into()))?;
        let before = registry.set_status(tn, status, actor, now)?;
        // A range status change affects every number in it: drop everything.
        if before.via_range {
            self.cache.invalidate_all();
        } else {
            self.cache.invalidate(tn);
        }
        Ok(before)
    }

    /// Cache hits and misses so far.
    pub fn hit_counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_answers_and_invalidation() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::open(&dir.path().join("r.sqlite")).unwrap();
        let mut progress = |_| {};
        super::super::import::import(
            &mut registry,
            "number,customer,verified\n12155551212,c1,yes\n".as_bytes(),
            super::super::import::ImportOptions {
                mode: super::super::import::ImportMode::Merge,
                plan: None,
                secret: None,
                actor: "t",
                now: 1,
                progress: &mut progress,
            },
        )
        .unwrap();
        let cached = CachedRegistry::new(registry, 1000, Duration::from_secs(60));
        assert!(cached.lookup("12155551212").unwrap().is_some());
        assert!(cached.lookup("12155551212").unwrap().is_some());
        assert_eq!(cached.lookup("19999999999").unwrap(), None);
        assert_eq!(cached.lookup("19999999999").unwrap(), None);
        assert_eq!(cached.hit_counts(), (2, 2));
        cached
            .set_status("12155551212", NumberStatus::Suspended, "t", 2)
            .unwrap();
        assert_eq!(
            cached.lookup("12155551212").unwrap().unwrap().status,
            NumberStatus::Suspended
        );
    }
}
