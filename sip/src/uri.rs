//! Name-addr and URIs as the redirect interface needs them (RFC 3261 §19.1, §25.1; RFC 3966
//! `tel:`): the calling and called numbers, the Contact of a `302`, and where `verstat` goes.
//!
//! CONTRACT (skeleton): filled by the "message" part.

use serde::Deserialize;
use thiserror::Error;

/// What is wrong with a URI or name-addr.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum UriError {
    /// Not a `sip:`, `sips:` or `tel:` URI.
    #[error("unsupported URI scheme")]
    Scheme,
    /// Not well formed.
    #[error("malformed URI")]
    Syntax,
}

/// A URI scheme this crate reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `sip:`.
    Sip,
    /// `sips:`.
    Sips,
    /// `tel:`.
    Tel,
}

/// A URI, split into the parts the services need, able to give its text back unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uri {
    /// The scheme.
    pub scheme: Scheme,
    /// `sip`/`sips`: the user part as received (escaped), including any `;params` a telephone
    /// subscriber carries inside it (`+12155551212;verstat=...`); `tel`: the number with its
    /// `;params`.
    pub user: Option<String>,
    /// `sip`/`sips`: host and optional `:port` as received; `tel`: empty.
    pub host: String,
    /// URI parameters after the host (`sip`) as received, without the leading `;`, in order,
    /// names lower-cased; `tel`: empty (a tel URI's parameters stay in `user`).
    pub params: Vec<(String, Option<String>)>,
    /// Escaped `?headers` (`sip`), as received without the `?`, if any.
    pub headers: Option<String>,
}

impl Uri {
    /// The telephone number this URI names, as written (visual separators and `+` kept; the
    /// services canonicalize it): a `tel:` URI's number; a `sip:`/`sips:` URI's user part
    /// (before any `;`) when the URI has `user=phone`, or when that user part looks like a
    /// number (`+`, digits and visual separators `-.()`). `None` otherwise.
    pub fn telephone_number(&self) -> Option<&str> {
        None
    }

    /// The value of URI parameter `name` (lower-case), `Some(None)` for a flag parameter.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref())
    }
}

impl std::fmt::Display for Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let _ = f;
        Ok(())
    }
}

/// Parses a URI (not in angle brackets).
pub fn parse_uri(text: &str) -> Result<Uri, UriError> {
    let _ = text;
    Err(UriError::Syntax)
}

/// A name-addr or addr-spec header value (From, To, P-Asserted-Identity, Contact):
/// `"Display" <uri>;params` or `uri;params`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted and unescaped, if any.
    pub display: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters after the URI (`tag`, ...), names lower-cased, in order.
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    /// The value of header parameter `name` (lower-case).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref())
    }
}

impl std::fmt::Display for NameAddr {
    /// Always the name-addr form (`<...>`), the display name quoted and escaped when present.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let _ = f;
        Ok(())
    }
}

/// Parses a name-addr or addr-spec (the first one of a header field that may hold several).
pub fn parse_name_addr(text: &str) -> Result<NameAddr, UriError> {
    let _ = text;
    Err(UriError::Syntax)
}

/// Where `verstat` goes in a `sip:` URI (a `tel:` URI always carries it as its own parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerstatPlacement {
    /// As 3GPP TS 24.229 places it: a telephone-subscriber parameter inside the user part
    /// (`sip:+12155551212;verstat=TN-Validation-Passed@host;user=phone`).
    #[default]
    UserPart,
    /// As a SIP URI parameter after the host
    /// (`sip:+12155551212@host;user=phone;verstat=TN-Validation-Passed`).
    UriParameter,
}

/// The same URI with `verstat=value` set (an existing `verstat` anywhere in it replaced, so an
/// upstream claim is never passed on), placed as `placement` says for a `sip:` URI.
pub fn with_verstat(uri: &Uri, value: &str, placement: VerstatPlacement) -> Uri {
    let _ = (value, placement);
    uri.clone()
}

/// Escapes `text` for a header parameter inside a URI (RFC 3261 §19.1.1 `hvalue`: unreserved
/// and `[]/?:+$` kept, everything else `%XX`).
pub fn escape_header_value(text: &str) -> String {
    text.to_owned()
}
