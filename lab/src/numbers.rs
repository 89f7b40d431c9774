//! The lab's telephone numbers, per country (`shaken lab --country`): the originating carrier's
//! subscribers as its registry import file writes them, and the numbers the call cases use.
//!
//! Under `NANP` the registry file writes the numbers in national form (`(215) 555-0101`);
//! under `CN` it writes mobile numbers as dialled (`138 1234 0101`) and Shanghai fixed lines
//! with the trunk prefix (`021 6234 5678`). The registry import canonicalizes them with the
//! country's numbering plan, so the registry, the requests, the tokens, the verdicts and
//! `lab.json` all hold canonical E.164 digits (`12155550101`, `862162345678`).

use passport::NumberingPlan;

/// A subscriber of the originating carrier: its canonical number and the number as the
/// registry import file writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subscriber {
    /// Canonical E.164 digits.
    pub tn: &'static str,
    /// As written in the registry import file (national form).
    pub written: &'static str,
}

/// The numbers of one country's lab.
#[derive(Clone, Copy, Debug)]
pub struct Numbers {
    /// The numbering plan of the carriers, the registry import, the signers and the verifier.
    pub plan: NumberingPlan,
    /// Registered, verified subscribers.
    pub registered: &'static [Subscriber],
    /// Registered subscribers whose customer's identity is not verified.
    pub unverified: &'static [Subscriber],
    /// Suspended subscribers.
    pub suspended: &'static [Subscriber],
    /// Numbers the registry does not hold.
    pub unregistered: &'static [&'static str],
    /// The country's emergency numbers (the signers' policy serves exactly these).
    pub emergency: &'static [&'static str],
    /// The number every call is placed to, except emergency calls.
    pub called: &'static str,
    /// A foreign caller ID arriving through the international gateway.
    pub foreign: &'static str,
    /// A domestic caller ID arriving through the international gateway (the classic spoof).
    pub domestic_via_gateway: &'static str,
    /// The white-listed marketing firm's numbers: registered, verified subscribers
    /// ([`crate::marketing::WHITE_LISTED`]).
    pub marketing: &'static [Subscriber],
    /// The small-quota white-listed firm's number: a registered, verified subscriber
    /// ([`crate::marketing::SMALL_QUOTA`]).
    pub small_quota: &'static [Subscriber],
    /// The blacklisted firm's numbers: registered, verified and active, so only the list stops
    /// them ([`crate::marketing::BLACKLISTED`]); the list gives the firm a range holding them.
    pub blacklisted: &'static [Subscriber],
    /// Numbers the list blacklists on their own (no firm's): registered, verified and active.
    pub blacklisted_alone: &'static [Subscriber],
    /// The blacklisted firm's range in the list (`FIRST-LAST`), holding [`Numbers::blacklisted`].
    pub blacklisted_range: &'static str,
    /// A subscriber who opted out of the white-listed firm when the lab started.
    pub opted_out: &'static str,
    /// Fresh subscribers for calls that change state (an unsubscribe): this prefix and four
    /// digits ([`Numbers::fresh`]).
    pub fresh_prefix: &'static str,
    /// The harassing caller of the monitoring scenario ([`crate::monitoring`]): a registered,
    /// verified subscriber (customer `h1`) that no call case uses.
    pub harassing: &'static [Subscriber],
    /// The subscribers the harassing caller dials, one call each: this prefix and four digits
    /// ([`Numbers::harassed`]).
    pub harassed_prefix: &'static str,
    /// The home-country caller IDs the international gateway pushes in the monitoring
    /// scenario: this prefix and three digits ([`Numbers::gateway_domestic`]); none is a
    /// subscriber of the originating carrier.
    pub gateway_domestic_prefix: &'static str,
}

const fn subscriber(tn: &'static str, written: &'static str) -> Subscriber {
    Subscriber { tn, written }
}

/// The North American lab (`--country NANP`, the default).
pub const NANP: Numbers = Numbers {
    plan: NumberingPlan::Nanp,
    registered: &[
        subscriber("12155550101", "(215) 555-0101"),
        subscriber("12155550102", "215-555-0102"),
        subscriber("12155550103", "215.555.0103"),
        subscriber("12155550104", "+1 215 555 0104"),
    ],
    unverified: &[subscriber("12155550201", "215 555 0201")],
    suspended: &[subscriber("12155550301", "215 555 0301")],
    unregistered: &["12155559999"],
    emergency: &["911"],
    called: "12125551213",
    foreign: "442071234567",
    domestic_via_gateway: "12155550199",
    marketing: &[
        subscriber("12155550401", "(215) 555-0401"),
        subscriber("12155550402", "215 555 0402"),
    ],
    small_quota: &[subscriber("12155550501", "215 555 0501")],
    blacklisted: &[
        subscriber("12155550601", "215 555 0601"),
        subscriber("12155550602", "215 555 0602"),
    ],
    blacklisted_alone: &[subscriber("12155550701", "215 555 0701")],
    blacklisted_range: "12155550600-12155550609",
    opted_out: "12125551214",
    fresh_prefix: "1212556",
    harassing: &[subscriber("12155550801", "215 555 0801")],
    harassed_prefix: "1212557",
    gateway_domestic_prefix: "12155552",
};

