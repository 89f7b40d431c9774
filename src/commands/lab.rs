//! `shaken lab`: a whole SHAKEN network on this machine, built with the project's own tools,
//! driven through the REST APIs with every call case and its expected verdict.
//!
//! The lab binds the repository first (to learn its port, which goes into the certificates'
//! CRL distribution points and the x5u URLs), then: a policy administrator; an STI-CA; an
//! originating carrier (SPC 1001) with a real-name registry of verified, unverified and
//! suspended subscribers; a gateway carrier (SPC 2001) for international traffic; a carrier
//! whose certificate is revoked (SPC 3001); and a rogue CA nobody trusts. It starts the HTTPS
//! repository, one signer per carrier and a terminating verifier on loopback ports.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use ca_tools::ca::{CaDir, InitOptions};
use ca_tools::certificate::{self, oid};
use ca_tools::crl::Reason;
use ca_tools::profile::{self, Common};
use ca_tools::{csr, keyfile, pa, spc_token};
use clap::Args;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use passport::{Attestation, Claims, Dest, Party, SigningKey, TokenSigner};
use serde_json::{json, Value};

use super::unix_now;

/// Arguments of `shaken lab`.
#[derive(Args, Debug)]
pub(crate) struct LabArgs {
    /// Folder for the lab's PKI, registry, logs and lab.json (default: a new temporary folder).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// How many calls to drive.
    #[arg(long, default_value_t = 2600)]
    calls: usize,
    /// Leave everything running (Ctrl-C stops) and write DIR/lab.json.
    #[arg(long)]
    serve: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

const REGISTERED: &[&str] = &["12155550101", "12155550102", "12155550103", "12155550104"];
const UNVERIFIED: &[&str] = &["12155550201"];
const SUSPENDED: &[&str] = &["12155550301"];
const UNREGISTERED: &[&str] = &["12155559999"];
const EMERGENCY: &[&str] = &["911"];
const CALLED: &str = "12125551213";

struct Carrier {
    name: &'static str,
    spc: &'static str,
    key: PathBuf,
    chain: PathBuf,
    x5u: String,
}

/// Runs the lab.
pub(crate) fn run(args: LabArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(lab(args))
}

async fn lab(args: LabArgs) -> Result<ExitCode> {
    let temporary;
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.canonicalize()?
        }
        None => {
            temporary = tempfile::Builder::new().prefix("shaken-lab-").tempdir()?;
            temporary.path().to_owned()
        }
    };
    let now = unix_now()?;
    let mut rng = rand_core::OsRng;

    // The repository's address goes into URLs inside the certificates.
    let repository_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let repository = repository_listener.local_addr()?;
    let base = format!("https://127.0.0.1:{}", repository.port());
    let publish = dir.join("publish");

    // PKI: PA, CA, carriers, a revoked certificate, a rogue CA.
    pa::init(&dir.join("pa"), "Lab STI-PA", now, true, &mut rng)?;
    let pa_key = keyfile::read_private_key(&dir.join("pa/pa.key"))?;
    let pa_pem = std::fs::read(dir.join("pa/pa.pem"))?;
    let options = InitOptions {
        organization: "Lab STI-CA".into(),
        country: "US".into(),
        crl_url: format!("{base}/ca/intermediate.crl"),
        root_crl_url: Some(format!("{base}/ca/root.crl")),
        force: true,
    };
    let mut ca = CaDir::init(&dir.join("ca"), &options, now - 60, &mut rng)?;
    let issuer = CarrierIssuer {
        pa_key: &pa_key,
        pa_pem: &pa_pem,
        dir: &dir,
        publish: &publish,
        base: &base,
        now,
    };
    let issue = |ca: &mut CaDir, name: &'static str, spc: &'static str| {
        issuer.issue(ca, name, spc, &format!("sp/{spc}"))
    };
    let originating = issue(&mut ca, "Lab Carrier One", "1001")?;
    let gateway = issue(&mut ca, "Lab Gateway Carrier", "2001")?;
    let revoked = issue(&mut ca, "Lab Revoked Carrier", "3001")?;
    let revoked_serial = ca_tools::ca::serial_of_certificate_pem(&std::fs::read(&revoked.chain)?)?;
    ca.revoke(&revoked_serial, Reason::KeyCompromise, now - 30)?;
    std::fs::create_dir_all(publish.join("ca"))?;
    std::fs::write(
        publish.join("ca/intermediate.crl"),
        ca.crl(24, now - 30, false)?,
    )?;
    std::fs::write(publish.join("ca/root.crl"), ca.crl(24, now - 30, true)?)?;
    let rogue_options = InitOptions {
        organization: "Rogue CA".into(),
        crl_url: format!("{base}/rogue/intermediate.crl"),
        root_crl_url: None,
        ..options.clone()
    };
    let mut rogue_ca = CaDir::init(&dir.join("rogue-ca"), &rogue_options, now - 60, &mut rng)?;
    let rogue = issuer.issue(&mut rogue_ca, "Rogue Carrier", "1001", "rogue")?;

    // The repository's TLS certificate, from a lab TLS root.
    let tls_root_key = p256::SecretKey::random(&mut rng);
    let tls_name = certificate::name(&[
        (oid::COUNTRY, "US"),
        (oid::ORGANIZATION, "Lab"),
        (oid::COMMON_NAME, "Lab Repository TLS Root"),
    ])?;
    let tls_root = certificate::sign_certificate(
        profile::root_ca(Common {
            serial: certificate::random_serial(&mut rng)?,
            subject: tls_name,
            subject_public_key: certificate::spki(&tls_root_key.public_key())?,
            not_before: now - 60,
            not_after: now + 30 * 86_400,
        })?,
        &tls_root_key,
    )?;
    let tls_key = p256::SecretKey::random(&mut rng);
    let issuer = {
        use der::Decode;
        let cert = x509_cert::Certificate::from_der(&tls_root)?;
        profile::Issuer {
            key_id: certificate::key_identifier(&cert.tbs_certificate.subject_public_key_info),
            name: cert.tbs_certificate.subject,
        }
    };
    let server = certificate::sign_certificate(
        profile::tls_server(
            Common {
                serial: certificate::random_serial(&mut rng)?,
                subject: certificate::name(&[
                    (oid::COUNTRY, "US"),
                    (oid::ORGANIZATION, "Lab"),
                    (oid::COMMON_NAME, "localhost"),
                ])?,
                subject_public_key: certificate::spki(&tls_key.public_key())?,
                not_before: now - 60,
                not_after: now + 30 * 86_400,
            },
            &issuer,
            &["localhost"],
            &[std::net::IpAddr::from([127, 0, 0, 1])],
        )?,
        &tls_root_key,
    )?;
    std::fs::write(
        dir.join("tls-root.pem"),
        certificate::certificate_pem(&tls_root),
    )?;
    std::fs::write(
        dir.join("roots.pem"),
        certificate::certificate_pem(ca.root_der()),
    )?;
    let tls = rest::tls::acceptor_from_pem(
        certificate::certificate_pem(&server).as_bytes(),
        SigningKey::from_secret(tls_key)?.to_pkcs8_pem()?.as_bytes(),
    )?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    tokio::spawn(ca_tools::repository::serve(
        repository_listener,
        tls,
        ca_tools::repository::RepositoryConfig {
            dir: publish.clone(),
            max_age: 600,
        },
        stopped(stop_rx.clone()),
    ));

    // The originating carrier's registry.
    let registry_db = dir.join("registry.sqlite");
    let mut registry = signer::registry::Registry::open(&registry_db)?;
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
    signer::registry::import::import(
        &mut registry,
        csv.as_bytes(),
        signer::registry::import::ImportOptions {
            mode: signer::registry::import::ImportMode::Replace,
            plan: None,
            secret: None,
            actor: "lab",
            now,
            progress: &mut progress,
        },
    )?;

    // Signers.
    let start_signer =
        |carrier: &Carrier,
         registry: Option<signer::registry::Registry>,
         db: &str|
         -> Result<(tokio::net::TcpListener, Arc<signer::service::SignerState>)> {
            let key = SigningKey::from_pem(&std::fs::read(&carrier.key)?)?;
            let registry = match registry {
                Some(r) => r,
                None => {
                    signer::registry::Registry::open(&dir.join(format!("{db}-registry.sqlite")))?
                }
            };
            let state = signer::service::SignerState::new(signer::service::StateParts {
                signer: Arc::new(TokenSigner::new(key, carrier.x5u.clone())),
                registry: Arc::new(signer::registry::CachedRegistry::new(
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
            });
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listener.set_nonblocking(true)?;
            Ok((
                tokio::net::TcpListener::from_std(listener)?,
                Arc::new(state),
            ))
        };
    let (one_listener, one_state) = start_signer(&originating, Some(registry), "carrier-1001")?;
    let (gw_listener, gw_state) = start_signer(&gateway, None, "carrier-2001")?;
    let one_addr = one_listener.local_addr()?;
    let gw_addr = gw_listener.local_addr()?;
    tokio::spawn(signer::service::serve(
        one_listener,
        one_state,
        None,
        stopped(stop_rx.clone()),
    ));
    tokio::spawn(signer::service::serve(
        gw_listener,
        gw_state,
        None,
        stopped(stop_rx.clone()),
    ));

    // The terminating verifier.
    let policy = verifier::fetch::FetchPolicy {
        allow_private_addresses: true,
        allowed_ports: None,
        connect_timeout: Duration::from_millis(500),
        total_timeout: Duration::from_millis(1000),
        ..Default::default()
    };
    let fetcher = verifier::fetch::Fetcher::new(policy, std::slice::from_ref(&tls_root))?;
    let anchors = verifier::chain::TrustAnchors::from_pem(
        certificate::certificate_pem(ca.root_der()).as_bytes(),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let verifier = verifier::verify::Verifier::new(
        fetcher,
        verifier::cache::CacheConfig::default(),
        anchors,
        verifier::crl::CrlStore::default(),
        60,
        10,
    );
    let events = verifier::events::EventSink::open(&verifier::events::EventTarget::File(
        dir.join("events.jsonl"),
    ))?;
    let verifier_state = Arc::new(verifier::service::VerifierState::new(
        verifier,
        vec![],
        None,
        16 * 1024,
        Some(events),
    ));
    let verifier_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let verifier_addr = verifier_listener.local_addr()?;
    tokio::spawn(verifier::service::serve(
        verifier_listener,
        verifier_state,
        None,
        stopped(stop_rx.clone()),
    ));

    let lab_json = json!({
        "repository": base,
        "verifier": format!("http://{verifier_addr}"),
        "trust_anchors": dir.join("roots.pem"),
        "repository_tls_root": dir.join("tls-root.pem"),
        "carriers": [originating_json(&originating, one_addr), originating_json(&gateway, gw_addr)],
        "registry_db": registry_db,
        "numbers": {"registered": REGISTERED, "unverified": UNVERIFIED, "unregistered": UNREGISTERED, "suspended": SUSPENDED, "emergency": EMERGENCY},
        "dir": dir,
    });
    std::fs::write(
        dir.join("lab.json"),
        serde_json::to_string_pretty(&lab_json)?,
    )?;

    let world = World {
        one: one_addr,
        gateway: gw_addr,
        verifier: verifier_addr,
        revoked: &revoked,
        rogue: &rogue,
        originating: &originating,
    };
    let results = drive(&world, args.calls.max(CASES.len()), now).await?;
    let ok = print_results(&results);
    if let Some(path) = &args.json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&results_json(&results, &lab_json))?,
        )?;
    }
    if args.serve {
        println!(
            "\nthe lab is running; its addresses are in {}; Ctrl-C stops it",
            dir.join("lab.json").display()
        );
        rest::service::shutdown_signal().await;
    }
    let _ = stop_tx.send(true);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Issues carriers' certificates with the lab's PA and publishes their chains.
