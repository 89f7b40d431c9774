//! SIP messages: the request parser and the response builder.
//!
//! CONTRACT (skeleton): the public items below are what the transport, the transaction layer,
//! the signer and the verifier use. The "message" part of issue 18 fills the bodies.

use thiserror::Error;

use crate::via::Via;

/// Caps on a message from the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest message, start line to the end of the body, in bytes.
    pub max_message_bytes: usize,
    /// The most header fields (each line, after unfolding, counts once).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024,
            max_headers: 64,
        }
    }
}

/// What is wrong with a message. Whether it can be answered with `400` depends on whether its
/// top `Via` (and the other headers a response copies) could be read: see
/// [`parse_for_error_response`], and which status answers it: [`ParseError::status`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The message is larger than [`Limits::max_message_bytes`].
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
    /// More header fields than [`Limits::max_headers`].
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
    /// The message ends before its headers end (no empty line).
    #[error("incomplete message: no end of headers")]
    Incomplete,
    /// The start line is not `METHOD SP Request-URI SP SIP/2.0` (nor a status line).
    #[error("bad start line")]
    StartLine,
    /// Not SIP/2.0.
    #[error("unsupported SIP version")]
    Version,
    /// A header line without a colon, or with a bad name, or not UTF-8.
    #[error("bad header line {0}")]
    HeaderLine(usize),
    /// A header required of every request (RFC 3261 §8.1.1) is missing: the name.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// A header that must appear once appears more than once, or has a bad value: the name.
    #[error("bad {0} header")]
    BadHeader(&'static str),
    /// `Content-Length` disagrees with the bytes that follow (datagram), or is not a number.
    #[error("bad Content-Length")]
    ContentLength,
}

/// A request method. Only `INVITE`, `ACK` and `CANCEL` mean anything to a redirect server;
/// `OPTIONS` is answered `200` (SBCs ping with it); anything else gets `405`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE.
    Invite,
    /// ACK.
    Ack,
    /// CANCEL.
    Cancel,
    /// OPTIONS.
    Options,
    /// Any other token, as received.
    Other(String),
}

impl Method {
    /// The method's token.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Cancel => "CANCEL",
            Self::Options => "OPTIONS",
            Self::Other(token) => token,
        }
    }
}

/// One header field: its name as received (compact forms kept as received) and its value
/// with leading and trailing white space removed and folded lines joined by one space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The name as received.
    pub name: String,
    /// The value.
    pub value: String,
}

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The Request-URI as received.
    pub uri: String,
    /// The header fields in order.
    pub headers: Vec<Header>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

/// What a byte buffer held: a request, or a response (which a redirect server ignores).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response (status code only; a redirect server never sends requests, so it is dropped).
    Response(u16),
}

/// Parses one whole message (a UDP datagram, or one framed TCP message). The caps of
/// `limits` are checked before anything is allocated per header. A request must carry the
/// headers RFC 3261 §8.1.1 requires of it (Via, From, To, Call-ID, CSeq; Max-Forwards is not
/// required of a received request).
///
/// Guarantees of an `Ok(Message::Request(_))`: the start line is `METHOD SP Request-URI SP
/// SIP/2.0` with a token method and a Request-URI without white space, quotes or angle
/// brackets; every header line is UTF-8 with a token name; From, To, Call-ID, CSeq and
/// Content-Length appear at most once; `CSeq` is `number method` with the request's method;
/// the body is exactly `Content-Length` bytes (the rest of the datagram when it is absent).
///
/// Leniencies, each because real senders do it or RFC 3261 asks for it: CRLFs before the
/// start line are skipped (§7.5); a bare LF ends a line like CRLF; white space before a
/// header's colon is allowed (§7.3.1 `HCOLON`); bytes after `Content-Length` bytes of body are
/// ignored (§18.3, datagrams).
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Message, ParseError> {
    let parts = split_message(bytes, limits)?;
    match parts.start {
        StartLine::Status(code) => Ok(Message::Response(code)),
        StartLine::Request { method, uri } => {
            let request = Request {
                method,
                uri,
                headers: parts.headers,
                body: parts.body,
            };
            check_request(&request)?;
            Ok(Message::Request(request))
        }
    }
}

/// Parses a whole response (status line, headers, body) with the same rules and caps as
/// [`parse`]: what a client would read of a [`Response::to_bytes`]. A redirect server never
/// needs it on the wire; tests and tools use it. A request gives [`ParseError::StartLine`].
pub fn parse_response(bytes: &[u8], limits: &Limits) -> Result<Response, ParseError> {
    let parts = split_message(bytes, limits)?;
    match parts.start {
        StartLine::Status(code) => {
            for name in ["From", "To", "Call-ID", "CSeq", "Content-Length"] {
                once(&parts.headers, name)?;
            }
            Ok(Response {
                code,
                reason: parts.reason,
                headers: parts
                    .headers
                    .into_iter()
                    .filter(|h| !same_header_name(&h.name, "Content-Length"))
                    .collect(),
                body: parts.body,
            })
        }
        StartLine::Request { .. } => Err(ParseError::StartLine),
    }
}

