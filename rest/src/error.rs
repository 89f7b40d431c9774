//! ATIS-1000082 request errors and their wire form.
//!
//! `{"requestError":{"serviceException"|"policyException":{"messageId","text","variables"}}}`,
//! `text` being the standard's template and `variables` filling its `%1`, `%2`.
//!
//! Every body is ASCII: the templates use straight quotes (`'%1'`) where ATIS-1000082 prints
//! curly ones, and a variable that carries a non-ASCII or control character from the request
//! (a telephone number, say) has it escaped as `\u{..}` ([`ascii`]): an SBC that logs these
//! texts or copies them into a SIP header need not decode UTF-8.

use hyper::StatusCode;
use serde_json::json;

/// A policy refusal a service defines (its id, HTTP status and text template).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyRefusal {
    /// `POLxxxx`.
    pub id: &'static str,
    /// The HTTP status.
    pub status: StatusCode,
    /// The text template (`%1` is filled from the response's extra variable).
    pub text: &'static str,
}

/// A request-level failure, mapped to one message id and HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// SVC4000.
    MissingBody,
    /// SVC4001: the member's name.
    MissingParameter(String),
    /// SVC4002: the Accept value.
    NotAcceptable(String),
    /// SVC4003.
    NotFound,
    /// SVC4004.
    UnsupportedMediaType,
    /// SVC4005: member name and reason.
    InvalidValue(String, String),
    /// SVC4006: the parser's message.
    Unparsable(String),
    /// SVC4006 with 413: the body is over the limit.
    TooLarge(usize),
    /// SVC4007.
    MissingContentLength,
    /// POL4050: the methods the path allows, for the response's `Allow` header.
    MethodNotAllowed(&'static str),
    /// POL5000.
    Internal,
    /// POL4030: the client is not allowed (this project's id).
    Unauthorized,
    /// POL4290: the client is over its rate limit (this project's id).
    RateLimited,
    /// A service-specific policy refusal.
    Policy(PolicyRefusal),
}

/// The request errors every ATIS-1000082 service sends (a service's own policy refusals
/// aside), as a counter key: a service that sends no policy refusal of its own counts its
/// errors by this enum, so none can be missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestErrorId {
    /// SVC4000.
    Svc4000,
    /// SVC4001.
    Svc4001,
    /// SVC4002.
    Svc4002,
    /// SVC4003.
    Svc4003,
    /// SVC4004.
    Svc4004,
    /// SVC4005.
    Svc4005,
    /// SVC4006.
    Svc4006,
    /// SVC4007.
    Svc4007,
    /// POL4050.
    Pol4050,
    /// POL5000.
    Pol5000,
    /// POL4030.
    Pol4030,
    /// POL4290.
    Pol4290,
}

impl crate::metrics::CounterKey for RequestErrorId {
    const ALL: &'static [Self] = &[
        Self::Svc4000,
        Self::Svc4001,
        Self::Svc4002,
        Self::Svc4003,
        Self::Svc4004,
        Self::Svc4005,
        Self::Svc4006,
        Self::Svc4007,
        Self::Pol4050,
        Self::Pol5000,
        Self::Pol4030,
        Self::Pol4290,
    ];

    fn index(self) -> usize {
        match self {
            Self::Svc4000 => 0,
            Self::Svc4001 => 1,
            Self::Svc4002 => 2,
            Self::Svc4003 => 3,
            Self::Svc4004 => 4,
            Self::Svc4005 => 5,
            Self::Svc4006 => 6,
            Self::Svc4007 => 7,
            Self::Pol4050 => 8,
            Self::Pol5000 => 9,
            Self::Pol4030 => 10,
            Self::Pol4290 => 11,
        }
    }

    fn labels(self) -> &'static str {
        match self {
            Self::Svc4000 => r#"message_id="SVC4000""#,
            Self::Svc4001 => r#"message_id="SVC4001""#,
            Self::Svc4002 => r#"message_id="SVC4002""#,
            Self::Svc4003 => r#"message_id="SVC4003""#,
            Self::Svc4004 => r#"message_id="SVC4004""#,
            Self::Svc4005 => r#"message_id="SVC4005""#,
            Self::Svc4006 => r#"message_id="SVC4006""#,
            Self::Svc4007 => r#"message_id="SVC4007""#,
            Self::Pol4050 => r#"message_id="POL4050""#,
            Self::Pol5000 => r#"message_id="POL5000""#,
            Self::Pol4030 => r#"message_id="POL4030""#,
            Self::Pol4290 => r#"message_id="POL4290""#,
        }
    }
}

