//! Bulk import of customers and numbers from CSV.
//!
//! The file has a header row; column names are case-insensitive and may come in any order:
//!
//! | column | required | meaning |
//! |---|---|---|
//! | `number` | yes | a telephone number in any usual form, or a range `START..END` (same length) |
//! | `customer` | yes | the carrier's customer id |
//! | `name` | no | the customer's name (default: the id) |
//! | `verified` | no | real-name identity verified: `yes`/`no`, `true`/`false`, `1`/`0` (default no) |
//! | `id_document` | no | identity document number: stored only as an HMAC under the carrier secret |
//! | `status` | no | `active` (default) or `suspended` |
//!
//! [`ImportMode::Merge`] adds to what is there (a number or customer already present is
//! updated); [`ImportMode::Replace`] first removes every number, range and customer. Either
//! way the file is applied in one transaction, entirely or not at all: any bad line refuses the
//! whole file, and every bad line is reported with its number and reason.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use passport::{NumberingPlan, Tn};
use rusqlite::params;

use super::store::{audit, identity_hmac, NumberStatus, Registry};
use crate::error::{BadLine, SignerError};

/// How an import combines with the registry's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportMode {
    /// Add to the registry; existing numbers and customers are updated.
    Merge,
    /// Replace the registry's numbers, ranges and customers with the file's.
    Replace,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Data lines read.
    pub lines: usize,
    /// Single numbers written.
    pub numbers: usize,
    /// Ranges written.
    pub ranges: usize,
    /// Distinct customers written.
    pub customers: usize,
}

/// `L lines: N numbers, R ranges, C customers` (singular where a count is 1).
impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}, {}, {}",
            counted(self.lines, "line"),
            counted(self.numbers, "number"),
            counted(self.ranges, "range"),
            counted(self.customers, "customer")
        )
    }
}

/// `1 line`, `2 lines`.
fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// At most this many bad lines are collected before reading stops.
const MAX_BAD_LINES: usize = 1000;

/// One line's number: a single number or a range.
pub(crate) enum Entry {
    /// A single number.
    One(String),
    /// A range, start and end inclusive.
    Range(String, String),
}

/// A customer as the file gives it.
pub(crate) struct CustomerRow {
    pub(crate) name: String,
    pub(crate) verified: bool,
    pub(crate) id_hmac: Option<String>,
}

/// Options of an import.
pub struct ImportOptions<'a> {
    /// Merge or replace.
    pub mode: ImportMode,
    /// Numbering plan for national-form numbers.
    pub plan: Option<NumberingPlan>,
    /// The carrier secret for identity document HMACs (required if the file has `id_document`).
    pub secret: Option<&'a [u8]>,
    /// Who imports (written to the audit record), e.g. `cli:import numbers.csv`.
    pub actor: &'a str,
    /// The time of the import.
    pub now: u64,
    /// Called with the number of lines read so far, every 100,000 lines.
    pub progress: &'a mut dyn FnMut(usize),
}

fn column(headers: &csv::StringRecord, name: &str) -> Option<usize> {
    headers
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case(name))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "y" => Some(true),
        "no" | "false" | "0" | "n" | "" => Some(false),
        _ => None,
    }
}

fn parse_number(text: &str, plan: Option<NumberingPlan>) -> Result<Entry, String> {
    let canonical = |t: &str| -> Result<String, String> {
        let tn = Tn::canonicalize(t, plan).map_err(|e| e.to_string())?;
        if tn.as_str().starts_with(['*', '#']) {
            return Err(format!("{t:?} is a service code, not a subscriber number"));
        }
        Ok(tn.into_string())
    };
    match text.split_once("..") {
        None => canonical(text).map(Entry::One),
        Some((start, end)) => {
            let (start, end) = (canonical(start)?, canonical(end)?);
            if start.len() != end.len() {
                return Err(format!("range {start}..{end}: ends have different lengths"));
            }
            if start > end {
                return Err(format!("range {start}..{end}: start is after end"));
            }
            Ok(Entry::Range(start, end))
        }
    }
}

/// The shortest carrier secret accepted from a file, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// The carrier secret for identity document HMACs: the content of `file`, trimmed, which must
/// hold at least [`MIN_SECRET_BYTES`]; without a file, `from_environment` (the value of
/// `SHAKEN_REGISTRY_SECRET`, read by the caller) as it is; else none.
pub fn carrier_secret(
    file: Option<&Path>,
    from_environment: Option<String>,
) -> Result<Option<Vec<u8>>, SignerError> {
    let Some(path) = file else {
        return Ok(from_environment.map(String::into_bytes));
    };
    let bytes = std::fs::read(path).map_err(|e| SignerError::io(path, &e))?;
    let trimmed = String::from_utf8_lossy(&bytes).trim().as_bytes().to_vec();
    if trimmed.len() < MIN_SECRET_BYTES {
        return Err(SignerError::ShortSecret(path.to_owned()));
    }
    Ok(Some(trimmed))
}

