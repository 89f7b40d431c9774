//! The certificate cache, keyed by x5u (modelled on hickory-dns's resolver cache).
//!
//! An entry holds the validated chain and the ready-to-use public key, so a hit costs a map
//! lookup and a time comparison: no parsing, no chain walk. `now` is always a parameter.
//!
//! - **Lifetime.** An entry is fresh until the earliest of: the repository's
//!   `Cache-Control: max-age` clamped between configured bounds (a default without one), the
//!   chain's earliest `notAfter`, and the `nextUpdate` of every CRL it was checked against, so
//!   a revocation published after the entry was cached takes effect by then.
//! - **Stale serving.** When a refresh cannot fetch the chain, the cached chain keeps serving for
//!   a bounded stale period, and the refresh is retried after the negative TTL, not on every
//!   call. A refresh that fetches the chain and finds it revoked or no longer trusted is never
//!   covered by the stale chain.
//! - **Negative cache.** A failed fetch or validation is remembered briefly, so a dead
//!   repository is not hammered. Refusals decided without any I/O (a URL that the fetch policy
//!   refuses) are not cached: they cost less to decide again than to store.
//! - **Two bounded stores.** Good chains and failures live in separate bounded stores (moka,
//!   whose eviction is amortised and never scans the cache under a lock), so a flood of forged
//!   tokens with distinct x5u values fills only the failure store and never evicts a good
//!   chain.
//! - **Single flight, cancellation-safe.** Concurrent misses for one URL share one fetch. Each
//!   waiter holds a guard; when the last waiter of a flight is dropped (its caller timed out or
//!   disconnected), the guard retires the flight, so abandoned fetches leave no state behind.
//!   If the waiter running the fetch is dropped while others still wait, one of them runs it.
//! - **Generations.** [`CertificateCache::clear`] (a trust-anchor or CRL reload) starts a new
//!   generation. A load reports the generation of the trust it validated against; an outcome
//!   from an older generation is handed to its waiters but never stored, and entries of older
//!   generations are never served.
//! - **Statistics** are atomics: a hit takes no lock besides the store's own read path.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::error::{FetchError, VerifyError};
use pki::ValidatedChain;

/// Cache settings, in seconds and entries.
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
    /// Most good chains.
    pub capacity: usize,
    /// Most remembered failures (bounded apart from the good chains).
    pub negative_capacity: usize,
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
            negative_capacity: 10_000,
        }
    }
}

/// What a load produced: a validated chain and the bounds on how long it may be trusted.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The validated chain.
    pub chain: ValidatedChain,
    /// The repository's `Cache-Control: max-age`, if it sent one.
    pub max_age: Option<u64>,
    /// The earliest of the chain's `notAfter` and the `nextUpdate` of the CRLs it was checked
    /// against: the entry is not fresh past it.
    pub valid_until: u64,
}

/// A load's outcome, with the generation of the trust anchors and CRLs it was judged against.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The generation the loader's trust snapshot belongs to.
    pub generation: u64,
    /// What it produced.
    pub result: Result<Loaded, VerifyError>,
}

#[derive(Clone, Debug)]
struct Good {
    chain: Arc<ValidatedChain>,
    fresh_until: u64,
    /// After a failed refresh: no new attempt before this time (the stale chain serves).
    retry_after: u64,
    generation: u64,
}

#[derive(Clone, Debug)]
struct Failed {
    error: VerifyError,
    until: u64,
    generation: u64,
}

type Shared = Result<(Arc<ValidatedChain>, u64), VerifyError>;

/// What the first waiter back from a flight stores.
enum Store {
    Good(Good),
    Failed(Failed),
}

/// One fetch that several callers wait for: the generation it validates against, and its
/// outcome (the chain and its `fresh_until`).
#[derive(Debug)]
struct Flight {
    generation: u64,
    cell: OnceCell<(u64, Shared)>,
}

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

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    stale: AtomicU64,
    misses: AtomicU64,
    fetches: AtomicU64,
    negative: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The cache.
