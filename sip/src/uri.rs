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
    /// The telephone number this URI names, as written (visual separators, `+` and `%XX`
    /// escapes kept; the services decode it with [`unescape`] and canonicalize it): a `tel:`
    /// URI's number; a `sip:`/`sips:` URI's user part (before any `;`) when the URI has
    /// `user=phone`, or when that user part, decoded, looks like a number (`+`, digits and
    /// visual separators `-.()`). `None` otherwise.
    pub fn telephone_number(&self) -> Option<&str> {
        let user = self.user.as_deref()?;
        let number = user.split(';').next().unwrap_or(user);
        match self.scheme {
            Scheme::Tel => Some(number),
            Scheme::Sip | Scheme::Sips => {
                let number = number.split(':').next().unwrap_or(number);
                let phone = self
                    .param("user")
                    .is_some_and(|v| v.is_some_and(|v| v.eq_ignore_ascii_case("phone")));
                (phone || looks_like_number(number)).then_some(number)
            }
        }
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
    /// The URI's text: the scheme in lower case, then every part as received (parameter names
    /// lower-cased).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.scheme {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
        };
        write!(f, "{scheme}:")?;
        if self.scheme == Scheme::Tel {
            return f.write_str(self.user.as_deref().unwrap_or(""));
        }
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        f.write_str(&self.host)?;
        write_params(f, &self.params)?;
        if let Some(headers) = &self.headers {
            write!(f, "?{headers}")?;
        }
        Ok(())
    }
}

