//! The certificate cache, keyed by x5u (modelled on hickory-dns's resolver cache).
//!
//! An entry holds the validated chain and the ready-to-use public key, so a hit costs a map
//! lookup and a time comparison: no parsing, no chain walk. Its lifetime is the repository's
//! `Cache-Control: max-age`, clamped between configured bounds. When a refresh fails, the
//! cached chain keeps serving for a bounded stale period; a failed fetch is remembered briefly
//! (negative cache) so a dead repository is not hammered. Concurrent misses for one URL share
//! one fetch. The cache is bounded; the entry closest to expiry is dropped first. `now` is
//! always a parameter.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::OnceCell;

use crate::chain::ValidatedChain;
use crate::error::VerifyError;

/// Cache settings, in seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Shortest lifetime, whatever max-age says.
    pub min_ttl: u64,
    /// Longest lifetime.
    pub max_ttl: u64,
    /// Lifetime when the repository sends no max-age.
    pub default_ttl: u64,
    /// How long an expired entry keeps serving while refreshes fail.
    pub stale_ttl: u64,
    /// How long a failed fetch is remembered.
    pub negative_ttl: u64,
    /// Most entries.
    pub capacity: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            min_ttl: 60,
            max_ttl: 86_400,
            default_ttl: 3600,
            stale_ttl: 3600,
            negative_ttl: 10,
            capacity: 10_000,
        }
    }
}

#[derive(Clone, Debug)]
enum Slot {
    Ready {
        chain: Arc<ValidatedChain>,
        fresh_until: u64,
        retry_after: u64,
    },
    Failed {
        error: VerifyError,
        until: u64,
    },
}

type Flight = Arc<OnceCell<Result<(Arc<ValidatedChain>, Option<u64>), VerifyError>>>;

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Answered from a fresh entry.
    pub hits: u64,
    /// Answered from a stale entry after a failed refresh.
    pub stale: u64,
    /// Needed a fetch.
    pub misses: u64,
    /// Fetches started.
    pub fetches: u64,
    /// Answered from the negative cache.
    pub negative: u64,
}

/// The cache.
#[derive(Debug)]
pub struct CertificateCache {
    config: CacheConfig,
    slots: RwLock<HashMap<String, Slot>>,
    flights: Mutex<HashMap<String, Flight>>,
    stats: Mutex<CacheStats>,
}

