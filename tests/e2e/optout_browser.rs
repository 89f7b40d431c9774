//! One-click unsubscribe in a real browser: `shaken optout serve` as a process, a link minted
//! by `shaken optout link`, opened in headless Chromium, the button clicked with the mouse, the
//! result page read, and the feed then listing the opt-out; a tampered link says why and
//! changes nothing. Screenshots are kept under `target/tmp/screenshots/`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use crate::browser::Browser;
use crate::http::raw;
use crate::support::{shaken, stderr, stderr_lines, stdout, tempdir, wait_for};

const FEED_TOKEN: &str = "carrier-one-feed-token-0123456789";

/// `shaken optout serve` as a child process, stopped with SIGTERM when dropped.
pub(crate) struct OptOutProcess {
    child: Child,
    /// The address it listens on.
    pub(crate) address: SocketAddr,
    /// Its link key file.
    pub(crate) key_file: std::path::PathBuf,
    /// A feed bearer token it accepts.
    pub(crate) feed_token: &'static str,
}

impl Drop for OptOutProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl OptOutProcess {
    /// Starts the service on a free loopback port with its files under `dir`.
    pub(crate) fn start(dir: &std::path::Path) -> Self {
        let key_file = dir.join("link.key");
        std::fs::write(&key_file, "5a".repeat(32)).unwrap();
        std::fs::write(
            dir.join("optout.toml"),
            format!(
                "listen = \"127.0.0.1:0\"\ndb = \"optout.db\"\nlink_key_file = \"link.key\"\nfeed_tokens = [\"{FEED_TOKEN}\"]\n"
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_shaken"))
            .args(["optout", "serve", "--config"])
            .arg(dir.join("optout.toml"))
            .env("SHAKEN_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = stderr_lines(&mut child);
        let listening = wait_for(&lines, "optout listening");
        let address = listening
            .as_deref()
            .and_then(|line| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix("address="))
            })
            .and_then(|a| a.parse().ok());
        let Some(address) = address else {
            let _ = child.kill();
            panic!("the opt-out service did not start: {listening:?}");
        };
        Self {
            child,
            address,
            key_file,
            feed_token: FEED_TOKEN,
        }
    }

    /// A link minted by `shaken optout link` for `subscriber` and the firm.
    pub(crate) fn link(&self, subscriber: &str, firm: &str, name: &str) -> String {
        let out = shaken([
            "optout",
            "link",
            "--key-file",
            self.key_file.to_str().unwrap(),
            "--base-url",
            &format!("http://{}", self.address),
            "--subscriber",
            subscriber,
            "--firm",
            firm,
            "--name",
            name,
            "--ttl",
            "3600",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim().to_owned()
    }

    /// The feed's changes after 0, read with the bearer token.
    pub(crate) async fn feed(&self) -> serde_json::Value {
        let request = format!(
            "GET /v1/optouts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.feed_token
        );
        let reply = raw(self.address, request.as_bytes()).await;
        assert_eq!(reply.status, 200);
        reply.json()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_unsubscribes_with_one_click_in_chromium() {
    let dir = tempdir();
    let service = OptOutProcess::start(dir.path());
    let firm = "91310000MA1FL1234X";
    let link = service.link("8613800138000", firm, "Sunrise Insurance 阳光保险");

    let browser = Browser::start();
    browser.open(&link);
    let text = browser.text();
    assert!(
        text.contains("Stop calls from Sunrise Insurance 阳光保险"),
        "{text}"
    );
    assert!(text.contains("…8000"), "{text}");
    assert!(!text.contains("8613800138000"), "{text}");
    browser.screenshot("optout-page");

    browser.click_and_wait("button[type=submit]");
    let result = browser.text();
    assert!(
        result.contains(
            "You will no longer receive marketing calls from Sunrise Insurance 阳光保险 on number …8000."
        ),
        "{result}"
    );
    assert_eq!(browser.url(), link, "the form posts back to the link");
    browser.screenshot("optout-result");

    let feed = service.feed().await;
    let changes = feed["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{feed}");
    assert_eq!(changes[0]["subscriber"], "8613800138000");
    assert_eq!(changes[0]["firm"], firm);
    assert_eq!(changes[0]["opted_out"], true);

    // The same page again: already done, with an Undo button; a second press changes nothing.
    browser.open(&link);
    assert!(
        browser.text().contains("Already done"),
        "{}",
        browser.text()
    );
    // A link edited to another number (the payload of another link with this link's MAC).
    let other = service.link("8613900139000", firm, "Sunrise Insurance 阳光保险");
    let (_, mac) = link.rsplit_once('.').unwrap();
    let (other_payload, _) = other.rsplit_once('.').unwrap();
    browser.open(&format!("{other_payload}.{mac}"));
    let refused = browser.text();
    assert!(refused.contains("This link is not valid"), "{refused}");
    assert!(refused.contains("Nothing was changed."), "{refused}");
    assert!(
        browser.eval("document.querySelector('form') === null") == serde_json::json!(true),
        "no button on a refused link"
    );
    browser.screenshot("optout-tampered");
    assert_eq!(service.feed().await["changes"].as_array().unwrap().len(), 1);
}