/// For a message [`parse`] refused: the request a `400` (or `505`, `513`, see
/// [`ParseError::status`]) can be built from, when there is one. `Some` only when the start
/// line begins with a method token other than `ACK` (an ACK is never answered) and the top
/// `Via` is usable ([`crate::via::parse_top`] reads it): that is where the answer goes. The
/// request holds the headers a response copies (every Via, From, To, Call-ID, CSeq) that could
/// be read as UTF-8 lines, within the caps of `limits` (bytes past the byte cap are not read);
/// its URI is empty and its body too. `None` means: drop the message silently.
pub fn parse_for_error_response(bytes: &[u8], limits: &Limits) -> Option<Request> {
    let window = bytes.get(..limits.max_message_bytes).unwrap_or(bytes);
    let mut pos = skip_crlf(window);
    let (start, next) = next_line(window, pos)?;
    pos = next;
    let method_text = start.split(|b| *b == b' ').next()?;
    if method_text.is_empty() || !method_text.iter().all(|b| is_token_byte(*b)) {
        return None;
    }
    let method = method_from(std::str::from_utf8(method_text).ok()?);
    if method == Method::Ack {
        return None;
    }
    let mut headers: Vec<Header> = Vec::new();
    let mut fields = 0usize;
    while let Some((line, next)) = next_line(window, pos) {
        pos = next;
        if line.is_empty() {
            break;
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            fields += 1;
            if fields > limits.max_headers {
                break;
            }
        }
        let Ok(text) = std::str::from_utf8(line) else {
            continue;
        };
        if continuation {
            if let Some(last) = headers.last_mut() {
                append_folded(&mut last.value, text);
            }
            continue;
        }
        let Some((name, value)) = text.split_once(':') else {
            continue;
        };
        let name = name.trim_end_matches([' ', '\t']);
        let copied = ["Via", "From", "To", "Call-ID", "CSeq"]
            .iter()
            .any(|n| same_header_name(name, n));
        if copied && is_token(name) {
            headers.push(Header {
                name: name.to_owned(),
                value: value.trim_matches([' ', '\t']).to_owned(),
            });
        }
    }
    let request = Request {
        method,
        uri: String::new(),
        headers,
        body: Vec::new(),
    };
    request.top_via().ok()?;
    Some(request)
}

/// For TCP framing: the length of the first whole message at the start of `buffer` (headers,
/// the empty line and `Content-Length` bytes of body), `Ok(None)` while more bytes are needed,
/// an error when the headers are over the caps or `Content-Length` is missing or bad (a stream
/// transport requires it, RFC 3261 §18.3). Leading CRLF keep-alives (RFC 5626) are counted
/// in the length of the message they precede; a buffer of only CRLFs gives `Ok(Some(n))` with
/// nothing to parse (see [`is_keepalive`]).
///
/// Errors: [`ParseError::TooLarge`] as soon as the headers seen so far, or the announced
/// message, exceed `max_message_bytes`; [`ParseError::TooManyHeaders`] as soon as more header
/// lines than `max_headers` are buffered; [`ParseError::Missing`]`("Content-Length")`;
/// [`ParseError::ContentLength`] for a value that is not a number, or two different values.
pub fn frame_length(buffer: &[u8], limits: &Limits) -> Result<Option<usize>, ParseError> {
    let lead = skip_crlf(buffer);
    if lead == buffer.len() {
        return Ok(if lead == 0 { None } else { Some(lead) });
    }
    let message = buffer.get(lead..).unwrap_or_default();
    let Some(head_end) = end_of_headers(message, limits)? else {
        if message.len() > limits.max_message_bytes {
            return Err(ParseError::TooLarge(limits.max_message_bytes));
        }
        return Ok(None);
    };
    let head = message.get(..head_end).unwrap_or_default();
    let mut length: Option<usize> = None;
    let mut pos = 0;
    while let Some((line, next)) = next_line(head, pos) {
        pos = next;
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = line.get(..colon).unwrap_or_default();
        let name = std::str::from_utf8(name)
            .unwrap_or("")
            .trim_end_matches([' ', '\t']);
        if same_header_name(name, "Content-Length") {
            let value = line.get(colon + 1..).unwrap_or_default();
            let value = std::str::from_utf8(value).map_err(|_| ParseError::ContentLength)?;
            let n = content_length(value)?;
            if length.is_some_and(|l| l != n) {
                return Err(ParseError::ContentLength);
            }
            length = Some(n);
        }
    }
    let length = length.ok_or(ParseError::Missing("Content-Length"))?;
    let total = head_end
        .checked_add(length)
        .filter(|t| *t <= limits.max_message_bytes)
        .ok_or(ParseError::TooLarge(limits.max_message_bytes))?;
    if message.len() >= total {
        Ok(Some(lead + total))
    } else {
        Ok(None)
    }
}

/// Whether `bytes` is only CRLF keep-alives (RFC 5626 §3.5.1): ignored, or for a double CRLF
/// answered with a single one.
pub fn is_keepalive(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|b| *b == b'\r' || *b == b'\n')
}

