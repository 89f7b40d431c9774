//! One detector engine per stream the monitor reads in order: the pushed events (HTTP), and
//! each Kafka partition it owns (issue 19, section 2).
//!
//! The detectors judge lateness against the newest event time they have seen. A partition is
//! an ordered stream of its own (the verifier keys events by calling number, so a caller's
//! events are in one partition, in order), but partitions are not in step with each other: a
//! consumer is handed one partition's fetch, then another's, and a partition taken over from
//! a dead instance arrives with a backlog. With one engine for all of them the newest time
//! jumps ahead with one partition and most events of the others count as late. So each
//! [`Shard`] has an engine of its own, with its own newest time, and the lateness bound is
//! kept within each stream, where the verifier's order makes it hold.
//!
//! A caller's windows are in exactly one shard's engine, so the caller view and the alerts do
//! not depend on which instance owns which partition. What the per-SPC, per-ingress and
//! per-firm detectors count in Kafka mode is one partition's share of the SPC's calls
//! (docs/kafka.md).
//!
//! New engines start from a template holding the settings, the allow list and the firm list
//! and no windows ([`crate::detect::Engine::fresh`]); changes to the allow list and the firm
//! list reach the template and every engine.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::detect::{Engine, WindowCount, WindowCounts};

/// A stream the monitor reads in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shard {
    /// The events pushed over HTTP (and, on start, the stored events replayed).
    Pushed,
    /// One partition of the call-event topic.
    Partition(i32),
}

/// The engines, one per shard.
#[derive(Debug)]
pub struct Shards {
    template: Engine,
    engines: BTreeMap<Shard, Engine>,
}

impl Shards {
    /// Shards whose [`Shard::Pushed`] engine is `pushed` (its windows kept); new shards start
    /// from its settings, allow list and firm list.
    pub fn new(pushed: Engine) -> Self {
        let template = pushed.fresh();
        let mut engines = BTreeMap::new();
        engines.insert(Shard::Pushed, pushed);
        Self { template, engines }
    }

    /// The shard's engine, created empty when the shard has none.
    pub fn engine_mut(&mut self, shard: Shard) -> &mut Engine {
        let template = &self.template;
        self.engines
            .entry(shard)
            .or_insert_with(|| template.fresh())
    }

    /// The shard's engine, if it has one.
    pub fn engine(&self, shard: Shard) -> Option<&Engine> {
        self.engines.get(&shard)
    }

    /// Gives the shard an empty engine (its windows forgotten).
    pub fn reset(&mut self, shard: Shard) {
        self.engines.insert(shard, self.template.fresh());
    }

    /// Forgets the shard (a partition revoked).
    pub fn remove(&mut self, shard: Shard) {
        if shard == Shard::Pushed {
            self.reset(shard);
        } else {
            self.engines.remove(&shard);
        }
    }