/// Parses a URI (not in angle brackets).
///
/// `sip:`/`sips:` `[user[:password]@]host[:port]*(;param)[?headers]` and `tel:number*(;param)`,
/// the scheme in any case. The URI may hold no white space, controls, `"`, `<` or `>`; a
/// user part holds unreserved characters, `%XX` escapes and `&=+$,;?/:`; a host is a name,
/// an IPv4 address or an IPv6 reference in brackets, with a port up to 65535; parameter names
/// are tokens. A `tel:` number holds digits, hex digits, `*#+` and visual separators `-.()`.
pub fn parse_uri(text: &str) -> Result<Uri, UriError> {
    let (scheme, rest) = text.split_once(':').ok_or(UriError::Syntax)?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "sip" => Scheme::Sip,
        "sips" => Scheme::Sips,
        "tel" => Scheme::Tel,
        _ if is_token(scheme) => return Err(UriError::Scheme),
        _ => return Err(UriError::Syntax),
    };
    if rest.is_empty()
        || rest
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | '"'))
    {
        return Err(UriError::Syntax);
    }
    if scheme == Scheme::Tel {
        let number = rest.split(';').next().unwrap_or(rest);
        let number_ok = !number.is_empty()
            && number
                .bytes()
                .any(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#')
            && number.bytes().all(|b| {
                b.is_ascii_hexdigit() || matches!(b, b'*' | b'#' | b'+' | b'-' | b'.' | b'(' | b')')
            });
        parse_params(rest.get(number.len()..).unwrap_or(""))?;
        if !number_ok {
            return Err(UriError::Syntax);
        }
        return Ok(Uri {
            scheme,
            user: Some(rest.to_owned()),
            host: String::new(),
            params: Vec::new(),
            headers: None,
        });
    }
    // The user part may hold `?` and `;` (RFC 3261 §25.1 `user-unreserved`), never an
    // unescaped `@`: so the first `@` ends it, and `?headers` are looked for after it.
    let (user, rest) = match rest.split_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, rest),
    };
    let (rest, headers) = match rest.split_once('?') {
        Some((r, h)) => (r, Some(h.to_owned())),
        None => (rest, None),
    };
    if let Some(user) = user {
        let ok = !user.is_empty()
            && !user.starts_with([':', ';'])
            && user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()%&=+$,;?/:".contains(c))
            && escapes_ok(user);
        if !ok {
            return Err(UriError::Syntax);
        }
    }
    let host_end = rest.find(';').unwrap_or(rest.len());
    let (host, params) = rest.split_at(host_end);
    check_hostport(host)?;
    if headers.as_deref().is_some_and(|h| !escapes_ok(h)) {
        return Err(UriError::Syntax);
    }
    Ok(Uri {
        scheme,
        user: user.map(str::to_owned),
        host: host.to_owned(),
        params: parse_params(params)?,
        headers,
    })
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
        if let Some(display) = &self.display {
            f.write_str("\"")?;
            for c in display.chars() {
                match c {
                    // No quoted-pair can hold CR or LF (RFC 3261 §25.1).
                    '\r' | '\n' => f.write_str(" ")?,
                    '"' | '\\' => write!(f, "\\{c}")?,
                    c if c.is_control() && c != '\t' => write!(f, "\\{c}")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\" ")?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}

/// Parses a name-addr or addr-spec (the first one of a header field that may hold several).
///
/// `"Display \"name\"" <uri>;params`, `Display Name <uri>;params` (tokens), `<uri>;params` or
/// `uri;params`: in the last, addr-spec form, the URI ends at the first `;`, and what follows
/// are header parameters (RFC 3261 §20.10), so the URI can carry neither parameters nor
/// headers. White space around `;` and `=` is allowed; parameter values are tokens, hosts or
/// quoted strings. Parsing stops at a `,` that starts the next value.
pub fn parse_name_addr(text: &str) -> Result<NameAddr, UriError> {
    let text = text.trim_matches(LWS);
    let (display, uri_text, rest) = if let Some(quoted) = text.strip_prefix('"') {
        let (display, after) = unquote(quoted)?;
        let after = after.trim_start_matches(LWS);
        let inner = after.strip_prefix('<').ok_or(UriError::Syntax)?;
        let (uri, rest) = inner.split_once('>').ok_or(UriError::Syntax)?;
        (Some(display), uri, rest)
    } else if let Some(lt) = text.find('<') {
        let name = text.get(..lt).unwrap_or("").trim_matches(LWS);
        if !name.split(LWS).all(|w| w.is_empty() || is_token(w)) {
            return Err(UriError::Syntax);
        }
        let inner = text.get(lt + 1..).unwrap_or("");
        let (uri, rest) = inner.split_once('>').ok_or(UriError::Syntax)?;
        let display = (!name.is_empty()).then(|| name.to_owned());
        (display, uri, rest)
    } else {
        let end = text.find([';', ',']).unwrap_or(text.len());
        let (uri, rest) = text.split_at(end);
        if uri.contains('?') {
            return Err(UriError::Syntax);
        }
        (None, uri.trim_end_matches(LWS), rest)
    };
    let uri = parse_uri(uri_text)?;
    let rest = first_value(rest).trim_matches(LWS);
    Ok(NameAddr {
        display,
        uri,
        params: parse_params(rest)?,
    })
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
///
/// A `tel:` URI gets `;verstat=value` at the end of its parameters. A `sip:`/`sips:` URI gets
/// it inside its user part (with [`VerstatPlacement::UserPart`]) only when the URI has
/// `user=phone`, the only case where TS 24.229 reads the user part as a telephone-subscriber
/// with parameters; otherwise (a plain username such as `alice`, or a number without
/// `user=phone`, or no user part at all) it goes after the host as a URI parameter whatever
/// `placement` says, so a username is never rewritten.
pub fn with_verstat(uri: &Uri, value: &str, placement: VerstatPlacement) -> Uri {
    let mut out = uri.clone();
    out.params.retain(|(name, _)| name != "verstat");
    let user = uri.user.as_deref().map(|user| {
        let mut parts = user.split(';');
        let mut kept = parts.next().unwrap_or("").to_owned();
        for p in parts {
            let name = p.split('=').next().unwrap_or("");
            if !name.eq_ignore_ascii_case("verstat") {
                kept.push(';');
                kept.push_str(p);
            }
        }
        kept
    });
    out.user = user.clone();
    let user_phone = uri
        .param("user")
        .is_some_and(|v| v.is_some_and(|v| v.eq_ignore_ascii_case("phone")));
    let in_user =
        uri.scheme == Scheme::Tel || (placement == VerstatPlacement::UserPart && user_phone);
    match user {
        Some(mut user) if in_user => {
            if uri.scheme != Scheme::Tel {
                // A password is not part of a telephone-subscriber user part.
                if let Some((number, _password)) = user.split_once(':') {
                    user = number.to_owned();
                }
            }
            out.user = Some(format!("{user};verstat={value}"));
        }
        _ => out
            .params
            .push(("verstat".to_owned(), Some(value.to_owned()))),
    }
    out
}

/// Escapes `text` for a header parameter inside a URI (RFC 3261 §19.1.1 `hvalue`: unreserved
/// and `[]/?:+$` kept, everything else `%XX`).
///
/// Unreserved is `A-Za-z0-9-_.!~*'()`; every other byte of the UTF-8 text is written `%XX`
/// with upper-case hex digits, so an `Identity` value (`;`, `<`, `>`, `=`) fits in a
/// `Contact` URI as `?Identity=<escaped>`.
pub fn escape_header_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()[]/?:+$".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `text` with its `%XX` escapes decoded (RFC 3261 §19.1.2, RFC 3986 §2.1): how a user part
/// such as `%2B1-215-555-1212` reads as the number `+1-215-555-1212`. `None` when a `%` does
/// not start two hex digits, or when the decoded bytes are not UTF-8. Text without `%` is
/// returned unchanged.
pub fn unescape(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Linear white space inside a header value (after unfolding).
const LWS: [char; 2] = [' ', '\t'];

/// Whether a `sip:` user part looks like a telephone number once its `%XX` escapes are decoded
/// ([`unescape`]): an optional `+`, then digits and visual separators `-.()`, at least one
/// digit. (`%2B12155551212` is a number: RFC 3261 lets any user character be escaped, and
/// some gateways escape the `+`.)
fn looks_like_number(user: &str) -> bool {
    let Some(user) = unescape(user) else {
        return false;
    };
    let digits = user.strip_prefix('+').unwrap_or(&user);
    digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'(' | b')'))
}

/// RFC 3261 §25.1 `token`.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c))
}