impl ApiError {
    /// Its counter key, or `None` for a service's own policy refusal.
    pub fn request_error_id(&self) -> Option<RequestErrorId> {
        Some(match self {
            Self::MissingBody => RequestErrorId::Svc4000,
            Self::MissingParameter(_) => RequestErrorId::Svc4001,
            Self::NotAcceptable(_) => RequestErrorId::Svc4002,
            Self::NotFound => RequestErrorId::Svc4003,
            Self::UnsupportedMediaType => RequestErrorId::Svc4004,
            Self::InvalidValue(..) => RequestErrorId::Svc4005,
            Self::Unparsable(_) | Self::TooLarge(_) => RequestErrorId::Svc4006,
            Self::MissingContentLength => RequestErrorId::Svc4007,
            Self::MethodNotAllowed(_) => RequestErrorId::Pol4050,
            Self::Internal => RequestErrorId::Pol5000,
            Self::Unauthorized => RequestErrorId::Pol4030,
            Self::RateLimited => RequestErrorId::Pol4290,
            Self::Policy(_) => return None,
        })
    }

    /// The message id.
    pub fn message_id(&self) -> &'static str {
        match self {
            Self::MissingBody => "SVC4000",
            Self::MissingParameter(_) => "SVC4001",
            Self::NotAcceptable(_) => "SVC4002",
            Self::NotFound => "SVC4003",
            Self::UnsupportedMediaType => "SVC4004",
            Self::InvalidValue(..) => "SVC4005",
            Self::Unparsable(_) | Self::TooLarge(_) => "SVC4006",
            Self::MissingContentLength => "SVC4007",
            Self::MethodNotAllowed(_) => "POL4050",
            Self::Internal => "POL5000",
            Self::Unauthorized => "POL4030",
            Self::RateLimited => "POL4290",
            Self::Policy(refusal) => refusal.id,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingBody
            | Self::MissingParameter(_)
            | Self::InvalidValue(..)
            | Self::Unparsable(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MissingContentLength => StatusCode::LENGTH_REQUIRED,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unauthorized => StatusCode::FORBIDDEN,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Policy(refusal) => refusal.status,
        }
    }

    fn text_and_variables(&self) -> (&'static str, Vec<String>) {
        match self {
            Self::MissingBody => ("Missing request body", vec![]),
            Self::MissingParameter(name) => {
                ("Missing mandatory parameter '%1'", vec![name.clone()])
            }
            Self::NotAcceptable(accept) => (
                "Requested response body type '%1' is not supported",
                vec![accept.clone()],
            ),
            Self::NotFound => ("Requested resource was not found", vec![]),
            Self::UnsupportedMediaType => (
                "Unsupported request body type, expected '%1'",
                vec!["application/json".into()],
            ),
            Self::InvalidValue(name, reason) => (
                "Invalid '%1' parameter value: %2",
                vec![name.clone(), reason.clone()],
            ),
            Self::Unparsable(detail) => (
                "Failed to parse received message body: %1",
                vec![detail.clone()],
            ),
            Self::TooLarge(limit) => (
                "Failed to parse received message body: %1",
                vec![format!("body larger than {limit} bytes")],
            ),
            Self::MissingContentLength => ("Missing mandatory Content-Length header", vec![]),
            Self::MethodNotAllowed(_) => ("Method not allowed", vec![]),
            Self::Internal => ("Internal Server Error. Please try again later", vec![]),
            Self::Unauthorized => ("Client not authorized", vec![]),
            Self::RateLimited => (
                "Too many requests from this client, limit is %1 per second",
                vec![],
            ),
            Self::Policy(refusal) => (refusal.text, vec![]),
        }
    }

