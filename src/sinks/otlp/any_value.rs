//! JSON text → OTLP `AnyValue` JSON, streamed: a serde visitor that writes as it reads, so a
//! log record's fields never become a `serde_json::Value` tree. Per-event trees made musl's
//! allocator map and unmap memory constantly (`make bench`); this allocates nothing but the
//! occasional escaped key.
//!
//! Strings become `stringValue`, integers `intValue` (a decimal string: OTLP's JSON mapping of
//! int64), other numbers `doubleValue`, objects `kvlistValue`, arrays `arrayValue`, null an
//! empty `AnyValue`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};

/// Writes the `AnyValue` of the JSON value it deserializes into `out`.
pub struct AnyValue<'o>(pub &'o mut Vec<u8>);

/// Transcodes `json` into `out`; on invalid input writes it as a `stringValue` instead.
pub fn write(json: &str, out: &mut Vec<u8>) {
    let start = out.len();
    let mut deserializer = serde_json::Deserializer::from_str(json);
    if AnyValue(out).deserialize(&mut deserializer).is_err() {
        out.truncate(start);
        string_value(json, out);
    }
}

/// `{"stringValue":"<text>"}`.
pub fn string_value(text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"stringValue\":");
    quoted(text, out);
    out.push(b'}');
}

/// `text` as a JSON string literal.
pub fn quoted(text: &str, out: &mut Vec<u8>) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

impl<'de> DeserializeSeed<'de> for AnyValue<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnyValue<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: Error>(self, v: bool) -> Result<(), E> {
        self.0.extend_from_slice(if v {
            b"{\"boolValue\":true}"
        } else {
            b"{\"boolValue\":false}"
        });
        Ok(())
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<(), E> {
        self.0
            .extend_from_slice(format!("{{\"intValue\":\"{v}\"}}").as_bytes());
        Ok(())
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<(), E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => self.visit_f64(v as f64),
        }
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<(), E> {
        self.0.extend_from_slice(b"{\"doubleValue\":");
        let _ = serde_json::to_writer(&mut *self.0, &v);
        self.0.push(b'}');
        Ok(())
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<(), E> {
        string_value(v, self.0);
        Ok(())
    }

    fn visit_unit<E: Error>(self) -> Result<(), E> {
        self.0.extend_from_slice(b"{}");
        Ok(())
    }

    fn visit_none<E: Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.extend_from_slice(b"{\"arrayValue\":{\"values\":[");
        let mut first = true;
        while seq
            .next_element_seed(Element {
                out: &mut *self.0,
                first: &mut first,
            })?
            .is_some()
        {}
        self.0.extend_from_slice(b"]}}");
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.extend_from_slice(b"{\"kvlistValue\":{\"values\":[");
        let mut first = true;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if !first {
                self.0.push(b',');
            }
            first = false;
            key_value_open(&key, self.0);
            map.next_value_seed(AnyValue(&mut *self.0))?;
            self.0.push(b'}');
        }
        self.0.extend_from_slice(b"]}}");
        Ok(())
    }
}

/// Writes `{"key":"<key>","value":` (the caller writes the value and the closing brace).
pub fn key_value_open(key: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"key\":");
    quoted(key, out);
    out.extend_from_slice(b",\"value\":");
}

/// An array element: writes the separating comma itself, once it knows there is an element.
struct Element<'o, 'f> {
    out: &'o mut Vec<u8>,
    first: &'f mut bool,
}

impl<'de> DeserializeSeed<'de> for Element<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if !*self.first {
            self.out.push(b',');
        }
        *self.first = false;
        AnyValue(self.out).deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn any(json: &str) -> Value {
        let mut out = Vec::new();
        write(json, &mut out);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn every_json_type_maps_to_its_any_value() {
        let cases = [
            (r#""x\ty""#, r#"{"stringValue":"x\ty"}"#),
            ("7", r#"{"intValue":"7"}"#),
            ("-7", r#"{"intValue":"-7"}"#),
            ("1.5", r#"{"doubleValue":1.5}"#),
            (
                "18446744073709551615",
                r#"{"doubleValue":1.8446744073709552e19}"#,
            ),
            ("true", r#"{"boolValue":true}"#),
            ("null", "{}"),
            (
                "[1,\"a\",[]]",
                r#"{"arrayValue":{"values":[{"intValue":"1"},{"stringValue":"a"},{"arrayValue":{"values":[]}}]}}"#,
            ),
            (
                r#"{"k\"":{"n":null}}"#,
                r#"{"kvlistValue":{"values":[{"key":"k\"","value":{"kvlistValue":{"values":[{"key":"n","value":{}}]}}}]}}"#,
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(
                any(json),
                serde_json::from_str::<Value>(expected).unwrap(),
                "{json}"
            );
        }
    }

    #[test]
    fn invalid_input_is_kept_as_text() {
        assert_eq!(any("{oops"), serde_json::json!({"stringValue": "{oops"}));
    }
}