    /// The shards that have an engine.
    pub fn shards(&self) -> impl Iterator<Item = Shard> + '_ {
        self.engines.keys().copied()
    }

    /// The seconds of event history the detectors need ([`Engine::horizon`]).
    pub fn horizon(&self) -> u64 {
        self.template.horizon()
    }

    /// The newest event time of any shard (0 before any event).
    pub fn newest_time(&self) -> u64 {
        self.engines
            .values()
            .map(Engine::newest_time)
            .max()
            .unwrap_or(0)
    }

    /// A calling number's window counts: from the shard whose windows hold its calls (a
    /// caller's events are in one partition), zeros when none does.
    pub fn caller_counts(&self, tn: &str) -> WindowCounts {
        self.engines
            .values()
            .find(|engine| engine.knows_caller(tn))
            .unwrap_or(&self.template)
            .caller_counts(tn)
    }

    /// A signing carrier's window counts, summed over the shards.
    pub fn spc_counts(&self, spc: &str) -> WindowCounts {
        let mut sum: Vec<WindowCount> = self.template.spc_counts(spc).windows;
        for engine in self.engines.values() {
            for (total, count) in sum.iter_mut().zip(engine.spc_counts(spc).windows) {
                total.count += count.count;
            }
        }
        WindowCounts { windows: sum }
    }

    /// The `n` busiest calling numbers over all shards, most first (ties by number).
    pub fn top_callers(&self, n: usize) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self
            .engines
            .values()
            .flat_map(|engine| engine.top_callers(n))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    /// The windows' memory estimate, summed.
    pub fn memory_bytes(&self) -> usize {
        self.engines.values().map(Engine::memory_bytes).sum()
    }

    /// Calling numbers with windows, summed (a caller is in one shard).
    pub fn active_callers(&self) -> usize {
        self.engines.values().map(Engine::active_callers).sum()
    }

    /// Adds a number to every engine's allow list; true when it changed the list.
    pub fn allow(&mut self, tn: &str) -> bool {
        for engine in self.engines.values_mut() {
            engine.allow(tn);
        }
        self.template.allow(tn)
    }

    /// Removes a number from every engine's allow list; true when it was there.
    pub fn disallow(&mut self, tn: &str) -> bool {
        for engine in self.engines.values_mut() {
            engine.disallow(tn);
        }
        self.template.disallow(tn)
    }

    /// The allow list, sorted.
    pub fn allowed(&self) -> Vec<String> {
        self.template.allowed()
    }

    /// Hands every engine the regulator's list ([`Engine::set_list`]).
    pub fn set_list(&mut self, list: Option<Arc<lists::ActiveList>>) {
        for engine in self.engines.values_mut() {
            engine.set_list(list.clone());
        }
        self.template.set_list(list);
    }

    /// Hands every engine a bare list index ([`Engine::set_list_index`]).
    pub fn set_list_index(&mut self, index: Option<Arc<lists::ListIndex>>) {
        for engine in self.engines.values_mut() {
            engine.set_list_index(index.clone());
        }
        self.template.set_list_index(index);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::detect::tests::call;
    use crate::detect::DetectionConfig;

    #[test]
    fn each_shard_judges_lateness_against_its_own_newest_time() {
        let config = DetectionConfig::default();
        let late_after = config.lateness_seconds;
        let mut shards = Shards::new(Engine::new(&config, Vec::new()));
        // Partition 0 runs far ahead of partition 1.
        let ahead = 1_700_000_000 + 10 * late_after + 3600;
        assert!(
            !shards
                .engine_mut(Shard::Partition(0))
                .observe(&call(ahead, "8613800000001", "8613900000001"))
                .late
        );
        let behind = shards.engine_mut(Shard::Partition(1)).observe(&call(
            1_700_000_000,
            "8613800000002",
            "8613900000002",
        ));
        assert!(!behind.late, "a partition behind another is not late");
        // Within one shard the bound holds as before.
        let late = shards.engine_mut(Shard::Partition(0)).observe(&call(
            1_700_000_000,
            "8613800000003",
            "8613900000003",
        ));
        assert!(late.late);
        assert_eq!(shards.newest_time(), ahead);
        assert_eq!(shards.active_callers(), 2);
        // The caller view finds the caller in its shard.
        let counts = shards.caller_counts("8613800000002");
        assert!(counts.windows.iter().any(|w| w.count == 1), "{counts:?}");
        assert!(shards
            .caller_counts("8613800000009")
            .windows
            .iter()
            .all(|w| w.count == 0));
        shards.remove(Shard::Partition(1));
        assert_eq!(shards.active_callers(), 1);
    }

    #[test]
    fn allow_list_changes_reach_new_and_existing_engines() {
        let config = DetectionConfig::default();
        let mut shards = Shards::new(Engine::new(&config, vec!["8613800000001".to_owned()]));
        shards.engine_mut(Shard::Partition(3));
        assert!(shards.allow("8613800000002"));
        assert!(!shards.allow("8613800000002"));
        assert!(shards
            .engine(Shard::Partition(3))
            .unwrap()
            .is_allowed("8613800000002"));
        assert!(shards
            .engine_mut(Shard::Partition(4))
            .is_allowed("8613800000001"));
        assert!(shards
            .engine_mut(Shard::Partition(4))
            .is_allowed("8613800000002"));
        assert!(shards.disallow("8613800000001"));
        assert!(!shards
            .engine(Shard::Partition(4))
            .unwrap()
            .is_allowed("8613800000001"));
        assert_eq!(shards.allowed(), vec!["8613800000002".to_owned()]);
    }
}
