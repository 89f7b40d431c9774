//! The opt-out service over loopback HTTP: the link page, the button, pressing twice, undo,
//! refused tokens that change nothing, the feed's authentication and paging, the body cap, the
//! rate limit, the headers; and the mirror polling a running service, then keeping its copy
//! when the service stops.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use optout::server::{self, Limits};
use optout::{Clock, LinkIssuer, LinkKey, OptOutMirror, OptOutState, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: [u8; 32] = [42; 32];
const FEED_TOKEN: &str = "carrier-one-feed-token-0123456789";
const SUBSCRIBER: &str = "8613800138000";
const FIRM: &str = "91310000MA1FL1234X";
const NAME: &str = "Sunrise Insurance <Shanghai> & Co";
const NO_LIMITS: Limits = Limits {
    max_body_bytes: 4096,
    rate_per_second: 0.0,
    burst: 1,
};

struct Service {
    address: SocketAddr,
    clock: Arc<AtomicU64>,
    state: Arc<OptOutState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

impl Service {
    async fn start(limits: Limits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("optout.db")).unwrap();
        let mut service = Self::start_on(store, limits).await;
        service._dir = Some(dir);
        service
    }

    /// A service on `store`, without limits.
    async fn start_on(store: Store, limits: Limits) -> Self {
        let clock = Arc::new(AtomicU64::new(1_000_000));
        let read = Arc::clone(&clock);
        let clock_fn: Clock = Arc::new(move || read.load(Ordering::Relaxed));
        let state = Arc::new(OptOutState::new(
            store,
            LinkKey::from_bytes(&KEY).unwrap(),
            &[FEED_TOKEN],
            limits,
            clock_fn,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, Arc::clone(&state), async {
            let _ = stopped.await;
        }));
        Self {
            address,
            clock,
            state,
            stop: Some(stop),
            task,
            _dir: None,
        }
    }

    async fn default() -> Self {
        Self::start(NO_LIMITS).await
    }

    fn link(&self, subscriber: &str, ttl: u64) -> String {
        let issuer = LinkIssuer::new(
            &format!("http://{}", self.address),
            LinkKey::from_bytes(&KEY).unwrap(),
            ttl,
        );
        issuer
            .link(subscriber, FIRM, NAME, self.clock.load(Ordering::Relaxed))
            .unwrap()
    }

    fn path(&self, link: &str) -> String {
        link.strip_prefix(&format!("http://{}", self.address))
            .unwrap()
            .to_owned()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), the whole answer read.
async fn request(address: SocketAddr, head: &str, body: &[u8]) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let text = format!("{head}\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(text.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn get(address: SocketAddr, path: &str) -> Answer {
    request(address, &format!("GET {path} HTTP/1.1"), b"").await
}

async fn post_form(address: SocketAddr, path: &str, form: &str) -> Answer {
    request(
        address,
        &format!(
            "POST {path} HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}",
            form.len()
        ),
        form.as_bytes(),
    )
    .await
}

async fn feed(address: SocketAddr, query: &str, token: Option<&str>) -> Answer {
    let auth = token
        .map(|t| format!("\r\nAuthorization: Bearer {t}"))
        .unwrap_or_default();
    request(
        address,
        &format!("GET /v1/optouts{query} HTTP/1.1{auth}"),
        b"",
    )
    .await
}

fn feed_json(answer: &Answer) -> serde_json::Value {
    assert_eq!(answer.status, 200, "{}", answer.body);
    serde_json::from_str(&answer.body).unwrap()
}

#[tokio::test]
async fn the_page_the_button_twice_and_undo() {
    let service = Service::default().await;
    let link = service.link(SUBSCRIBER, 3600);
    let path = service.path(&link);

    let page = get(service.address, &path).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.body
            .contains("Sunrise Insurance &lt;Shanghai&gt; &amp; Co"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(NAME), "the name is escaped");
    assert!(page.body.contains("…8000"));
    assert!(!page.body.contains(SUBSCRIBER), "the number is masked");
    assert!(page
        .body
        .contains(&format!("<form method=\"post\" action=\"{path}\">")));
    assert!(page.body.contains("Stop calls from Sunrise"));
    assert!(!page.body.contains("<script"));
    assert!(page.body.contains("name=\"viewport\""));
    for (name, value) in [
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(page.header(name), Some(value), "{name}");
    }
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"),
        "{csp}"
    );

    let done = post_form(service.address, &path, "action=opt-out").await;
    assert_eq!(done.status, 200);
    assert!(done.body.contains("You will no longer receive marketing calls from <strong>Sunrise Insurance &lt;Shanghai&gt; &amp; Co</strong> on number …8000."), "{}", done.body);
    assert!(!done.body.contains("Already done"));
    assert!(service
        .state
        .store()
        .is_opted_out(SUBSCRIBER, FIRM)
        .unwrap());

    let twice = post_form(service.address, &path, "").await;
    assert_eq!(twice.status, 200);
    assert!(twice.body.contains("Already done"), "{}", twice.body);
    let again = get(service.address, &path).await;
    assert!(
        again.body.contains("Already done") && again.body.contains("value=\"undo\""),
        "{}",
        again.body
    );

    let feed1 = feed_json(&feed(service.address, "", Some(FEED_TOKEN)).await);
    assert_eq!(feed1["cursor"], 1);
    assert_eq!(
        feed1["changes"].as_array().unwrap().len(),
        1,
        "pressing twice is one change"
    );
    assert_eq!(feed1["changes"][0]["subscriber"], SUBSCRIBER);
    assert_eq!(feed1["changes"][0]["firm"], FIRM);
    assert_eq!(feed1["changes"][0]["opted_out"], true);
    assert_eq!(feed1["changes"][0]["at"], 1_000_000);

    let undone = post_form(service.address, &path, "action=undo").await;
    assert_eq!(undone.status, 200);
    assert!(undone.body.contains("are allowed again"), "{}", undone.body);
    assert!(!service
        .state
        .store()
        .is_opted_out(SUBSCRIBER, FIRM)
        .unwrap());
    let feed2 = feed_json(&feed(service.address, "?after=1", Some(FEED_TOKEN)).await);
    assert_eq!(feed2["cursor"], 2);
    assert_eq!(feed2["changes"][0]["opted_out"], false);
    assert!(get(service.address, &path)
        .await
        .body
        .contains("Stop calls from"));

    let bad_form = post_form(service.address, &path, "action=delete").await;
    assert_eq!(bad_form.status, 400);
    let metrics = get(service.address, "/metrics").await;
    assert!(
        metrics.body.contains("shaken_optout_optouts_total 1\n"),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains("shaken_optout_undos_total 1\n"));
    assert!(metrics.body.contains("shaken_optout_repeated_total 1\n"));
    service.stop().await;
}

#[tokio::test]
async fn tampered_expired_and_malformed_tokens_change_nothing() {
    let service = Service::default().await;
    let path = service.path(&service.link(SUBSCRIBER, 60));
    let other = service.path(&service.link("8613900139000", 60));
    // This token's MAC on the other number's payload.
    let (_, mac) = path.rsplit_once('.').unwrap();
    let (other_payload, _) = other.rsplit_once('.').unwrap();
    let swapped = format!("{other_payload}.{mac}");
    let mut flipped = path.clone().into_bytes();
    let i = flipped.len() - 5;
    flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();

    for (path, status, says) in [
        (swapped.as_str(), 400, "has been changed"),
        (flipped.as_str(), 400, "has been changed"),
        ("/u/not-a-token", 400, "incomplete or damaged"),
        ("/u/%3Cscript%3E", 400, "incomplete or damaged"),
    ] {
        for answer in [
            get(service.address, path).await,
            post_form(service.address, path, "action=opt-out").await,
        ] {
            assert_eq!(answer.status, status, "{path}: {}", answer.body);
            assert!(answer.body.contains(says), "{path}: {}", answer.body);
            assert!(answer.body.contains("Nothing was changed."));
            assert_eq!(answer.header("cache-control"), Some("no-store"));
        }
    }
    service.clock.fetch_add(60, Ordering::Relaxed);
    let expired = post_form(service.address, &path, "").await;
    assert_eq!(expired.status, 410);
    assert!(
        expired.body.contains("This link has expired"),
        "{}",
        expired.body
    );
    assert!(!service
        .state
        .store()
        .is_opted_out(SUBSCRIBER, FIRM)
        .unwrap());
    assert!(!service
        .state
        .store()
        .is_opted_out("8613900139000", FIRM)
        .unwrap());
    let empty = feed_json(&feed(service.address, "", Some(FEED_TOKEN)).await);
    assert_eq!(empty["changes"].as_array().unwrap().len(), 0);
    assert_eq!(empty["cursor"], 0);
    let metrics = get(service.address, "/metrics").await.body;
    assert!(
        metrics.contains("shaken_optout_refused_tokens_total{reason=\"bad-mac\"} 4\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shaken_optout_refused_tokens_total{reason=\"malformed\"} 4\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shaken_optout_refused_tokens_total{reason=\"expired\"} 1\n"),
        "{metrics}"
    );
    service.stop().await;
}

#[tokio::test]
async fn the_feed_needs_its_token_and_pages() {
    let service = Service::default().await;
    for i in 0..5 {
        let path = service.path(&service.link(&format!("861380013800{i}"), 60));
        assert_eq!(post_form(service.address, &path, "").await.status, 200);
    }
    for token in [
        None,
        Some("wrong-token-0123456789abcdef"),
        Some("carrier-one-feed-token-012345678"),
    ] {
        let answer = feed(service.address, "", token).await;
        assert_eq!(answer.status, 401, "{token:?}");
        assert_eq!(
            answer.header("www-authenticate"),
            Some("Bearer realm=\"optout\"")
        );
        assert!(!answer.body.contains("8613800138"), "{}", answer.body);
    }
    let first = feed_json(&feed(service.address, "?limit=2", Some(FEED_TOKEN)).await);
    assert_eq!(first["changes"].as_array().unwrap().len(), 2);
    assert_eq!(first["cursor"], 2);
    let rest = feed_json(&feed(service.address, "?after=2&limit=10000000", Some(FEED_TOKEN)).await);
    let seqs: Vec<u64> = rest["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![3, 4, 5]);
    assert_eq!(rest["cursor"], 5);
    assert_eq!(
        feed(service.address, "?after=x", Some(FEED_TOKEN))
            .await
            .status,
        400
    );
    let post = request(
        service.address,
        "POST /v1/optouts HTTP/1.1\r\nContent-Length: 0",
        b"",
    )
    .await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET"));
    let put = request(
        service.address,
        "PUT /u/abc HTTP/1.1\r\nContent-Length: 0",
        b"",
    )
    .await;
    assert_eq!(put.status, 405);
    assert_eq!(put.header("allow"), Some("GET, POST"));
    assert_eq!(get(service.address, "/elsewhere").await.status, 404);
    assert_eq!(get(service.address, "/healthz").await.status, 200);
    service.stop().await;
}

#[tokio::test]
async fn bodies_are_capped_and_clients_rate_limited() {
    let service = Service::start(Limits {
        max_body_bytes: 64,
        rate_per_second: 1.0,
        burst: 3,
    })
    .await;
    let path = service.path(&service.link(SUBSCRIBER, 60));
    let big = format!("action=opt-out&padding={}", "x".repeat(100));
    let answer = post_form(service.address, &path, &big).await;
    assert_eq!(answer.status, 413);
    // A body larger than it says (chunked, no length) is cut at the cap too.
    let chunked = request(
        service.address,
        &format!("POST {path} HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked"),
        format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len()).as_bytes(),
    )
    .await;
    assert_eq!(chunked.status, 413);
    assert!(!service
        .state
        .store()
        .is_opted_out(SUBSCRIBER, FIRM)
        .unwrap());
    assert_eq!(get(service.address, &path).await.status, 200);
    let limited = get(service.address, &path).await;
    assert_eq!(limited.status, 429, "the burst of 3 is spent");
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(
        get(service.address, "/healthz").await.status,
        200,
        "health is not limited"
    );
    let metrics = get(service.address, "/metrics").await.body;
    assert!(
        metrics.contains("shaken_optout_rate_limited_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shaken_optout_too_large_total 2\n"),
        "{metrics}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(service.address, &path).await.status, 200, "refilled");
    service.stop().await;
}

#[tokio::test]
async fn the_mirror_follows_the_feed_and_keeps_its_copy_in_an_outage() {
    let service = Service::default().await;
    let fetcher = rest::fetch::Fetcher::new(
        rest::fetch::FetchPolicy {
            allow_http: true,
            allow_private_addresses: true,
            allowed_ports: None,
            connect_timeout: Duration::from_millis(500),
            total_timeout: Duration::from_millis(500),
            // Small pages (1 change each), so catching up takes several.
            max_body: 200,
            ..rest::fetch::FetchPolicy::default()
        },
        &[],
    )
    .unwrap();
    let mirror = Arc::new(OptOutMirror::new());
    let clock: Clock = Arc::new(|| 1_000_500);
    let interval = Duration::from_millis(200);
    let poller = optout::spawn_poller(
        Arc::clone(&mirror),
        format!("http://{}/v1/optouts", service.address),
        FEED_TOKEN.to_owned(),
        fetcher,
        interval,
        clock,
    );
    for i in 0..3 {
        let path = service.path(&service.link(&format!("861390013900{i}"), 60));
        assert_eq!(post_form(service.address, &path, "").await.status, 200);
    }
    let path = service.path(&service.link(SUBSCRIBER, 60));
    assert_eq!(post_form(service.address, &path, "").await.status, 200);
    let deadline = tokio::time::Instant::now() + interval * 3;
    while !mirror.is_opted_out(SUBSCRIBER, FIRM) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not in the mirror within the interval"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!mirror.is_opted_out(SUBSCRIBER, "another-firm"));
    let status = mirror.status();
    assert_eq!((status.cursor, status.entries), (4, 4));
    assert_eq!(status.last_success, Some(1_000_500));

    post_form(service.address, &path, "action=undo").await;
    let deadline = tokio::time::Instant::now() + interval * 3;
    while mirror.is_opted_out(SUBSCRIBER, FIRM) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the undo did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mirror.status().entries, 3);

    service.stop().await;
    tokio::time::sleep(interval * 3).await;
    let status = mirror.status();
    assert!(status.consecutive_failures >= 1, "{status:?}");
    assert!(status.total_failures >= 1);
    assert_eq!(status.entries, 3, "the last copy stays");
    assert!(mirror.is_opted_out("8613900139000", FIRM));
    assert!(mirror
        .render_metrics("shaken_verifier_optout")
        .contains("shaken_verifier_optout_entries 3\n"));
    poller.abort();
}

/// Opens a store on PostgreSQL the way the service does: off the async tasks.
async fn postgres_store(url: &str) -> Store {
    let url = rest::pg::PgUrl::new(url);
    tokio::task::spawn_blocking(move || Store::open_postgres(&url))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_opt_outs_survive_a_restart_and_an_outage_answers_503() {
    let mut cluster = tokio::task::spawn_blocking(pg_test::PgCluster::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the PostgreSQL tests need a cluster: {e}"));
    let url = cluster.url();
    let service = Service::start_on(postgres_store(&url).await, NO_LIMITS).await;
    let path = service.path(&service.link(SUBSCRIBER, 3600));
    let done = post_form(service.address, &path, "action=opt-out").await;
    assert_eq!(done.status, 200);
    assert!(
        done.body.contains("You will no longer receive"),
        "{}",
        done.body
    );
    service.stop().await;

    // Another service on the same database (a restart, or a second instance).
    let service = Service::start_on(postgres_store(&url).await, NO_LIMITS).await;
    let path = service.path(&service.link(SUBSCRIBER, 3600));
    let page = get(service.address, &path).await;
    assert!(page.body.contains("Already done"), "{}", page.body);
    let feed1 = feed_json(&feed(service.address, "", Some(FEED_TOKEN)).await);
    assert_eq!(feed1["cursor"], 1);
    assert_eq!(feed1["changes"][0]["subscriber"], SUBSCRIBER);
    let metrics = get(service.address, "/metrics").await;
    assert!(
        metrics.body.contains("shaken_optout_current 1\n"),
        "{}",
        metrics.body
    );

    // PostgreSQL away: each request is refused with 503, nothing is lost or half-done.
    let mut stopping = tokio::task::spawn_blocking(move || {
        cluster.stop().unwrap();
        cluster
    });
    cluster = (&mut stopping).await.unwrap();
    assert_eq!(
        post_form(service.address, &path, "action=undo")
            .await
            .status,
        503
    );
    assert_eq!(get(service.address, &path).await.status, 503);
    assert_eq!(
        feed(service.address, "", Some(FEED_TOKEN)).await.status,
        503
    );
    let metrics = get(service.address, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        !metrics.body.contains("shaken_optout_current"),
        "{}",
        metrics.body
    );

    // Back: the same requests succeed, on a new connection.
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.start_again().unwrap();
        cluster
    })
    .await
    .unwrap();
    let undone = post_form(service.address, &path, "action=undo").await;
    assert_eq!(undone.status, 200);
    assert!(undone.body.contains("are allowed again"), "{}", undone.body);
    let feed2 = feed_json(&feed(service.address, "?after=1", Some(FEED_TOKEN)).await);
    assert_eq!(feed2["cursor"], 2);
    assert_eq!(feed2["changes"][0]["opted_out"], false);
    service.stop().await;
    drop(cluster);
}