struct CarrierIssuer<'a> {
    pa_key: &'a SigningKey,
    pa_pem: &'a [u8],
    dir: &'a std::path::Path,
    publish: &'a std::path::Path,
    base: &'a str,
    now: u64,
}

impl CarrierIssuer<'_> {
    /// A key, CSR and SPC token for `spc`; the chain issued by `ca`, published at `path`.
    fn issue(
        &self,
        ca: &mut CaDir,
        name: &'static str,
        spc: &'static str,
        path: &str,
    ) -> Result<Carrier> {
        use p256::pkcs8::EncodePublicKey;
        let folder = self.dir.join("carriers").join(path.replace('/', "-"));
        std::fs::create_dir_all(&folder)?;
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        keyfile::write_private_key(&folder.join("key.pem"), &secret, true)?;
        let request = csr::build(&secret, spc, name, "US")?;
        let spki = secret
            .public_key()
            .to_public_key_der()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let fingerprint = certificate::spki_fingerprint(spki.as_bytes());
        let token = spc_token::create(
            self.pa_key,
            spc,
            &fingerprint,
            self.now,
            300,
            uuid::Uuid::new_v4().to_string(),
            None,
        )?;
        let (chain, _) = ca.issue(
            &request,
            &token,
            self.pa_pem,
            30,
            self.now - 60,
            &mut rand_core::OsRng,
        )?;
        std::fs::write(folder.join("chain.pem"), &chain)?;
        std::fs::create_dir_all(self.publish.join(path))?;
        std::fs::write(self.publish.join(path).join("chain.pem"), &chain)?;
        Ok(Carrier {
            name,
            spc,
            key: folder.join("key.pem"),
            chain: folder.join("chain.pem"),
            x5u: format!("{}/{path}/chain.pem", self.base),
        })
    }
}