impl Request {
    /// The value of the first header named `name` (long or compact form, any case: `f` is
    /// From, `t` To, `v` Via, `i` Call-ID, `m` Contact, `l` Content-Length, `c` Content-Type,
    /// `y` Identity), without splitting on commas.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| same_header_name(&h.name, name))
            .map(|h| h.value.as_str())
    }

    /// The values of every header named `name` (long or compact form, any case), in order,
    /// each field as received (not split on commas).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| same_header_name(&h.name, name))
            .map(|h| h.value.as_str())
    }

    /// The top Via: the first value of the first Via field.
    pub fn top_via(&self) -> Result<Via, ParseError> {
        let value = self.header("Via").ok_or(ParseError::Missing("Via"))?;
        crate::via::parse_top(value).map_err(|_| ParseError::BadHeader("Via"))
    }

    /// The CSeq number and method.
    ///
    /// `CSeq: number method` (RFC 3261 §20.16): the number below 2^31, one or more spaces or
    /// tabs, the method token. [`ParseError::Missing`] without a CSeq, else
    /// [`ParseError::BadHeader`]`("CSeq")`.
    pub fn cseq(&self) -> Result<(u32, Method), ParseError> {
        let value = self.header("CSeq").ok_or(ParseError::Missing("CSeq"))?;
        parse_cseq(value)
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Result<&str, ParseError> {
        self.header("Call-ID").ok_or(ParseError::Missing("Call-ID"))
    }
}

/// Whether two header names name the same header (case-insensitive, compact forms of RFC 3261
/// §7.3.3 and RFC 8224's `y` mapped to their long names).
///
/// Also the compact forms of RFC 3265 (`o` Event, `u` Allow-Events), RFC 3515 (`r`
/// Refer-To), RFC 3892 (`b` Referred-By), RFC 4028 (`x` Session-Expires) and RFC 3841 (`a`
/// Accept-Contact, `j` Reject-Contact, `d` Request-Disposition).
pub fn same_header_name(a: &str, b: &str) -> bool {
    long_name(a).eq_ignore_ascii_case(long_name(b))
}

/// The long form of a header name: a compact form mapped, any other name unchanged.
pub fn long_name(name: &str) -> &str {
    if name.len() != 1 {
        return name;
    }
    match name.to_ascii_lowercase().as_str() {
        "i" => "Call-ID",
        "m" => "Contact",
        "e" => "Content-Encoding",
        "l" => "Content-Length",
        "c" => "Content-Type",
        "f" => "From",
        "s" => "Subject",
        "k" => "Supported",
        "t" => "To",
        "v" => "Via",
        "y" => "Identity",
        "o" => "Event",
        "r" => "Refer-To",
        "b" => "Referred-By",
        "x" => "Session-Expires",
        "u" => "Allow-Events",
        "a" => "Accept-Contact",
        "j" => "Reject-Contact",
        "d" => "Request-Disposition",
        _ => name,
    }
}

