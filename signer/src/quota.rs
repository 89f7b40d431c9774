//! Per-firm hourly call quotas over an exact sliding hour, shared by every thread of the
//! signer.
//!
//! [`FirmQuotas::try_take`] takes one slot for a firm at `now` when fewer than `quota` slots
//! were taken in the hour before (`(now - 3600, now]`); a slot taken at `t` is free again at
//! `t + 3600`, exactly. The firms are spread over [`SHARDS`] independently locked shards (a
//! keyed hash of the firm id picks one), so threads signing for different firms rarely meet on
//! a lock, and no lock is global. Memory is bounded by the quotas: a firm holds at most as
//! many timestamps as the largest quota it was checked against, and a firm whose slots have all
//! expired is dropped when its shard is next swept (every [`SWEEP_EVERY`] takes on the shard,
//! or by [`FirmQuotas::prune`]).
//!
//! Nothing here reads the clock: `now` (seconds since the epoch) is a parameter.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Mutex;

/// The length of the sliding window, in seconds.
pub const WINDOW: u64 = 3600;
/// The number of independently locked shards.
pub const SHARDS: usize = 32;
/// A shard drops its idle firms once every this many takes.
pub const SWEEP_EVERY: u32 = 1024;

/// A firm is at its quota: `used` slots taken in the last hour, `quota` allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("firm over its hourly quota: {used} calls in the last hour, {quota} allowed")]
pub struct OverQuota {
    /// Slots taken in the sliding hour.
    pub used: u32,
    /// The firm's quota.
    pub quota: u32,
}

#[derive(Debug, Default)]
struct Shard {
    /// Per firm, the times of its slots in the sliding hour, oldest first.
    firms: HashMap<String, VecDeque<u64>>,
    takes: u32,
}

/// Drops from the front of `slots` every slot that has left the hour ending at `now`.
fn expire(slots: &mut VecDeque<u64>, now: u64) {
    while slots
        .front()
        .is_some_and(|t| t.saturating_add(WINDOW) <= now)
    {
        slots.pop_front();
    }
}

impl Shard {
    fn sweep(&mut self, now: u64) {
        self.firms.retain(|_, slots| {
            expire(slots, now);
            !slots.is_empty()
        });
    }
}

/// The quotas of every firm, shared by all the signer's threads (share it in an `Arc`).
#[derive(Debug)]
pub struct FirmQuotas {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
}

impl Default for FirmQuotas {
    fn default() -> Self {
        Self::new()
    }
}