/// Imports the CSV file `file` into the registry `db` (an SQLite file, created if missing, or
/// a PostgreSQL database), as [`import`] does.
pub fn import_file(
    db: &super::RegistryLocation,
    file: &Path,
    options: ImportOptions<'_>,
) -> Result<ImportSummary, SignerError> {
    let mut registry = super::RegistryDb::open(db)?;
    let input = std::fs::File::open(file).map_err(|e| SignerError::io(file, &e))?;
    registry.import(std::io::BufReader::new(input), options)
}

/// Imports a CSV file into the registry.
pub fn import(
    registry: &mut Registry,
    input: impl Read,
    options: ImportOptions<'_>,
) -> Result<ImportSummary, SignerError> {
    let mode = options.mode;
    let (actor, now) = (options.actor, options.now);
    let parsed = parse(input, options)?;
    apply_sqlite(registry, &parsed, mode, actor, now)
}

/// A CSV file read and checked, not yet applied: what every store writes the same way.
pub(crate) struct ParsedImport {
    /// Data lines read.
    pub(crate) lines: usize,
    /// Customers by id, the last line's values winning.
    pub(crate) customers: HashMap<String, CustomerRow>,
    /// Numbers and ranges in file order, with their customer and status.
    pub(crate) entries: Vec<(Entry, String, NumberStatus)>,
}

impl ParsedImport {
    /// The summary of applying it (the counts every store reports alike).
    pub(crate) fn summary(&self) -> ImportSummary {
        let numbers = self
            .entries
            .iter()
            .filter(|(e, _, _)| matches!(e, Entry::One(_)))
            .count();
        ImportSummary {
            lines: self.lines,
            numbers,
            ranges: self.entries.len() - numbers,
            customers: self.customers.len(),
        }
    }

    /// The audit record's action and detail for an import in `mode`.
    pub(crate) fn audit_action(&self, mode: ImportMode) -> (&'static str, String) {
        let summary = self.summary();
        let action = match mode {
            ImportMode::Merge => "import:merge",
            ImportMode::Replace => "import:replace",
        };
        let detail = format!(
            "{} numbers, {} ranges, {} customers",
            summary.numbers, summary.ranges, summary.customers
        );
        (action, detail)
    }
}

/// Reads and checks a CSV file: every bad line is reported, and any refuses the whole file.
pub(crate) fn parse(
    input: impl Read,
    options: ImportOptions<'_>,
) -> Result<ParsedImport, SignerError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let bad_header = |reason: String| SignerError::Import(vec![BadLine { line: 1, reason }]);
    let headers = reader
        .headers()
        .map_err(|e| bad_header(format!("cannot read the header: {e}")))?
        .clone();
    let number_col =
        column(&headers, "number").ok_or_else(|| bad_header("no 'number' column".into()))?;
    let customer_col =
        column(&headers, "customer").ok_or_else(|| bad_header("no 'customer' column".into()))?;
    let name_col = column(&headers, "name");
    let verified_col = column(&headers, "verified");
    let document_col = column(&headers, "id_document");
    let status_col = column(&headers, "status");
    let known = [
        "number",
        "customer",
        "name",
        "verified",
        "id_document",
        "status",
    ];
    if let Some(unknown) = headers
        .iter()
        .find(|h| !known.iter().any(|k| h.trim().eq_ignore_ascii_case(k)))
    {
        return Err(bad_header(format!(
            "unknown column {unknown:?} (known: {})",
            known.join(", ")
        )));
    }
    if document_col.is_some() && options.secret.is_none() {
        return Err(bad_header(
            "the file has id_document but no carrier secret was configured".into(),
        ));
    }

    let mut bad = Vec::new();
    let mut customers: HashMap<String, CustomerRow> = HashMap::new();
    let mut entries: Vec<(Entry, String, NumberStatus)> = Vec::new();
    let mut lines = 0;
    for (index, record) in reader.records().enumerate() {
        let line = index + 2;
        lines += 1;
        if lines % 100_000 == 0 {
            (options.progress)(lines);
        }
        if bad.len() >= MAX_BAD_LINES {
            break;
        }
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                bad.push(BadLine {
                    line,
                    reason: format!("unreadable CSV: {e}"),
                });
                continue;
            }
        };
        let field = |col: Option<usize>| col.and_then(|c| record.get(c)).unwrap_or("");
        let mut reasons = Vec::new();
        let entry = parse_number(field(Some(number_col)), options.plan)
            .map_err(|e| reasons.push(e))
            .ok();
        let customer = field(Some(customer_col)).to_owned();
        if customer.is_empty() {
            reasons.push("empty customer".into());
        }
        let verified = parse_bool(field(verified_col));
        if verified.is_none() {
            reasons.push(format!("verified {:?} is not yes/no", field(verified_col)));
        }
        let status = NumberStatus::parse(field(status_col));
        if status.is_none() {
            reasons.push(format!(
                "status {:?} is not active/suspended",
                field(status_col)
            ));
        }
        match (entry, verified, status, reasons.is_empty()) {
            (Some(entry), Some(verified), Some(status), true) => {
                let document = field(document_col);
                let id_hmac = match (document.is_empty(), options.secret) {
                    (false, Some(secret)) => Some(identity_hmac(secret, document)),
                    _ => None,
                };
                let name = match field(name_col) {
                    "" => customer.clone(),
                    name => name.to_owned(),
                };
                let row = customers.entry(customer.clone()).or_insert(CustomerRow {
                    name: name.clone(),
                    verified,
                    id_hmac: None,
                });
                row.name = name;
                row.verified = verified;
                if id_hmac.is_some() {
                    row.id_hmac = id_hmac;
                }
                entries.push((entry, customer, status));
            }
            _ => bad.push(BadLine {
                line,
                reason: reasons.join("; "),
            }),
        }
    }
    if !bad.is_empty() {
        return Err(SignerError::Import(bad));
    }

    Ok(ParsedImport {
        lines,
        customers,
        entries,
    })
}