/// A response being built. [`Response::to`] copies what RFC 3261 §8.2.6.2 says a response
/// copies from its request: every Via (in order), From, To (adding `tag` when the request's
/// To has none), Call-ID and CSeq; then `Content-Length: 0` unless a body is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub code: u16,
    /// The reason phrase.
    pub reason: String,
    /// The header fields, in order.
    pub headers: Vec<Header>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The response to `request` with `code` and `reason`, the To tag `to_tag` added when the
    /// request's To has none (a retransmission's answer is the stored bytes, so the tag stays
    /// the same).
    ///
    /// The copied fields are written under their long names (`Via`, `From`, `To`, `Call-ID`,
    /// `CSeq`) with their values as received; a header the request lacks is not invented.
    pub fn to(request: &Request, code: u16, reason: &str, to_tag: &str) -> Self {
        let mut headers = Vec::new();
        for value in request.headers_named("Via") {
            headers.push(header("Via", value.to_owned()));
        }
        if let Some(from) = request.header("From") {
            headers.push(header("From", from.to_owned()));
        }
        if let Some(to) = request.header("To") {
            let value = if has_tag(to) || to_tag.is_empty() {
                to.to_owned()
            } else {
                format!("{to};tag={to_tag}")
            };
            headers.push(header("To", value));
        }
        for name in ["Call-ID", "CSeq"] {
            if let Some(value) = request.header(name) {
                headers.push(header(name, value.to_owned()));
            }
        }
        Self {
            code,
            reason: reason.to_owned(),
            headers,
            body: Vec::new(),
        }
    }

    /// The same response with `body` as its body and `Content-Type: content_type`.
    pub fn with_body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.headers
            .push(header("Content-Type", content_type.to_owned()));
        self.body = body;
        self
    }

    /// The same response with one more header field at the end.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push(Header {
            name: name.to_owned(),
            value: value.into(),
        });
        self
    }

    /// The value of the first header named `name` (as [`Request::header`]).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| same_header_name(&h.name, name))
            .map(|h| h.value.as_str())
    }

    /// The wire form: status line, headers, `Content-Length`, empty line, body.
    ///
    /// `Content-Length` is always the body's length: a `Content-Length` among
    /// [`Response::headers`] is not written. CR and LF inside a reason, name or value are
    /// written as spaces, so no field can inject another.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        out.extend_from_slice(format!("SIP/2.0 {} ", self.code).as_bytes());
        out.extend_from_slice(no_newlines(&self.reason).as_bytes());
        out.extend_from_slice(b"\r\n");
        for h in &self.headers {
            if same_header_name(&h.name, "Content-Length") {
                continue;
            }
            out.extend_from_slice(no_newlines(&h.name).as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(no_newlines(&h.value).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

impl ParseError {
    /// The status and reason phrase of the answer to a request that failed with this error
    /// (when [`parse_for_error_response`] says it can be answered): `513 Message Too Large`,
    /// `505 Version Not Supported`, else `400 Bad Request`.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Self::TooLarge(_) => (513, "Message Too Large"),
            Self::Version => (505, "Version Not Supported"),
            _ => (400, "Bad Request"),
        }
    }
}

fn header(name: &str, value: String) -> Header {
    Header {
        name: name.to_owned(),
        value,
    }
}

fn no_newlines(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['\r', '\n']) {
        std::borrow::Cow::Owned(text.replace(['\r', '\n'], " "))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Whether a From/To value carries a `tag` header parameter: a parameter after the `>` of a
/// name-addr, or after the URI of an addr-spec (RFC 3261 §20.10: there the parameters are the
/// header's).
fn has_tag(value: &str) -> bool {
    let params = match value.rfind('>') {
        Some(gt) if value.contains('<') => value.get(gt + 1..).unwrap_or(""),
        _ => value,
    };
    params.split(';').skip(1).any(|p| {
        let name = p.split('=').next().unwrap_or("");
        name.trim_matches([' ', '\t']).eq_ignore_ascii_case("tag")
    })
}

/// The start line of a message.
enum StartLine {
    Request { method: Method, uri: String },
    Status(u16),
}

/// A message cut into its start line, unfolded headers and body, with no rule about which
/// headers it needs.
struct Parts {
    start: StartLine,
    reason: String,
    headers: Vec<Header>,
    body: Vec<u8>,
}

fn split_message(bytes: &[u8], limits: &Limits) -> Result<Parts, ParseError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(ParseError::TooLarge(limits.max_message_bytes));
    }
    let mut pos = skip_crlf(bytes);
    let (line, next) = next_line(bytes, pos).ok_or(ParseError::Incomplete)?;
    pos = next;
    let (start, reason) = start_line(line)?;
    let mut headers: Vec<Header> = Vec::new();
    let mut number = 0usize;
    loop {
        let (line, next) = next_line(bytes, pos).ok_or(ParseError::Incomplete)?;
        pos = next;
        number += 1;
        if line.is_empty() {
            break;
        }
        let text = std::str::from_utf8(line).map_err(|_| ParseError::HeaderLine(number))?;
        if text.contains('\r') {
            // A lone CR inside a line is no line ending and no header character.
            return Err(ParseError::HeaderLine(number));
        }
        if text.starts_with([' ', '\t']) {
            let last = headers.last_mut().ok_or(ParseError::HeaderLine(number))?;
            append_folded(&mut last.value, text);
            continue;
        }
        if headers.len() >= limits.max_headers {
            return Err(ParseError::TooManyHeaders(limits.max_headers));
        }
        let (name, value) = text.split_once(':').ok_or(ParseError::HeaderLine(number))?;
        let name = name.trim_end_matches([' ', '\t']);
        if !is_token(name) {
            return Err(ParseError::HeaderLine(number));
        }
        headers.push(Header {
            name: name.to_owned(),
            value: value.trim_matches([' ', '\t']).to_owned(),
        });
    }
    let rest = bytes.get(pos..).unwrap_or_default();
    let body = match once(&headers, "Content-Length")? {
        None => rest,
        Some(value) => {
            let length = content_length(value)?;
            rest.get(..length).ok_or(ParseError::ContentLength)?
        }
    };
    Ok(Parts {
        start,
        reason,
        headers,
        body: body.to_vec(),
    })
}

/// The value of the header `name` when it appears at most once; `BadHeader` when it appears
/// twice or more.
fn once<'a>(headers: &'a [Header], name: &'static str) -> Result<Option<&'a str>, ParseError> {
    let mut found = headers.iter().filter(|h| same_header_name(&h.name, name));
    let first = found.next();
    if found.next().is_some() {
        return Err(ParseError::BadHeader(name));
    }
    Ok(first.map(|h| h.value.as_str()))
}

fn check_request(request: &Request) -> Result<(), ParseError> {
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if request.header(name).is_none() {
            return Err(ParseError::Missing(name));
        }
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if once(&request.headers, name)?.is_some_and(str::is_empty) {
            return Err(ParseError::BadHeader(name));
        }
    }
    let (_, method) = request.cseq()?;
    // RFC 3261 §8.1.1.5: the CSeq method matches the request's, for ACK and CANCEL too.
    if method != request.method {
        return Err(ParseError::BadHeader("CSeq"));
    }
    Ok(())
}

