//! The consumer's copy of the list: the last good list, replaced only by a valid newer one.
//!
//! [`ListStore::offer`] takes the bytes of a signed list (from a file or a URL) and either
//! installs it or refuses it, keeping the last good list in every refusal:
//! - the signature, form or content fails ([`ListError::Jws`]);
//! - an older version than the one held ([`ListError::Rollback`]);
//! - the held version with other content ([`ListError::SameVersionChanged`]): a new list
//!   needs a new version number;
//! - expired: `expires_at <= now` ([`ListError::Expired`]);
//! - issued more than [`MAX_CLOCK_SKEW`] seconds in the future ([`ListError::NotYetValid`]).
//!
//! The held version offered again with the same document is [`Offer::Unchanged`] (a re-signed
//! list has other signature bytes: the document decides, not the bytes), even once it has
//! expired. A held list that expires is still served: calls never fail for it, but
//! [`ListStore::status`], the logs and the metrics say so.
//!
//! Reading is cheap from many threads: [`ListStore::current`] takes a read lock only long
//! enough to clone an `Arc`; installs (rare) take the write lock for a pointer swap.

use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use sha2::{Digest, Sha256};

use crate::document::{Firm, ListDocument};
use crate::error::ListError;
use crate::index::{ListIndex, Listing};
use crate::jws::{self, RegulatorCert};

/// How far in the future `issued_at` may be (clocks differ), in seconds.
pub const MAX_CLOCK_SKEW: u64 = 300;

/// An installed list: the document, its lookup structures, and when it was installed.
#[derive(Debug)]
pub struct ActiveList {
    index: ListIndex,
    payload_digest: [u8; 32],
    jws_digest: [u8; 32],
    installed_at: u64,
}

impl ActiveList {
    /// The document.
    pub fn document(&self) -> &ListDocument {
        self.index.document()
    }

    /// The lookup structures.
    pub fn index(&self) -> &ListIndex {
        &self.index
    }

    /// What the list says about `tn` (see [`ListIndex::lookup`]).
    pub fn lookup(&self, tn: &str) -> Listing<'_> {
        self.index.lookup(tn)
    }

    /// The firm with this id.
    pub fn firm(&self, id: &str) -> Option<&Firm> {
        self.index.firm(id)
    }

    /// The list's version.
    pub fn version(&self) -> u64 {
        self.document().version
    }

    /// Whether the list has expired at `now` (it is still served).
    pub fn expired(&self, now: u64) -> bool {
        self.document().expires_at <= now
    }

    /// When it was installed, seconds since the epoch.
    pub fn installed_at(&self) -> u64 {
        self.installed_at
    }
}

/// What an accepted offer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// The list is now the held one.
    Installed {
        /// Its version.
        version: u64,
    },
    /// The held list again: nothing changed.
    Unchanged,
}

/// What the store holds and how loading went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListStatus {
    /// The held list's version, issue and expiry times; `None` before the first good list.
    pub held: Option<HeldList>,
    /// Offers refused since start.
    pub refusals: u64,
    /// Why the last refusal happened.
    pub last_refusal: Option<String>,
    /// Reads of the source that failed since start (no list to offer).
    pub load_failures: u64,
    /// Why the last read failed.
    pub last_load_failure: Option<String>,
    /// When a list was last installed, seconds since the epoch.
    pub last_load: Option<u64>,
}

/// The held list, as [`ListStatus`] shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldList {
    /// Its version.
    pub version: u64,
    /// Its `issued_at`.
    pub issued_at: u64,
    /// Its `expires_at`.
    pub expires_at: u64,
    /// Whether it has expired (it is still served).
    pub expired: bool,
}

#[derive(Debug, Default)]
struct Counters {
    refusals: u64,
    last_refusal: Option<String>,
    load_failures: u64,
    last_load_failure: Option<String>,
}

/// The last good list and the record of offers.
#[derive(Debug)]
pub struct ListStore {
    cert: RegulatorCert,
    current: RwLock<Option<Arc<ActiveList>>>,
    counters: Mutex<Counters>,
}

/// Verifies a signed list and checks it is valid at `now` (not expired, not issued more than
/// [`MAX_CLOCK_SKEW`] in the future): what `shaken lists verify` and the store both check.
pub fn check(
    jws_bytes: &[u8],
    cert: &RegulatorCert,
    now: u64,
) -> Result<jws::VerifiedList, ListError> {
    let verified = jws::verify(jws_bytes, cert)?;
    check_time(&verified.document, now)?;
    Ok(verified)
}