impl CertificateCache {
    /// An empty cache.
    pub fn new(config: CacheConfig) -> Self {
        Self {
            config,
            slots: RwLock::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
            stats: Mutex::new(CacheStats::default()),
        }
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    fn count(&self, f: impl FnOnce(&mut CacheStats)) {
        if let Ok(mut stats) = self.stats.lock() {
            f(&mut stats);
        }
    }

    /// Drops every entry (after a trust anchor or CRL change).
    pub fn clear(&self) {
        if let Ok(mut slots) = self.slots.write() {
            slots.clear();
        }
    }

    fn ttl(&self, max_age: Option<u64>) -> u64 {
        max_age
            .unwrap_or(self.config.default_ttl)
            .clamp(self.config.min_ttl, self.config.max_ttl)
    }

    /// The chain for `x5u` at `now`, from the cache or from `load` (which fetches and
    /// validates, returning the chain and the repository's max-age).
    pub async fn get<F, Fut>(
        &self,
        x5u: &str,
        now: u64,
        load: F,
    ) -> Result<Arc<ValidatedChain>, VerifyError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(ValidatedChain, Option<u64>), VerifyError>>,
    {
        let previous = self
            .slots
            .read()
            .ok()
            .and_then(|slots| slots.get(x5u).cloned());
        match &previous {
            Some(Slot::Ready {
                chain, fresh_until, ..
            }) if now < *fresh_until => {
                self.count(|s| s.hits += 1);
                return Ok(Arc::clone(chain));
            }
            Some(Slot::Ready {
                chain,
                fresh_until,
                retry_after,
            }) if now < *retry_after && now < fresh_until + self.config.stale_ttl => {
                self.count(|s| s.stale += 1);
                return Ok(Arc::clone(chain));
            }
            Some(Slot::Failed { error, until }) if now < *until => {
                self.count(|s| s.negative += 1);
                return Err(error.clone());
            }
            _ => {}
        }
        self.count(|s| s.misses += 1);

        let flight: Flight = {
            let mut flights = self.flights.lock().map_err(|_| poisoned())?;
            Arc::clone(flights.entry(x5u.to_owned()).or_default())
        };
        let result = flight
            .get_or_init(|| async {
                self.count(|s| s.fetches += 1);
                load()
                    .await
                    .map(|(chain, max_age)| (Arc::new(chain), max_age))
            })
            .await
            .clone();
        // The first waiter to get here records the outcome and retires the flight.
        let retire = {
            let mut flights = self.flights.lock().map_err(|_| poisoned())?;
            match flights.get(x5u) {
                Some(current) if Arc::ptr_eq(current, &flight) => {
                    flights.remove(x5u);
                    true
                }
                _ => false,
            }
        };
        match result {
            Ok((chain, max_age)) => {
                if retire {
                    let fresh_until = now + self.ttl(max_age);
                    self.store(
                        x5u,
                        Slot::Ready {
                            chain: Arc::clone(&chain),
                            fresh_until,
                            retry_after: 0,
                        },
                    );
                }
                Ok(chain)
            }
            Err(error) => {
                // A failed refresh keeps serving the previous chain for the stale period.
                if let Some(Slot::Ready {
                    chain, fresh_until, ..
                }) = previous
                {
                    if now < fresh_until + self.config.stale_ttl {
                        if retire {
                            let retry_after = now + self.config.negative_ttl;
                            self.store(
                                x5u,
                                Slot::Ready {
                                    chain: Arc::clone(&chain),
                                    fresh_until,
                                    retry_after,
                                },
                            );
                        }
                        self.count(|s| s.stale += 1);
                        return Ok(chain);
                    }
                }
                if retire {
                    self.store(
                        x5u,
                        Slot::Failed {
                            error: error.clone(),
                            until: now + self.config.negative_ttl,
                        },
                    );
                }
                Err(error)
            }
        }
    }

    fn store(&self, x5u: &str, slot: Slot) {
        let Ok(mut slots) = self.slots.write() else {
            return;
        };
        if slots.len() >= self.config.capacity && !slots.contains_key(x5u) {
            let soonest = slots
                .iter()
                .min_by_key(|(_, s)| match s {
                    Slot::Ready { fresh_until, .. } => *fresh_until,
                    Slot::Failed { until, .. } => *until,
                })
                .map(|(k, _)| k.clone());
            if let Some(key) = soonest {
                slots.remove(&key);
            }
        }
        slots.insert(x5u.to_owned(), slot);
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.slots.read().map(|s| s.len()).unwrap_or(0)
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn poisoned() -> VerifyError {
    VerifyError::Fetch(crate::error::FetchError::Http("cache lock poisoned".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FetchError;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn chain(spc: &str) -> ValidatedChain {
        let key = passport::SigningKey::generate()
            .and_then(|k| k.verifying_key())
            .unwrap();
        ValidatedChain {
            key,
            spc: spc.into(),
            not_after: u64::MAX,
            links: vec![],
        }
    }

    fn config() -> CacheConfig {
        CacheConfig {
            min_ttl: 100,
            max_ttl: 1000,
            default_ttl: 500,
            stale_ttl: 300,
            negative_ttl: 10,
            capacity: 2,
        }
    }

    #[tokio::test]
    async fn lifetime_stale_serving_and_negative_cache_with_pinned_time() {
        let cache = CertificateCache::new(config());
        let loads = AtomicUsize::new(0);
        let ok = |spc: &'static str, max_age: Option<u64>| {
            loads.fetch_add(1, Ordering::SeqCst);
            async move { Ok((chain(spc), max_age)) }
        };
        let fail = || {
            loads.fetch_add(1, Ordering::SeqCst);
            async { Err(VerifyError::Fetch(FetchError::Status(503))) }
        };
        // max-age 5000 is clamped to 1000.
        assert_eq!(
            cache
                .get("u", 0, || ok("one", Some(5000)))
                .await
                .unwrap()
                .spc,
            "one"
        );
        assert_eq!(
            cache.get("u", 999, || ok("two", None)).await.unwrap().spc,
            "one",
            "fresh: no load"
        );
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        // Expired, refresh fails: the old chain serves for the stale period, without retrying
        // before the negative TTL.
        assert_eq!(cache.get("u", 1000, fail).await.unwrap().spc, "one");
        assert_eq!(
            cache.get("u", 1005, || ok("two", None)).await.unwrap().spc,
            "one",
            "no retry within 10 s"
        );
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        assert_eq!(
            cache
                .get("u", 1011, || ok("two", Some(10)))
                .await
                .unwrap()
                .spc,
            "two",
            "retried, refreshed"
        );
        // max-age 10 is clamped up to 100.
        assert_eq!(
            cache
                .get("u", 1110, || ok("three", None))
                .await
                .unwrap()
                .spc,
            "two"
        );
        // Past the stale period a failure is an error, remembered for the negative TTL.
        let err = cache.get("u", 1111 + 100 + 300, fail).await.unwrap_err();
        assert_eq!(err, VerifyError::Fetch(FetchError::Status(503)));
        let loads_before = loads.load(Ordering::SeqCst);
        assert!(
            cache.get("u", 1515, || ok("four", None)).await.is_err(),
            "negative cache"
        );
        assert_eq!(loads.load(Ordering::SeqCst), loads_before);
        assert_eq!(
            cache.get("u", 1522, || ok("four", None)).await.unwrap().spc,
            "four"
        );
        let stats = cache.stats();
        assert!(
            stats.hits >= 2 && stats.stale >= 2 && stats.negative == 1,
            "{stats:?}"
        );
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let cache = CertificateCache::new(config());
        for (i, url) in ["a", "b", "c"].iter().enumerate() {
            cache
                .get(url, i as u64, || async move { Ok((chain(url), None)) })
                .await
                .unwrap();
        }
        assert_eq!(cache.len(), 2);
    }
}
