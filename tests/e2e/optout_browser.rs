//! One-click unsubscribe in a real browser: `shaken optout serve` as a process, a link minted
//! by `shaken optout link`, opened in headless Chromium, the button clicked with the mouse, the
//! result page read, and the feed then listing the opt-out; a tampered link says why and
//! changes nothing. Screenshots are kept under `target/tmp/screenshots/`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use crate::browser::Browser;
use crate::http::raw;
use crate::support::{listening_address, shaken, stderr, stderr_lines, stdout, tempdir, ServedLab};

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
        Self::start_with(dir, &[])
    }

    /// [`OptOutProcess::start`] with more arguments for `shaken optout serve`.
    pub(crate) fn start_with(dir: &std::path::Path, args: &[&str]) -> Self {
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
            .args(args)
            .env("SHAKEN_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = stderr_lines(&mut child);
        let address = listening_address(
            &mut child,
            &lines,
            "optout listening",
            "the opt-out service",
        );
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

/// POSTs `body` as JSON to `path` at `address`.
async fn post_json(
    address: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> crate::http::Reply {
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    raw(address, request.as_bytes()).await
}

/// A plain ATIS signing request from `orig` to `dest` through the lab's signer of carrier 1001.
async fn sign(lab: &ServedLab, orig: &str, dest: &str) -> crate::http::Reply {
    let body = serde_json::json!({"signingRequest": {"attest": "A", "orig": {"tn": orig},
        "dest": {"tn": [dest]}, "iat": rest::service::unix_now().unwrap(),
        "origid": uuid::Uuid::new_v4().to_string()}});
    post_json(lab.address("signing"), "/stir/v1/signing", &body).await
}

/// The whole lab in a real browser (issue 16 §3): a marketing call of the lab's white-listed
/// firm to subscriber X is signed by the lab's signer and verified by the lab's verifier; the
/// verdict's `unsubscribe` link is opened in headless Chromium, which shows the firm's vetted
/// name; the button is clicked; within the signer's poll interval (retried up to 3 s) the
/// firm's next call to X is refused 403 POL4114, while its call to subscriber Y is still
/// signed. The lab is stopped with Ctrl-C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_subscriber_unsubscribes_in_chromium_and_the_firms_next_call_is_refused() {
    let dir = tempdir();
    let lab = ServedLab::start(&dir.path().join("lab"), 1);
    let firm = lab.info["numbers"]["marketing"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let name = lab.info["firms"]["white_listed"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    // X: a subscriber no case of the lab calls; Y: the number the cases call.
    let x = "12125557001";
    let y = lab.info["numbers"]["called"][0]
        .as_str()
        .unwrap()
        .to_owned();

    let signed = sign(&lab, &firm, x).await;
    assert_eq!(
        signed.status,
        200,
        "{}",
        String::from_utf8_lossy(&signed.body)
    );
    let identity = signed.json()["signingResponse"]["identity"]
        .as_str()
        .unwrap()
        .to_owned();
    let verification = serde_json::json!({"verificationRequest": {"from": {"tn": firm},
        "to": {"tn": [x]}, "time": rest::service::unix_now().unwrap(), "identity": identity}});
    let verified = post_json(
        lab.address("verification"),
        "/stir/v1/verification",
        &verification,
    )
    .await;
    assert_eq!(verified.status, 200);
    let verdict = verified.json()["verificationResponse"].clone();
    assert_eq!(verdict["verstat"], "TN-Validation-Passed", "{verdict}");
    assert_eq!(verdict["rcd"]["nam"], name.as_str(), "{verdict}");
    let link = verdict["unsubscribe"].as_str().unwrap().to_owned();
    let optout = lab.info["optout"].as_str().unwrap();
    assert!(link.starts_with(&format!("{optout}/u/")), "{link}");

    let browser = Browser::start();
    browser.open(&link);
    let page = browser.text();
    assert!(page.contains(&format!("Stop calls from {name}")), "{page}");
    assert!(!page.contains(x), "the page masks the number: {page}");
    browser.screenshot("lab-optout-page");
    browser.click_and_wait("button[type=submit]");
    let result = browser.text();
    assert!(
        result.contains(&format!(
            "You will no longer receive marketing calls from {name} on number …7001."
        )),
        "{result}"
    );
    browser.screenshot("lab-optout-result");

    // The signer learns the opt-out from its mirror (polled every 200 ms).
    let pressed = std::time::Instant::now();
    let refused = loop {
        let reply = sign(&lab, &firm, x).await;
        if reply.status == 403 {
            break reply;
        }
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(
            pressed.elapsed() < std::time::Duration::from_secs(3),
            "the firm's calls to X were still signed 3 s after the press"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let error = refused.json();
    assert_eq!(
        error["requestError"]["policyException"]["messageId"], "POL4114",
        "{error}"
    );
    let other = sign(&lab, &firm, &y).await;
    assert_eq!(
        other.status,
        200,
        "{}",
        String::from_utf8_lossy(&other.body)
    );
    assert!(other.json()["signingResponse"]["identity"].is_string());
    drop(browser);
    drop(lab);
}
