//! The lab's network, running on loopback ports: the HTTPS repository publishing the lab's
//! PKI ([`crate::pki`]), the originating carrier's real-name registry, one signer per carrier,
//! and a terminating verifier with an event feed. [`Lab::start`] builds and starts it,
//! [`Lab::drive`] places calls, [`Lab::stop`] stops every service.
//!
//! The repository's port is bound first: it goes into the certificates' CRL distribution
//! points and the x5u URLs. The lab's description (addresses, files, numbers) is written to
//! `lab.json` in the lab's folder, for people and scripts pointing their own tools at it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use passport::{SigningKey, TokenSigner};
use serde_json::{json, Value};
use signer::registry::import::{import, ImportMode, ImportOptions};
use signer::registry::{CachedRegistry, Registry};
use signer::service::{SignerState, StateParts};
use tokio::sync::watch;

use crate::cases::{self, Targets, EMERGENCY, REGISTERED, SUSPENDED, UNREGISTERED, UNVERIFIED};
use crate::error::{create_dir, read, write, LabError};
use crate::pki::{self, Carrier, LabPki};
use crate::report::Results;

/// A running lab. Its services run on the current tokio runtime until [`Lab::stop`].
#[derive(Debug)]
pub struct Lab {
    /// Keeps a temporary folder alive while the lab runs (removed when the lab is dropped).
    _temporary: Option<tempfile::TempDir>,
    dir: PathBuf,
    now: u64,
    pki: LabPki,
    one: SocketAddr,
    gateway: SocketAddr,
    verifier: SocketAddr,
    description: Value,
    stop: watch::Sender<bool>,
}

/// Completes once `true` is sent on the channel (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Binds a loopback port.
async fn loopback() -> Result<(tokio::net::TcpListener, SocketAddr), LabError> {
    Ok(rest::service::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?)
}

impl Lab {
    /// Builds the lab in `dir` (created if missing; a new temporary folder when `None`) as of
    /// `now`, starts its services on loopback ports and writes `lab.json`.
    pub async fn start(dir: Option<&Path>, now: u64) -> Result<Self, LabError> {
        let (temporary, dir) = match dir {
            Some(dir) => {
                create_dir(dir)?;
                let dir = dir.canonicalize().map_err(|e| LabError::io(dir, &e))?;
                (None, dir)
            }
            None => {
                let temporary = tempfile::Builder::new()
                    .prefix("shaken-lab-")
                    .tempdir()
                    .map_err(|e| LabError::io(&std::env::temp_dir(), &e))?;
                let dir = temporary.path().to_owned();
                (Some(temporary), dir)
            }
        };

        // The repository's address goes into URLs inside the certificates.
        let (repository_listener, repository) = loopback().await?;
        let base = format!("https://127.0.0.1:{}", repository.port());
        let publish = dir.join("publish");
        let pki = pki::build(&dir, &publish, &base, now, &mut rand_core::OsRng)?;

        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(ca_tools::repository::serve(
            repository_listener,
            pki.repository_tls.clone(),
            ca_tools::repository::RepositoryConfig {
                dir: publish.clone(),
                max_age: 600,
            },
            stopped(stop_rx.clone()),
        ));

        // The originating carrier's registry, and one signer per carrier.
        let registry_db = dir.join("registry.sqlite");
        let registry = registry(&registry_db, now)?;
        let (one_listener, one) = loopback().await?;
        let one_state = signer_state(&dir, &pki.originating, Some(registry), "carrier-1001", now)?;
        let (gateway_listener, gateway) = loopback().await?;
        let gateway_state = signer_state(&dir, &pki.gateway, None, "carrier-2001", now)?;
        for (listener, state) in [(one_listener, one_state), (gateway_listener, gateway_state)] {
            tokio::spawn(signer::service::serve(
                listener,
                state,
                None,
                stopped(stop_rx.clone()),
            ));
        }

        // The terminating verifier.
        let (verifier_listener, verifier) = loopback().await?;
        tokio::spawn(verifier::service::serve(
            verifier_listener,
            verifier_state(&dir, &pki)?,
            None,
            stopped(stop_rx),
        ));

        let description = json!({
            "repository": base,
            "verifier": format!("http://{verifier}"),
            "trust_anchors": dir.join("roots.pem"),
            "repository_tls_root": dir.join("tls-root.pem"),
            "carriers": [carrier_json(&pki.originating, one), carrier_json(&pki.gateway, gateway)],
            "registry_db": registry_db,
            "numbers": {"registered": REGISTERED, "unverified": UNVERIFIED, "unregistered": UNREGISTERED, "suspended": SUSPENDED, "emergency": EMERGENCY},
            "dir": dir,
        });
        let pretty = serde_json::to_string_pretty(&description)
            .map_err(|e| LabError::io(&dir.join("lab.json"), &e.into()))?;
        write(&dir.join("lab.json"), pretty)?;
        Ok(Self {
            _temporary: temporary,
            dir,
            now,
            pki,
            one,
            gateway,
            verifier,
            description,
            stop,
        })
    }

    /// The lab's folder (PKI, registry, trace logs, event feed, `lab.json`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lab's description, as written to `lab.json`.
    pub fn description(&self) -> &Value {
        &self.description
    }

    /// Places `calls` calls (at least one of each case) one at a time, each stamped with the
    /// system clock at the time it is placed (the services judge time by that clock).
    pub async fn drive(&self, calls: usize) -> Result<Results, LabError> {
        let targets = Targets {
            one: self.one,
            gateway: self.gateway,
            verifier: self.verifier,
            revoked: &self.pki.revoked,
            rogue: &self.pki.rogue,
            originating: &self.pki.originating,
        };
        let start = self.now;
        let clock = move || rest::service::unix_now().unwrap_or(start);
        cases::drive(&targets, calls, &clock).await
    }

