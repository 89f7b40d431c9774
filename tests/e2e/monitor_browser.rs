//! The analyst's dashboard in a real browser: `shaken monitor serve` as a process, its page
//! opened in headless Chromium before any event exists, events then posted through the API;
//! the page refreshes itself and shows the alert with its explanation, the chart and the top
//! callers; the search box opens a traceback and a caller view; the page reports no console
//! error. A screenshot is kept as `target/tmp/screenshots/monitor-dashboard.png`.

use std::time::Duration;

use serde_json::json;

use crate::browser::Browser;
use crate::monitor::{calls, t0, Monitor};
use crate::support::tempdir;

/// The dashboard refreshes every 5 s: allow three refreshes and a slow machine.
const REFRESH: Duration = Duration::from_secs(20);

const CALLER: &str = "8613800000077";

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_alerts_as_events_arrive_and_finds_a_call() {
    let dir = tempdir();
    let monitor = Monitor::start(&dir.path().join("data"), None);
    let base = format!("http://{}", monitor.address);

    let browser = Browser::start();
    browser.set_viewport(1280, 900);
    browser.open(&format!("{base}/"));
    assert!(
        browser.wait_until(
            "document.getElementById('alert-feed').innerText.includes('No alerts')",
            REFRESH
        ),
        "an empty monitor says so: {}",
        browser.text()
    );

    // Twelve calls in twelve seconds: more than 10 in 60 s, a high-frequency alert.
    let answer = monitor.post_events(&calls(CALLER, 0, 12)).await;
    assert_eq!(answer["accepted"], json!(12), "{answer}");

    let caller = quoted(CALLER);
    assert!(
        browser.wait_until(
            &format!(
                "[...document.querySelectorAll('#alert-feed li.alert')].some(li => \
                 li.innerText.includes({caller}) && li.innerText.includes('high-frequency'))"
            ),
            REFRESH
        ),
        "the alert appears without reloading the page: {}",
        browser.text()
    );
    let feed = browser.eval("document.getElementById('alert-feed').innerText");
    let feed = feed.as_str().unwrap();
    assert!(
        feed.contains("in 60 s") || feed.contains("in 1 min") || feed.contains("calls in"),
        "each alert carries its explanation: {feed}"
    );
    let bars = browser.eval("document.querySelectorAll('#chart svg rect').length");
    assert!(
        bars.as_u64().unwrap() >= 1,
        "the chart draws the calls per minute"
    );
    let legend = browser.eval("document.getElementById('legend').innerText");
    assert!(
        legend.as_str().unwrap().contains("Passed (12)"),
        "the legend counts the 12 passed calls: {legend}"
    );
    let top = browser.eval("document.getElementById('top-rows').innerText");
    assert!(
        top.as_str().unwrap().contains(CALLER),
        "the caller is among the top calling numbers: {top}"
    );
    browser.screenshot("monitor-dashboard");

    // The search box: an origid opens its traceback (the call's events and its SPC).
    let origid = format!("{CALLER}-3");
    browser.type_into("#q", &origid);
    browser.press_enter();
    let origid_js = quoted(&origid);
    assert!(
        browser.wait_until(
            &format!(
                "!document.getElementById('detail').hidden && \
                 document.getElementById('detail-title').innerText.includes({origid_js}) && \
                 document.getElementById('detail-body').innerText.includes('709J')"
            ),
            REFRESH
        ),
        "the traceback shows the call and its signing SPC: {}",
        browser.text()
    );
    let detail = browser.eval("document.getElementById('detail-body').innerText");
    let expected_time = t0() + 3;
    assert!(
        detail.as_str().unwrap().contains(&origid),
        "the traceback lists the call's event: {detail} (time {expected_time})"
    );
    browser.screenshot("monitor-traceback");

    // A number opens the caller view: its window counts and its alert.
    browser.eval("document.getElementById('q').value = ''");
    browser.type_into("#q", &format!("+{CALLER}"));
    browser.press_enter();
    assert!(
        browser.wait_until(
            &format!(
                "document.getElementById('detail-title').innerText.includes({caller}) && \
                 document.getElementById('detail-body').innerText.includes('high-frequency')"
            ),
            REFRESH
        ),
        "the caller view shows the windows and the alert: {}",
        browser.text()
    );
    browser.screenshot("monitor-caller");

    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    drop(browser);
    monitor.terminate();
}
