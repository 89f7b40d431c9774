//! The lab's results: per case, how many calls got the expected outcome and what the others
//! got; the signing and verification latencies; as a table for a person ([`Results::table`])
//! and as JSON for a script ([`Results::to_json`]).
//!
//! The table has one line per case and these columns, every line at most 100 characters:
//!
//! | column | what |
//! |---|---|
//! | `case` | the case's name |
//! | `calls` | calls placed of that case |
//! | `result` | `pass` when every call got the expected outcome, else `FAIL` |
//! | `signing` | `signed A` (by the carrier's signer), `lab-signed A` (by the lab itself), `refused POL4101` (the signer's refusal, by message id), `not signed` |
//! | `verstat` | the verification API's `verstat`, as returned |
//! | `SIP` | the SIP `reasoncode` on failure; a legend below the table gives each code's `reasontext` |
//! | `flags` | the verdict's first flag (the API lists the most telling first), `+N` when it has N more; with `--verbose`, every flag |
//!
//! A case's line shows the expected outcome; under a `FAIL` line, one line per other outcome
//! got (`  got instead`, its number of calls, its columns).
//!
//! After the legend, the monitoring scenario's checks ([`crate::monitoring`]): one line per
//! check (`monitor check`, `calls`, `result`, then what was expected), a `got` line under it,
//! the other alerts the monitor raised (listed, not failures) and the traceback's hop from the
//! flagged alert to the customer; then the SIP path's dips and, on Kafka and PostgreSQL, the
//! scale-out checks ([`crate::scale_out`]) laid out like the monitor's. A failed check counts
//! like a call with an unexpected verdict:
//! [`Results::all_matched`] is false and `shaken lab` exits 1.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::cases::{Outcome, CASES};
use crate::monitoring::{Check, Monitoring};

/// The widest line the table prints.
pub const WIDTH: usize = 100;

/// What the calls of one case got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseResult {
    /// Calls placed.
    pub calls: usize,
    /// Calls that got the expected outcome.
    pub matched: usize,
    /// Each outcome got, with how many calls got it.
    pub got: BTreeMap<Outcome, usize>,
}

/// The results of a lab run, one [`CaseResult`] per entry of [`CASES`], in that order.
#[derive(Debug)]
pub struct Results {
    /// Per case.
    pub cases: Vec<CaseResult>,
    /// Signing request latencies, microseconds.
    pub sign: Histogram<u64>,
    /// Verification request latencies, microseconds.
    pub verify: Histogram<u64>,
    /// Signing requests sent.
    pub sign_count: u64,
    /// Verification requests sent.
    pub verify_count: u64,
    /// How long the calls took (the call cases; the monitoring scenario is timed apart).
    pub elapsed: Duration,
    /// The monitoring scenario's checks, once it has run.
    pub monitoring: Option<Monitoring>,
    /// The SIP path's checks ([`crate::sip_path`]), once it has run.
    pub sip: Option<Vec<Check>>,
    /// The scale-out checks ([`crate::scale_out`]), when the lab runs on Kafka and
    /// PostgreSQL, once they have run.
    pub scale_out: Option<Vec<Check>>,
}

/// The value at quantile `q`, in milliseconds.
fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// The flags column's pieces: the first flag and how many more, or every flag (`verbose`),
/// each but the last with its comma.
fn flags_column(flags: &[String], verbose: bool) -> Vec<String> {
    match flags {
        [] => vec![],
        _ if verbose => {
            let last = flags.len() - 1;
            flags
                .iter()
                .enumerate()
                .map(|(i, f)| if i < last { format!("{f},") } else { f.clone() })
                .collect()
        }
        [only] => vec![only.clone()],
        [first, more @ ..] => vec![format!("{first} +{}", more.len())],
    }
}