fn parse_cseq(value: &str) -> Result<(u32, Method), ParseError> {
    let bad = ParseError::BadHeader("CSeq");
    let (number, method) = value
        .split_once([' ', '\t'])
        .ok_or(ParseError::BadHeader("CSeq"))?;
    let method = method.trim_start_matches([' ', '\t']);
    if number.is_empty() || number.len() > 10 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    let number: u32 = number.parse().map_err(|_| ParseError::BadHeader("CSeq"))?;
    if number >= 1 << 31 || !is_token(method) {
        return Err(bad);
    }
    Ok((number, method_from(method)))
}

fn content_length(value: &str) -> Result<usize, ParseError> {
    let value = value.trim_matches([' ', '\t']);
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::ContentLength);
    }
    value.parse().map_err(|_| ParseError::ContentLength)
}

fn start_line(line: &[u8]) -> Result<(StartLine, String), ParseError> {
    let text = std::str::from_utf8(line).map_err(|_| ParseError::StartLine)?;
    if text.len() >= 4
        && text
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let mut parts = text.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let code = parts.next().ok_or(ParseError::StartLine)?;
        let reason = parts.next().unwrap_or("");
        check_version(version)?;
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::StartLine);
        }
        let code: u16 = code.parse().map_err(|_| ParseError::StartLine)?;
        if !(100..=699).contains(&code) || reason.contains(|c: char| c.is_control() && c != '\t') {
            return Err(ParseError::StartLine);
        }
        return Ok((StartLine::Status(code), reason.to_owned()));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly two single spaces.
    let mut parts = text.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::StartLine);
    };
    if !is_token(method) || !is_request_uri(uri) {
        return Err(ParseError::StartLine);
    }
    check_version(version)?;
    Ok((
        StartLine::Request {
            method: method_from(method),
            uri: uri.to_owned(),
        },
        String::new(),
    ))
}

/// `SIP/2.0`, the literal case-insensitive as ABNF strings are (RFC 3261 §25); anything else
/// shaped like a version is [`ParseError::Version`].
fn check_version(version: &str) -> Result<(), ParseError> {
    let Some((name, number)) = version.split_once('/') else {
        return Err(ParseError::StartLine);
    };
    if !name.eq_ignore_ascii_case("SIP") {
        return Err(ParseError::StartLine);
    }
    if number == "2.0" {
        return Ok(());
    }
    let shaped = number.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    });
    Err(if shaped {
        ParseError::Version
    } else {
        ParseError::StartLine
    })
}

/// A Request-URI: `scheme:rest` with no white space, controls, quotes or angle brackets
/// (those belong to name-addr, never to a Request-URI, RFC 4475 §3.1.2.4).
fn is_request_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    scheme_ok
        && !rest.is_empty()
        && !uri
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | '"'))
}

fn method_from(token: &str) -> Method {
    match token {
        "INVITE" => Method::Invite,
        "ACK" => Method::Ack,
        "CANCEL" => Method::Cancel,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_owned()),
    }
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_token_byte)
}

fn append_folded(value: &mut String, continuation: &str) {
    let more = continuation.trim_matches([' ', '\t']);
    if more.is_empty() {
        return;
    }
    if !value.is_empty() {
        value.push(' ');
    }
    value.push_str(more);
}

/// The number of CR and LF bytes at the start of `bytes`.
fn skip_crlf(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count()
}

/// The line starting at `pos` without its line ending (CRLF, or a bare LF), and where the
/// next line starts; `None` when no line ending follows.
fn next_line(bytes: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = bytes.get(pos..)?;
    let lf = rest.iter().position(|b| *b == b'\n')?;
    let line = rest.get(..lf)?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, pos + lf + 1))
}