/// Every `%` starts a `%XX` escape.
fn escapes_ok(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

/// `host[:port]`: a name or IPv4 address, or an IPv6 reference in brackets.
fn check_hostport(text: &str) -> Result<(), UriError> {
    let (host_ok, rest) = if let Some(inner) = text.strip_prefix('[') {
        let (host, rest) = inner.split_once(']').ok_or(UriError::Syntax)?;
        let ok = host.contains(':')
            && host
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        (ok, rest)
    } else {
        let end = text.find(':').unwrap_or(text.len());
        let (host, rest) = text.split_at(end);
        let ok = !host.is_empty()
            && !host.starts_with(['-', '.'])
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        (ok, rest)
    };
    let port_ok = match rest.strip_prefix(':') {
        None => rest.is_empty(),
        Some(port) => {
            !port.is_empty()
                && port.len() <= 5
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u16>().is_ok()
        }
    };
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(UriError::Syntax)
    }
}

/// `*(;name[=value])` with white space around `;` and `=`: names lower-cased, values as
/// received (quoted strings keep their quotes).
fn parse_params(text: &str) -> Result<Vec<(String, Option<String>)>, UriError> {
    let text = text.trim_matches(LWS);
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let text = text.strip_prefix(';').ok_or(UriError::Syntax)?;
    let mut params = Vec::new();
    for param in split_unquoted(text, ';') {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim_matches(LWS), Some(v.trim_matches(LWS))),
            None => (param.trim_matches(LWS), None),
        };
        if !is_token(name) {
            return Err(UriError::Syntax);
        }
        if let Some(v) = value {
            let quoted = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
            let plain = !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.!%*_+`'~[]:/&$".contains(c));
            if !(quoted || plain) {
                return Err(UriError::Syntax);
            }
        }
        params.push((name.to_ascii_lowercase(), value.map(str::to_owned)));
    }
    Ok(params)
}

/// `text` split on `sep` outside quoted strings.
fn split_unquoted(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            _ if c == sep && !quoted => {
                parts.push(text.get(start..i).unwrap_or(""));
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(text.get(start..).unwrap_or(""));
    parts
}

/// The text before the first `,` outside quoted strings.
fn first_value(text: &str) -> &str {
    split_unquoted(text, ',').first().copied().unwrap_or(text)
}

/// The content of a quoted string whose opening quote is already consumed, unescaped, and the
/// text after its closing quote.
fn unquote(text: &str) -> Result<(String, &str), UriError> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, text.get(i + 1..).unwrap_or(""))),
            '\\' => {
                // quoted-pair: any character but CR and LF (RFC 3261 §25.1).
                let (_, next) = chars.next().ok_or(UriError::Syntax)?;
                if matches!(next, '\r' | '\n') {
                    return Err(UriError::Syntax);
                }
                out.push(next);
            }
            c if c.is_control() && c != '\t' => return Err(UriError::Syntax),
            c => out.push(c),
        }
    }
    Err(UriError::Syntax)
}

fn write_params(
    f: &mut std::fmt::Formatter<'_>,
    params: &[(String, Option<String>)],
) -> std::fmt::Result {
    for (name, value) in params {
        match value {
            Some(v) => write!(f, ";{name}={v}")?,
            None => write!(f, ";{name}")?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts_and_text() {
        let text = "sip:+1-215-555-1212;npdi;rn=+12155550000@[2001:db8::1]:5060;user=phone;Transport=udp;lr?Subject=x%20y&Priority=urgent";
        let uri = parse_uri(text).unwrap();
        assert_eq!(uri.scheme, Scheme::Sip);
        assert_eq!(
            uri.user.as_deref(),
            Some("+1-215-555-1212;npdi;rn=+12155550000")
        );
        assert_eq!(uri.host, "[2001:db8::1]:5060");
        assert_eq!(uri.param("user"), Some(Some("phone")));
        assert_eq!(uri.param("transport"), Some(Some("udp")));
        assert_eq!(uri.param("lr"), Some(None));
        assert_eq!(uri.param("maddr"), None);
        assert_eq!(
            uri.headers.as_deref(),
            Some("Subject=x%20y&Priority=urgent")
        );
        assert_eq!(uri.telephone_number(), Some("+1-215-555-1212"));
        assert_eq!(uri.to_string(), text.replace("Transport", "transport"));

        let uri = parse_uri("SIPS:alice:secret@example.com").unwrap();
        assert_eq!(uri.scheme, Scheme::Sips);
        assert_eq!(uri.host, "example.com");
        assert_eq!(uri.telephone_number(), None);
        assert_eq!(uri.to_string(), "sips:alice:secret@example.com");

        let uri = parse_uri("sip:example.com:5070").unwrap();
        assert_eq!(uri.user, None);
        assert_eq!(uri.to_string(), "sip:example.com:5070");
        let uri = parse_uri("sip:%61lice@example.com").unwrap();
        assert_eq!(uri.user.as_deref(), Some("%61lice"));
    }

    #[test]
    fn telephone_numbers() {
        let number = |t: &str| parse_uri(t).unwrap().telephone_number().map(str::to_owned);
        assert_eq!(
            number("tel:+1-215-555-1212;ext=1"),
            Some("+1-215-555-1212".into())
        );
        assert_eq!(
            number("tel:5551212;phone-context=+1215"),
            Some("5551212".into())
        );
        assert_eq!(
            number("sip:2155551212@example.com"),
            Some("2155551212".into())
        );
        assert_eq!(
            number("sip:(215)555.1212@example.com"),
            Some("(215)555.1212".into())
        );
        assert_eq!(number("sip:alice@example.com"), None);
        assert_eq!(number("sip:+1@example.com;user=ip"), Some("+1".into()));
        assert_eq!(number("sip:*67@example.com;user=PHONE"), Some("*67".into()));
        assert_eq!(
            number("sip:alice@example.com;user=phone"),
            Some("alice".into())
        );
        assert_eq!(number("sip:example.com"), None);
        assert_eq!(number("sip:+@example.com"), None);
    }

    #[test]
    fn refuses_bad_uris() {
        assert_eq!(parse_uri("http://example.com"), Err(UriError::Scheme));
        assert_eq!(parse_uri("mailto:a@b"), Err(UriError::Scheme));
        for bad in [
            "",
            "sip:",
            "sip",
            "sip:a b@example.com",
            "sip:<a@b>",
            "sip:@example.com",
            "sip:a@",
            "sip:a@exa mple.com",
            "sip:a@example.com:",
            "sip:a@example.com:65536",
            "sip:a@[::1",
            "sip:a@[nothex]",
            "sip:a%zz@example.com",
            "sip:a@example.com;=x",
            "sip:a@example.com;x=a\"b",
            "sip:a@-example.com",
            "tel:",
            "tel:xyz;x",
            "tel:+1;=2",
            "tel:+1 215",
            "sip:a\u{0}@example.com",
        ] {
            assert_eq!(parse_uri(bad), Err(UriError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn name_addr_forms() {
        let na = parse_name_addr(
            r#" "J Rosenberg \\\"" <sip:jdrosen@example.com> ; tag = 98asjd8 , <sip:x@y>"#,
        )
        .unwrap();
        assert_eq!(na.display.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(na.uri.host, "example.com");
        assert_eq!(na.param("tag"), Some(Some("98asjd8")));
        assert_eq!(
            na.to_string(),
            r#""J Rosenberg \\\"" <sip:jdrosen@example.com>;tag=98asjd8"#
        );
        assert_eq!(parse_name_addr(&na.to_string()).unwrap(), na);
        let controls = parse_name_addr("\"a\\\u{0}b\\\u{7f}\" <sip:a@b>").unwrap();
        assert_eq!(controls.display.as_deref(), Some("a\u{0}b\u{7f}"));
        assert_eq!(parse_name_addr(&controls.to_string()).unwrap(), controls);
        assert!(parse_name_addr("\"a\\\r\" <sip:a@b>").is_err());

        let na =
            parse_name_addr("Bob Smith <tel:+12155551212;verstat=No-TN-Validation>;tag=1").unwrap();
        assert_eq!(na.display.as_deref(), Some("Bob Smith"));
        assert_eq!(na.uri.scheme, Scheme::Tel);
        assert_eq!(
            na.to_string(),
            "\"Bob Smith\" <tel:+12155551212;verstat=No-TN-Validation>;tag=1"
        );

        let na = parse_name_addr("<sip:+12155551212@example.com;user=phone>").unwrap();
        assert_eq!(na.display, None);
        assert_eq!(na.uri.param("user"), Some(Some("phone")));
        assert!(na.params.is_empty());

        // addr-spec: the parameters are the header's (RFC 3261 §20.10).
        let na = parse_name_addr("sip:+12155551212@example.com;tag=abc;user=phone").unwrap();
        assert!(na.uri.params.is_empty());
        assert_eq!(na.param("tag"), Some(Some("abc")));
        assert_eq!(na.param("user"), Some(Some("phone")));
        assert_eq!(
            na.to_string(),
            "<sip:+12155551212@example.com>;tag=abc;user=phone"
        );
        let na = parse_name_addr("sip:a@b, sip:c@d").unwrap();
        assert_eq!(na.uri.to_string(), "sip:a@b");
    }

    #[test]
    fn refuses_bad_name_addrs() {
        for bad in [
            "",
            "\"unterminated <sip:a@b>",
            "\"x\" sip:a@b",
            "<sip:a@b",
            "Bad\"Name <sip:a@b>",
            "<sip:a@b> junk",
            "<sip:a@b>;",
            "sip:a@b?x=y",
            "<http://example.com>",
            "\"a\u{1}\" <sip:a@b>",
        ] {
            assert!(parse_name_addr(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn verstat_placements() {
        let uri = parse_uri(
            "sip:+12155551212;verstat=TN-Validation-Passed@example.com;user=phone;verstat=x",
        )
        .unwrap();
        let user_part = with_verstat(&uri, "TN-Validation-Failed", VerstatPlacement::UserPart);
        assert_eq!(
            user_part.to_string(),
            "sip:+12155551212;verstat=TN-Validation-Failed@example.com;user=phone"
        );
        let param = with_verstat(&uri, "No-TN-Validation", VerstatPlacement::UriParameter);
        assert_eq!(
            param.to_string(),
            "sip:+12155551212@example.com;user=phone;verstat=No-TN-Validation"
        );
        let tel = parse_uri("tel:+12155551212;VERSTAT=TN-Validation-Passed;ext=2").unwrap();
        for placement in [VerstatPlacement::UserPart, VerstatPlacement::UriParameter] {
            assert_eq!(
                with_verstat(&tel, "TN-Validation-Failed", placement).to_string(),
                "tel:+12155551212;ext=2;verstat=TN-Validation-Failed"
            );
        }
        let hostonly = parse_uri("sip:example.com").unwrap();
        assert_eq!(
            with_verstat(&hostonly, "No-TN-Validation", VerstatPlacement::UserPart).to_string(),
            "sip:example.com;verstat=No-TN-Validation"
        );
        let password = parse_uri("sip:+1215:pw@example.com;user=phone").unwrap();
        assert_eq!(
            with_verstat(&password, "No-TN-Validation", VerstatPlacement::UserPart).to_string(),
            "sip:+1215;verstat=No-TN-Validation@example.com;user=phone"
        );
        // Without `user=phone` the user part is a username, never rewritten: the verstat goes
        // after the host (an upstream one in the user part is still removed).
        for (text, labelled) in [
            (
                "sip:alice@example.com",
                "sip:alice@example.com;verstat=TN-Validation-Failed",
            ),
            (
                "sip:+12155551212;verstat=TN-Validation-Passed@example.com;user=ip",
                "sip:+12155551212@example.com;user=ip;verstat=TN-Validation-Failed",
            ),
            (
                "sip:+1215:pw@example.com",
                "sip:+1215:pw@example.com;verstat=TN-Validation-Failed",
            ),
        ] {
            let uri = parse_uri(text).unwrap();
            assert_eq!(
                with_verstat(&uri, "TN-Validation-Failed", VerstatPlacement::UserPart).to_string(),
                labelled
            );
        }
        let phone_upper = parse_uri("sip:+12155551212@example.com;user=PHONE").unwrap();
        assert_eq!(
            with_verstat(&phone_upper, "No-TN-Validation", VerstatPlacement::UserPart).to_string(),
            "sip:+12155551212;verstat=No-TN-Validation@example.com;user=PHONE"
        );
        // The result reads back.
        assert_eq!(parse_uri(&user_part.to_string()).unwrap(), user_part);
    }

    #[test]
    fn unescapes_user_parts() {
        assert_eq!(unescape("%2B1-215%2d555"), Some("+1-215-555".into()));
        assert_eq!(unescape("+12155551212"), Some("+12155551212".into()));
        assert_eq!(unescape("%C3%A9"), Some("é".into()));
        for bad in ["%2", "%", "%zz1", "%+1", "%-1", "1%2", "%C3"] {
            assert_eq!(unescape(bad), None, "{bad:?}");
        }
        // An escaped number is a number, with or without `user=phone`; it is given as written.
        let uri = parse_uri("sip:%2B1-215-555-1212@example.com").unwrap();
        assert_eq!(uri.telephone_number(), Some("%2B1-215-555-1212"));
        assert_eq!(
            parse_uri("sip:%61lice@example.com")
                .unwrap()
                .telephone_number(),
            None
        );
    }

    #[test]
    fn escapes_header_values() {
        assert_eq!(
            escape_header_value("eyJ.a-b_c;info=<https://cr.example/x.pem>;alg=ES256;ppt=shaken"),
            "eyJ.a-b_c%3Binfo%3D%3Chttps://cr.example/x.pem%3E%3Balg%3DES256%3Bppt%3Dshaken"
        );
        assert_eq!(
            escape_header_value("[]/?:+$!~*'() %\"é"),
            "[]/?:+$!~*'()%20%25%22%C3%A9"
        );
        let uri = parse_uri(&format!(
            "sip:+1@example.com?Identity={}",
            escape_header_value("a;b=<c>")
        ))
        .unwrap();
        assert_eq!(uri.headers.as_deref(), Some("Identity=a%3Bb%3D%3Cc%3E"));
    }
}
