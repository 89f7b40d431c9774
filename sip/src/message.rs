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
/// [`ParseError::answerable`].
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
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Message, ParseError> {
    let _ = (bytes, limits);
    Err(ParseError::Incomplete)
}

/// For TCP framing: the length of the first whole message at the start of `buffer` (headers,
/// the empty line and `Content-Length` bytes of body), `Ok(None)` while more bytes are needed,
/// an error when the headers are over the caps or `Content-Length` is missing or bad (a stream
/// transport requires it, RFC 3261 §18.3). Leading CRLF keep-alives (RFC 5626) are counted
/// in the length of the message they precede; a buffer of only CRLFs gives `Ok(Some(n))` with
/// nothing to parse (see [`is_keepalive`]).
pub fn frame_length(buffer: &[u8], limits: &Limits) -> Result<Option<usize>, ParseError> {
    let _ = (buffer, limits);
    Ok(None)
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
    pub fn cseq(&self) -> Result<(u32, Method), ParseError> {
        Err(ParseError::Missing("CSeq"))
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Result<&str, ParseError> {
        self.header("Call-ID").ok_or(ParseError::Missing("Call-ID"))
    }
}

/// Whether two header names name the same header (case-insensitive, compact forms of RFC 3261
/// §7.3.3 and RFC 8224's `y` mapped to their long names).
pub fn same_header_name(a: &str, b: &str) -> bool {
    let _ = (a, b);
    false
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
    pub fn to(request: &Request, code: u16, reason: &str, to_tag: &str) -> Self {
        let _ = (request, to_tag);
        Self {
            code,
            reason: reason.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
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
    pub fn to_bytes(&self) -> Vec<u8> {
        Vec::new()
    }
}