pub struct CertificateCache {
    config: CacheConfig,
    good: moka::sync::Cache<String, Good>,
    failed: moka::sync::Cache<String, Failed>,
    flights: Mutex<HashMap<String, Arc<Flight>>>,
    generation: AtomicU64,
    counters: Counters,
}

impl std::fmt::Debug for CertificateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateCache")
            .field("config", &self.config)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// A caller waiting on a flight. Dropping the last waiter of a flight (finished or not)
/// removes it from the map, under the map's lock, so abandoned fetches leave nothing behind.
struct Waiter<'a> {
    cache: &'a CertificateCache,
    key: &'a str,
    flight: Option<Arc<Flight>>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        // Every clone and every drop of a flight's Arc happens under this lock, so the count
        // read here is exact.
        let Ok(mut flights) = self.cache.flights.lock() else {
            return;
        };
        let mine = self.flight.take();
        let retire = match (flights.get(self.key), &mine) {
            (Some(current), Some(mine)) if Arc::ptr_eq(current, mine) => {
                Arc::strong_count(current) == 2
            }
            _ => false,
        };
        drop(mine);
        if retire {
            flights.remove(self.key);
        }
    }
}

/// Whether a failure was decided without any I/O (not worth remembering).
fn decided_locally(error: &VerifyError) -> bool {
    matches!(
        error,
        VerifyError::Fetch(
            FetchError::BadUrl(_)
                | FetchError::Scheme(_)
                | FetchError::Port(_)
                | FetchError::Host(_)
        )
    )
}

impl CertificateCache {
    /// An empty cache.
    pub fn new(config: CacheConfig) -> Self {
        let store = |capacity: usize| u64::try_from(capacity.max(1)).unwrap_or(u64::MAX);
        Self {
            good: moka::sync::Cache::builder()
                .max_capacity(store(config.capacity))
                .build(),
            failed: moka::sync::Cache::builder()
                .max_capacity(store(config.negative_capacity))
                .build(),
            config,
            flights: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            counters: Counters::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            stale: c.stale.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            fetches: c.fetches.load(Ordering::Relaxed),
            negative: c.negative.load(Ordering::Relaxed),
        }
    }