/// One line of the table (without the last newline), at most [`WIDTH`] characters: flags
/// that do not fit continue on the next lines, under the flags column.
fn row(case: &str, calls: &str, result: &str, outcome: &Outcome, verbose: bool) -> String {
    let verstat = outcome.verstat.as_deref().unwrap_or_default();
    let sip = outcome
        .reasoncode
        .map(|c| c.to_string())
        .unwrap_or_default();
    let mut line = format!(
        "{case:<23} {calls:>5} {result:<6} {:<15} {verstat:<20} {sip:<3} ",
        outcome.signing
    );
    let indent = line.chars().count();
    let mut width = indent;
    for piece in flags_column(&outcome.flags, verbose) {
        if width > indent && width + piece.len() > WIDTH {
            line.push('\n');
            line.push_str(&" ".repeat(indent));
            width = indent;
        }
        line.push_str(&piece);
        width += piece.len();
    }
    line.trim_end().to_owned()
}

/// Wraps `items` joined by `, ` after `lead` into lines of at most [`WIDTH`] characters
/// (continuation lines indented by the lead's width).
fn wrap(lead: &str, items: &[String]) -> String {
    let mut out = String::new();
    let mut line = lead.to_owned();
    let last = items.len().saturating_sub(1);
    for (i, item) in items.iter().enumerate() {
        let piece = if i < last {
            format!("{item},")
        } else {
            item.clone()
        };
        if line.len() + 1 + piece.len() > WIDTH && line.len() > lead.len() {
            out.push_str(&line);
            out.push('\n');
            line = " ".repeat(lead.len());
        }
        line.push(' ');
        line.push_str(&piece);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

impl Results {
    /// Whether every call got its expected outcome and every monitoring check matched.
    pub fn all_matched(&self) -> bool {
        self.calls_matched()
            && self.monitoring.as_ref().is_none_or(Monitoring::all_matched)
            && self
                .sip
                .as_ref()
                .is_none_or(|checks| checks.iter().all(|c| c.matched))
            && self
                .scale_out
                .as_ref()
                .is_none_or(|checks| checks.iter().all(|c| c.matched))
    }

    /// Whether every call of the call cases got its expected outcome.
    fn calls_matched(&self) -> bool {
        self.cases.iter().all(|c| c.matched == c.calls)
    }

    /// Calls placed, over all cases.
    fn calls(&self) -> usize {
        self.cases.iter().map(|c| c.calls).sum()
    }

    /// Calls per second, over all cases.
    fn calls_per_second(&self) -> f64 {
        self.calls() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The table printed by `shaken lab` (see the module's documentation), the SIP codes'
    /// legend, the latencies, and a last line saying whether every call got its expected
    /// outcome. `verbose`: every flag of each verdict.
    pub fn table(&self, verbose: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<23} {:>5} {:<6} {:<15} {:<20} {:<3} flags",
            "case", "calls", "result", "signing", "verstat", "SIP"
        );
        let mut reasons = BTreeMap::new();
        for (case, result) in CASES.iter().zip(&self.cases) {
            let expected = case.expected();
            let pass = result.matched == result.calls;
            let mark = if pass { "pass" } else { "FAIL" };
            let calls = result.calls.to_string();
            let _ = writeln!(out, "{}", row(case.name, &calls, mark, &expected, verbose));
            for (got, n) in &result.got {
                if let (Some(code), Some(text)) = (got.reasoncode, &got.reasontext) {
                    reasons.insert(code, text.clone());
                }
                if *got != expected {
                    let n = n.to_string();
                    let _ = writeln!(out, "{}", row("  got instead", &n, "", got, verbose));
                }
            }
        }
        out.push('\n');
        if !reasons.is_empty() {
            let legend: Vec<String> = reasons
                .iter()
                .map(|(code, text)| format!("{code} {text}"))
                .collect();
            out.push_str(&wrap("SIP reason codes:", &legend));
        }
        if !verbose {
            out.push_str("flags: the first of each verdict's flags (--verbose shows them all)\n");
        }
        if let Some(monitoring) = &self.monitoring {
            out.push('\n');
            out.push_str(&monitoring_table(monitoring));
            out.push('\n');
        }
        if let Some(checks) = &self.sip {
            out.push_str(&sip_table(checks));
            out.push('\n');
        }
        if let Some(checks) = &self.scale_out {
            out.push_str(&checks_with_got("scale-out check", checks));
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "signing:      {} requests, p50 {:.3} ms, p99 {:.3} ms",
            self.sign_count,
            ms(&self.sign, 0.5),
            ms(&self.sign, 0.99),
        );
        let _ = writeln!(
            out,
            "verification: {} requests, p50 {:.3} ms, p99 {:.3} ms",
            self.verify_count,
            ms(&self.verify, 0.5),
            ms(&self.verify, 0.99),
        );
        let _ = writeln!(
            out,
            "{} calls in {:.1} s, {:.0} calls/s (one call at a time)",
            self.calls(),
            self.elapsed.as_secs_f64(),
            self.calls_per_second()
        );
        if let Some(checks) = &self.sip {
            let matched = checks.iter().filter(|c| c.matched).count();
            let _ = writeln!(
                out,
                "{}",
                if matched == checks.len() {
                    format!(
                        "every SIP dip got its expected answer ({matched} of {})",
                        checks.len()
                    )
                } else {
                    format!(
                        "SOME SIP DIPS FAILED ({matched} of {} matched)",
                        checks.len()
                    )
                }
            );
        }
        if let Some(checks) = &self.scale_out {
            let matched = checks.iter().filter(|c| c.matched).count();
            let _ = writeln!(
                out,
                "{}",
                if matched == checks.len() {
                    format!(
                        "every scale-out check passed ({matched} of {})",
                        checks.len()
                    )
                } else {
                    format!(
                        "SOME SCALE-OUT CHECKS FAILED ({matched} of {} matched)",
                        checks.len()
                    )
                }
            );
        }
        if let Some(monitoring) = &self.monitoring {
            let checks = monitoring.checks.len();
            let matched = monitoring.checks.iter().filter(|c| c.matched).count();
            let _ = writeln!(
                out,
                "{}",
                if matched == checks {
                    format!(
                        "the monitor raised every expected alert ({matched} of {checks} checks)"
                    )
                } else {
                    format!("SOME MONITOR CHECKS FAILED ({matched} of {checks} matched)")
                }
            );
        }
        let _ = writeln!(
            out,
            "{}",
            if self.calls_matched() {
                "every call got its expected verdict"
            } else {
                "SOME CALLS GOT AN UNEXPECTED VERDICT"
            }
        );
        out
    }

    /// The results as JSON (`cases`, `signing`, `verification`, `calls_per_second`, `monitor`,
    /// `ok`), with
    /// the lab's description (`lab.json`) under `lab`. Each case has `case`, `calls`,
    /// `expected` (the outcome in words), `matched`, `got` (each outcome in words, with its
    /// number of calls), `result` (`pass`, `fail`), `expected_outcome` and `got_outcomes` (the
    /// outcomes as the API's members: `signing`, `verstat`, `reasoncode`, `reasontext`,
    /// `flags`; each got outcome with its `calls`). `monitor` (`null` before the scenario ran)
    /// has `checks` (each `check`, `calls`, `expected`, `got`, `result`), `other_alerts` (as
    /// the monitor's API gives them), `traceback_ms` (the hop from the flagged alert to the
    /// customer), `signer_ms` and `alerts_after_ms`. `sip` (`null` before the SIP path ran)
    /// lists its checks in the same shape, and so does `scale_out` when the lab runs on Kafka
    /// and PostgreSQL (absent otherwise).
    pub fn to_json(&self, lab: &Value) -> Value {
        let cases: Vec<Value> = CASES
            .iter()
            .zip(&self.cases)
            .map(|(case, r)| {
                let got: BTreeMap<String, usize> =
                    r.got.iter().map(|(g, n)| (g.to_string(), *n)).collect();
                let got_outcomes: Vec<Value> = r
                    .got
                    .iter()
                    .map(|(g, n)| {
                        let mut outcome = g.to_json();
                        outcome.insert("calls".into(), json!(n));
                        Value::Object(outcome)
                    })
                    .collect();
                json!({
                    "case": case.name,
                    "calls": r.calls,
                    "expected": case.expected().to_string(),
                    "matched": r.matched,
                    "got": got,
                    "result": if r.matched == r.calls { "pass" } else { "fail" },
                    "expected_outcome": Value::Object(case.expected().to_json()),
                    "got_outcomes": got_outcomes,
                })
            })
            .collect();
        let mut json = json!({
            "cases": cases,
            "signing": {"requests": self.sign_count, "p50_ms": ms(&self.sign, 0.5), "p99_ms": ms(&self.sign, 0.99)},
            "verification": {"requests": self.verify_count, "p50_ms": ms(&self.verify, 0.5), "p99_ms": ms(&self.verify, 0.99)},
            "calls_per_second": self.calls_per_second(),
            "monitor": self.monitoring.as_ref().map(monitoring_json),
            "sip": self.sip.as_deref().map(sip_json),
            "lab": lab,
            "ok": self.all_matched(),
        });
        if let (Some(checks), Some(object)) = (&self.scale_out, json.as_object_mut()) {
            object.insert("scale_out".into(), sip_json(checks));
        }
        json
    }
}

/// Most other alerts the table lists (the JSON report has them all).
const OTHER_ALERTS_SHOWN: usize = 10;

/// `text` cut to `width` characters (an ellipsis marks the cut).
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `text` word-wrapped after `lead` into lines of at most [`WIDTH`] characters, continuation
/// lines indented like the first (a word longer than a line is cut).
fn fill(lead: &str, text: &str) -> String {
    let room = WIDTH.saturating_sub(lead.chars().count()).max(20);
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > room {
            out.push_str(&format!("{lead}{line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&fit(word, room));
    }
    out.push_str(&format!("{lead}{line}\n"));
    out
}

/// The monitoring section of the table: each check with its expected and got values, the
/// other alerts, the traceback's hop.
fn monitoring_table(monitoring: &Monitoring) -> String {
    let mut out = checks_with_got("monitor check", &monitoring.checks);
    let others = &monitoring.other_alerts;
    if others.is_empty() {
        out.push_str("other alerts: none\n");
    } else {
        let _ = writeln!(
            out,
            "other alerts the monitor raised (the cases repeat numbers; not failures): {}",
            others.len()
        );
        for alert in others.iter().take(OTHER_ALERTS_SHOWN) {
            let detector = alert["detector"].as_str().unwrap_or("?");
            let text = alert["text"].as_str().unwrap_or("");
            let _ = writeln!(out, "{}", fit(&format!("  {detector}: {text}"), WIDTH));
        }
        if others.len() > OTHER_ALERTS_SHOWN {
            let _ = writeln!(
                out,
                "  ... and {} more (--json lists them all)",
                others.len() - OTHER_ALERTS_SHOWN
            );
        }
    }
    if let Some(hop) = monitoring.hop_ms {
        let _ = writeln!(
            out,
            "traceback: flagged alert to registered customer in {hop:.1} ms (the signer's trace \
             lookup {} ms)\nalerts visible at the monitor {:.1} s after the scenario's first call",
            monitoring
                .signer_ms
                .map_or_else(|| "?".to_owned(), |ms| ms.to_string()),
            monitoring.alerts_after.as_secs_f64()
        );
    }
    out
}

/// The SIP path's section of the table: each dip with its expected and got answers.
fn sip_table(checks: &[Check]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<23} {:>5} {:<6} expected / got",
        "SIP path", "dips", "result"
    );
    for check in checks {
        let mark = if check.matched { "pass" } else { "FAIL" };
        let line = format!(
            "{:<23} {:>5} {mark:<6} {} / {}",
            check.name, check.calls, check.expected, check.got
        );
        let _ = writeln!(out, "{}", fit(&line, WIDTH));
    }
    out
}

/// A section of checks each on two lines: its `title` over the check's name, `calls`,
/// `result` and expected value, then a `got` line under each (wrapped to [`WIDTH`]).
fn checks_with_got(title: &str, checks: &[Check]) -> String {
    let mut out = String::new();
    let lead = format!("{:<23} {:>5} {:<6} ", "", "", "");
    let _ = writeln!(
        out,
        "{title:<23} {:>5} {:<6} expected / got",
        "calls", "result"
    );
    for check in checks {
        let mark = if check.matched { "pass" } else { "FAIL" };
        let line = format!(
            "{:<23} {:>5} {mark:<6} {}",
            check.name, check.calls, check.expected
        );
        let _ = writeln!(out, "{}", fit(&line, WIDTH));
        out.push_str(&fill(&lead, &format!("got {}", check.got)));
    }
    out
}

/// The SIP path's checks as JSON (see [`Results::to_json`]).
fn sip_json(checks: &[Check]) -> Value {
    Value::Array(checks.iter().map(check_json).collect())
}

/// One check as JSON: `check`, `calls`, `expected`, `got`, `result`.
fn check_json(c: &Check) -> Value {
    json!({"check": c.name, "calls": c.calls, "expected": c.expected, "got": c.got,
           "result": if c.matched { "pass" } else { "fail" }})
}

/// The monitoring scenario as JSON (see [`Results::to_json`]).
fn monitoring_json(monitoring: &Monitoring) -> Value {
    let checks: Vec<Value> = monitoring.checks.iter().map(check_json).collect();
    json!({
        "checks": checks,
        "other_alerts": monitoring.other_alerts,
        "traceback_ms": monitoring.hop_ms,
        "signer_ms": monitoring.signer_ms,
        "alerts_after_ms": monitoring.alerts_after.as_secs_f64() * 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(mismatch: bool) -> Results {
        let cases = CASES
            .iter()
            .enumerate()
            .map(|(i, case)| {
                let mut got = BTreeMap::new();
                got.insert(case.expected(), 2);
                let mut matched = 2;
                if mismatch && i == 3 {
                    let mut other = case.expected();
                    other.verstat = Some("TN-Validation-Passed".into());
                    other.reasoncode = None;
                    other.reasontext = None;
                    other.flags = vec!["gateway".into(), "stale".into(), "unregistered".into()];
                    got.insert(other, 1);
                } else {
                    matched += 1;
                    *got.entry(case.expected()).or_insert(0) += 1;
                }
                CaseResult {
                    calls: 3,
                    matched,
                    got,
                }
            })
            .collect();
        Results {
            cases,
            sign: Histogram::new(3).unwrap(),
            verify: Histogram::new(3).unwrap(),
            sign_count: 0,
            verify_count: 0,
            elapsed: Duration::from_secs(1),
            monitoring: None,
            sip: None,
            scale_out: None,
        }
    }

    /// The cell of `column` (a header's name) on `line`, trimmed.
    fn cell<'a>(header: &str, line: &'a str, column: &str) -> &'a str {
        let start = header.find(column).unwrap();
        let after = start + column.len();
        let next = header[after..]
            .find(|c| c != ' ')
            .map_or(line.len(), |n| after + n);
        line.get(start..next.min(line.len())).unwrap_or("").trim()
    }

    #[test]
    fn the_table_has_a_result_column_and_the_api_spellings() {
        let good = results(false);
        assert!(good.all_matched());
        for verbose in [false, true] {
            let table = good.table(verbose);
            assert!(table.lines().all(|l| l.chars().count() <= WIDTH), "{table}");
            let header = table.lines().next().unwrap();
            for case in CASES {
                let line = table.lines().find(|l| l.starts_with(case.name)).unwrap();
                let expected = case.expected();
                assert_eq!(cell(header, line, "result"), "pass", "{line}");
                assert_eq!(cell(header, line, "signing"), expected.signing, "{line}");
                assert_eq!(
                    cell(header, line, "verstat"),
                    expected.verstat.as_deref().unwrap_or(""),
                    "{line}"
                );
                let flags = line.get(header.find("flags").unwrap()..).unwrap_or("");
                match (verbose, expected.flags.as_slice()) {
                    (true, all) => assert_eq!(flags, all.join(","), "{line}"),
                    (false, []) => assert_eq!(flags, ""),
                    (false, [one]) => assert_eq!(flags, one),
                    (false, [first, ..]) => assert!(flags.starts_with(first.as_str()), "{line}"),
                }
            }
            // Every SIP code is explained: 403, 436, 437 and 438 with their reason phrases.
            assert!(table.contains("438 Invalid Identity Header"), "{table}");
            assert!(table.contains("403 Stale Date"), "{table}");
            assert_eq!(verbose, !table.contains("--verbose"));
            assert!(table.ends_with("every call got its expected verdict\n"));
        }
        assert_eq!(good.to_json(&Value::Null)["ok"], true);
        assert_eq!(good.to_json(&Value::Null)["cases"][0]["result"], "pass");

        let bad = results(true);
        assert!(!bad.all_matched());
        let table = bad.table(true);
        assert!(table.lines().all(|l| l.chars().count() <= WIDTH), "{table}");
        let at = table
            .lines()
            .position(|l| l.starts_with("spoofed caller ID"))
            .unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[at].contains(" FAIL "), "{table}");
        assert!(lines[at + 1].starts_with("  got instead"), "{table}");
        assert!(lines[at + 1].contains(" TN-Validation-Passed "), "{table}");
        // Three flags do not fit: they continue on the next line, under the flags column.
        assert!(lines[at + 1].ends_with(" gateway,stale,"), "{table}");
        assert_eq!(lines[at + 2].trim(), "unregistered", "{table}");
        assert_eq!(
            lines[at + 2].find("unregistered"),
            lines[at + 1].find("gateway"),
            "{table}"
        );
        assert!(table.ends_with("SOME CALLS GOT AN UNEXPECTED VERDICT\n"));
        let json = bad.to_json(&json!({"dir": "/x"}));
        assert_eq!(json["ok"], false);
        assert_eq!(json["cases"][3]["matched"], 2);
        assert_eq!(json["cases"][3]["result"], "fail");
        assert_eq!(
            json["cases"][3]["expected"],
            "signed A; TN-Validation-Failed; SIP 438 Invalid Identity Header; \
             flags spoofed, unregistered"
        );
        assert_eq!(json["cases"][3]["expected_outcome"]["reasoncode"], 438);
        assert_eq!(json["cases"][3]["got_outcomes"][0]["calls"], 2);
        assert_eq!(json["lab"]["dir"], "/x");
    }

    #[test]
    fn monitor_checks_wrap_at_the_table_width() {
        let lead = " ".repeat(37);
        let long = "SPC 2001 carried 21 calls with home-country (+1) caller ID from international \
                    ingress in 5 min (threshold 20)";
        let text = fill(&lead, long);
        assert!(text.lines().count() > 1, "{text}");
        assert!(text
            .lines()
            .all(|l| l.chars().count() <= WIDTH && l.starts_with(&lead)));
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(words, long.split_whitespace().collect::<Vec<_>>());
        assert_eq!(fit("abcdef", 4), "abc…");
    }

    #[test]
    fn legends_wrap_at_the_table_width() {
        let items: Vec<String> = (0..30).map(|i| format!("{i} item")).collect();
        let text = wrap("lead:", &items);
        assert!(text.lines().all(|l| l.len() <= WIDTH), "{text}");
        assert!(text.starts_with("lead: 0 item, 1 item,"), "{text}");
        assert!(text.ends_with("29 item\n"), "{text}");
        assert!(text.lines().nth(1).unwrap().starts_with("      "), "{text}");
    }
}