fn check_time(document: &ListDocument, now: u64) -> Result<(), ListError> {
    if document.expires_at <= now {
        return Err(ListError::Expired {
            version: document.version,
            expires_at: document.expires_at,
            now,
        });
    }
    if document.issued_at > now.saturating_add(MAX_CLOCK_SKEW) {
        return Err(ListError::NotYetValid {
            version: document.version,
            issued_at: document.issued_at,
            now,
            skew: MAX_CLOCK_SKEW,
        });
    }
    Ok(())
}

impl ListStore {
    /// An empty store that accepts lists signed for `cert`.
    pub fn new(cert: RegulatorCert) -> Self {
        Self {
            cert,
            current: RwLock::new(None),
            counters: Mutex::new(Counters::default()),
        }
    }

    /// The held list, if any: cheap (an `Arc` clone), for every call.
    pub fn current(&self) -> Option<Arc<ActiveList>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Offers the bytes of a signed list at time `now`. See the module's documentation for
    /// what is refused; a refusal is counted, logged (warn) and keeps the held list.
    pub fn offer(&self, jws_bytes: &[u8], now: u64) -> Result<Offer, ListError> {
        let result = self.try_offer(jws_bytes, now);
        match &result {
            Ok(Offer::Installed { version }) => {
                tracing::info!(version, "regulator list installed");
            }
            Ok(Offer::Unchanged) => {}
            Err(error) => {
                let held = self.current().map(|l| l.version());
                tracing::warn!(held_version = ?held, %error, "regulator list refused; keeping the last good list");
                let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
                counters.refusals += 1;
                counters.last_refusal = Some(error.to_string());
            }
        }
        result
    }

    fn try_offer(&self, jws_bytes: &[u8], now: u64) -> Result<Offer, ListError> {
        let held = self.current();
        let jws_digest: [u8; 32] = Sha256::digest(jws_bytes).into();
        if held.as_ref().is_some_and(|h| h.jws_digest == jws_digest) {
            // The very bytes installed: no need to verify and parse them again.
            return Ok(Offer::Unchanged);
        }
        let verified = jws::verify(jws_bytes, &self.cert)?;
        let document = verified.document;
        let payload_digest: [u8; 32] = Sha256::digest(document.canonical_json().as_bytes()).into();
        if let Some(held) = &held {
            let held_version = held.version();
            if document.version < held_version {
                return Err(ListError::Rollback {
                    offered: document.version,
                    held: held_version,
                });
            }
            if document.version == held_version {
                return if payload_digest == held.payload_digest {
                    Ok(Offer::Unchanged)
                } else {
                    Err(ListError::SameVersionChanged {
                        version: held_version,
                    })
                };
            }
        }
        check_time(&document, now)?;
        let version = document.version;
        let active = Arc::new(ActiveList {
            index: ListIndex::new(document),
            payload_digest,
            jws_digest,
            installed_at: now,
        });
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have installed a list meanwhile: never go back.
        if let Some(now_held) = current.as_ref() {
            if now_held.version() > version {
                return Err(ListError::Rollback {
                    offered: version,
                    held: now_held.version(),
                });
            }
            if now_held.version() == version {
                return Ok(Offer::Unchanged);
            }
        }
        *current = Some(active);
        Ok(Offer::Installed { version })
    }

    /// Records that the source could not be read (counted and kept for the status; the
    /// caller logs it).
    pub fn note_load_failure(&self, reason: &str) {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters.load_failures += 1;
        counters.last_load_failure = Some(reason.to_owned());
    }

    /// What the store holds at `now`.
    pub fn status(&self, now: u64) -> ListStatus {
        let held = self.current();
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        ListStatus {
            held: held.as_ref().map(|list| HeldList {
                version: list.version(),
                issued_at: list.document().issued_at,
                expires_at: list.document().expires_at,
                expired: list.expired(now),
            }),
            refusals: counters.refusals,
            last_refusal: counters.last_refusal.clone(),
            load_failures: counters.load_failures,
            last_load_failure: counters.last_load_failure.clone(),
            last_load: held.map(|l| l.installed_at),
        }
    }