    /// The current generation: what a loader's trust snapshot must carry for its outcome to
    /// be stored.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Starts a new generation (after a trust anchor or CRL change) and drops every entry;
    /// returns the new generation. Loads already in flight are not stored.
    pub fn clear(&self) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.good.invalidate_all();
        self.failed.invalidate_all();
        generation
    }

    fn ttl(&self, max_age: Option<u64>) -> u64 {
        max_age
            .unwrap_or(self.config.default_ttl)
            .clamp(self.config.min_ttl, self.config.max_ttl)
    }

    /// The chain for `x5u` at `now`, from the cache or from `load`, which fetches and
    /// validates against a trust snapshot and reports that snapshot's generation.
    pub async fn get<F, Fut>(
        &self,
        x5u: &str,
        now: u64,
        load: F,
    ) -> Result<Arc<ValidatedChain>, VerifyError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let generation = self.generation();
        let previous = self.good.get(x5u).filter(|g| g.generation == generation);
        match &previous {
            Some(good) if now < good.fresh_until => {
                bump(&self.counters.hits);
                return Ok(Arc::clone(&good.chain));
            }
            Some(good)
                if now < good.retry_after
                    && now < good.fresh_until.saturating_add(self.config.stale_ttl) =>
            {
                bump(&self.counters.stale);
                return Ok(Arc::clone(&good.chain));
            }
            _ => {}
        }
        if let Some(failed) = self.failed.get(x5u) {
            if failed.generation == generation && now < failed.until {
                bump(&self.counters.negative);
                return Err(failed.error);
            }
        }
        bump(&self.counters.misses);

        let mut waiter = self.join(x5u, generation)?;
        let (loaded_generation, result) = match waiter.flight.as_ref() {
            Some(flight) => flight
                .cell
                .get_or_init(|| async {
                    bump(&self.counters.fetches);
                    let outcome = load().await;
                    let result = outcome.result.map(|loaded| {
                        let fresh_until = now
                            .saturating_add(self.ttl(loaded.max_age))
                            .min(loaded.valid_until);
                        (Arc::new(loaded.chain), fresh_until)
                    });
                    (outcome.generation, result)
                })
                .await
                .clone(),
            None => return Err(poisoned()),
        };
        let (answer, store) = match result {
            Ok((chain, fresh_until)) => (
                Ok(Arc::clone(&chain)),
                Some(Store::Good(Good {
                    chain,
                    fresh_until,
                    retry_after: 0,
                    generation: loaded_generation,
                })),
            ),
            // A refresh that could not fetch the chain (the repository is down, slow or
            // answers nonsense) keeps serving the previous chain for the stale period, and is
            // not retried before the negative TTL. A refresh that fetched the chain and found
            // it unacceptable (revoked, expired, no longer trusted) does not: its error stands.
            Err(VerifyError::Fetch(_))
                if previous.as_ref().is_some_and(|good| {
                    now < good.fresh_until.saturating_add(self.config.stale_ttl)
                }) =>
            {
                bump(&self.counters.stale);
                let good = previous.ok_or_else(poisoned)?;
                (
                    Ok(Arc::clone(&good.chain)),
                    Some(Store::Good(Good {
                        retry_after: now.saturating_add(self.config.negative_ttl),
                        ..good
                    })),
                )
            }
            Err(error) => {
                let store = (!decided_locally(&error)).then(|| {
                    Store::Failed(Failed {
                        error: error.clone(),
                        until: now.saturating_add(self.config.negative_ttl),
                        generation: loaded_generation,
                    })
                });
                (Err(error), store)
            }
        };
        self.finish(x5u, &mut waiter, loaded_generation, store);
        answer
    }

    /// Joins the flight for `x5u` at `generation`, or starts one (replacing a flight of an
    /// older generation, whose waiters finish without storing).
    fn join<'a>(&'a self, x5u: &'a str, generation: u64) -> Result<Waiter<'a>, VerifyError> {
        let mut flights = self.flights.lock().map_err(|_| poisoned())?;
        let flight = match flights.get(x5u) {
            Some(current) if current.generation == generation => Arc::clone(current),
            _ => {
                let flight = Arc::new(Flight {
                    generation,
                    cell: OnceCell::new(),
                });
                flights.insert(x5u.to_owned(), Arc::clone(&flight));
                flight
            }
        };
        Ok(Waiter {
            cache: self,
            key: x5u,
            flight: Some(flight),
        })
    }

    /// The first waiter back from a flight stores its outcome (when it belongs to the current
    /// generation) and retires the flight, both under the flights' lock, so a new caller
    /// either joins the flight or finds the stored outcome. Later waiters find it retired.
    fn finish(&self, x5u: &str, waiter: &mut Waiter<'_>, generation: u64, store: Option<Store>) {
        let Ok(mut flights) = self.flights.lock() else {
            return;
        };
        let mine = waiter.flight.take();
        let first = matches!(
            (flights.get(x5u), &mine),
            (Some(current), Some(mine)) if Arc::ptr_eq(current, mine)
        );
        if first {
            if generation == self.generation() {
                match store {
                    Some(Store::Good(good)) => {
                        self.failed.invalidate(x5u);
                        self.good.insert(x5u.to_owned(), good);
                    }
                    Some(Store::Failed(failed)) => {
                        self.good.invalidate(x5u);
                        self.failed.insert(x5u.to_owned(), failed);
                    }
                    None => {}
                }
            }
            flights.remove(x5u);
        }
        drop(mine);
    }

    /// How many good chains are stored (exact: runs the store's pending maintenance).
    pub fn len(&self) -> usize {
        self.good.run_pending_tasks();
        usize::try_from(self.good.entry_count()).unwrap_or(usize::MAX)
    }

    /// Whether no good chain is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many failures are remembered (exact: runs the store's pending maintenance).
    pub fn failures(&self) -> usize {
        self.failed.run_pending_tasks();
        usize::try_from(self.failed.entry_count()).unwrap_or(usize::MAX)
    }

    /// How many fetches are in flight (abandoned ones are retired at once).
    pub fn in_flight(&self) -> usize {
        self.flights.lock().map(|f| f.len()).unwrap_or(0)
    }
}

