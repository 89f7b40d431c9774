//! A strict PEM reader (RFC 7468) for keys, certificates and chains.
//!
//! Text outside `-----BEGIN X-----` / `-----END X-----` blocks is ignored (explanatory text is
//! common in real files); inside a block only base64 and whitespace are allowed, the END label
//! must match the BEGIN label, and legacy encrypted blocks (with `Proc-Type:` headers) are
//! refused. The number of blocks is capped by the caller, so a hostile bundle cannot make the
//! reader allocate without bound.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Why PEM text could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// More blocks than the caller allows.
    #[error("more than {0} PEM blocks")]
    TooManyBlocks(usize),
    /// A BEGIN or END line is not `-----BEGIN LABEL-----` with an upper-case label.
    #[error("line {0}: malformed BEGIN/END line")]
    MalformedBoundary(usize),
    /// The END label differs from the BEGIN label.
    #[error("line {line}: END label does not match BEGIN {label}")]
    LabelMismatch {
        /// The END line's number.
        line: usize,
        /// The BEGIN label.
        label: String,
    },
    /// A block's body is not valid base64.
    #[error("block {label} ending at line {line}: bad base64")]
    Base64 {
        /// The block's label.
        label: String,
        /// The END line's number.
        line: usize,
    },
    /// A byte outside the base64 alphabet inside a block.
    #[error("line {line}: byte 0x{byte:02x} is not base64")]
    NotBase64 {
        /// The line's number.
        line: usize,
        /// The byte.
        byte: u8,
    },
    /// A header line (legacy encrypted PEM) inside a block.
    #[error("line {0}: encrypted or header-carrying PEM is not supported")]
    Headers(usize),
    /// A block has no END line.
    #[error("block {0} has no END line")]
    Unterminated(String),
}

/// One decoded PEM block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PemBlock {
    /// The label between `BEGIN ` and the dashes, e.g. `CERTIFICATE`.
    pub label: String,
    /// The decoded DER bytes.
    pub der: Vec<u8>,
}

/// Reads every PEM block in `input`, refusing more than `max_blocks`.
pub fn parse(input: &[u8], max_blocks: usize) -> Result<Vec<PemBlock>, PemError> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for (index, raw_line) in input.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let line = raw_line.trim_ascii();
        match &mut current {
            None => {
                if let Some(label) = boundary(line, "-----BEGIN ") {
                    if blocks.len() == max_blocks {
                        return Err(PemError::TooManyBlocks(max_blocks));
                    }
                    current = Some((
                        label.ok_or(PemError::MalformedBoundary(line_no))?,
                        String::new(),
                    ));
                }
            }
            Some((label, body)) => {
                if let Some(end) = boundary(line, "-----END ") {
                    if end.ok_or(PemError::MalformedBoundary(line_no))? != *label {
                        return Err(PemError::LabelMismatch {
                            line: line_no,
                            label: label.clone(),
                        });
                    }
                    let der = STANDARD
                        .decode(body.as_bytes())
                        .map_err(|_| PemError::Base64 {
                            label: label.clone(),
                            line: line_no,
                        })?;
                    blocks.push(PemBlock {
                        label: std::mem::take(label),
                        der,
                    });
                    current = None;
                } else if line.contains(&b':') {
                    return Err(PemError::Headers(line_no));
                } else if let Some(&bad) = line
                    .iter()
                    .find(|&&b| !(b.is_ascii_alphanumeric() || b"+/= \t".contains(&b)))
                {
                    return Err(PemError::NotBase64 {
                        line: line_no,
                        byte: bad,
                    });
                } else {
                    body.extend(
                        line.iter()
                            .filter(|b| !b.is_ascii_whitespace())
                            .map(|&b| char::from(b)),
                    );
                }
            }
        }
    }
    if let Some((label, _)) = current {
        return Err(PemError::Unterminated(label));
    }
    Ok(blocks)
}

/// If `line` starts with `prefix`: the label of `<prefix>LABEL-----`, or `None` inside when it
/// is malformed.
fn boundary(line: &[u8], prefix: &str) -> Option<Option<String>> {
    let rest = line.strip_prefix(prefix.as_bytes())?;
    let label = match rest.strip_suffix(b"-----") {
        Some(label)
            if label.len() <= 64
                && label
                    .iter()
                    .all(|&b| b.is_ascii_uppercase() || b" 0123456789-".contains(&b)) =>
        {
            label
        }
        _ => return Some(None),
    };
    Some(Some(String::from_utf8_lossy(label).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_blocks_and_ignores_text_between() {
        let text = b"hello\r\n-----BEGIN A-----\r\nAAEC\r\nAw==\r\n-----END A-----\nx\n-----BEGIN EC PRIVATE KEY-----\n-----END EC PRIVATE KEY-----\n";
        let blocks = parse(text, 8).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            blocks[0],
            PemBlock {
                label: "A".into(),
                der: vec![0, 1, 2, 3]
            }
        );
        assert_eq!(blocks[1].label, "EC PRIVATE KEY");
    }

    #[test]
    fn refuses_malformed_blocks() {
        for bad in [
            &b"-----BEGIN A-----\nAAEC\n-----END B-----\n"[..],
            b"-----BEGIN A-----\nAAEC\n",
            b"-----BEGIN A-----\nA!EC\n-----END A-----\n",
            b"-----BEGIN A-----\nAAE\n-----END A-----\n",
            b"-----BEGIN A-----\nProc-Type: 4,ENCRYPTED\nAAEC\n-----END A-----\n",
            b"-----BEGIN a-----\n-----END a-----\n",
        ] {
            assert!(parse(bad, 8).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let two = b"-----BEGIN A-----\n-----END A-----\n-----BEGIN A-----\n-----END A-----\n";
        assert!(parse(two, 1).is_err());
        assert_eq!(parse(two, 2).map(|b| b.len()), Ok(2));
    }
}
