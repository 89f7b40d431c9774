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
//!   call. Only the max-age part of the lifetime stretches: never past `notAfter` nor a CRL's
//!   `nextUpdate`, so a repository that stops answering cannot keep a revoked chain alive. A
//!   refresh that fetches the chain and finds it revoked or no longer trusted is never covered.
//! - **Negative cache.** A failed fetch or validation is remembered briefly, so a dead
//!   repository is not hammered. Refusals decided without any I/O (a URL that the fetch policy
//!   refuses) are not cached: they cost less to decide again than to store.
//! - **Three bounded stores.** A chain that validated waits in *probation* until a signature
//!   verifies with it ([`CertificateCache::confirm`]); only then does it join the *proven*
//!   chains. Failures have a store of their own. Each is bounded apart, and none scans itself
//!   under a lock to evict: probation and failures are moka stores (amortised eviction, an
//!   admission policy that favours keys seen often), the proven chains a plain map read on
//!   every call with a queue of its keys in insertion order. So a flood of forged tokens with
//!   distinct x5u values (failing, or serving some real public chain their signature does not
//!   match) fills probation and the failure store, never evicts a proven chain.
//! - **Single flight, cancellation-safe.** Concurrent misses for one URL share one fetch. Each
//!   waiter holds a guard; when the last waiter of a flight is dropped (its caller timed out or
//!   disconnected), the guard retires the flight, so abandoned fetches leave no state behind.
//!   If the waiter running the fetch is dropped while others still wait, one of them runs it.
//! - **Generations.** [`CertificateCache::clear`] (a trust-anchor or CRL reload) starts a new
//!   generation. A caller names the generation of the trust it will validate against; entries of
//!   other generations are not served to it, and an outcome of an older generation is handed to
//!   its waiters but never stored.
//! - **Statistics** are atomics: a hit takes no lock besides the store's own read path.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use pki::ValidatedChain;
use tokio::sync::OnceCell;

use crate::error::{FetchError, VerifyError};
use rest::fetch::FetchError as Transport;

/// Cache settings, in seconds and entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Shortest lifetime, whatever max-age says.
    pub min_ttl: u64,
    /// Longest lifetime.
    pub max_ttl: u64,
    /// Lifetime when the repository sends no max-age.
    pub default_ttl: u64,
    /// How long an expired entry keeps serving while refreshes cannot fetch it.
    pub stale_ttl: u64,
    /// How long a failed fetch is remembered.
    pub negative_ttl: u64,
    /// Most proven chains (a signature verified with them).
    pub capacity: usize,
    /// Most chains in probation (validated, no signature verified with them yet).
    pub probation_capacity: usize,
    /// Most remembered failures.
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
            probation_capacity: 10_000,
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
    /// against: the entry is never served past it, stale or not.
    pub valid_until: u64,
}

/// A chain from the cache, and whether a signature has verified with it already.
#[derive(Clone, Debug)]
pub struct Cached {
    /// The chain.
    pub chain: Arc<ValidatedChain>,
    /// False while the chain is in probation: the caller should [`CertificateCache::confirm`]
    /// it once a signature verifies with it.
    pub proven: bool,
}

#[derive(Clone, Debug)]
struct Good {
    chain: Arc<ValidatedChain>,
    fresh_until: u64,
    /// Never served past this (notAfter, the CRLs' nextUpdate), stale or not.
    valid_until: u64,
    /// After a refresh that could not fetch: no new attempt before this time.
    retry_after: u64,
    generation: u64,
    proven: bool,
}

#[derive(Clone, Debug)]
struct Failed {
    error: VerifyError,
    until: u64,
    generation: u64,
}

type Shared = Result<(Arc<ValidatedChain>, u64, u64), VerifyError>;

/// What the first waiter back from a flight stores.
enum Store {
    Chain(Good),
    Failed(Failed),
}

