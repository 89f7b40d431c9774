//! A real browser for the tests: headless Chromium (Debian's `chromium`) driven over the
//! DevTools protocol through `--remote-debugging-pipe` (NUL-separated JSON messages on file
//! descriptors 3 and 4, connected here through two FIFOs), so no WebSocket client and no driver
//! crate are needed (docs/DEPENDENCIES.md).
//!
//! [`Browser::start`] runs Chromium in its own process group with a temporary profile;
//! dropping the [`Browser`] kills the whole group, also when a test fails. Each call waits at
//! most [`CALL_TIMEOUT`].
//!
//! ```text
//! let browser = Browser::start();
//! browser.open(&link);                      // navigate, wait for the load event
//! let text = browser.text();                // document.body.innerText
//! browser.click_and_wait("button");         // a real mouse click, then the next page's load
//! browser.screenshot("optout-result");      // target/tmp/screenshots/optout-result.png
//! ```

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// The longest a DevTools call or an awaited page load may take.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where screenshots are kept, for a person to look at what the test saw.
pub(crate) fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
}

struct Connection {
    to_browser: File,
    from_browser: Receiver<Value>,
    next_id: u64,
    /// Events received while waiting for a call's answer.
    events: Vec<Value>,
    /// Every console error and uncaught exception the page reported, never cleared.
    console_errors: Vec<Value>,
}

impl Connection {
    /// Keeps `event` among the console errors when it is one, and returns it.
    fn note(&mut self, event: Value) -> Value {
        let method = event["method"].as_str().unwrap_or_default();
        let params = &event["params"];
        let error = match method {
            "Runtime.exceptionThrown" => true,
            "Runtime.consoleAPICalled" => params["type"] == "error" || params["type"] == "assert",
            "Log.entryAdded" => params["entry"]["level"] == "error",
            _ => false,
        };
        if error {
            self.console_errors.push(event.clone());
        }
        event
    }
}

