//! A pool of precomputed ECDSA nonces ([`passport::nonce`]), refilled by a background thread
//! at the lowest CPU priority.
//!
//! A signature's point multiplication is about a third of the signer's CPU per call. The
//! refill thread does it ahead of time, as `SCHED_IDLE`, so it runs when the CPUs would
//! otherwise be idle; a request then finishes its signature in under a microsecond. The gain
//! is in bursts: after the host pauses the signer for a few milliseconds, the requests that
//! queued meanwhile are answered about a third faster, so the backlog (and the latency tail)
//! drains sooner. When the CPUs stay busy the pool runs dry and each request signs in one
//! step, as without a pool; the total work is about the same either way (about 1 µs a call
//! more with the pool).
//!
//! Nonces do not depend on the key, so the pool survives a key reload. Each is handed out once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use passport::nonce::{self, Nonce};
use thread_priority::ThreadPriority;

/// Default number of nonces kept ready: at 40,000 signatures a second, the backlog of a 100 ms
/// pause. 4,096 nonces take 256 KiB and about 50 ms of CPU to make.
pub const DEFAULT_CAPACITY: usize = 4096;
/// Nonces made at a time (they share one inversion).
const BATCH: usize = 64;
/// How long the refill thread waits after a failure before it tries again.
const RETRY: Duration = Duration::from_secs(1);

/// The pool. Dropping it stops the refill thread.
#[derive(Debug)]
pub struct NoncePool {
    shared: Arc<Shared>,
    refill: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    low: Condvar,
    capacity: usize,
    stop: AtomicBool,
}

impl Shared {
    fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                nonces: Vec::with_capacity(capacity),
                refill_waiting: false,
            }),
            low: Condvar::new(),
            capacity,
            stop: AtomicBool::new(false),
        })
    }
}

#[derive(Debug)]
struct State {
    nonces: Vec<Nonce>,
    /// Whether the refill thread waits for the pool to run low.
    refill_waiting: bool,
}

impl NoncePool {
    /// A pool of `capacity` nonces, filled in the background from now on. With capacity 0
    /// there is no thread and [`NoncePool::take`] always answers `None`.
    pub fn start(capacity: usize) -> std::io::Result<Self> {
        let shared = Shared::new(capacity);
        let refill = if capacity == 0 {
            None
        } else {
            let shared = Arc::clone(&shared);
            Some(
                std::thread::Builder::new()
                    .name("nonce-refill".into())
                    .spawn(move || refill(&shared))?,
            )
        };
        Ok(Self { shared, refill })
    }

    /// A pool that is always empty (every signature in one step).
    pub fn none() -> Self {
        Self {
            shared: Shared::new(0),
            refill: None,
        }
    }

    /// A nonce, if one is ready; `None` when the pool is empty or busy (the caller signs in one
    /// step). Never blocks: the refill thread may hold the lock, and as a `SCHED_IDLE` thread
    /// it may not get a CPU back for milliseconds while the CPUs are busy; a request must not
    /// wait for that (priority inversion).
    pub fn take(&self) -> Option<Nonce> {
        let mut state = self.shared.state.try_lock().ok()?;
        let nonce = state.nonces.pop();
        if state.refill_waiting && state.nonces.len() + BATCH <= self.shared.capacity {
            state.refill_waiting = false;
            self.shared.low.notify_one();
        }
        nonce
    }

    /// The number of nonces ready now (for tests and diagnostics: unlike [`NoncePool::take`],
    /// it waits for the lock).
    pub fn ready(&self) -> usize {
        self.shared.state.lock().map_or(0, |s| s.nonces.len())
    }
}

impl Drop for NoncePool {
    /// Tells the refill thread to stop, without waiting for it: as a `SCHED_IDLE` thread on
    /// busy CPUs it may take a long time to get the CPU it needs to notice. It stops after its
    /// current batch, and the last nonces are zeroed when it lets go of them.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Ok(_state) = self.shared.state.lock() {
            self.shared.low.notify_one();
        }
        drop(self.refill.take());
    }
}

