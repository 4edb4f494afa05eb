//! JSON text → OTLP `AnyValue`, streamed: a serde visitor that writes as it reads, in either
//! encoding (see `wire`), so a log record's fields never become a `serde_json::Value` tree.
//! Per-event trees made musl's allocator map and unmap memory constantly (`make bench`); this
//! allocates nothing but the occasional escaped key.
//!
//! Strings become `stringValue`, integers `intValue` (a decimal string in JSON: OTLP's mapping
//! of int64), other numbers `doubleValue`, objects `kvlistValue`, arrays `arrayValue`, null an
//! empty `AnyValue`.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};

use super::wire::{Field, Room, Writer, len_field, varint_len};
use crate::telemetry::record::Lenient;

pub const STRING_VALUE: Field = Field("stringValue", 1);
const BOOL_VALUE: Field = Field("boolValue", 2);
const INT_VALUE: Field = Field("intValue", 3);
const DOUBLE_VALUE: Field = Field("doubleValue", 4);
const ARRAY_VALUE: Field = Field("arrayValue", 5);
const KVLIST_VALUE: Field = Field("kvlistValue", 6);
/// `ArrayValue.values` and `KeyValueList.values`.
const VALUES: Field = Field("values", 1);
const KEY: Field = Field("key", 1);
const VALUE: Field = Field("value", 2);

/// Writes, for the JSON value it reads, the content of an `AnyValue` (its one set field), or
/// with a `key` a whole `KeyValue` item of the open `values` list: a scalar's in one go, its
/// lengths counted up front ([`Scalar`]), an object's or an array's through the content.
struct AnyValue<'k, 'w, 'a> {
    w: &'w mut Writer<'a>,
    key: Option<&'k str>,
}

impl<'k, 'w, 'a> AnyValue<'k, 'w, 'a> {
    fn content(w: &'w mut Writer<'a>) -> Self {
        AnyValue { w, key: None }
    }

    fn entry(key: &'k str, w: &'w mut Writer<'a>) -> Self {
        AnyValue { w, key: Some(key) }
    }

    fn scalar(self, value: Scalar) {
        match self.key {
            Some(key) => scalar_key_value(key, value, self.w),
            None => value.write(self.w),
        }
    }

    /// An object or an array, written by `f` as the content of an `AnyValue`.
    fn nested<R>(self, f: impl FnOnce(&mut Writer) -> R) -> R {
        match self.key {
            Some(key) => key_value(key, self.w, f),
            None => f(self.w),
        }
    }
}

/// A scalar `AnyValue`: its one set field, and that field's length in protobuf.
enum Scalar<'a> {
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(&'a str),
    Null,
}

impl Scalar<'_> {
    fn len(&self) -> usize {
        match self {
            Scalar::Bool(_) => 2,
            // A negative int64 is ten bytes, as `Writer::int64` writes it.
            Scalar::Int(n) => 1 + varint_len(*n as u64),
            Scalar::Double(_) => 9,
            Scalar::Str(text) => len_field(text.len()),
            Scalar::Null => 0,
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            Scalar::Bool(b) => w.boolean(BOOL_VALUE, *b),
            Scalar::Int(n) => w.int64(INT_VALUE, *n),
            Scalar::Double(x) => w.double(DOUBLE_VALUE, *x),
            Scalar::Str(text) => w.string(STRING_VALUE, text),
            Scalar::Null => {}
        }
    }
}

/// `field` as the `AnyValue` of `json`; invalid JSON is kept as a `stringValue` of its text.
pub fn write(field: Field, json: &str, w: &mut Writer) {
    let mark = w.mark();
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let read = w.message_in(field, Room::Record, |w| {
        AnyValue::content(w).deserialize(&mut deserializer)
    });
    if read.is_err() {
        w.reset(mark);
        string_value(field, json, w);
    }
}

/// `field` as an `AnyValue` holding the string `text`.
pub fn string_value(field: Field, text: &str, w: &mut Writer) {
    w.message(field, |w| w.string(STRING_VALUE, text));
}

/// An element of a repeated `KeyValue` field: `key` and the value `value` writes, which
/// writes the content of an `AnyValue`.
pub fn key_value<R>(key: &str, w: &mut Writer, value: impl FnOnce(&mut Writer) -> R) -> R {
    w.item(|w| {
        w.string(KEY, key);
        w.message(VALUE, value)
    })
}

/// An element of a repeated `KeyValue` field whose value is a scalar: both lengths are
/// known, so nothing is patched.
fn scalar_key_value(key: &str, value: Scalar, w: &mut Writer) {
    let len = value.len();
    w.item_exact(len_field(key.len()) + len_field(len), |w| {
        w.string(KEY, key);
        w.message_exact(VALUE, len, |w| value.write(w));
    });
}

/// A string attribute.
pub fn string_attribute(key: &str, text: &str, w: &mut Writer) {
    scalar_key_value(key, Scalar::Str(text), w);
}

/// An integer attribute.
pub fn int_attribute(key: &str, n: i64, w: &mut Writer) {
    scalar_key_value(key, Scalar::Int(n), w);
}