/// Where the body starts (after the empty line), `None` when the empty line has not arrived;
/// `TooManyHeaders` when more header lines than the cap are already there.
fn end_of_headers(message: &[u8], limits: &Limits) -> Result<Option<usize>, ParseError> {
    let mut pos = 0;
    let mut lines = 0usize;
    while let Some((line, next)) = next_line(message, pos) {
        if line.is_empty() && pos > 0 {
            return Ok(Some(next));
        }
        if !matches!(line.first(), Some(b' ' | b'\t')) && pos > 0 {
            lines += 1;
            if lines > limits.max_headers {
                return Err(ParseError::TooManyHeaders(limits.max_headers));
            }
        }
        if next > limits.max_message_bytes {
            return Err(ParseError::TooLarge(limits.max_message_bytes));
        }
        pos = next;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:+12155551212@example.com;user=phone SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
        v: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK0\r\n\
        Max-Forwards: 70\r\n\
        f: <sip:+12155550000@example.com;user=phone>;tag=abc\r\n\
        To: <sip:+12155551212@example.com;user=phone>\r\n\
        Call-ID: 1234@192.0.2.1\r\n\
        CSeq: 1 INVITE\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\
        \r\n\
        v=0\n";

    fn request(text: &str) -> Request {
        match parse(text.as_bytes(), &Limits::default()) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn error(text: &str) -> ParseError {
        parse(text.as_bytes(), &Limits::default()).unwrap_err()
    }

    #[test]
    fn parses_an_invite() {
        let r = request(INVITE);
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.uri, "sip:+12155551212@example.com;user=phone");
        assert_eq!(r.headers.len(), 9);
        assert_eq!(
            r.header("From"),
            Some("<sip:+12155550000@example.com;user=phone>;tag=abc")
        );
        assert_eq!(r.header("f"), r.header("FROM"));
        assert_eq!(r.headers_named("via").count(), 2);
        assert_eq!(r.cseq().unwrap(), (1, Method::Invite));
        assert_eq!(r.call_id().unwrap(), "1234@192.0.2.1");
        assert_eq!(r.body, b"v=0\n");
        let via = r.top_via().unwrap();
        assert_eq!(via.branch.as_deref(), Some("z9hG4bK1"));
    }

    #[test]
    fn bare_lf_folding_and_leading_crlf() {
        let text = "\r\n\r\nOPTIONS sip:x@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\nFrom: <sip:a@b>\n ;tag=1\nTo: <sip:x@example.com>\nCall-ID: c\nCSeq:\t7\n\t OPTIONS\n\n";
        let r = request(text);
        assert_eq!(r.method, Method::Options);
        assert_eq!(r.header("from"), Some("<sip:a@b> ;tag=1"));
        assert_eq!(r.cseq().unwrap(), (7, Method::Options));
        assert!(r.body.is_empty());
    }

    #[test]
    fn responses_are_recognized() {
        let text = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h\r\n\r\n";
        assert_eq!(
            parse(text.as_bytes(), &Limits::default()),
            Ok(Message::Response(180))
        );
        assert_eq!(error("SIP/2.0 18 x\r\n\r\n"), ParseError::StartLine);
        assert_eq!(error("SIP/2.0 1800 x\r\n\r\n"), ParseError::StartLine);
        assert_eq!(error("SIP/2.0 099 x\r\n\r\n"), ParseError::StartLine);
    }

    #[test]
    fn caps_are_enforced() {
        let limits = Limits {
            max_message_bytes: 100,
            max_headers: 3,
        };
        assert_eq!(
            parse(INVITE.as_bytes(), &limits),
            Err(ParseError::TooLarge(100))
        );
        let limits = Limits {
            max_message_bytes: 10_000,
            max_headers: 3,
        };
        assert_eq!(
            parse(INVITE.as_bytes(), &limits),
            Err(ParseError::TooManyHeaders(3))
        );
    }

    #[test]
    fn start_line_errors() {
        let rest = "\r\nVia: SIP/2.0/UDP h\r\n\r\n";
        for bad in [
            "INVITE  sip:a@b SIP/2.0",
            "INVITE sip:a@b  SIP/2.0",
            " INVITE sip:a@b SIP/2.0",
            "INVITE <sip:a@b> SIP/2.0",
            "INV(TE sip:a@b SIP/2.0",
            "INVITE sip:a@b",
            "INVITE nocolon SIP/2.0",
            "INVITE sip:a@b HTTP/1.1",
        ] {
            assert_eq!(
                error(&format!("{bad}{rest}")),
                ParseError::StartLine,
                "{bad}"
            );
        }
        assert_eq!(error("INVITE sip:a@b SIP/7.0\r\n\r\n"), ParseError::Version);
        assert_eq!(error(""), ParseError::Incomplete);
        assert_eq!(
            error("INVITE sip:a@b SIP/2.0\r\nVia: x\r\n"),
            ParseError::Incomplete
        );
    }

    fn replace(from: &str, to: &str) -> String {
        assert!(INVITE.contains(from));
        INVITE.replacen(from, to, 1)
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            error(&replace("Max-Forwards: 70", "Max Forwards: 70")),
            ParseError::HeaderLine(3)
        );
        assert_eq!(
            error(&replace("Max-Forwards: 70", "Max-Forwards 70")),
            ParseError::HeaderLine(3)
        );
        assert!(
            parse(replace("70", "7\u{ff}").as_bytes(), &Limits::default()).is_ok(),
            "U+00FF is UTF-8"
        );
        let mut bytes = INVITE.as_bytes().to_vec();
        let at = INVITE.find("70").unwrap();
        bytes[at] = 0xff;
        assert_eq!(
            parse(&bytes, &Limits::default()),
            Err(ParseError::HeaderLine(3))
        );
        assert_eq!(
            error("INVITE sip:a@b SIP/2.0\r\n folded: first\r\n\r\n"),
            ParseError::HeaderLine(1)
        );
    }

    #[test]
    fn required_and_single_headers() {
        assert_eq!(
            error(&replace("Call-ID: 1234@192.0.2.1\r\n", "")),
            ParseError::Missing("Call-ID")
        );
        assert_eq!(
            error(&replace("CSeq: 1 INVITE\r\n", "")),
            ParseError::Missing("CSeq")
        );
        assert_eq!(error(&replace("To:", "X-To:")), ParseError::Missing("To"));
        let via_less = INVITE
            .replacen("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n", "", 1)
            .replacen("v: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK0\r\n", "", 1);
        assert_eq!(error(&via_less), ParseError::Missing("Via"));
        assert_eq!(
            error(&replace("Call-ID: 1234", "i: 1\r\nCall-ID: 1234")),
            ParseError::BadHeader("Call-ID")
        );
        assert_eq!(
            error(&replace("To:", "t: <sip:b@c>\r\nTo:")),
            ParseError::BadHeader("To")
        );
        assert_eq!(
            error(&replace("CSeq: 1 INVITE", "CSeq: 1 ACK")),
            ParseError::BadHeader("CSeq")
        );
        assert_eq!(
            error(&replace("CSeq: 1 INVITE", "CSeq: INVITE")),
            ParseError::BadHeader("CSeq")
        );
        assert_eq!(
            error(&replace("CSeq: 1 INVITE", "CSeq: 2147483648 INVITE")),
            ParseError::BadHeader("CSeq")
        );
        assert_eq!(
            error(&replace("CSeq: 1 INVITE", "CSeq: -1 INVITE")),
            ParseError::BadHeader("CSeq")
        );
        assert_eq!(
            error(&replace("Content-Length: 4", "Content-Length: 4\r\nl: 4")),
            ParseError::BadHeader("Content-Length")
        );
    }

    #[test]
    fn content_length_rules() {
        // Larger than what follows.
        assert_eq!(
            error(&replace("Content-Length: 4", "Content-Length: 5")),
            ParseError::ContentLength
        );
        assert_eq!(
            error(&replace("Content-Length: 4", "Content-Length: four")),
            ParseError::ContentLength
        );
        assert_eq!(
            error(&replace("Content-Length: 4", "Content-Length: 99999999999")),
            ParseError::ContentLength
        );
        // Smaller: the rest is ignored (RFC 3261 §18.3).
        assert_eq!(request(&replace("Content-Length: 4", "l: 2")).body, b"v=");
        // Absent on a datagram: the rest.
        assert_eq!(
            request(&replace("Content-Length: 4\r\n", "")).body,
            b"v=0\n"
        );
    }

    #[test]
    fn cseq_reads_number_and_method() {
        assert_eq!(
            parse_cseq("2147483647 CANCEL"),
            Ok((2147483647, Method::Cancel))
        );
        assert_eq!(parse_cseq("0 FOO"), Ok((0, Method::Other("FOO".into()))));
        assert_eq!(parse_cseq("1  \t ACK"), Ok((1, Method::Ack)));
        for bad in ["1", "1 ", "x INVITE", "1 INV ITE", "", "12345678901 INVITE"] {
            assert_eq!(
                parse_cseq(bad),
                Err(ParseError::BadHeader("CSeq")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn compact_names() {
        for (short, long) in [
            ("i", "Call-ID"),
            ("m", "Contact"),
            ("e", "Content-Encoding"),
            ("l", "Content-Length"),
            ("c", "Content-Type"),
            ("f", "From"),
            ("s", "Subject"),
            ("k", "Supported"),
            ("t", "To"),
            ("v", "Via"),
            ("y", "Identity"),
            ("o", "Event"),
            ("r", "Refer-To"),
            ("b", "Referred-By"),
            ("x", "Session-Expires"),
            ("u", "Allow-Events"),
            ("a", "Accept-Contact"),
            ("j", "Reject-Contact"),
            ("d", "Request-Disposition"),
        ] {
            assert!(same_header_name(short, long), "{short}");
            assert!(same_header_name(
                &short.to_uppercase(),
                &long.to_lowercase()
            ));
            assert!(same_header_name(long, short));
        }
        assert!(same_header_name("call-id", "CALL-ID"));
        assert!(!same_header_name("q", "Via"));
        assert!(!same_header_name("To", "From"));
        assert!(!same_header_name("Via", "Vias"));
    }

    #[test]
    fn response_copies_what_it_must() {
        let r = request(INVITE);
        let response = Response::to(&r, 302, "Moved Temporarily", "xyz")
            .with_header("Contact", "<sip:+12155551212@example.com>");
        let names: Vec<&str> = response.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            ["Via", "Via", "From", "To", "Call-ID", "CSeq", "Contact"]
        );
        assert_eq!(
            response.headers[1].value,
            "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK0"
        );
        assert_eq!(
            response.header("to"),
            Some("<sip:+12155551212@example.com;user=phone>;tag=xyz")
        );
        assert_eq!(response.header("from"), r.header("from"));
        let wire = String::from_utf8(response.to_bytes()).unwrap();
        assert!(wire.starts_with(
            "SIP/2.0 302 Moved Temporarily\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n"
        ));
        assert!(
            wire.ends_with("Contact: <sip:+12155551212@example.com>\r\nContent-Length: 0\r\n\r\n")
        );
    }

    #[test]
    fn an_existing_to_tag_is_kept() {
        for to in [
            "<sip:a@b>;tag=1",
            "<sip:a@b;tag=no>;TAG=1",
            "sip:a@b;tag=1",
            "\"x>\" <sip:a@b> ; tag = 1",
        ] {
            let text = replace(
                "To: <sip:+12155551212@example.com;user=phone>",
                &format!("To: {to}"),
            );
            let response = Response::to(&request(&text), 400, "Bad Request", "new");
            assert_eq!(response.header("To"), Some(to), "{to}");
        }
        let text = replace(
            "To: <sip:+12155551212@example.com;user=phone>",
            "To: <sip:a@b;tag=no>",
        );
        let response = Response::to(&request(&text), 400, "Bad Request", "new");
        assert_eq!(response.header("To"), Some("<sip:a@b;tag=no>;tag=new"));
    }

    #[test]
    fn to_bytes_round_trips_and_cannot_be_injected() {
        let response = Response::to(&request(INVITE), 403, "Forbidden\r\nX: y", "t")
            .with_header("Reason", "SIP;cause=403;text=\"POL4111\"")
            .with_header("Content-Length", "99")
            .with_body("text/plain", b"hello".to_vec());
        let bytes = response.to_bytes();
        let back = parse_response(&bytes, &Limits::default()).unwrap();
        assert_eq!(back.code, 403);
        assert_eq!(back.reason, "Forbidden  X: y");
        assert_eq!(back.body, b"hello");
        let mut expected = response.clone();
        expected.reason = back.reason.clone();
        expected.headers.retain(|h| h.name != "Content-Length");
        assert_eq!(back, expected);
        assert_eq!(
            parse_response(INVITE.as_bytes(), &Limits::default()),
            Err(ParseError::StartLine)
        );
    }

    #[test]
    fn error_responses_need_a_usable_via() {
        let limits = Limits::default();
        let broken = replace("CSeq: 1 INVITE", "CSeq: x INVITE");
        assert_eq!(error(&broken), ParseError::BadHeader("CSeq"));
        let partial = parse_for_error_response(broken.as_bytes(), &limits).unwrap();
        assert_eq!(partial.method, Method::Invite);
        let response = Response::to(&partial, 400, "Bad Request", "t");
        let names: Vec<&str> = response.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["Via", "Via", "From", "To", "Call-ID", "CSeq"]);
        // The start line itself is broken, but the method and Via are readable.
        let broken = replace("INVITE sip:", "INVITE  sip:");
        assert!(parse_for_error_response(broken.as_bytes(), &limits).is_some());
        // No usable Via: dropped.
        let broken = replace(
            "Via: SIP/2.0/UDP 192.0.2.1:5060",
            "Via: SIP/2.0/UDP 192.0.2.1:99999",
        );
        assert!(parse_for_error_response(broken.as_bytes(), &limits).is_none());
        // An ACK is never answered, nor a response, nor garbage.
        let ack = replace("INVITE sip:", "ACK sip:");
        assert!(parse_for_error_response(ack.as_bytes(), &limits).is_none());
        assert!(
            parse_for_error_response(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\n\r\n", &limits)
                .is_none()
        );
        assert!(parse_for_error_response(b"\x00\x01", &limits).is_none());
    }

    #[test]
    fn status_of_errors() {
        assert_eq!(ParseError::TooLarge(1).status().0, 513);
        assert_eq!(ParseError::Version.status().0, 505);
        assert_eq!(ParseError::Missing("To").status(), (400, "Bad Request"));
    }

    #[test]
    fn framing_over_a_stream() {
        let limits = Limits::default();
        let bytes = INVITE.as_bytes();
        assert_eq!(frame_length(bytes, &limits), Ok(Some(bytes.len())));
        let mut two = b"\r\n\r\n".to_vec();
        two.extend_from_slice(bytes);
        two.extend_from_slice(bytes);
        assert_eq!(frame_length(&two, &limits), Ok(Some(bytes.len() + 4)));
        for cut in 0..bytes.len() {
            assert_eq!(frame_length(&bytes[..cut], &limits), Ok(None), "{cut}");
        }
        assert_eq!(frame_length(b"\r\n\r\n", &limits), Ok(Some(4)));
        assert!(is_keepalive(b"\r\n\r\n"));
        assert!(!is_keepalive(b""));
        let missing = replace("Content-Length: 4\r\n", "");
        assert_eq!(
            frame_length(missing.as_bytes(), &limits),
            Err(ParseError::Missing("Content-Length"))
        );
        let bad = replace("Content-Length: 4", "l: x");
        assert_eq!(
            frame_length(bad.as_bytes(), &limits),
            Err(ParseError::ContentLength)
        );
        let small = Limits {
            max_message_bytes: 64,
            max_headers: 64,
        };
        assert_eq!(
            frame_length(&bytes[..70], &small),
            Err(ParseError::TooLarge(64))
        );
        let few = Limits {
            max_message_bytes: 10_000,
            max_headers: 2,
        };
        assert_eq!(
            frame_length(&bytes[..200], &few),
            Err(ParseError::TooManyHeaders(2))
        );
        let huge = replace("Content-Length: 4", "Content-Length: 20000");
        assert_eq!(
            frame_length(huge.as_bytes(), &limits),
            Err(ParseError::TooLarge(16384))
        );
    }
}