/// One fetch that several callers wait for: the generation it validates against, and its
/// outcome (the chain, its `fresh_until` and `valid_until`).
#[derive(Debug)]
struct Flight {
    generation: u64,
    cell: OnceCell<Shared>,
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Answered from a fresh entry.
    pub hits: u64,
    /// Answered from a stale entry after a refresh that could not fetch.
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

/// The proven chains, read on every verification: a read lock and a hash lookup. Bounded: when
/// full, the entry inserted longest ago goes (a queue of keys in insertion order, so evicting
/// never scans the map). Only chains a signature verified with get here, so no flood of forged
/// tokens can reach it; moka's admission policy guards the two stores that a flood does reach.
#[derive(Debug)]
struct ProvenStore {
    map: RwLock<HashMap<String, Good>>,
    order: Mutex<VecDeque<String>>,
    capacity: usize,
}

impl ProvenStore {
    fn new(capacity: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            order: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    fn get(&self, key: &str) -> Option<Good> {
        self.map.read().ok()?.get(key).cloned()
    }

    fn insert(&self, key: &str, good: Good) {
        let (Ok(mut map), Ok(mut order)) = (self.map.write(), self.order.lock()) else {
            return;
        };
        if map.insert(key.to_owned(), good).is_some() {
            return;
        }
        order.push_back(key.to_owned());
        while map.len() > self.capacity {
            match order.pop_front() {
                Some(oldest) => {
                    map.remove(&oldest);
                }
                None => break,
            }
        }
        // Keys of entries removed since they were queued stay in the queue until their turn;
        // should they ever be as many as the capacity, the queue is rebuilt once (amortised:
        // at most once per `capacity` insertions).
        if order.len() > 2 * self.capacity {
            order.retain(|k| map.contains_key(k));
        }
    }

    fn invalidate(&self, key: &str) {
        if let Ok(mut map) = self.map.write() {
            map.remove(key);
        }
    }

    fn clear(&self) {
        if let (Ok(mut map), Ok(mut order)) = (self.map.write(), self.order.lock()) {
            map.clear();
            order.clear();
        }
    }

    fn len(&self) -> usize {
        self.map.read().map_or(0, |m| m.len())
    }
}

/// The cache.
pub struct CertificateCache {
    config: CacheConfig,
    proven: ProvenStore,
    probation: moka::sync::Cache<String, Good>,
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
            FetchError::Transport(Transport::BadUrl(_))
                | FetchError::Transport(Transport::Scheme(_))
                | FetchError::Transport(Transport::Port(_))
                | FetchError::Transport(Transport::Host(_))
        )
    )
}

fn store(capacity: usize) -> u64 {
    u64::try_from(capacity.max(1)).unwrap_or(u64::MAX)
}