/// A boolean attribute.
pub fn bool_attribute(key: &str, b: bool, w: &mut Writer) {
    scalar_key_value(key, Scalar::Bool(b), w);
}

/// A JSON value as an attribute.
pub fn json_attribute(key: &str, json: &str, w: &mut Writer) {
    let mark = w.mark();
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let read = AnyValue::entry(key, w).deserialize(&mut deserializer);
    if read.is_err() {
        w.reset(mark);
        string_attribute(key, json, w);
    }
}

impl<'de> DeserializeSeed<'de> for AnyValue<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnyValue<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: Error>(self, v: bool) -> Result<(), E> {
        self.scalar(Scalar::Bool(v));
        Ok(())
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<(), E> {
        self.scalar(Scalar::Int(v));
        Ok(())
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<(), E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => self.visit_f64(v as f64),
        }
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<(), E> {
        self.scalar(Scalar::Double(v));
        Ok(())
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<(), E> {
        self.scalar(Scalar::Str(v));
        Ok(())
    }

    fn visit_unit<E: Error>(self) -> Result<(), E> {
        self.scalar(Scalar::Null);
        Ok(())
    }

    fn visit_none<E: Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.nested(|w| {
            w.message_in(ARRAY_VALUE, Room::Record, |w| {
                w.list(VALUES, |w| {
                    while seq.next_element_seed(Element(&mut *w))?.is_some() {}
                    Ok(())
                })
            })
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.nested(|w| {
            w.message_in(KVLIST_VALUE, Room::Record, |w| {
                w.list(VALUES, |w| {
                    while let Some(key) = map.next_key_seed(Key)? {
                        map.next_value_seed(AnyValue::entry(&key, w))?;
                    }
                    Ok(())
                })
            })
        })
    }
}

/// An object's key, borrowed from the JSON text unless it has escapes (serde's own `Cow`
/// always allocates, and that was a `malloc` and a `free` for every key of every record).
pub struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        <Lenient<Cow<str>>>::deserialize(deserializer)?
            .0
            .ok_or_else(|| D::Error::custom("a key that is not a string"))
    }
}

/// An array element: an `AnyValue` item of the open `values` list.
struct Element<'w, 'a>(&'w mut Writer<'a>);

impl<'de> DeserializeSeed<'de> for Element<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.0
            .item(|w| AnyValue::content(w).deserialize(deserializer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::otlp::wire::{Encoding, State};
    use serde_json::Value;

    const BODY: Field = Field("body", 5);

    #[test]
    fn scalar_key_values_have_the_lengths_the_patched_path_gives() {
        const ITEMS: Field = Field("items", 9);
        type Writes<'f> = &'f dyn Fn(&mut Writer);
        let in_protobuf = |f: Writes| {
            let mut out = Vec::new();
            let mut state = State::new(Encoding::Protobuf);
            let mut w = state.on(&mut out);
            w.begin();
            w.list(ITEMS, |w| f(w));
            w.end();
            out
        };
        let long = "z".repeat(200);
        let cases: [(&str, Writes); 7] = [
            ("short", &|w| w.string(STRING_VALUE, "v")),
            ("long", &|w| w.string(STRING_VALUE, &long)),
            ("int", &|w| w.int64(INT_VALUE, 300)),
            ("negative", &|w| w.int64(INT_VALUE, -7)),
            ("flag", &|w| w.boolean(BOOL_VALUE, true)),
            ("x", &|w| w.double(DOUBLE_VALUE, 0.25)),
            ("null", &|_| {}),
        ];
        let exact: [Writes; 7] = [
            &|w| string_attribute("short", "v", w),
            &|w| string_attribute("long", &long, w),
            &|w| int_attribute("int", 300, w),
            &|w| int_attribute("negative", -7, w),
            &|w| bool_attribute("flag", true, w),
            &|w| scalar_key_value("x", Scalar::Double(0.25), w),
            &|w| scalar_key_value("null", Scalar::Null, w),
        ];
        for ((key, value), exact) in cases.iter().zip(exact) {
            let patched = in_protobuf(&|w| key_value(key, w, |w| value(w)));
            assert_eq!(in_protobuf(exact), patched, "{key}");
        }
    }

    fn any(json: &str) -> Value {
        let mut out = Vec::new();
        let mut state = State::new(Encoding::Json);
        let mut w = state.on(&mut out);
        w.begin();
        write(BODY, json, &mut w);
        w.end();
        let v: Value = serde_json::from_slice(&out).unwrap();
        v["body"].clone()
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
        assert_eq!(any("[1,{"), serde_json::json!({"stringValue": "[1,{"}));
    }

    #[test]
    fn protobuf_any_values_are_the_wire_format() {
        let mut out = Vec::new();
        let mut state = State::new(Encoding::Protobuf);
        let mut w = state.on(&mut out);
        w.begin();
        write(BODY, r#"{"a":[true]}"#, &mut w);
        w.end();
        // body{kvlist{values{key "a", value{array{values{bool true}}}}}}
        let expected = [
            0x2a, 15, 0x32, 13, 0x0a, 11, 0x0a, 1, b'a', 0x12, 6, 0x2a, 4, 0x0a, 2, 0x10, 1,
        ];
        assert_eq!(out, expected);
    }
}