fn originating_json(carrier: &Carrier, signer: SocketAddr) -> Value {
    json!({"name": carrier.name, "spc": carrier.spc, "signer": format!("http://{signer}"),
           "key": carrier.key, "chain": carrier.chain, "x5u": carrier.x5u})
}

struct World<'a> {
    one: SocketAddr,
    gateway: SocketAddr,
    verifier: SocketAddr,
    revoked: &'a Carrier,
    rogue: &'a Carrier,
    originating: &'a Carrier,
}

/// Every call case with its expected outcome.
const CASES: [(&str, &str); 13] = [
    ("A: registered, verified", "signed A; TN-Validation-Passed"),
    (
        "B: another customer's number",
        "signed B; Passed, unregistered",
    ),
    ("C: international gateway", "signed C; Passed, gateway"),
    ("spoofed caller ID", "438 spoofed"),
    ("tampered signature", "438 spoofed"),
    ("replayed after 60 s", "403 stale"),
    ("revoked certificate", "437 revoked"),
    ("untrusted root", "437 untrusted"),
    ("unreachable x5u", "436"),
    ("unregistered caller", "refused POL4101"),
    ("suspended caller", "refused POL4102"),
    ("emergency, unregistered", "signed C; Passed"),
    ("unsigned call", "No-TN-Validation"),
];