/// Writes a parsed import into the SQLite registry in one transaction, with its audit record.
fn apply_sqlite(
    registry: &mut Registry,
    parsed: &ParsedImport,
    mode: ImportMode,
    actor: &str,
    now_secs: u64,
) -> Result<ImportSummary, SignerError> {
    let path = registry.path().to_owned();
    let conn = registry.connection();
    let tx = conn.transaction().map_err(|e| SignerError::db(&path, e))?;
    let now = now_secs as i64;
    let mut summary = ImportSummary {
        lines: parsed.lines,
        customers: parsed.customers.len(),
        ..ImportSummary::default()
    };
    {
        let db = |e: rusqlite::Error| SignerError::db(&path, e);
        if mode == ImportMode::Replace {
            tx.execute_batch("DELETE FROM numbers; DELETE FROM ranges; DELETE FROM customers;")
                .map_err(db)?;
        }
        let mut upsert_customer = tx
            .prepare(
                "INSERT INTO customers (id, name, verified, id_hmac, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, verified = excluded.verified,
                 id_hmac = coalesce(excluded.id_hmac, customers.id_hmac), updated_at = excluded.updated_at",
            )
            .map_err(db)?;
        for (id, row) in &parsed.customers {
            upsert_customer
                .execute(params![id, row.name, row.verified, row.id_hmac, now])
                .map_err(db)?;
        }
        let mut upsert_number = tx
            .prepare(
                "INSERT INTO numbers (tn, customer_id, status, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(tn) DO UPDATE SET customer_id = excluded.customer_id,
                 status = excluded.status, updated_at = excluded.updated_at",
            )
            .map_err(db)?;
        let mut upsert_range = tx
            .prepare(
                "INSERT INTO ranges (start, end, customer_id, status, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(start, end) DO UPDATE SET customer_id = excluded.customer_id,
                 status = excluded.status, updated_at = excluded.updated_at",
            )
            .map_err(db)?;
        for (entry, customer, status) in &parsed.entries {
            match entry {
                Entry::One(tn) => {
                    upsert_number
                        .execute(params![tn, customer, status.as_str(), now])
                        .map_err(db)?;
                    summary.numbers += 1;
                }
                Entry::Range(start, end) => {
                    upsert_range
                        .execute(params![start, end, customer, status.as_str(), now])
                        .map_err(db)?;
                    summary.ranges += 1;
                }
            }
        }
        let (action, detail) = parsed.audit_action(mode);
        audit(&tx, now_secs, actor, action, "registry", &detail).map_err(db)?;
    }
    tx.commit().map_err(|e| SignerError::db(&path, e))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_in_words() {
        let summary = ImportSummary {
            lines: 1,
            numbers: 2,
            ranges: 1,
            customers: 0,
        };
        assert_eq!(
            summary.to_string(),
            "1 line: 2 numbers, 1 range, 0 customers"
        );
    }

    #[test]
    fn the_carrier_secret_comes_from_the_file_first_and_is_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "  0123456789abcdef\n").unwrap();
        let env = Some("from the environment".to_owned());
        assert_eq!(
            carrier_secret(Some(&file), env.clone()).unwrap().as_deref(),
            Some(&b"0123456789abcdef"[..])
        );
        assert_eq!(
            carrier_secret(None, env).unwrap().as_deref(),
            Some(&b"from the environment"[..])
        );
        assert_eq!(carrier_secret(None, None).unwrap(), None);
        std::fs::write(&file, "short\n").unwrap();
        let error = carrier_secret(Some(&file), None).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "the carrier secret in {} is shorter than 16 bytes",
                file.display()
            )
        );
        assert!(matches!(
            carrier_secret(Some(&dir.path().join("missing")), None),
            Err(SignerError::Io { .. })
        ));
    }

    fn options<'a>(mode: ImportMode, progress: &'a mut dyn FnMut(usize)) -> ImportOptions<'a> {
        ImportOptions {
            mode,
            plan: Some(NumberingPlan::Nanp),
            secret: Some(b"carrier secret"),
            actor: "test",
            now: 50,
            progress,
        }
    }

    #[test]
    fn imports_numbers_ranges_and_customers() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::open(&dir.path().join("r.sqlite")).unwrap();
        let csv = "Number,customer,name,verified,id_document,status\n\
                   (215) 555-1212,c1,\"One, Inc.\",yes,110101199003077777,active\n\
                   +1 215 555 1213,c1,,yes,,suspended\n\
                   2155560000..2155569999,c2,Two,no,,\n";
        let mut progress = |_| {};
        let summary = import(
            &mut registry,
            csv.as_bytes(),
            options(ImportMode::Merge, &mut progress),
        )
        .unwrap();
        assert_eq!(
            summary,
            ImportSummary {
                lines: 3,
                numbers: 2,
                ranges: 1,
                customers: 2
            }
        );
        let one = registry.lookup("12155551212").unwrap().unwrap();
        assert_eq!(
            (one.customer.name.as_str(), one.customer.verified),
            ("c1", true),
            "the last line's name wins"
        );
        assert_eq!(
            registry.lookup("12155551213").unwrap().unwrap().status,
            NumberStatus::Suspended
        );
        assert!(
            !registry
                .lookup("12155565555")
                .unwrap()
                .unwrap()
                .customer
                .verified
        );
        // The document number is not stored; its HMAC is.
        let bytes = std::fs::read(registry.path()).unwrap_or_default();
        let wal = std::fs::read(dir.path().join("r.sqlite-wal")).unwrap_or_default();
        let needle = b"110101199003077777";
        assert!(![bytes, wal]
            .iter()
            .any(|b| b.windows(needle.len()).any(|w| w == needle)));
        assert_eq!(registry.audit_log(1).unwrap()[0].action, "import:merge");

        // Replace drops what the new file does not list.
        let mut progress = |_| {};
        import(
            &mut registry,
            "number,customer\n2125550000,c3\n".as_bytes(),
            options(ImportMode::Replace, &mut progress),
        )
        .unwrap();
        assert_eq!(registry.lookup("12155551212").unwrap(), None);
        assert_eq!(registry.counts().unwrap(), (1, 0));
    }

    #[test]
    fn a_bad_line_refuses_the_whole_file_and_every_bad_line_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::open(&dir.path().join("r.sqlite")).unwrap();
        let csv = "number,customer,verified,status\n\
                   2155551212,c1,yes,active\n\
                   21555x1213,c1,yes,active\n\
                   2155551214,,maybe,active\n\
                   2155560000..215556999,c2,no,\n\
                   2155551215,c1,yes,closed\n";
        let mut progress = |_| {};
        let err = import(
            &mut registry,
            csv.as_bytes(),
            options(ImportMode::Merge, &mut progress),
        )
        .unwrap_err();
        let SignerError::Import(bad) = err else {
            panic!("{err}")
        };
        assert_eq!(
            bad.iter().map(|b| b.line).collect::<Vec<_>>(),
            vec![3, 4, 5, 6]
        );
        assert!(
            bad[1].reason.contains("empty customer") && bad[1].reason.contains("maybe"),
            "{:?}",
            bad[1]
        );
        assert!(bad[2].reason.contains("different lengths"), "{:?}", bad[2]);
        assert!(bad[3].reason.contains("closed"), "{:?}", bad[3]);
        assert_eq!(registry.counts().unwrap(), (0, 0), "nothing applied");

        for header in ["customer\n1,c1\n", "number,customer,colour\n"] {
            let mut progress = |_| {};
            let err = import(
                &mut registry,
                header.as_bytes(),
                options(ImportMode::Merge, &mut progress),
            )
            .unwrap_err();
            assert!(
                matches!(err, SignerError::Import(ref b) if b[0].line == 1),
                "{err}"
            );
        }
    }
}