    /// The JSON error body, ASCII. `extra` fills `%1` when the error does not carry it (the
    /// calling number of a policy refusal, the rate limit).
    pub fn body(&self, extra: Option<&str>) -> Vec<u8> {
        let (text, mut variables) = self.text_and_variables();
        if variables.is_empty() && text.contains("%1") {
            variables.push(extra.unwrap_or_default().to_owned());
        }
        let variables: Vec<String> = variables
            .into_iter()
            .map(|v| ascii(&v).into_owned())
            .collect();
        let kind = if self.message_id().starts_with("SVC") {
            "serviceException"
        } else {
            "policyException"
        };
        json!({"requestError": {kind: {"messageId": self.message_id(), "text": text, "variables": variables}}})
            .to_string()
            .into_bytes()
    }
}

/// `text` with every character outside printable ASCII (space to `~`) written as Rust's
/// `\u{..}` escape, so that what a service returns is ASCII whatever the request carried.
pub fn ascii(text: &str) -> std::borrow::Cow<'_, str> {
    if text.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if (' '..='~').contains(&c) {
            out.push(c);
        } else {
            out.extend(c.escape_unicode());
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant, with a variable holding non-ASCII and control characters where the
    /// variant carries one.
    fn every_error() -> Vec<ApiError> {
        let odd = "1\u{e9}\u{2019}\n\u{7f}".to_owned();
        let all = vec![
            ApiError::MissingBody,
            ApiError::MissingParameter(odd.clone()),
            ApiError::NotAcceptable(odd.clone()),
            ApiError::NotFound,
            ApiError::UnsupportedMediaType,
            ApiError::InvalidValue(odd.clone(), odd.clone()),
            ApiError::Unparsable(odd),
            ApiError::TooLarge(1),
            ApiError::MissingContentLength,
            ApiError::MethodNotAllowed("POST"),
            ApiError::Internal,
            ApiError::Unauthorized,
            ApiError::RateLimited,
            ApiError::Policy(PolicyRefusal {
                id: "POL4999",
                status: StatusCode::FORBIDDEN,
                text: "Calling number '%1' is refused",
            }),
        ];
        for error in &all {
            // No wildcard: a new variant stops this from compiling until it is listed above.
            match error {
                ApiError::MissingBody
                | ApiError::MissingParameter(_)
                | ApiError::NotAcceptable(_)
                | ApiError::NotFound
                | ApiError::UnsupportedMediaType
                | ApiError::InvalidValue(..)
                | ApiError::Unparsable(_)
                | ApiError::TooLarge(_)
                | ApiError::MissingContentLength
                | ApiError::MethodNotAllowed(_)
                | ApiError::Internal
                | ApiError::Unauthorized
                | ApiError::RateLimited
                | ApiError::Policy(_) => {}
            }
        }
        all
    }

    #[test]
    fn every_error_body_is_ascii() {
        for error in every_error() {
            for extra in [None, Some("+1 215 555 \u{2013} 1212")] {
                let body = error.body(extra);
                assert!(
                    body.iter().all(|b| (b' '..=b'~').contains(b)),
                    "{error:?}: {}",
                    String::from_utf8_lossy(&body)
                );
                // And decoded, not only as bytes: no \u escape of JSON hides a non-ASCII text.
                let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let exception = json["requestError"]
                    .as_object()
                    .and_then(|o| o.values().next())
                    .cloned()
                    .unwrap_or_default();
                let text = exception["text"].as_str().unwrap_or_default();
                assert!(!text.is_empty() && text.is_ascii(), "{error:?}: {text}");
                assert!(!text.contains('\u{2018}') && !text.contains('\u{2019}'));
                for variable in exception["variables"].as_array().into_iter().flatten() {
                    let variable = variable.as_str().unwrap_or_default();
                    assert!(
                        variable.bytes().all(|b| (b' '..=b'~').contains(&b)),
                        "{error:?}: {variable}"
                    );
                }
            }
        }
    }

    #[test]
    fn templates_use_straight_quotes() {
        let body = ApiError::MissingParameter("origid".into()).body(None);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(
            json["requestError"]["serviceException"]["text"],
            "Missing mandatory parameter '%1'"
        );
        assert_eq!(
            json["requestError"]["serviceException"]["variables"][0],
            "origid"
        );
    }

    #[test]
    fn non_ascii_is_escaped_and_ascii_is_kept() {
        assert!(matches!(
            ascii("12155551212"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(ascii("a\u{e9}b\tc"), "a\\u{e9}b\\u{9}c");
    }
}