fn poisoned() -> VerifyError {
    VerifyError::Fetch(FetchError::Http("cache lock poisoned".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

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

    fn loaded(spc: &str, max_age: Option<u64>) -> Outcome {
        Outcome {
            generation: 0,
            result: Ok(Loaded {
                chain: chain(spc),
                max_age,
                valid_until: u64::MAX,
            }),
        }
    }

    fn failed(error: FetchError) -> Outcome {
        Outcome {
            generation: 0,
            result: Err(VerifyError::Fetch(error)),
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
            negative_capacity: 2,
        }
    }

    #[tokio::test]
    async fn lifetime_stale_serving_and_negative_cache_with_pinned_time() {
        let cache = CertificateCache::new(config());
        let loads = AtomicUsize::new(0);
        let ok = |spc: &'static str, max_age: Option<u64>| {
            loads.fetch_add(1, Ordering::SeqCst);
            async move { loaded(spc, max_age) }
        };
        let fail = || {
            loads.fetch_add(1, Ordering::SeqCst);
            async { failed(FetchError::Status(503)) }
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
    async fn a_refresh_that_finds_the_chain_revoked_is_not_covered_by_the_stale_chain() {
        let cache = CertificateCache::new(config());
        cache
            .get("u", 0, || async { loaded("one", None) })
            .await
            .unwrap();
        // Expired (default 500): the refresh fetches the chain and finds it revoked.
        let revoked = || async {
            Outcome {
                generation: 0,
                result: Err(VerifyError::Credential(
                    crate::error::CredentialError::Revoked {
                        index: 0,
                        serial: "01".into(),
                    },
                )),
            }
        };
        assert!(matches!(
            cache.get("u", 500, revoked).await,
            Err(VerifyError::Credential(_))
        ));
        // And that is remembered, not the old chain.
        assert!(cache
            .get("u", 501, || async { loaded("two", None) })
            .await
            .is_err());
    }

    #[tokio::test]
    async fn the_entry_is_fresh_until_the_earliest_of_max_age_not_after_and_crl_next_update() {
        let cache = CertificateCache::new(config());
        let loads = AtomicUsize::new(0);
        let load = |valid_until: u64| {
            loads.fetch_add(1, Ordering::SeqCst);
            async move {
                Outcome {
                    generation: 0,
                    result: Ok(Loaded {
                        chain: chain("x"),
                        max_age: Some(900),
                        valid_until,
                    }),
                }
            }
        };
        // valid_until (a CRL's nextUpdate, or notAfter) 250 comes before max-age 900.
        cache.get("u", 0, || load(250)).await.unwrap();
        cache.get("u", 249, || load(250)).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 1, "fresh before 250");
        cache.get("u", 250, || load(5000)).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2, "refetched at 250");
        // Now max-age (900 from 250) comes first.
        cache.get("u", 1149, || load(5000)).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        cache.get("u", 1150, || load(5000)).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn good_chains_and_failures_are_bounded_apart() {
        let cache = CertificateCache::new(config());
        for (i, url) in ["a", "b", "c"].iter().enumerate() {
            cache
                .get(url, i as u64, || async move { loaded(url, None) })
                .await
                .unwrap();
        }
        assert_eq!(cache.len(), 2);
        // Many failures: the failure store stays bounded and the good chains stay.
        let cache = CertificateCache::new(config());
        cache
            .get("good", 0, || async { loaded("good", None) })
            .await
            .unwrap();
        for i in 0..100 {
            let url = format!("bad-{i}");
            let error = cache
                .get(&url, 1, || async { failed(FetchError::Status(404)) })
                .await
                .unwrap_err();
            assert_eq!(error, VerifyError::Fetch(FetchError::Status(404)));
        }
        assert!(cache.failures() <= 2, "{}", cache.failures());
        assert_eq!(cache.len(), 1);
        let fetches = cache.stats().fetches;
        cache
            .get("good", 2, || async { loaded("other", None) })
            .await
            .unwrap();
        assert_eq!(
            cache.stats().fetches,
            fetches,
            "the good chain is still cached"
        );
    }

    #[tokio::test]
    async fn refusals_decided_without_io_are_not_remembered() {
        let cache = CertificateCache::new(config());
        for i in 0..10 {
            let url = format!("http://forged-{i}/");
            let _ = cache
                .get(&url, 0, || async {
                    failed(FetchError::Scheme("http".into()))
                })
                .await;
        }
        assert_eq!(cache.failures(), 0);
        let _ = cache
            .get("slow", 0, || async { failed(FetchError::Timeout(2000)) })
            .await;
        assert_eq!(cache.failures(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abandoned_fetches_leave_no_state_behind() {
        let cache = Arc::new(CertificateCache::new(CacheConfig::default()));
        // 10,000 requests with distinct x5u values, each dropped before its fetch ends.
        let mut tasks = Vec::new();
        for i in 0..10_000 {
            let cache = Arc::clone(&cache);
            tasks.push(tokio::spawn(async move {
                let url = format!("https://forged-{i}.example/x.pem");
                let never = || async {
                    std::future::pending::<()>().await;
                    failed(FetchError::Timeout(2000))
                };
                tokio::time::timeout(Duration::from_millis(1), cache.get(&url, 0, never))
                    .await
                    .is_err()
            }));
        }
        for task in tasks {
            assert!(
                task.await.unwrap(),
                "every request was dropped before its fetch ended"
            );
        }
        assert_eq!(cache.in_flight(), 0);
        assert_eq!((cache.len(), cache.failures()), (0, 0));
        assert_eq!(cache.stats().fetches, 10_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn when_the_fetching_waiter_is_dropped_another_waiter_finishes_the_fetch() {
        let cache = Arc::new(CertificateCache::new(CacheConfig::default()));
        let (release, released) = tokio::sync::watch::channel(false);
        // The first waiter starts a fetch that waits for the release, then is dropped.
        let first = {
            let (cache, mut released) = (Arc::clone(&cache), released.clone());
            tokio::spawn(async move {
                cache
                    .get("u", 0, || async move {
                        let _ = released.wait_for(|r| *r).await;
                        loaded("first", None)
                    })
                    .await
            })
        };
        while cache.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        let second = {
            let cache = Arc::clone(&cache);
            tokio::spawn(
                async move { cache.get("u", 0, || async { loaded("second", None) }).await },
            )
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        first.abort();
        let _ = first.await;
        let _ = release.send(true);
        let chain = second.await.unwrap().unwrap();
        assert!(["first", "second"].contains(&chain.spc.as_str()));
        assert_eq!(cache.in_flight(), 0);
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_load_from_before_a_reload_is_handed_out_but_not_stored() {
        let cache = Arc::new(CertificateCache::new(CacheConfig::default()));
        let (release, mut released) = tokio::sync::watch::channel(false);
        let generation = cache.generation();
        let waiting = {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                cache
                    .get("u", 0, || async move {
                        let _ = released.wait_for(|r| *r).await;
                        Outcome {
                            generation,
                            ..loaded("old trust", None)
                        }
                    })
                    .await
            })
        };
        while cache.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        // The reload happens while the fetch is in flight.
        let new_generation = cache.clear();
        assert_eq!(new_generation, generation + 1);
        let _ = release.send(true);
        assert_eq!(waiting.await.unwrap().unwrap().spc, "old trust");
        assert_eq!(cache.len(), 0, "not stored");
        // The next call loads again, against the new trust, and that is stored.
        let chain = cache
            .get("u", 1, || async move {
                Outcome {
                    generation: new_generation,
                    ..loaded("new trust", None)
                }
            })
            .await
            .unwrap();
        assert_eq!(chain.spc, "new trust");
        assert_eq!(cache.len(), 1);
    }
}
