//! The `Via` header (RFC 3261 §20.42, §18.2.2): the top one names the transaction (its
//! `branch` and sent-by) and says where a UDP response goes.
//!
//! CONTRACT (skeleton): filled by the "message" part.

use thiserror::Error;

/// The transport a Via names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ViaTransport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS.
    Tls,
    /// Anything else (SCTP, WS...).
    Other,
}

/// The top Via.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// Its transport.
    pub transport: ViaTransport,
    /// sent-by host (a name, an IPv4 address, or an IPv6 reference without brackets).
    pub host: String,
    /// sent-by port, if given.
    pub port: Option<u16>,
    /// The `branch` parameter, if any.
    pub branch: Option<String>,
    /// Whether `rport` is present (RFC 3581).
    pub rport: bool,
}

/// What is wrong with a Via value.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ViaError {
    /// Not `SIP/2.0/TRANSPORT sent-by *(;param)`.
    #[error("bad Via")]
    Syntax,
}

impl Via {
    /// Whether the branch carries the RFC 3261 magic cookie `z9hG4bK` (§8.1.1.7): only then
    /// does it name a transaction by itself.
    pub fn is_rfc3261(&self) -> bool {
        self.branch
            .as_deref()
            .is_some_and(|b| b.starts_with("z9hG4bK"))
    }
}

/// Parses the first value of a Via field (the field may hold several, comma-separated).
///
/// `SIP/2.0/TRANSPORT sent-by *(;param)`: protocol name, version and transport
/// case-insensitive, white space allowed around `/`, `:` and `=` (RFC 3261 §25.1 `SLASH`,
/// `COLON`, `EQUAL`); sent-by a host name, an IPv4 address or an IPv6 reference in brackets
/// with an optional port; parameter names tokens, values tokens, hosts or quoted strings.
pub fn parse_top(value: &str) -> Result<Via, ViaError> {
    let first = first_value(value);
    let (name, rest) = first.split_once('/').ok_or(ViaError::Syntax)?;
    let (version, rest) = rest.split_once('/').ok_or(ViaError::Syntax)?;
    if !name.trim().eq_ignore_ascii_case("SIP") || version.trim() != "2.0" {
        return Err(ViaError::Syntax);
    }
    let rest = rest.trim_start();
    let end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
    let (transport, rest) = rest.split_at(end);
    if transport.is_empty() || !rest.starts_with([' ', '\t']) {
        return Err(ViaError::Syntax);
    }
    let transport = match transport.to_ascii_uppercase().as_str() {
        "UDP" => ViaTransport::Udp,
        "TCP" => ViaTransport::Tcp,
        "TLS" => ViaTransport::Tls,
        _ => ViaTransport::Other,
    };
    let mut parts = rest.split(';');
    let (host, port) = sent_by(parts.next().unwrap_or(""))?;
    let mut via = Via {
        transport,
        host,
        port,
        branch: None,
        rport: false,
    };
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (param.trim(), None),
        };
        if name.is_empty() || !name.chars().all(is_token_char) {
            return Err(ViaError::Syntax);
        }
        if let Some(v) = value {
            let quoted = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
            let host_like = v.starts_with('[') && v.ends_with(']');
            if v.is_empty() || !(quoted || host_like || v.chars().all(is_token_char)) {
                return Err(ViaError::Syntax);
            }
        }
        if name.eq_ignore_ascii_case("branch") {
            if via.branch.is_some() {
                return Err(ViaError::Syntax);
            }
            via.branch = Some(value.ok_or(ViaError::Syntax)?.to_owned());
        } else if name.eq_ignore_ascii_case("rport") {
            via.rport = true;
        }
    }
    Ok(via)
}

/// The text before the first comma outside quotes and brackets.
fn first_value(value: &str) -> &str {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => return value.get(..i).unwrap_or(value),
            _ => {}
        }
    }
    value
}

/// `host [ COLON port ]`, white space around it and around the colon allowed.
fn sent_by(text: &str) -> Result<(String, Option<u16>), ViaError> {
    let text = text.trim();
    let (host, rest) = if let Some(inner) = text.strip_prefix('[') {
        let (host, rest) = inner.split_once(']').ok_or(ViaError::Syntax)?;
        if host.is_empty()
            || !host.contains(':')
            || !host
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(ViaError::Syntax);
        }
        (host, rest)
    } else {
        let end = text.find([':', ' ', '\t']).unwrap_or(text.len());
        let (host, rest) = text.split_at(end);
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !host.starts_with(['-', '.']);
        if !valid {
            return Err(ViaError::Syntax);
        }
        (host, rest)
    };
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok((host.to_owned(), None));
    }
    let port = rest.strip_prefix(':').ok_or(ViaError::Syntax)?.trim();
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ViaError::Syntax);
    }
    let port = port.parse().map_err(|_| ViaError::Syntax)?;
    Ok((host.to_owned(), Some(port)))
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_plain_via() {
        let via = parse_top("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport").unwrap();
        assert_eq!(via.transport, ViaTransport::Udp);
        assert_eq!(via.host, "192.0.2.1");
        assert_eq!(via.port, Some(5060));
        assert_eq!(via.branch.as_deref(), Some("z9hG4bK776asdhds"));
        assert!(via.rport);
        assert!(via.is_rfc3261());
    }

    #[test]
    fn white_space_case_and_lists() {
        let via = parse_top(
            "sip  /   2.0 /tcp    host.example.com ; received=192.0.2.9;branch = 390skdjuw, SIP/2.0/UDP other",
        )
        .unwrap();
        assert_eq!(via.transport, ViaTransport::Tcp);
        assert_eq!(via.host, "host.example.com");
        assert_eq!(via.port, None);
        assert_eq!(via.branch.as_deref(), Some("390skdjuw"));
        assert!(!via.rport);
        assert!(!via.is_rfc3261());
    }

    #[test]
    fn ipv6_and_other_transports() {
        let via = parse_top("SIP/2.0/TLS [2001:db8::9:1]:5061;branch=z9hG4bKx").unwrap();
        assert_eq!(via.transport, ViaTransport::Tls);
        assert_eq!(via.host, "2001:db8::9:1");
        assert_eq!(via.port, Some(5061));
        let via = parse_top("SIP/2.0/SCTP [::1]").unwrap();
        assert_eq!(via.transport, ViaTransport::Other);
        assert_eq!(via.host, "::1");
        assert_eq!(via.port, None);
        let via = parse_top("SIP/2.0/UDP h.example : 5070;rport=5071").unwrap();
        assert_eq!(via.port, Some(5070));
        assert!(via.rport);
    }

    #[test]
    fn refuses_what_is_not_a_via() {
        for bad in [
            "",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP ",
            "SIP/3.0/UDP host",
            "HTTP/2.0/UDP host",
            "SIP/2.0 UDP host",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP host:",
            "SIP/2.0/UDP [::1",
            "SIP/2.0/UDP [zz::1]",
            "SIP/2.0/UDP ho st",
            "SIP/2.0/UDP host;branch",
            "SIP/2.0/UDP host;branch=a;branch=b",
            "SIP/2.0/UDP host;=x",
            "SIP/2.0/UDP host;branch=a b",
            "SIP/2.0/UDP -host",
        ] {
            assert_eq!(parse_top(bad), Err(ViaError::Syntax), "{bad:?}");
        }
    }
}