    /// Stops every service, giving them a moment to close their connections.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The originating carrier's registry: verified, unverified and suspended subscribers.
fn registry(path: &Path, now: u64) -> Result<Registry, LabError> {
    let mut registry = Registry::open(path)?;
    let mut csv = String::from("number,customer,name,verified,status\n");
    for (i, tn) in REGISTERED.iter().enumerate() {
        csv.push_str(&format!("{tn},c{i},Subscriber {i},yes,active\n"));
    }
    for tn in UNVERIFIED {
        csv.push_str(&format!("{tn},u1,Unverified Subscriber,no,active\n"));
    }
    for tn in SUSPENDED {
        csv.push_str(&format!("{tn},s1,Suspended Subscriber,yes,suspended\n"));
    }
    let mut progress = |_| {};
    import(
        &mut registry,
        csv.as_bytes(),
        ImportOptions {
            mode: ImportMode::Replace,
            plan: None,
            secret: None,
            actor: "lab",
            now,
            progress: &mut progress,
        },
    )?;
    Ok(registry)
}

/// A signer's state for `carrier`, with `registry` (an empty one named after `db` when `None`)
/// and a trace log named after `db`.
fn signer_state(
    dir: &Path,
    carrier: &Carrier,
    registry: Option<Registry>,
    db: &str,
    now: u64,
) -> Result<Arc<SignerState>, LabError> {
    let key = SigningKey::from_pem(&read(&carrier.key)?)?;
    let registry = match registry {
        Some(registry) => registry,
        None => Registry::open(&dir.join(format!("{db}-registry.sqlite")))?,
    };
    let state = Arc::new(SignerState::new(StateParts {
        signer: Arc::new(TokenSigner::new(key, carrier.x5u.clone())),
        registry: Arc::new(CachedRegistry::new(
            registry,
            10_000,
            Duration::from_secs(60),
        )),
        trace: signer::trace::TraceLog::open(&dir.join(format!("{db}-trace.sqlite")))?,
        policy: signer::policy::PolicyConfig {
            home_country_code: Some("1".into()),
            ..Default::default()
        },
        plan: None,
        clients: vec![],
        max_body: 16 * 1024,
        nonce_pool: signer::nonces::DEFAULT_CAPACITY,
    }));
    // As `signer serve` does at start: the expiry metric (no warning, the lab's certificates
    // are made fresh and the lab's log is the table).
    signer::service::note_certificate_expiry(&state, carrier.not_after, now, 0);
    Ok(state)
}

/// The terminating verifier's state: it trusts the lab CA's root, fetches from loopback over
/// TLS trusting the lab TLS root, and writes its event feed to `events.jsonl`.
fn verifier_state(
    dir: &Path,
    pki: &LabPki,
) -> Result<Arc<verifier::service::VerifierState>, LabError> {
    let policy = verifier::fetch::FetchPolicy {
        allow_private_addresses: true,
        allowed_ports: None,
        connect_timeout: Duration::from_millis(500),
        total_timeout: Duration::from_millis(1000),
        ..Default::default()
    };
    let fetcher = verifier::fetch::Fetcher::new(policy, std::slice::from_ref(&pki.tls_root))?;
    let anchors = ::pki::TrustAnchors::from_pem(
        ca_tools::certificate::certificate_pem(&pki.ca_root).as_bytes(),
    )
    .map_err(LabError::TrustAnchors)?;
    let verifier = verifier::verify::Verifier::new(
        fetcher,
        verifier::cache::CacheConfig::default(),
        anchors,
        verifier::crl::CrlStore::default(),
        verifier::verify::Windows::default(),
    );
    let events_path = dir.join("events.jsonl");
    let events = verifier::events::EventSink::open(&verifier::events::EventTarget::File(
        events_path.clone(),
    ))
    .map_err(|e| LabError::io(&events_path, &e))?;
    Ok(Arc::new(verifier::service::VerifierState::new(
        verifier,
        vec![],
        None,
        16 * 1024,
        Some(events),
    )))
}

/// A carrier as `lab.json` describes it.
fn carrier_json(carrier: &Carrier, signer: SocketAddr) -> Value {
    json!({"name": carrier.name, "spc": carrier.spc, "signer": format!("http://{signer}"),
           "key": carrier.key, "chain": carrier.chain, "x5u": carrier.x5u})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lab in process: every case once, each with its expected verdict, and `lab.json`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_case_gets_its_expected_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let now = rest::service::unix_now().unwrap();
        let lab = Lab::start(Some(&dir.path().join("lab")), now)
            .await
            .unwrap();
        let results = lab.drive(1).await.unwrap();
        assert!(results.all_matched(), "{}", results.table());
        assert_eq!(results.cases.len(), cases::CASES.len());
        assert!(results.cases.iter().all(|c| c.calls == 1));
        let written: Value =
            serde_json::from_slice(&std::fs::read(lab.dir().join("lab.json")).unwrap()).unwrap();
        assert_eq!(&written, lab.description());
        assert!(lab.dir().join("events.jsonl").exists());

        // The signers export their certificate's days left (30-day certificates).
        for signer in [lab.one, lab.gateway] {
            let (status, metrics) = crate::client::Client::connect(signer)
                .await
                .unwrap()
                .get("/metrics")
                .await
                .unwrap();
            assert_eq!(status, 200);
            let days = metrics
                .lines()
                .find_map(|l| l.strip_prefix("shaken_signer_certificate_expiry_days "))
                .unwrap();
            assert!(days == "29" || days == "30", "{days}");
        }
        lab.stop().await;
    }
}
