//! Reading an ATIS-1000082 JSON request body: each problem is the standard's error naming the
//! member (`SVC4000` no body, `SVC4006` not JSON or a duplicate member, `SVC4001` missing,
//! `SVC4005` invalid). Numbers accept the characters SBCs send (`0-9 * # + . - ( )`) and are
//! canonicalized.

use passport::{NumberingPlan, Tn};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The most numbers accepted in one array.
pub const MAX_NUMBERS: usize = 64;

/// `SVC4005` for `name`.
pub fn invalid(name: &str, reason: impl Into<String>) -> ApiError {
    ApiError::InvalidValue(name.to_owned(), reason.into())
}

/// The body's top-level object's `top` member, which must be an object.
pub fn top_object(body: &[u8], top: &str) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MissingBody);
    }
    let mut map = passport::json::parse_strict_object(body).map_err(ApiError::Unparsable)?;
    match map.remove(top) {
        Some(Value::Object(inner)) => Ok(inner),
        Some(_) => Err(invalid(top, "not an object")),
        None => Err(ApiError::MissingParameter(top.to_owned())),
    }
}

/// A member that must be present (`path` names it in errors, e.g. `dest.tn`).
pub fn member<'a>(
    map: &'a Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<&'a Value, ApiError> {
    map.get(name)
        .ok_or_else(|| ApiError::MissingParameter(path.to_owned()))
}

/// A member that must be an object.
pub fn object<'a>(
    map: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a Map<String, Value>, ApiError> {
    match member(map, name, name)? {
        Value::Object(inner) => Ok(inner),
        _ => Err(invalid(name, "not an object")),
    }
}

/// A member that must be a positive integer.
pub fn positive_integer(map: &Map<String, Value>, name: &str) -> Result<u64, ApiError> {
    match member(map, name, name)? {
        Value::Number(n) => n
            .as_u64()
            .filter(|v| *v > 0)
            .ok_or_else(|| invalid(name, "not a positive integer")),
        _ => Err(invalid(name, "not a positive integer")),
    }
}

/// A telephone number value, canonicalized.
pub fn tn(value: &Value, name: &str, plan: Option<NumberingPlan>) -> Result<Tn, ApiError> {
    let Value::String(text) = value else {
        return Err(invalid(name, "not a string"));
    };
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || b"*#+.-()".contains(&b))
    {
        return Err(invalid(
            name,
            format!(
                "{:?} has characters outside 0-9 * # + . - ( )",
                text.chars().take(40).collect::<String>()
            ),
        ));
    }
    Tn::canonicalize(text, plan).map_err(|e| invalid(name, e.to_string()))
}

/// `{"tn": "..."}` under `name`.
pub fn single_tn(
    map: &Map<String, Value>,
    name: &str,
    plan: Option<NumberingPlan>,
) -> Result<Tn, ApiError> {
    let path = format!("{name}.tn");
    tn(member(object(map, name)?, "tn", &path)?, &path, plan)
}

/// `{"tn": ["...", ...]}` under `name`: 1 to [`MAX_NUMBERS`] numbers.
pub fn tn_array(
    map: &Map<String, Value>,
    name: &str,
    plan: Option<NumberingPlan>,
) -> Result<Vec<Tn>, ApiError> {
    let path = format!("{name}.tn");
    let Value::Array(items) = member(object(map, name)?, "tn", &path)? else {
        return Err(invalid(&path, "not an array"));
    };
    if items.is_empty() {
        return Err(invalid(&path, "empty array"));
    }
    if items.len() > MAX_NUMBERS {
        return Err(invalid(&path, format!("more than {MAX_NUMBERS} numbers")));
    }
    items.iter().map(|v| tn(v, &path, plan)).collect()
}
