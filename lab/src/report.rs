//! The lab's results: per case, how many calls got the expected verdict and what the others got;
//! the signing and verification latencies; as a table for a person ([`Results::table`]) and as
//! JSON for a script ([`Results::to_json`]).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::cases::CASES;

/// What the calls of one case got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseResult {
    /// Calls placed.
    pub calls: usize,
    /// Calls that got the expected verdict.
    pub matched: usize,
    /// Each description got, with how many calls got it.
    pub got: BTreeMap<String, usize>,
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
    /// How long the calls took.
    pub elapsed: Duration,
}

/// The value at quantile `q`, in milliseconds.
fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

impl Results {
    /// Whether every call got its expected verdict.
    pub fn all_matched(&self) -> bool {
        self.cases.iter().all(|c| c.matched == c.calls)
    }

    /// Calls per second, over all cases.
    fn calls_per_second(&self) -> f64 {
        self.cases.iter().map(|c| c.calls).sum::<usize>() as f64
            / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The table printed by `shaken lab`: one line per case (name, calls, expected, got, `ok`
    /// or `MISMATCH`), the latencies, and a last line saying whether every call got its
    /// expected verdict.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{:<30} {:>6}  {:<34} got", "case", "calls", "expected");
        for ((name, expected), result) in CASES.iter().zip(&self.cases) {
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
            let _ = writeln!(
                out,
                "{name:<30} {:>6}  {expected:<34} {} {mark}",
                result.calls,
                got.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "\nsigning: {} requests, p50 {:.3} ms, p99 {:.3} ms; verification: {} requests, p50 {:.3} ms, p99 {:.3} ms; {:.0} calls/s (one call at a time)",
            self.sign_count,
            ms(&self.sign, 0.5),
            ms(&self.sign, 0.99),
            self.verify_count,
            ms(&self.verify, 0.5),
            ms(&self.verify, 0.99),
            self.calls_per_second()
        );
        let _ = writeln!(
            out,
            "{}",
            if self.all_matched() {
                "every call got its expected verdict"
            } else {
                "SOME CALLS GOT AN UNEXPECTED VERDICT"
            }
        );
        out
    }

    /// The results as JSON (`cases`, `signing`, `verification`, `calls_per_second`, `ok`), with
    /// the lab's description (`lab.json`) under `lab`.
    pub fn to_json(&self, lab: &Value) -> Value {
        json!({
            "cases": CASES.iter().zip(&self.cases).map(|((name, expected), r)| json!({
                "case": name, "calls": r.calls, "expected": expected, "matched": r.matched, "got": r.got,
            })).collect::<Vec<_>>(),
            "signing": {"requests": self.sign_count, "p50_ms": ms(&self.sign, 0.5), "p99_ms": ms(&self.sign, 0.99)},
            "verification": {"requests": self.verify_count, "p50_ms": ms(&self.verify, 0.5), "p99_ms": ms(&self.verify, 0.99)},
            "calls_per_second": self.calls_per_second(),
            "lab": lab,
            "ok": self.all_matched(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(mismatch: bool) -> Results {
        let cases = CASES
            .iter()
            .enumerate()
            .map(|(i, (_, expected))| {
                let mut got = BTreeMap::new();
                got.insert((*expected).to_owned(), 2);
                let mut matched = 2;
                if mismatch && i == 3 {
                    got.insert("438".to_owned(), 1);
                } else {
                    matched += 1;
                    *got.entry((*expected).to_owned()).or_insert(0) += 1;
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
        }
    }

    #[test]
    fn the_table_names_every_case_and_the_outcome() {
        let good = results(false);
        assert!(good.all_matched());
        let table = good.table();
        assert_eq!(table.lines().count(), 1 + CASES.len() + 2 + 1);
        for (name, expected) in CASES {
            let line = table.lines().find(|l| l.starts_with(name)).unwrap();
            assert!(line.contains(expected) && line.ends_with(" ok"), "{line}");
        }
        assert!(table.ends_with("every call got its expected verdict\n"));
        assert_eq!(good.to_json(&Value::Null)["ok"], true);

        let bad = results(true);
        assert!(!bad.all_matched());
        let table = bad.table();
        let line = table
            .lines()
            .find(|l| l.starts_with("spoofed caller ID"))
            .unwrap();
        assert!(line.ends_with("438 ×1, 438 spoofed ×2 MISMATCH"), "{line}");
        assert!(table.ends_with("SOME CALLS GOT AN UNEXPECTED VERDICT\n"));
        let json = bad.to_json(&json!({"dir": "/x"}));
        assert_eq!(json["ok"], false);
        assert_eq!(json["cases"][3]["matched"], 2);
        assert_eq!(json["lab"]["dir"], "/x");
    }
}