    /// The list metrics in the Prometheus text format, names starting with `prefix`:
    /// `{prefix}_list_version`, `_list_expires_in_seconds` (negative once expired),
    /// `_list_expired` (0/1), `_list_refusals_total`, `_list_load_failures_total`,
    /// `_list_last_load_timestamp_seconds`. Before the first good list, version, expiry and
    /// load time are 0 and `_list_expired` is 1 (no valid list is held).
    pub fn render_metrics(&self, prefix: &str, now: u64) -> String {
        let status = self.status(now);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {prefix}_{name} {help}\n# TYPE {prefix}_{name} {kind}\n{prefix}_{name} {value}"
            );
        };
        let held = status.held;
        metric(
            "list_version",
            "gauge",
            "Version of the regulator list in use (0: none).",
            held.map_or(0, |h| h.version).to_string(),
        );
        let expires_in = held.map_or(0, |h| i128::from(h.expires_at) - i128::from(now));
        metric(
            "list_expires_in_seconds",
            "gauge",
            "Seconds until the regulator list in use expires (negative once expired).",
            expires_in.to_string(),
        );
        metric(
            "list_expired",
            "gauge",
            "1 when the list in use has expired (it is still served) or none is held.",
            u8::from(held.is_none_or(|h| h.expired)).to_string(),
        );
        metric(
            "list_refusals_total",
            "counter",
            "Offered lists refused (signature, content, rollback, time).",
            status.refusals.to_string(),
        );
        metric(
            "list_load_failures_total",
            "counter",
            "Reads of the list source that failed.",
            status.load_failures.to_string(),
        );
        metric(
            "list_last_load_timestamp_seconds",
            "gauge",
            "When the list in use was installed (0: none).",
            status.last_load.unwrap_or(0).to_string(),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::JwsError;
    use crate::jws::tests::{cert, signed};

    fn store() -> ListStore {
        ListStore::new(cert())
    }

    #[test]
    fn installs_then_refuses_rollback_and_changed_content() {
        let store = store();
        assert!(store.current().is_none());
        assert_eq!(
            store.offer(signed(5, 100, 1000).as_bytes(), 200),
            Ok(Offer::Installed { version: 5 })
        );
        assert_eq!(store.current().map(|l| l.version()), Some(5));
        // The same bytes, and the same document signed again (other signature bytes).
        assert_eq!(
            store.offer(signed(5, 100, 1000).as_bytes(), 210),
            Ok(Offer::Unchanged)
        );
        let v5 = signed(5, 100, 1000);
        assert_eq!(store.offer(v5.as_bytes(), 210), Ok(Offer::Unchanged));
        assert_eq!(store.offer(v5.as_bytes(), 220), Ok(Offer::Unchanged));
        // Rollback.
        assert_eq!(
            store.offer(signed(4, 100, 1000).as_bytes(), 230),
            Err(ListError::Rollback {
                offered: 4,
                held: 5
            })
        );
        // Same version, other content.
        assert_eq!(
            store.offer(signed(5, 100, 1001).as_bytes(), 240),
            Err(ListError::SameVersionChanged { version: 5 })
        );
        // A newer one.
        assert_eq!(
            store.offer(signed(6, 150, 1000).as_bytes(), 250),
            Ok(Offer::Installed { version: 6 })
        );
        let status = store.status(260);
        assert_eq!(
            status.held,
            Some(HeldList {
                version: 6,
                issued_at: 150,
                expires_at: 1000,
                expired: false
            })
        );
        assert_eq!(status.refusals, 2);
        assert!(status
            .last_refusal
            .is_some_and(|r| r.contains("version 5 is already held")));
        assert_eq!(status.last_load, Some(250));
        // The installed list answers lookups.
        let list = store.current().unwrap_or_else(|| panic!("no list"));
        assert_eq!(
            list.lookup("8621500").firm.map(|f| f.id.as_str()),
            Some("F1")
        );
        assert!(list.lookup("8617000000001").blacklisted_number);
        assert!(list.firm("F1").is_some());
        assert_eq!(list.installed_at(), 250);
    }

    #[test]
    fn time_refusals_keep_the_last_good_list() {
        let store = store();
        assert_eq!(
            store.offer(signed(1, 100, 200).as_bytes(), 200),
            Err(ListError::Expired {
                version: 1,
                expires_at: 200,
                now: 200
            })
        );
        assert!(store.current().is_none());
        assert_eq!(
            store.offer(signed(1, 1301, 2000).as_bytes(), 1000),
            Err(ListError::NotYetValid {
                version: 1,
                issued_at: 1301,
                now: 1000,
                skew: MAX_CLOCK_SKEW
            })
        );
        // Within the tolerated skew.
        assert_eq!(
            store.offer(signed(1, 1300, 2000).as_bytes(), 1000),
            Ok(Offer::Installed { version: 1 })
        );
        assert_eq!(
            store.offer(signed(2, 100, 1500).as_bytes(), 1500),
            Err(ListError::Expired {
                version: 2,
                expires_at: 1500,
                now: 1500
            })
        );
        assert_eq!(store.current().map(|l| l.version()), Some(1));
        // The held list expires: still served, and said so.
        let status = store.status(2000);
        assert!(status.held.is_some_and(|h| h.expired));
        assert_eq!(store.current().map(|l| l.version()), Some(1));
        // Its own bytes again after expiry are no refusal.
        let refusals = status.refusals;
        assert_eq!(
            store.offer(signed(1, 1300, 2000).as_bytes(), 2100),
            Ok(Offer::Unchanged)
        );
        assert_eq!(store.status(2100).refusals, refusals);
    }

    #[test]
    fn bad_signatures_and_content_are_refused() {
        let store = store();
        store
            .offer(signed(1, 100, 1000).as_bytes(), 200)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut tampered = signed(2, 100, 1000).into_bytes();
        if let Some(b) = tampered.get_mut(40) {
            *b = if *b == b'A' { b'B' } else { b'A' };
        }
        assert!(matches!(
            store.offer(&tampered, 200),
            Err(ListError::Jws(_))
        ));
        assert_eq!(
            store.offer(b"not a list", 200),
            Err(ListError::Jws(JwsError::Form(
                "expected three segments separated by two dots"
            )))
        );
        let other = RegulatorCert::from_pem(crate::jws::tests::OTHER_CERT.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let elsewhere = ListStore::new(other);
        assert!(matches!(
            elsewhere.offer(signed(1, 100, 1000).as_bytes(), 200),
            Err(ListError::Jws(JwsError::Thumbprint(_)))
        ));
        assert_eq!(store.current().map(|l| l.version()), Some(1));
        assert_eq!(store.status(200).refusals, 2);
    }

    #[test]
    fn metrics_say_what_is_held() {
        let store = store();
        let empty = store.render_metrics("shaken_signer", 100);
        assert!(
            empty.contains("\nshaken_signer_list_version 0\n"),
            "{empty}"
        );
        assert!(empty.contains("\nshaken_signer_list_expired 1\n"));
        store
            .offer(signed(9, 100, 1000).as_bytes(), 200)
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = store.offer(signed(8, 100, 1000).as_bytes(), 200);
        store.note_load_failure("cannot read list.jws");
        let text = store.render_metrics("shaken_signer", 400);
        for line in [
            "shaken_signer_list_version 9",
            "shaken_signer_list_expires_in_seconds 600",
            "shaken_signer_list_expired 0",
            "shaken_signer_list_refusals_total 1",
            "shaken_signer_list_load_failures_total 1",
            "shaken_signer_list_last_load_timestamp_seconds 200",
            "# TYPE shaken_signer_list_refusals_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        let expired = store.render_metrics("shaken_verifier", 1100);
        assert!(
            expired
                .lines()
                .any(|l| l == "shaken_verifier_list_expires_in_seconds -100"),
            "{expired}"
        );
        assert!(expired
            .lines()
            .any(|l| l == "shaken_verifier_list_expired 1"));
        assert_eq!(
            store.status(0).last_load_failure.as_deref(),
            Some("cannot read list.jws")
        );
    }

    #[test]
    fn concurrent_readers_see_a_whole_list() {
        let store = Arc::new(store());
        store
            .offer(signed(1, 100, 100_000).as_bytes(), 200)
            .unwrap_or_else(|e| panic!("{e}"));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        let list = store.current().unwrap_or_else(|| panic!("no list"));
                        assert!(list.lookup("8613800138000").firm.is_some());
                    }
                })
            })
            .collect();
        for version in 2..20 {
            store
                .offer(signed(version, 100, 100_000).as_bytes(), 200)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        for reader in readers {
            reader.join().unwrap_or_else(|_| panic!("reader panicked"));
        }
        assert_eq!(store.current().map(|l| l.version()), Some(19));
    }
}