impl CertificateCache {
    /// An empty cache.
    pub fn new(config: CacheConfig) -> Self {
        Self {
            proven: ProvenStore::new(config.capacity),
            probation: moka::sync::Cache::builder()
                .max_capacity(store(config.probation_capacity))
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

    /// The current generation: what a caller's trust snapshot must carry for the outcome of
    /// its load to be stored.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Starts a new generation (after a trust anchor or CRL change) and drops every entry;
    /// returns the new generation. Loads already in flight are not stored.
    pub fn clear(&self) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.proven.clear();
        self.probation.invalidate_all();
        self.failed.invalidate_all();
        generation
    }

    fn ttl(&self, max_age: Option<u64>) -> u64 {
        max_age
            .unwrap_or(self.config.default_ttl)
            .clamp(self.config.min_ttl, self.config.max_ttl)
    }

    /// Whether a cached chain may still serve at `now` after a refresh that could not fetch
    /// it: within the stale period, and never past its `valid_until`.
    fn may_serve_stale(&self, good: &Good, now: u64) -> bool {
        now < good.fresh_until.saturating_add(self.config.stale_ttl) && now < good.valid_until
    }

    /// The entry for `x5u` of `generation`, proven first.
    fn entry(&self, x5u: &str, generation: u64) -> Option<Good> {
        self.proven
            .get(x5u)
            .filter(|g| g.generation == generation)
            .or_else(|| {
                self.probation
                    .get(x5u)
                    .filter(|g| g.generation == generation)
            })
    }

    /// The chain for `x5u` at `now`, for a caller whose trust snapshot is of `generation`:
    /// from the cache, or from `load`, which fetches and validates against that snapshot.
    pub async fn get<F, Fut>(
        &self,
        x5u: &str,
        now: u64,
        generation: u64,
        load: F,
    ) -> Result<Cached, VerifyError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, VerifyError>>,
    {
        let previous = self.entry(x5u, generation);
        match &previous {
            Some(good) if now < good.fresh_until => {
                bump(&self.counters.hits);
                return Ok(Cached {
                    chain: Arc::clone(&good.chain),
                    proven: good.proven,
                });
            }
            Some(good) if now < good.retry_after && self.may_serve_stale(good, now) => {
                bump(&self.counters.stale);
                return Ok(Cached {
                    chain: Arc::clone(&good.chain),
                    proven: good.proven,
                });
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
        let result = match waiter.flight.as_ref() {
            Some(flight) => flight
                .cell
                .get_or_init(|| async {
                    bump(&self.counters.fetches);
                    load().await.map(|loaded| {
                        let fresh_until = now
                            .saturating_add(self.ttl(loaded.max_age))
                            .min(loaded.valid_until);
                        (Arc::new(loaded.chain), fresh_until, loaded.valid_until)
                    })
                })
                .await
                .clone(),
            None => return Err(poisoned()),
        };
        // A chain refreshed under a URL already proven stays proven.
        let was_proven = previous.as_ref().is_some_and(|g| g.proven);
        let (answer, store) = match result {
            Ok((chain, fresh_until, valid_until)) => (
                Ok(Cached {
                    chain: Arc::clone(&chain),
                    proven: was_proven,
                }),
                Some(Store::Chain(Good {
                    chain,
                    fresh_until,
                    valid_until,
                    retry_after: 0,
                    generation,
                    proven: was_proven,
                })),
            ),
            // A refresh that could not fetch the chain (the repository is down, slow or
            // answers nonsense) keeps serving the previous chain for the stale period, never
            // past its valid_until, and is not retried before the negative TTL. A refresh that
            // fetched the chain and found it unacceptable (revoked, expired, no longer trusted)
            // is not covered: its error stands.
            Err(VerifyError::Fetch(_))
                if previous
                    .as_ref()
                    .is_some_and(|good| self.may_serve_stale(good, now)) =>
            {
                bump(&self.counters.stale);
                let good = previous.ok_or_else(poisoned)?;
                (
                    Ok(Cached {
                        chain: Arc::clone(&good.chain),
                        proven: good.proven,
                    }),
                    Some(Store::Chain(Good {
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
                        generation,
                    })
                });
                (Err(error), store)
            }
        };
        self.finish(x5u, &mut waiter, generation, store);
        answer
    }

    /// Moves `x5u`'s chain from probation to the proven chains: a signature has verified with
    /// it. A chain of another generation, or no longer in probation, is left alone.
    pub fn confirm(&self, x5u: &str, generation: u64) {
        if let Some(good) = self.probation.remove(x5u) {
            if good.generation == generation && generation == self.generation() {
                self.proven.insert(
                    x5u,
                    Good {
                        proven: true,
                        ..good
                    },
                );
            }
        }
    }

    /// Joins the flight for `x5u` at `generation`, or starts one. A flight of an older
    /// generation is replaced (its waiters finish without storing); a caller of an older
    /// generation than the flight in the map gets a flight of its own, outside the map, whose
    /// outcome is never stored.
    fn join<'a>(&'a self, x5u: &'a str, generation: u64) -> Result<Waiter<'a>, VerifyError> {
        let mut flights = self.flights.lock().map_err(|_| poisoned())?;
        let new = || {
            Arc::new(Flight {
                generation,
                cell: OnceCell::new(),
            })
        };
        let flight = match flights.get(x5u) {
            Some(current) if current.generation == generation => Arc::clone(current),
            Some(current) if current.generation > generation => new(),
            _ => {
                let flight = new();
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
    /// generation) and retires the flight, both under the flights' lock, so that a caller who
    /// comes later joins no finished flight. (A caller who looked in the stores just before
    /// the outcome was stored starts a second fetch: harmless.) Later waiters find it retired.
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
                    Some(Store::Chain(good)) => {
                        self.failed.invalidate(x5u);
                        if good.proven {
                            self.proven.insert(x5u, good);
                        } else {
                            self.probation.insert(x5u.to_owned(), good);
                        }
                    }
                    Some(Store::Failed(failed)) => {
                        self.proven.invalidate(x5u);
                        self.probation.invalidate(x5u);
                        self.failed.insert(x5u.to_owned(), failed);
                    }
                    None => {}
                }
            }
            flights.remove(x5u);
        }
        drop(mine);
    }

    /// How many proven chains are stored.
    pub fn len(&self) -> usize {
        self.proven.len()
    }

    /// Whether no proven chain is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many chains are in probation (exact: runs the store's pending maintenance).
    pub fn in_probation(&self) -> usize {
        self.probation.run_pending_tasks();
        usize::try_from(self.probation.entry_count()).unwrap_or(usize::MAX)
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
    VerifyError::Fetch(FetchError::Transport(Transport::Http(
        "cache lock poisoned".into(),
    )))
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

    fn loaded(spc: &str, max_age: Option<u64>) -> Result<Loaded, VerifyError> {
        Ok(Loaded {
            chain: chain(spc),
            max_age,
            valid_until: u64::MAX,
        })
    }

    fn failed(error: FetchError) -> Result<Loaded, VerifyError> {
        Err(VerifyError::Fetch(error))
    }

    fn spc(cached: Result<Cached, VerifyError>) -> String {
        cached.map_or_else(|e| format!("error: {e}"), |c| c.chain.spc.clone())
    }

    fn config() -> CacheConfig {
        CacheConfig {
            min_ttl: 100,
            max_ttl: 1000,
            default_ttl: 500,
            stale_ttl: 300,
            negative_ttl: 10,
            capacity: 2,
            probation_capacity: 2,
            negative_capacity: 2,
        }
    }

    #[tokio::test]
    async fn lifetime_stale_serving_and_negative_cache_with_pinned_time() {
        let cache = CertificateCache::new(config());
        let loads = AtomicUsize::new(0);
        let ok = |name: &'static str, max_age: Option<u64>| {
            loads.fetch_add(1, Ordering::SeqCst);
            async move { loaded(name, max_age) }
        };
        let fail = || {
            loads.fetch_add(1, Ordering::SeqCst);
            async { failed(FetchError::Transport(Transport::Status(503))) }
        };
        // max-age 5000 is clamped to 1000.
        assert_eq!(
            spc(cache.get("u", 0, 0, || ok("one", Some(5000))).await),
            "one"
        );
        assert_eq!(
            spc(cache.get("u", 999, 0, || ok("two", None)).await),
            "one",
            "fresh: no load"
        );
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        // Expired, the refresh cannot fetch: the old chain serves for the stale period,
        // without retrying before the negative TTL.
        assert_eq!(spc(cache.get("u", 1000, 0, fail).await), "one");
        assert_eq!(
            spc(cache.get("u", 1005, 0, || ok("two", None)).await),
            "one",
            "no retry within 10 s"
        );
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        assert_eq!(
            spc(cache.get("u", 1011, 0, || ok("two", Some(10))).await),
            "two",
            "retried, refreshed"
        );
        // max-age 10 is clamped up to 100.
        assert_eq!(
            spc(cache.get("u", 1110, 0, || ok("three", None)).await),
            "two"
        );
        // Past the stale period a failure is an error, remembered for the negative TTL.
        let err = cache.get("u", 1111 + 100 + 300, 0, fail).await.unwrap_err();
        assert_eq!(
            err,
            VerifyError::Fetch(FetchError::Transport(Transport::Status(503)))
        );
        let loads_before = loads.load(Ordering::SeqCst);
        assert!(
            cache.get("u", 1515, 0, || ok("four", None)).await.is_err(),
            "negative cache"
        );
        assert_eq!(loads.load(Ordering::SeqCst), loads_before);
        assert_eq!(
            spc(cache.get("u", 1522, 0, || ok("four", None)).await),
            "four"
        );
        let stats = cache.stats();
        assert!(
            stats.hits >= 2 && stats.stale >= 2 && stats.negative == 1,
            "{stats:?}"
        );
    }

    #[tokio::test]
    async fn a_stale_chain_never_serves_past_its_valid_until() {
        // A repository that stops answering once the chain is cached must not keep it alive
        // past the CRL's nextUpdate (or notAfter): a revocation would go unseen.
        let cache = CertificateCache::new(config());
        let until_250 = || async {
            Ok(Loaded {
                chain: chain("x"),
                max_age: Some(900),
                valid_until: 250,
            })
        };
        assert_eq!(spc(cache.get("u", 0, 0, until_250).await), "x");
        let down = || async { failed(FetchError::Transport(Transport::Status(503))) };
        for now in [250, 251, 1000] {
            assert_eq!(
                cache.get("u", now, 0, down).await.err(),
                Some(VerifyError::Fetch(FetchError::Transport(
                    Transport::Status(503)
                ))),
                "at {now}"
            );
        }
        // Where max-age is what ends freshness, the stale period applies.
        let cache = CertificateCache::new(config());
        let until_5000 = || async {
            Ok(Loaded {
                chain: chain("y"),
                max_age: Some(200),
                valid_until: 5000,
            })
        };
        assert_eq!(spc(cache.get("u", 0, 0, until_5000).await), "y");
        assert_eq!(spc(cache.get("u", 200, 0, down).await), "y");
    }

    #[tokio::test]
    async fn a_refresh_that_finds_the_chain_revoked_is_not_covered_by_the_stale_chain() {
        let cache = CertificateCache::new(config());
        assert_eq!(
            spc(cache.get("u", 0, 0, || async { loaded("one", None) }).await),
            "one"
        );
        // Expired (default 500): the refresh fetches the chain and finds it revoked.
        let revoked = || async {
            Err(VerifyError::Credential(
                crate::error::CredentialError::Revoked {
                    index: 0,
                    serial: "01".into(),
                },
            ))
        };
        assert!(matches!(
            cache.get("u", 500, 0, revoked).await,
            Err(VerifyError::Credential(_))
        ));
        // And that is remembered, not the old chain.
        assert!(cache
            .get("u", 501, 0, || async { loaded("two", None) })
            .await
            .is_err());
        assert_eq!(cache.in_probation() + cache.len(), 0);
    }

    #[tokio::test]
    async fn the_entry_is_fresh_until_the_earliest_of_max_age_not_after_and_crl_next_update() {
        let cache = CertificateCache::new(config());
        let loads = AtomicUsize::new(0);
        let load = |valid_until: u64| {
            loads.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok(Loaded {
                    chain: chain("x"),
                    max_age: Some(900),
                    valid_until,
                })
            }
        };
        // valid_until (a CRL's nextUpdate, or notAfter) 250 comes before max-age 900.
        cache.get("u", 0, 0, || load(250)).await.unwrap();
        cache.get("u", 249, 0, || load(250)).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 1, "fresh before 250");
        cache.get("u", 250, 0, || load(5000)).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2, "refetched at 250");
        // Now max-age (900 from 250) comes first.
        cache.get("u", 1149, 0, || load(5000)).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        cache.get("u", 1150, 0, || load(5000)).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn proven_chains_probation_and_failures_are_bounded_apart() {
        let cache = CertificateCache::new(config());
        let good = cache
            .get("good", 0, 0, || async { loaded("good", None) })
            .await
            .unwrap();
        assert!(!good.proven, "in probation until a signature verifies");
        cache.confirm("good", 0);
        assert_eq!((cache.len(), cache.in_probation()), (1, 0));
        // A flood: forged x5u values that fail, and others serving a real chain their
        // signatures never match (never confirmed).
        for i in 0..100 {
            let bad = format!("bad-{i}");
            let error = cache
                .get(&bad, 1, 0, || async {
                    failed(FetchError::Transport(Transport::Status(404)))
                })
                .await
                .unwrap_err();
            assert_eq!(
                error,
                VerifyError::Fetch(FetchError::Transport(Transport::Status(404)))
            );
            let lure = format!("lure-{i}");
            let chain = cache
                .get(&lure, 1, 0, || async { loaded("public", None) })
                .await
                .unwrap();
            assert!(!chain.proven);
        }
        assert!(cache.failures() <= 2, "{}", cache.failures());
        assert!(cache.in_probation() <= 2, "{}", cache.in_probation());
        assert_eq!(cache.len(), 1);
        let fetches = cache.stats().fetches;
        let again = cache
            .get("good", 2, 0, || async { loaded("other", None) })
            .await
            .unwrap();
        assert!(again.proven && again.chain.spc == "good");
        assert_eq!(
            cache.stats().fetches,
            fetches,
            "the proven chain is still cached"
        );
    }