impl FirmQuotas {
    /// No slot taken for any firm.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, firm_id: &str) -> Option<std::sync::MutexGuard<'_, Shard>> {
        let index = usize::try_from(self.hasher.hash_one(firm_id) % SHARDS as u64).ok()?;
        // A shard whose holder panicked still holds consistent data (every update is one
        // push or pop): keep using it.
        let shard = self.shards.get(index)?;
        Some(
            shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Takes one slot for `firm_id` at `now` if fewer than `quota` were taken in the hour
    /// before; otherwise takes nothing and says how many were. A quota of 0 refuses every call.
    pub fn try_take(&self, firm_id: &str, quota: u32, now: u64) -> Result<(), OverQuota> {
        let Some(mut shard) = self.shard(firm_id) else {
            return Err(OverQuota { used: 0, quota });
        };
        shard.takes = shard.takes.wrapping_add(1);
        if shard.takes % SWEEP_EVERY == 0 {
            shard.sweep(now);
        }
        let used = match shard.firms.get_mut(firm_id) {
            Some(slots) => {
                expire(slots, now);
                slots.len()
            }
            None => 0,
        };
        let used = u32::try_from(used).unwrap_or(u32::MAX);
        if used >= quota {
            return Err(OverQuota { used, quota });
        }
        shard
            .firms
            .entry(firm_id.to_owned())
            .or_default()
            .push_back(now);
        Ok(())
    }

    /// Gives back the slot taken for `firm_id` at `taken_at` (a call refused after its slot was
    /// taken, so it was not signed). Returns whether such a slot was still held.
    pub fn give_back(&self, firm_id: &str, taken_at: u64) -> bool {
        let Some(mut shard) = self.shard(firm_id) else {
            return false;
        };
        let Some(slots) = shard.firms.get_mut(firm_id) else {
            return false;
        };
        let Some(position) = slots.iter().rposition(|t| *t == taken_at) else {
            return false;
        };
        slots.remove(position);
        if slots.is_empty() {
            shard.firms.remove(firm_id);
        }
        true
    }

    /// Slots `firm_id` holds in the hour ending at `now`.
    pub fn used(&self, firm_id: &str, now: u64) -> u32 {
        self.shard(firm_id)
            .and_then(|shard| {
                shard.firms.get(firm_id).map(|slots| {
                    slots
                        .iter()
                        .filter(|t| t.saturating_add(WINDOW) > now)
                        .count()
                })
            })
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Drops every firm whose slots have all left the hour ending at `now`.
    pub fn prune(&self, now: u64) {
        for shard in &self.shards {
            shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .sweep(now);
        }
    }

    /// Firms holding slots (expired ones included until a sweep drops them).
    pub fn firms(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .firms
                    .len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    const T0: u64 = 1_800_000_000;

    #[test]
    fn exact_sliding_hour_boundary() {
        let quotas = FirmQuotas::new();
        // Quota 3: three calls spread over the hour are taken, the fourth refused.
        assert_eq!(quotas.try_take("firm", 3, T0), Ok(()));
        assert_eq!(quotas.try_take("firm", 3, T0 + 10), Ok(()));
        assert_eq!(quotas.try_take("firm", 3, T0 + 3599), Ok(()));
        assert_eq!(
            quotas.try_take("firm", 3, T0 + 3599),
            Err(OverQuota { used: 3, quota: 3 })
        );
        // One second before the oldest leaves the hour: still refused.
        assert_eq!(
            quotas.try_take("firm", 3, T0 + 3599),
            Err(OverQuota { used: 3, quota: 3 })
        );
        // The oldest (T0) leaves the hour at T0 + 3600: exactly one more.
        assert_eq!(quotas.try_take("firm", 3, T0 + 3600), Ok(()));
        assert_eq!(
            quotas.try_take("firm", 3, T0 + 3600),
            Err(OverQuota { used: 3, quota: 3 })
        );
        assert_eq!(quotas.used("firm", T0 + 3600), 3);
        // The next slot frees at T0 + 10 + 3600.
        assert!(quotas.try_take("firm", 3, T0 + 3609).is_err());
        assert_eq!(quotas.try_take("firm", 3, T0 + 3610), Ok(()));
        // Other firms are counted apart; quota 0 refuses.
        assert_eq!(quotas.try_take("other", 1, T0 + 3610), Ok(()));
        assert_eq!(
            quotas.try_take("none", 0, T0),
            Err(OverQuota { used: 0, quota: 0 })
        );
    }

    #[test]
    fn a_slot_given_back_is_free_again() {
        let quotas = FirmQuotas::new();
        assert_eq!(quotas.try_take("f", 1, T0), Ok(()));
        assert!(quotas.try_take("f", 1, T0 + 1).is_err());
        assert!(quotas.give_back("f", T0));
        assert!(!quotas.give_back("f", T0));
        assert_eq!(quotas.try_take("f", 1, T0 + 1), Ok(()));
    }

    #[test]
    fn idle_firms_are_dropped_and_slots_bounded() {
        let quotas = FirmQuotas::new();
        for i in 0..100 {
            assert_eq!(quotas.try_take(&format!("firm{i}"), 5, T0), Ok(()));
        }
        for _ in 0..1000 {
            let _ = quotas.try_take("busy", 5, T0 + 1);
        }
        assert_eq!(quotas.used("busy", T0 + 1), 5);
        assert_eq!(quotas.firms(), 101);
        quotas.prune(T0 + 3600);
        assert_eq!(quotas.firms(), 1);
        quotas.prune(T0 + 3601);
        assert_eq!(quotas.firms(), 0);
        // Sweeps also happen on their own as takes go by.
        for i in 0..50 {
            assert_eq!(quotas.try_take(&format!("old{i}"), 1, T0), Ok(()));
        }
        // 1024 firms cover every shard; each shard sees well over SWEEP_EVERY takes.
        for i in 0..(SWEEP_EVERY * SHARDS as u32 * 4) {
            let _ = quotas.try_take(&format!("late{}", i % 1024), 1, T0 + 2 * WINDOW);
        }
        assert_eq!(quotas.firms(), 1024);
    }

    #[test]
    fn threads_hammering_one_firm_never_exceed_the_quota() {
        let quotas = Arc::new(FirmQuotas::new());
        let taken = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let quotas = Arc::clone(&quotas);
                let taken = Arc::clone(&taken);
                std::thread::spawn(move || {
                    for i in 0..5000u64 {
                        if quotas.try_take("firm", 1000, T0 + i / 100).is_ok() {
                            taken.fetch_add(1, Ordering::Relaxed);
                        }
                        // Other firms on the same shards meanwhile.
                        let _ = quotas.try_take(&format!("x{}", i % 7), 10, T0);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(taken.load(Ordering::Relaxed), 1000);
        assert_eq!(quotas.used("firm", T0 + 49), 1000);
    }
}