struct CaseResult {
    calls: usize,
    matched: usize,
    got: BTreeMap<String, usize>,
}

struct Results {
    cases: Vec<CaseResult>,
    sign: Histogram<u64>,
    verify: Histogram<u64>,
    sign_count: u64,
    verify_count: u64,
    elapsed: Duration,
}

/// A keep-alive HTTP/1.1 client for one service.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self { sender })
    }

    async fn post(&mut self, path: &str, body: String) -> Result<(u16, Value)> {
        self.sender.ready().await?;
        let request = hyper::Request::post(path)
            .header("host", "lab")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }
}

/// The value at `path` (missing members are `null`).
fn field<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    static NULL: Value = Value::Null;
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .unwrap_or(&NULL)
}

/// The `i`-th item of a list, cycling.
fn pick(list: &[&'static str], i: usize) -> &'static str {
    list.get(i % list.len().max(1)).copied().unwrap_or_default()
}

fn sign_body(attest: &str, orig: &str, dest: &str, iat: u64, extra: &str) -> String {
    format!(
        r#"{{"signingRequest":{{"attest":"{attest}","dest":{{"tn":["{dest}"]}},"iat":{iat},"orig":{{"tn":"{orig}"}},"origid":"{}"{extra}}}}}"#,
        uuid::Uuid::new_v4()
    )
}

fn verify_body(from: &str, dest: &str, time: u64, identity: Option<&str>) -> String {
    let identity = identity
        .map(|i| format!(r#","identity":"{i}""#))
        .unwrap_or_default();
    format!(
        r#"{{"verificationRequest":{{"from":{{"tn":"{from}"}},"to":{{"tn":["{dest}"]}},"time":{time}{identity}}}}}"#
    )
}

fn direct_identity(carrier: &Carrier, x5u: &str, orig: &str, iat: u64) -> Result<String> {
    let signer = TokenSigner::new(SigningKey::from_pem(&std::fs::read(&carrier.key)?)?, x5u);
    let claims = Claims::shaken(
        iat,
        Party::Tn(orig.into()),
        Dest::tns(
            std::slice::from_ref(&CALLED)
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
        )
        .context("dest")?,
        Attestation::A,
        uuid::Uuid::new_v4().to_string().parse()?,
    );
    Ok(signer.identity_header(&claims)?)
}

/// The lab driver's connections and timings.
struct Session {
    signer: Client,
    gateway: Client,
    verifier: Client,
    timing: (Histogram<u64>, Histogram<u64>, u64, u64),
}

/// One call of case `case`: returns a short description of what happened.
async fn one_call(
    case: usize,
    w: &World<'_>,
    session: &mut Session,
    now: u64,
    i: usize,
) -> Result<String> {
    let Session {
        signer,
        gateway,
        verifier,
        timing: results,
    } = session;
    let registered = pick(REGISTERED, i);
    let sign = |client: &'static str, body: String| (client, body);
    let (which, body) = match case {
        0 | 3 | 4 | 5 => sign("one", sign_body("A", registered, CALLED, now, "")),
        1 => sign(
            "one",
            sign_body("A", registered, CALLED, now, r#","customerId":"pbx-7""#),
        ),
        2 => sign("gateway", sign_body("C", "442071234567", CALLED, now, "")),
        9 => sign(
            "one",
            sign_body("A", pick(UNREGISTERED, 0), CALLED, now, ""),
        ),
        10 => sign("one", sign_body("A", pick(SUSPENDED, 0), CALLED, now, "")),
        11 => sign(
            "one",
            sign_body("A", pick(UNREGISTERED, 0), pick(EMERGENCY, 0), now, ""),
        ),
        _ => ("none", String::new()),
    };
    let identity = if which == "none" {
        match case {
            6 => Some(direct_identity(w.revoked, &w.revoked.x5u, registered, now)?),
            7 => Some(direct_identity(w.rogue, &w.rogue.x5u, registered, now)?),
            8 => Some(direct_identity(
                w.originating,
                "https://127.0.0.1:1/sp/1001/chain.pem",
                registered,
                now,
            )?),
            _ => None,
        }
    } else {
        let started = Instant::now();
        let (status, reply) = if which == "one" {
            signer.post("/stir/v1/signing", body).await?
        } else {
            gateway.post("/stir/v1/signing", body).await?
        };
        let _ = results.0.record(
            u64::try_from(started.elapsed().as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
        );
        results.2 += 1;
        if status != 200 {
            let id = field(&reply, &["requestError", "policyException", "messageId"])
                .as_str()
                .or(field(&reply, &["requestError", "serviceException", "messageId"]).as_str())
                .unwrap_or("?");
            return Ok(format!("refused {id}"));
        }
        field(&reply, &["signingResponse", "identity"])
            .as_str()
            .map(str::to_owned)
    };
    let attest = identity
        .as_deref()
        .and_then(|i| passport::IdentityHeader::parse(i).ok())
        .and_then(|h| h.passport().claims().attest)
        .map(|a| a.to_string());
    let identity = match (case, identity) {
        (4, Some(id)) => Some(tamper(&id)),
        (_, id) => id,
    };
    let (from, time, dest) = match case {
        3 => (pick(REGISTERED, i + 1), now, CALLED),
        5 => (registered, now + 120, CALLED),
        2 => ("442071234567", now, CALLED),
        11 => (pick(UNREGISTERED, 0), now, pick(EMERGENCY, 0)),
        _ => (registered, now, CALLED),
    };
    let started = Instant::now();
    let (_, reply) = verifier
        .post(
            "/stir/v1/verification",
            verify_body(from, dest, time, identity.as_deref()),
        )
        .await?;
    let _ = results.1.record(
        u64::try_from(started.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1),
    );
    results.3 += 1;
    let v = field(&reply, &["verificationResponse"]);
    let verstat = field(v, &["verstat"]).as_str().unwrap_or("?");
    let flags: Vec<&str> = field(v, &["flags"])
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    Ok(match (verstat, field(v, &["reasoncode"]).as_u64()) {
        ("TN-Validation-Passed", _) => {
            let signed = attest.map(|a| format!("signed {a}; ")).unwrap_or_default();
            // The telling flag: gateway over unregistered (a C call is both).
            let telling = ["gateway", "unregistered"]
                .into_iter()
                .find(|f| flags.contains(f));
            match (case, telling) {
                (11, _) => format!("{signed}Passed"),
                (_, None) => format!("{signed}TN-Validation-Passed"),
                (_, Some(flag)) => format!("{signed}Passed, {flag}"),
            }
        }
        ("No-TN-Validation", _) => "No-TN-Validation".into(),
        (_, Some(code)) => {
            let main = ["spoofed", "stale", "revoked", "untrusted"]
                .into_iter()
                .find(|f| flags.contains(f));
            main.map_or_else(|| code.to_string(), |f| format!("{code} {f}"))
        }
        _ => format!("{verstat}?"),
    })
}

fn tamper(identity: &str) -> String {
    let (token, params) = identity.split_once(';').unwrap_or((identity, ""));
    let mut chars: Vec<char> = token.chars().collect();
    let at = chars.len().saturating_sub(10);
    if let Some(c) = chars.get_mut(at) {
        *c = if *c == 'A' { 'B' } else { 'A' };
    }
    format!("{};{params}", chars.into_iter().collect::<String>())
}

async fn drive(w: &World<'_>, calls: usize, now: u64) -> Result<Results> {
    let mut session = Session {
        signer: Client::connect(w.one).await?,
        gateway: Client::connect(w.gateway).await?,
        verifier: Client::connect(w.verifier).await?,
        timing: (Histogram::<u64>::new(3)?, Histogram::<u64>::new(3)?, 0, 0),
    };
    let mut cases: Vec<CaseResult> = CASES
        .iter()
        .map(|_| CaseResult {
            calls: 0,
            matched: 0,
            got: BTreeMap::new(),
        })
        .collect();
    let started = Instant::now();
    for i in 0..calls {
        let case = i % CASES.len();
        let got = one_call(case, w, &mut session, now, i / CASES.len()).await?;
        let result = cases.get_mut(case).context("case")?;
        result.calls += 1;
        if got == CASES.get(case).map(|c| c.1).unwrap_or_default() {
            result.matched += 1;
        }
        *result.got.entry(got).or_insert(0) += 1;
    }
    Ok(Results {
        cases,
        sign: session.timing.0,
        verify: session.timing.1,
        sign_count: session.timing.2,
        verify_count: session.timing.3,
        elapsed: started.elapsed(),
    })
}

fn print_results(results: &Results) -> bool {
    println!("{:<30} {:>6}  {:<34} got", "case", "calls", "expected");
    let mut all = true;
    for ((name, expected), result) in CASES.iter().zip(&results.cases) {
        let got: Vec<String> = result
            .got
            .iter()
            .map(|(g, n)| {
                if *n == result.calls {
                    g.clone()
                } else {
                    format!("{g} ×{n}")
                }
            })
            .collect();
        let mark = if result.matched == result.calls {
            "ok"
        } else {
            "MISMATCH"
        };
        all &= result.matched == result.calls;
        println!(
            "{name:<30} {:>6}  {expected:<34} {} {mark}",
            result.calls,
            got.join(", ")
        );
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let secs = results.elapsed.as_secs_f64().max(1e-9);
    println!(
        "\nsigning: {} requests, p50 {:.3} ms, p99 {:.3} ms; verification: {} requests, p50 {:.3} ms, p99 {:.3} ms; {:.0} calls/s (one call at a time)",
        results.sign_count, ms(&results.sign, 0.5), ms(&results.sign, 0.99), results.verify_count, ms(&results.verify, 0.5), ms(&results.verify, 0.99),
        results.cases.iter().map(|c| c.calls).sum::<usize>() as f64 / secs
    );
    println!(
        "{}",
        if all {
            "every call got its expected verdict"
        } else {
            "SOME CALLS GOT AN UNEXPECTED VERDICT"
        }
    );
    all
}

fn results_json(results: &Results, lab: &Value) -> Value {
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    json!({
        "cases": CASES.iter().zip(&results.cases).map(|((name, expected), r)| json!({
            "case": name, "calls": r.calls, "expected": expected, "matched": r.matched, "got": r.got,
        })).collect::<Vec<_>>(),
        "signing": {"requests": results.sign_count, "p50_ms": ms(&results.sign, 0.5), "p99_ms": ms(&results.sign, 0.99)},
        "verification": {"requests": results.verify_count, "p50_ms": ms(&results.verify, 0.5), "p99_ms": ms(&results.verify, 0.99)},
        "calls_per_second": results.cases.iter().map(|c| c.calls).sum::<usize>() as f64 / results.elapsed.as_secs_f64().max(1e-9),
        "lab": lab,
        "ok": results.cases.iter().all(|c| c.matched == c.calls),
    })
}
