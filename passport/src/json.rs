//! Canonical JSON output (RFC 8225 §9) and strict JSON input.
//!
//! Output: object members in lexicographic byte order at every level, no whitespace, strings
//! escaped as `serde_json` does (only `"`, `\` and control characters; other Unicode as UTF-8).
//! Keys are sorted here explicitly rather than by relying on `serde_json::Map` being a
//! `BTreeMap`, which another crate could change by enabling `preserve_order`.
//!
//! Input: an object in which a member name appears twice at any level is refused, so that this
//! crate and another implementation can never read different claims out of the same bytes.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{Part, TokenError};

/// Appends a JSON string literal.
pub(crate) fn write_str(out: &mut String, s: &str) {
    // Fast path for the common case: printable ASCII with nothing to escape.
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // serde_json cannot fail when writing a &str into a String.
        out.push_str(&Value::from(s).to_string());
    }
}

/// Appends a JSON value in canonical form.
pub(crate) fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => write_map(out, map),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::String(s) => write_str(out, s),
        // Null, booleans and numbers have a single compact form in serde_json.
        other => out.push_str(&other.to_string()),
    }
}

fn write_map(out: &mut String, map: &Map<String, Value>) {
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut obj = ObjectWriter::new(out);
    for (name, value) in members {
        obj.member(name, |out| write_value(out, value));
    }
    obj.finish();
}

/// Appends the JSON of one member's value.
pub(crate) type WriteValue<'a> = &'a dyn Fn(&mut String);

/// Writes an object whose members the caller supplies in sorted order.
pub(crate) struct ObjectWriter<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    pub(crate) fn new(out: &'a mut String) -> Self {
        out.push('{');
        Self { out, first: true }
    }

    /// Writes `"name":` then whatever `value` appends.
    pub(crate) fn member(&mut self, name: &str, value: impl FnOnce(&mut String)) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_str(self.out, name);
        self.out.push(':');
        value(self.out);
    }

    /// Writes the known members (sorted, from `known`) merged in order with `extra` members.
    pub(crate) fn members_merged(
        &mut self,
        known: &[(&'static str, WriteValue<'_>)],
        extra: &BTreeMap<String, Value>,
    ) {
        let mut extra = extra.iter().peekable();
        for (name, write) in known {
            while let Some((extra_name, value)) =
                extra.next_if(|(extra_name, _)| extra_name.as_str() < *name)
            {
                self.member(extra_name, |out| write_value(out, value));
            }
            self.member(name, |out| write(out));
        }
        for (extra_name, value) in extra {
            self.member(extra_name, |out| write_value(out, value));
        }
    }

    pub(crate) fn finish(self) {
        self.out.push('}');
    }
}

/// Parses a JSON object, refusing duplicate member names at any depth; the error is the
/// parser's message. For request bodies and other JSON that is not part of a token.
pub fn parse_strict_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<StrictValue>(bytes) {
        Ok(StrictValue(Value::Object(map))) => Ok(map),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses a JSON object, refusing duplicate member names at any depth.
pub(crate) fn parse_object(bytes: &[u8], part: Part) -> Result<Map<String, Value>, TokenError> {
    match serde_json::from_slice::<StrictValue>(bytes) {
        Ok(StrictValue(Value::Object(map))) => Ok(map),
        Ok(_) => Err(TokenError::Json {
            part,
            detail: "not a JSON object".into(),
        }),
        Err(e) => Err(TokenError::Json {
            part,
            detail: e.to_string(),
        }),
    }
}

/// A `serde_json::Value` whose objects had no duplicate member names.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            let StrictValue(value) = access.next_value()?;
            if map.contains_key(&name) {
                return Err(de::Error::custom(format_args!(
                    "duplicate member name {name:?}"
                )));
            }
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_output_sorts_recursively_without_whitespace() {
        let value: Value =
            serde_json::from_str(r#"{ "b": [ {"z":1, "a":"x\"y"} ], "a": null, "ä": true }"#)
                .unwrap_or_default();
        let mut out = String::new();
        write_value(&mut out, &value);
        assert_eq!(out, r#"{"a":null,"b":[{"a":"x\"y","z":1}],"ä":true}"#);
    }

    #[test]
    fn merged_members_interleave_in_order() {
        let mut extra = BTreeMap::new();
        extra.insert("aa".to_owned(), Value::from(1));
        extra.insert("m".to_owned(), Value::from(2));
        extra.insert("zz".to_owned(), Value::from(3));
        let mut out = String::new();
        let mut obj = ObjectWriter::new(&mut out);
        obj.members_merged(
            &[
                ("b", &|o: &mut String| o.push('0')),
                ("n", &|o: &mut String| o.push('0')),
            ],
            &extra,
        );
        obj.finish();
        assert_eq!(out, r#"{"aa":1,"b":0,"m":2,"n":0,"zz":3}"#);
    }

    #[test]
    fn duplicates_are_refused_at_any_depth() {
        assert!(parse_object(br#"{"a":1,"b":{"c":1}}"#, Part::Payload).is_ok());
        for bad in [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"a":{"c":1,"c":1}}"#,
            br#"[{"c":1,"c":2}]"#,
        ] {
            assert!(
                matches!(
                    parse_object(bad, Part::Payload),
                    Err(TokenError::Json {
                        part: Part::Payload,
                        ..
                    })
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            parse_object(b"[]", Part::Header),
            Err(TokenError::Json {
                part: Part::Header,
                ..
            })
        ));
    }
}