    #[test]
    fn the_proven_store_is_bounded_and_evicts_the_oldest_insertion() {
        let store = ProvenStore::new(3);
        let good = |spc: &str| Good {
            chain: Arc::new(chain(spc)),
            fresh_until: 10,
            valid_until: 10,
            retry_after: 0,
            generation: 0,
            proven: true,
        };
        for key in ["a", "b", "c"] {
            store.insert(key, good(key));
        }
        // Refreshing an entry does not move it nor grow the queue.
        store.insert("a", good("a2"));
        store.insert("d", good("d"));
        assert_eq!(store.len(), 3);
        assert!(store.get("a").is_none(), "the oldest insertion went");
        assert_eq!(
            store.get("d").map(|g| g.chain.spc.clone()),
            Some("d".into())
        );
        // Removed entries leave their keys queued; the queue never grows past twice the
        // capacity.
        for i in 0..100 {
            let key = format!("k{i}");
            store.insert(&key, good(&key));
            store.invalidate(&key);
        }
        let queued = store.order.lock().map(|o| o.len()).unwrap_or(usize::MAX);
        assert!(queued <= 6, "{queued}");
        assert!(store.len() <= 3);
        store.clear();
        assert_eq!(store.len(), 0);
    }

    #[tokio::test]
    async fn refusals_decided_without_io_are_not_remembered() {
        let cache = CertificateCache::new(config());
        for i in 0..10 {
            let url = format!("http://forged-{i}/");
            let _ = cache
                .get(&url, 0, 0, || async {
                    failed(FetchError::Transport(Transport::Scheme("http".into())))
                })
                .await;
        }
        assert_eq!(cache.failures(), 0);
        let _ = cache
            .get("slow", 0, 0, || async {
                failed(FetchError::Transport(Transport::Timeout(2000)))
            })
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
                    failed(FetchError::Transport(Transport::Timeout(2000)))
                };
                tokio::time::timeout(Duration::from_millis(1), cache.get(&url, 0, 0, never))
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
        assert_eq!(
            (cache.len(), cache.in_probation(), cache.failures()),
            (0, 0, 0)
        );
        assert_eq!(cache.stats().fetches, 10_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn when_the_fetching_waiter_is_dropped_another_waiter_finishes_the_fetch() {
        let cache = Arc::new(CertificateCache::new(CacheConfig::default()));
        // The first waiter starts a fetch that never ends, then is dropped.
        let first = {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                cache
                    .get("u", 0, 0, || async {
                        std::future::pending::<()>().await;
                        loaded("first", None)
                    })
                    .await
            })
        };
        while cache.stats().fetches == 0 {
            tokio::task::yield_now().await;
        }
        // A second waiter joins the same flight (one flight, two misses).
        let (release, mut released) = tokio::sync::watch::channel(false);
        let second = {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                cache
                    .get("u", 0, 0, || async move {
                        let _ = released.wait_for(|r| *r).await;
                        loaded("second", None)
                    })
                    .await
            })
        };
        while cache.stats().misses < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            cache.in_flight(),
            1,
            "the second waiter joined the first's flight"
        );
        first.abort();
        let _ = first.await;
        assert_eq!(cache.in_flight(), 1, "still wanted by the second waiter");
        let _ = release.send(true);
        assert_eq!(
            spc(second.await.unwrap()),
            "second",
            "it ran the fetch itself"
        );
        assert_eq!((cache.in_flight(), cache.stats().fetches), (0, 2));
        assert_eq!(cache.in_probation(), 1);
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
                    .get("u", 0, generation, || async move {
                        let _ = released.wait_for(|r| *r).await;
                        loaded("old trust", None)
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
        assert_eq!(spc(waiting.await.unwrap()), "old trust");
        assert_eq!(cache.in_probation() + cache.len(), 0, "not stored");
        // The next call loads again, against the new trust, and that is stored.
        let loaded_new = cache
            .get("u", 1, new_generation, || async {
                loaded("new trust", None)
            })
            .await;
        assert_eq!(spc(loaded_new), "new trust");
        assert_eq!(cache.in_probation(), 1);
        // A caller still holding the old trust is not served the new generation's entry, and
        // its own outcome is not stored.
        let old_caller = cache
            .get("u", 2, generation, || async { loaded("old again", None) })
            .await;
        assert_eq!(spc(old_caller), "old again");
        let current = cache
            .get("u", 3, new_generation, || async { loaded("unused", None) })
            .await;
        assert_eq!(spc(current), "new trust");
    }
}