/// The Chinese lab (`--country CN`): mobile numbers (138, 139) and Shanghai fixed lines (021).
pub const CHINA: Numbers = Numbers {
    plan: NumberingPlan::China,
    registered: &[
        subscriber("8613812340101", "138 1234 0101"),
        subscriber("8613912340102", "139-1234-0102"),
        subscriber("862162345678", "021 6234 5678"),
        subscriber("862162345679", "(021) 6234-5679"),
    ],
    unverified: &[subscriber("8613812340201", "13812340201")],
    suspended: &[subscriber("8613812340301", "138 1234 0301")],
    unregistered: &["8613812349999"],
    emergency: &["110", "119", "120", "122"],
    called: "861062345678",
    foreign: "442071234567",
    domestic_via_gateway: "8613812345678",
    marketing: &[
        subscriber("8613812340401", "138 1234 0401"),
        subscriber("8613812340402", "138-1234-0402"),
    ],
    small_quota: &[subscriber("8613812340501", "138 1234 0501")],
    blacklisted: &[
        subscriber("8613812340601", "138 1234 0601"),
        subscriber("8613812340602", "138 1234 0602"),
    ],
    blacklisted_alone: &[subscriber("8613812340701", "138 1234 0701")],
    blacklisted_range: "8613812340600-8613812340609",
    opted_out: "861062345679",
    fresh_prefix: "86106655",
    harassing: &[subscriber("8613812340801", "138 1234 0801")],
    harassed_prefix: "86106656",
    gateway_domestic_prefix: "8613812346",
};

impl Numbers {
    /// The numbers of the country whose numbering plan is `plan`.
    pub fn of(plan: NumberingPlan) -> &'static Numbers {
        match plan {
            NumberingPlan::Nanp => &NANP,
            NumberingPlan::China => &CHINA,
        }
    }

    /// The country as `--country` names it (`NANP`, `CN`).
    pub fn country(&self) -> &'static str {
        match self.plan {
            NumberingPlan::Nanp => "NANP",
            NumberingPlan::China => "CN",
        }
    }

    /// The originating carrier's registry import file: verified, unverified and suspended
    /// subscribers, numbers in national form.
    pub fn registry_csv(&self) -> String {
        let mut csv = String::from("number,customer,name,verified,status\n");
        for (i, s) in self.registered.iter().enumerate() {
            csv.push_str(&format!("{},c{i},Subscriber {i},yes,active\n", s.written));
        }
        for s in self.unverified {
            csv.push_str(&format!(
                "{},u1,Unverified Subscriber,no,active\n",
                s.written
            ));
        }
        let firms = [
            ("m1", "Sunrise Insurance", self.marketing),
            ("m2", "Brightway Surveys", self.small_quota),
            ("m3", "Nightcall Marketing", self.blacklisted),
            ("b1", "Blacklisted Subscriber", self.blacklisted_alone),
        ];
        for (customer, name, list) in firms {
            for s in list {
                csv.push_str(&format!("{},{customer},{name},yes,active\n", s.written));
            }
        }
        for s in self.harassing {
            csv.push_str(&format!("{},h1,Fast Dialer,yes,active\n", s.written));
        }
        for s in self.suspended {
            csv.push_str(&format!(
                "{},s1,Suspended Subscriber,yes,suspended\n",
                s.written
            ));
        }
        csv
    }

    /// The `i`-th registered number, cycling.
    pub fn registered(&self, i: usize) -> &'static str {
        pick_subscriber(self.registered, i)
    }

    /// The `i`-th white-listed firm's number, cycling.
    pub fn marketing(&self, i: usize) -> &'static str {
        pick_subscriber(self.marketing, i)
    }

    /// The `i`-th blacklisted firm's number, cycling.
    pub fn blacklisted(&self, i: usize) -> &'static str {
        pick_subscriber(self.blacklisted, i)
    }

    /// The `i`-th fresh subscriber (cycling after 10,000): a number nobody called before in
    /// this lab run, canonical E.164 digits.
    pub fn fresh(&self, i: usize) -> String {
        format!("{}{:04}", self.fresh_prefix, i % 10_000)
    }

    /// The harassing caller's number ([`Numbers::harassing`]).
    pub fn harassing(&self) -> &'static str {
        pick_subscriber(self.harassing, 0)
    }

    /// The `i`-th subscriber the harassing caller dials (cycling after 10,000), canonical
    /// E.164 digits.
    pub fn harassed(&self, i: usize) -> String {
        format!("{}{:04}", self.harassed_prefix, i % 10_000)
    }

    /// The `i`-th home-country caller ID the gateway pushes (cycling after 1,000), canonical
    /// E.164 digits.
    pub fn gateway_domestic(&self, i: usize) -> String {
        format!("{}{:03}", self.gateway_domestic_prefix, i % 1_000)
    }

    /// The `i`-th emergency number, cycling.
    pub fn emergency(&self, i: usize) -> &'static str {
        self.emergency
            .get(i % self.emergency.len().max(1))
            .copied()
            .unwrap_or_default()
    }
}