/// A headless Chromium with one page, driven over the DevTools protocol.
pub(crate) struct Browser {
    child: Child,
    connection: Mutex<Connection>,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole process group: Chromium's renderer, GPU and utility processes too.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts Chromium (`/usr/bin/chromium`, or `$CHROMIUM`) headless with a phone-sized
    /// window and a temporary profile, and opens one blank page. `--no-sandbox` is passed: the
    /// tests run as root in CI, where Chromium's sandbox refuses to start, and they load only
    /// pages of the service under test on loopback.
    pub(crate) fn start() -> Self {
        use std::os::unix::process::CommandExt;

        let profile = tempfile::Builder::new()
            .prefix("shaken-chromium-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let to_path = profile.path().join("to-browser");
        let from_path = profile.path().join("from-browser");
        for fifo in [&to_path, &from_path] {
            let status = Command::new("mkfifo").arg(fifo).status().unwrap();
            assert!(status.success(), "mkfifo {}", fifo.display());
        }
        let program = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let log = File::create(profile.path().join("chromium.log")).unwrap();
        let child = Command::new("bash")
            .arg("-c")
            .arg(r#"exec "$0" "${@:3}" 3<"$1" 4>"$2""#)
            .arg(&program)
            .arg(&to_path)
            .arg(&from_path)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-sync",
                "--window-size=390,844",
                "--remote-debugging-pipe",
            ])
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join("profile").display()
            ))
            .arg("about:blank")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {program} (install the chromium package): {e}")
            });
        // The shell opens fd 3 (reading) and then fd 4 (writing) before Chromium starts: open
        // the other ends in the same order, or both sides wait forever.
        let to_browser = File::options().write(true).open(&to_path).unwrap();
        let from_browser = File::open(&from_path).unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(from_browser);
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                if message.last() == Some(&0) {
                    message.pop();
                }
                if let Ok(value) = serde_json::from_slice::<Value>(&message) {
                    if sender.send(value).is_err() {
                        break;
                    }
                }
                message.clear();
            }
        });
        let mut browser = Self {
            child,
            connection: Mutex::new(Connection {
                to_browser,
                from_browser: receiver,
                next_id: 1,
                events: Vec::new(),
                console_errors: Vec::new(),
            }),
            session: String::new(),
            _profile: profile,
        };
        let target = browser.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().unwrap().to_owned();
        let attached = browser.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        browser.page_call("Page.enable", json!({}));
        browser.page_call("Runtime.enable", json!({}));
        browser.page_call("Log.enable", json!({}));
        browser
    }

    /// Sends a DevTools command (to the page's session when `session` is given) and returns
    /// its result; panics with the browser's error or on timeout.
    fn call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let mut connection = self.connection.lock().unwrap();
        let id = connection.next_id;
        connection.next_id += 1;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        connection
            .to_browser
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("{method}: the browser is gone ({e})"));
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match connection.from_browser.recv_timeout(left) {
                Ok(reply) if reply["id"] == json!(id) => {
                    if let Some(error) = reply.get("error") {
                        panic!("{method}: {error}");
                    }
                    return reply["result"].clone();
                }
                Ok(event) => {
                    let event = connection.note(event);
                    connection.events.push(event);
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{method}: no answer within {CALL_TIMEOUT:?}")
                }
                Err(RecvTimeoutError::Disconnected) => panic!("{method}: the browser is gone"),
            }
        }
    }

    fn page_call(&self, method: &str, params: Value) -> Value {
        self.call(Some(&self.session), method, params)
    }

    /// Forgets the events received so far.
    fn clear_events(&self) {
        let mut connection = self.connection.lock().unwrap();
        while let Ok(event) = connection.from_browser.try_recv() {
            connection.note(event);
        }
        connection.events.clear();
    }

    /// Waits for the page event `method` (received since the last [`Browser::clear_events`]).
    fn wait_event(&self, method: &str) -> Value {
        let mut connection = self.connection.lock().unwrap();
        if let Some(i) = connection.events.iter().position(|e| e["method"] == method) {
            return connection.events.remove(i);
        }
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match connection.from_browser.recv_timeout(left) {
                Ok(event) if event["method"] == method => return event,
                Ok(event) => {
                    connection.note(event);
                }
                Err(_) => panic!("no {method} within {CALL_TIMEOUT:?}"),
            }
        }
    }

    /// Opens `url` and waits for its load event.
    pub(crate) fn open(&self, url: &str) {
        self.clear_events();
        let result = self.page_call("Page.navigate", json!({"url": url}));
        if let Some(error) = result.get("errorText") {
            panic!("opening {url}: {error}");
        }
        self.wait_event("Page.loadEventFired");
    }

    /// Evaluates a JavaScript expression in the page (the test's probe; the pages themselves
    /// have none) and returns its value.
    pub(crate) fn eval(&self, expression: &str) -> Value {
        let result = self.page_call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression}: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// The page's visible text.
    pub(crate) fn text(&self) -> String {
        self.eval("document.body ? document.body.innerText : ''")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's address.
    pub(crate) fn url(&self) -> String {
        self.eval("location.href")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Clicks the centre of the first element matching `selector` with the mouse (pressed
    /// and released, as a person would), then waits for the page it leads to.
    pub(crate) fn click_and_wait(&self, selector: &str) {
        let selector_js = serde_json::to_string(selector).unwrap();
        let point = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector_js}); if (!e) return null; \
             e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
             return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()"
        ));
        assert!(
            !point.is_null(),
            "no element matches {selector} in:\n{}",
            self.text()
        );
        self.clear_events();
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.page_call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": point["x"], "y": point["y"], "button": "left",
                       "buttons": if kind == "mousePressed" { 1 } else { 0 }, "clickCount": 1}),
            );
        }
        self.wait_event("Page.loadEventFired");
    }

    /// Every console error and uncaught exception the page has reported so far (DevTools
    /// `Runtime.exceptionThrown`, `Runtime.consoleAPICalled` of type error, `Log.entryAdded`
    /// of level error, e.g. a failed resource load).
    pub(crate) fn console_errors(&self) -> Vec<Value> {
        // A round trip first, so events sent before it are read.
        self.eval("0");
        let mut connection = self.connection.lock().unwrap();
        while let Ok(event) = connection.from_browser.try_recv() {
            let event = connection.note(event);
            connection.events.push(event);
        }
        connection.console_errors.clone()
    }

    /// Sets the page's viewport (e.g. a desktop screen for a dashboard).
    pub(crate) fn set_viewport(&self, width: u32, height: u32) {
        self.page_call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
    }

    /// Evaluates `expression` every 100 ms until it is true, for at most `timeout`; returns
    /// whether it became true.
    pub(crate) fn wait_until(&self, expression: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(expression) == json!(true) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types `text` into the first element matching `selector` (focused, as keystrokes).
    pub(crate) fn type_into(&self, selector: &str, text: &str) {
        let selector_js = serde_json::to_string(selector).unwrap();
        let found = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector_js}); if (!e) return false; \
             e.focus(); return true; }})()"
        ));
        assert_eq!(found, json!(true), "no element matches {selector}");
        self.page_call("Input.insertText", json!({"text": text}));
    }

    /// Presses Enter in the focused element (submitting its form as a person would).
    pub(crate) fn press_enter(&self) {
        for kind in ["keyDown", "keyUp"] {
            self.page_call(
                "Input.dispatchKeyEvent",
                json!({"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13,
                       "text": if kind == "keyDown" { "\r" } else { "" }}),
            );
        }
    }

    /// Saves a PNG of the page as `target/tmp/screenshots/{name}.png`; returns its path.
    pub(crate) fn screenshot(&self, name: &str) -> PathBuf {
        let shot = self.page_call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}