/// The refill thread: lowers its priority, then tops the pool up a batch at a time whenever a
/// batch's worth is missing.
fn refill(shared: &Shared) {
    lower_priority();
    let mut failing = false;
    loop {
        {
            let Ok(mut state) = shared.state.lock() else {
                return;
            };
            while !shared.stop.load(Ordering::Relaxed)
                && state.nonces.len() + BATCH > shared.capacity
            {
                state.refill_waiting = true;
                state = match shared.low.wait(state) {
                    Ok(state) => state,
                    Err(_) => return,
                };
            }
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
        }
        match nonce::precompute(BATCH) {
            Ok(batch) => {
                failing = false;
                let Ok(mut state) = shared.state.lock() else {
                    return;
                };
                let room = shared.capacity.saturating_sub(state.nonces.len());
                state.nonces.extend(batch.into_iter().take(room));
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "nonce precomputation failed; signing in one step");
                    failing = true;
                }
                std::thread::sleep(RETRY);
            }
        }
    }
}

/// Puts the calling thread in the `SCHED_IDLE` class: it runs only when no ordinary thread
/// wants the CPU, and a waking ordinary thread takes the CPU from it at once (a thread at nice
/// 19 may keep it for the rest of its time slice, about a millisecond). A failure only costs
/// speed, so it is logged and ignored.
fn lower_priority() {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadSchedulePolicy,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(error) =
        set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
    {
        tracing::debug!(?error, "could not lower the nonce refill thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn wait_for(pool: &NoncePool, at_least: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while pool.ready() < at_least {
            assert!(Instant::now() < deadline, "pool stuck at {}", pool.ready());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_pool_fills_to_its_capacity_and_refills_when_drawn_down() {
        let pool = NoncePool::start(3 * BATCH).unwrap_or_else(|e| panic!("{e}"));
        wait_for(&pool, 3 * BATCH);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(pool.ready(), 3 * BATCH, "never above capacity");
        let mut taken = 0;
        while taken < 2 * BATCH {
            // None only while the refill thread holds the lock for a moment.
            if pool.take().is_some() {
                taken += 1;
            }
        }
        wait_for(&pool, 3 * BATCH);
    }

    #[test]
    fn taking_never_waits_for_the_lock() {
        let pool = NoncePool::start(BATCH).unwrap_or_else(|e| panic!("{e}"));
        wait_for(&pool, BATCH);
        let held = pool.shared.state.lock().unwrap_or_else(|e| panic!("{e}"));
        assert!(pool.take().is_none(), "busy pool: sign in one step");
        drop(held);
        assert!(pool.take().is_some());
    }

    #[test]
    fn nonces_handed_out_are_never_the_same() {
        let pool = NoncePool::start(2 * BATCH).unwrap_or_else(|e| panic!("{e}"));
        let key = passport::SigningKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let mut rs = Vec::new();
        let mut taken = 0;
        while taken < 6 * BATCH {
            if let Some(nonce) = pool.take() {
                let signature = key
                    .sign_with_nonce(b"m", nonce)
                    .unwrap_or_else(|e| panic!("{e}"));
                rs.push(signature[..32].to_vec());
                taken += 1;
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        rs.sort();
        rs.dedup();
        assert_eq!(rs.len(), 6 * BATCH);
    }

    #[test]
    fn dropping_the_pool_stops_its_thread() {
        let mut pool = NoncePool::start(BATCH).unwrap_or_else(|e| panic!("{e}"));
        wait_for(&pool, BATCH);
        let thread = pool
            .refill
            .take()
            .unwrap_or_else(|| panic!("no refill thread"));
        drop(pool);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the refill thread is still running"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn an_empty_pool_answers_none_and_a_zero_pool_has_no_thread() {
        let pool = NoncePool::start(0).unwrap_or_else(|e| panic!("{e}"));
        assert!(pool.refill.is_none());
        assert!(pool.take().is_none());
        assert!(NoncePool::none().take().is_none());
    }
}