/// The `i`-th subscriber's number of a list, cycling.
fn pick_subscriber(list: &[Subscriber], i: usize) -> &'static str {
    list.get(i % list.len().max(1))
        .map(|s| s.tn)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use passport::Tn;

    /// Every number as written canonicalizes, with the country's plan, to the number the lab
    /// uses; every other number is already canonical.
    #[test]
    fn written_numbers_canonicalize_to_the_lab_numbers() {
        for numbers in [&NANP, &CHINA] {
            let subscribers = numbers
                .registered
                .iter()
                .chain(numbers.unverified)
                .chain(numbers.suspended)
                .chain(numbers.marketing)
                .chain(numbers.small_quota)
                .chain(numbers.blacklisted)
                .chain(numbers.blacklisted_alone)
                .chain(numbers.harassing);
            for s in subscribers {
                let tn = Tn::canonicalize(s.written, Some(numbers.plan)).unwrap();
                assert_eq!(tn.as_str(), s.tn, "{}", s.written);
            }
            let others = numbers.unregistered.iter().chain(numbers.emergency).chain([
                &numbers.called,
                &numbers.foreign,
                &numbers.domestic_via_gateway,
                &numbers.opted_out,
            ]);
            for tn in others {
                let canonical = Tn::canonicalize(tn, Some(numbers.plan)).unwrap();
                assert_eq!(canonical.as_str(), *tn);
            }
        }
        for numbers in [&NANP, &CHINA] {
            // The monitoring scenario's numbers are canonical, of the home country, and
            // distinct from every number the call cases use.
            let country = numbers.plan.country_code();
            let used: Vec<&str> = numbers
                .registered
                .iter()
                .chain(numbers.unverified)
                .chain(numbers.suspended)
                .chain(numbers.marketing)
                .chain(numbers.small_quota)
                .chain(numbers.blacklisted)
                .chain(numbers.blacklisted_alone)
                .map(|s| s.tn)
                .chain(numbers.unregistered.iter().copied())
                .chain([
                    numbers.called,
                    numbers.domestic_via_gateway,
                    numbers.opted_out,
                ])
                .collect();
            assert!(!used.contains(&numbers.harassing()));
            let generated = (0..30)
                .map(|i| numbers.harassed(i))
                .chain((0..30).map(|i| numbers.gateway_domestic(i)));
            for tn in generated {
                let canonical = Tn::canonicalize(&tn, Some(numbers.plan)).unwrap();
                assert_eq!(canonical.as_str(), tn);
                assert!(tn.starts_with(country), "{tn}");
                assert!(!used.contains(&tn.as_str()), "{tn}");
                assert!(!tn.starts_with(numbers.fresh_prefix), "{tn}");
            }
            assert!(numbers.harassing().starts_with(country));
            let fresh = numbers.fresh(10_007);
            assert_eq!(fresh, format!("{}0007", numbers.fresh_prefix));
            let canonical = Tn::canonicalize(&fresh, Some(numbers.plan)).unwrap();
            assert_eq!(canonical.as_str(), fresh);
            // The blacklisted firm's range holds its numbers.
            let (first, last) = numbers.blacklisted_range.split_once('-').unwrap();
            for s in numbers.blacklisted {
                assert!(first <= s.tn && s.tn <= last, "{}", s.tn);
                assert_eq!(s.tn.len(), first.len());
            }
        }
        assert!(CHINA.registry_csv().contains("\n021 6234 5678,"));
        assert!(NANP
            .registry_csv()
            .contains("\n215 555 0601,m3,Nightcall Marketing,yes,active\n"));
        assert_eq!(Numbers::of(NumberingPlan::China).country(), "CN");
        assert_eq!(NANP.registered(5), "12155550102");
        assert_eq!(CHINA.emergency(5), "119");
    }
}
