//! GraphQL answers written as JSON: byte for byte what `serde_json` writes, without going
//! through serde's serializer for every value.
//!
//! A dashboard answer is some 1,700 values; through serde each is a trait call, a key through
//! the serializer's map state, a string escaped byte by byte, into a buffer that starts at 128
//! bytes and doubles — a seventh of the server's instructions for the benchmark's W1 after
//! its fields were answered plainly (BENCHMARKS.md). Here values are written by one match,
//! and a string is scanned eight bytes at a time for the three kinds of byte JSON escapes, then
//! copied whole when it has none (nearly always).
//! Numbers, bytes, errors and extensions (rare, small) still go through `serde_json`.
//!
//! Plain answers ([`crate::plain`]) are written as JSON text while they are computed and travel
//! through async-graphql as a *raw value*: async-graphql's own convention (its `raw_value`
//! feature), an object whose one key is [`RAW_VALUE_TOKEN`] and whose value is the text. serde
//! writes such an object as its text (so every other way out of the schema gives the same JSON);
//! [`to_json`] copies it.

use async_graphql::indexmap::IndexMap;
use async_graphql::{Name, Response, Value};
pub use async_graphql_value::RAW_VALUE_TOKEN;

/// `response` as `serde_json::to_vec` writes it: `data`, then `extensions` and `errors` when
/// there are any.
pub fn to_json(response: &Response) -> Vec<u8> {
    // Sized for the answer up front: a dashboard's is one raw text of ~100 KB, which a
    // buffer grown by doubling would copy and leave behind in pieces several times.
    let mut out = String::with_capacity(estimated_len(&response.data) + 256);
    out.push_str("{\"data\":");
    write_value(&mut out, &response.data);
    if !response.extensions.is_empty() {
        out.push_str(",\"extensions\":");
        serde(&mut out, &response.extensions);
    }
    if !response.errors.is_empty() {
        out.push_str(",\"errors\":");
        serde(&mut out, &response.errors);
    }
    out.push('}');
    out.into_bytes()
}

/// About how long `value` is as JSON: its raw texts exactly, the rest roughly.
fn estimated_len(value: &Value) -> usize {
    match value {
        Value::List(items) => {
            2 + items
                .iter()
                .map(|item| 1 + estimated_len(item))
                .sum::<usize>()
        }
        Value::Object(fields) => match as_raw(fields) {
            Some(json) => json.len(),
            None => {
                2 + fields
                    .iter()
                    .map(|(key, item)| key.len() + 4 + estimated_len(item))
                    .sum::<usize>()
            }
        },
        Value::String(text) => text.len() + 2,
        Value::Enum(name) => name.len() + 2,
        _ => 8,
    }
}

/// A value that is the JSON text `json` (which must be one well-formed JSON value).
pub fn raw(json: String) -> Value {
    let mut object = IndexMap::with_capacity(1);
    object.insert(Name::new(RAW_VALUE_TOKEN), Value::String(json));
    Value::Object(object)
}

/// The text of a [`raw`] value.
fn as_raw(fields: &IndexMap<Name, Value>) -> Option<&str> {
    match fields.first() {
        Some((key, Value::String(json))) if fields.len() == 1 && key == RAW_VALUE_TOKEN => {
            Some(json)
        }
        _ => None,
    }
}

fn serde(out: &mut String, value: &impl serde::Serialize) {
    // Writing fails only for values serde_json cannot represent, which a GraphQL answer never
    // holds (its keys are strings); `null` keeps the JSON well-formed regardless.
    match serde_json::to_string(value) {
        Ok(json) => out.push_str(&json),
        Err(_) => out.push_str("null"),
    }
}

/// `value` as `serde_json` writes it.
pub fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Boolean(true) => out.push_str("true"),
        Value::Boolean(false) => out.push_str("false"),
        Value::String(text) => write_str(out, text),
        Value::Enum(name) => write_str(out, name),
        Value::Number(number) => serde(out, number),
        Value::Binary(_) => serde(out, value),
        Value::List(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            if let Some(json) = as_raw(fields) {
                out.push_str(json);
                return;
            }
            out.push('{');
            for (index, (key, item)) in fields.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_str(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// How `serde_json` escapes each byte: 0 not at all, `u` as `\u00XX`, else `\` and this byte.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes needs escaping: a control byte, `"` or `\` (exact: the
/// "has less than" and "has zero byte" tests never miss a byte, and a false alarm only sends
/// the eight bytes through the table).
fn needs_escape(word: u64) -> bool {
    let control = word.wrapping_sub(LOW_BITS * 0x20) & !word;
    let quote = word ^ (LOW_BITS * u64::from(b'"'));
    let backslash = word ^ (LOW_BITS * u64::from(b'\\'));
    let has_zero = |x: u64| x.wrapping_sub(LOW_BITS) & !x;
    (control | has_zero(quote) | has_zero(backslash)) & HIGH_BITS != 0
}

/// Whether any byte of `bytes` needs escaping, eight at a time (the last few padded with a
/// byte that never does).
fn needs_any_escape(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    if chunks
        .by_ref()
        .any(|chunk| needs_escape(u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]))))
    {
        return true;
    }
    let rest = chunks.remainder();
    let mut padded = [b'a'; 8];
    padded[..rest.len()].copy_from_slice(rest);
    !rest.is_empty() && needs_escape(u64::from_le_bytes(padded))
}

/// `"key":` for a GraphQL response key, which is a name (`[_A-Za-z][_0-9A-Za-z]*`, checked by
/// the parser) and so never needs escaping.
pub fn write_key(out: &mut String, key: &str) {
    debug_assert!(!needs_any_escape(key.as_bytes()), "{key}");
    out.reserve(key.len() + 3);
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
}

/// `text` as a JSON string, as `serde_json` writes it.
pub fn write_str(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('"');
    if needs_any_escape(text.as_bytes()) {
        write_escaped(out, text);
    } else {
        // Nearly every text of an answer: ids, names, dates, keys.
        out.push_str(text);
    }
    out.push('"');
}

/// `text` with every byte that needs it escaped as `serde_json` escapes it (all such bytes
/// are ASCII, so the text between them is whole characters).
fn write_escaped(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (at, &byte) in text.as_bytes().iter().enumerate() {
        let escape = ESCAPE[usize::from(byte)];
        if escape == 0 {
            continue;
        }
        out.push_str(&text[start..at]);
        out.push('\\');
        if escape == b'u' {
            out.push_str("u00");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        } else {
            out.push(char::from(escape));
        }
        start = at + 1;
    }
    out.push_str(&text[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::ServerError;
    use proptest::prelude::*;

    fn same_as_serde(response: &Response) {
        let expected = serde_json::to_vec(response).expect("serde_json writes it");
        assert_eq!(
            String::from_utf8_lossy(&to_json(response)),
            String::from_utf8_lossy(&expected)
        );
    }

    fn object(fields: Vec<(&str, Value)>) -> Value {
        Value::Object(
            fields
                .into_iter()
                .map(|(key, value)| (Name::new(key), value))
                .collect::<IndexMap<_, _>>(),
        )
    }

    #[test]
    fn every_kind_of_value_is_written_as_serde_json_writes_it() {
        let data = object(vec![
            ("null", Value::Null),
            ("yes", Value::Boolean(true)),
            ("no", Value::Boolean(false)),
            ("int", Value::from(-42)),
            ("big", Value::from(u64::MAX)),
            ("float", Value::from(1.5f64)),
            ("enum", Value::Enum(Name::new("ADMINISTRATIVE_REBUTTAL"))),
            ("bytes", Value::Binary(vec![0, 1, 255].into())),
            ("empty", Value::String(String::new())),
            (
                "escapes",
                Value::String("\"\\/\u{8}\u{c}\n\r\t\u{0}\u{1f}\u{7f}".into()),
            ),
            (
                "unicode",
                Value::String("Één café – 🙂 in Bloemendaal".into()),
            ),
            (
                "long",
                Value::String("a long text with a \"quote\" after twenty bytes\n".repeat(3)),
            ),
            ("key \"quoted\"", Value::List(vec![])),
            (
                "nested",
                Value::List(vec![
                    object(vec![("id", Value::String("01a22de9-67d8".into()))]),
                    object(vec![]),
                    Value::List(vec![Value::Null, Value::from(0)]),
                ]),
            ),
        ]);
        same_as_serde(&Response::new(data.clone()));
        same_as_serde(&Response::new(Value::Null));
        let mut with_errors = Response::new(data)
            .extension("tracing", Value::from(7))
            .extension("a\tb", Value::String("x".into()));
        with_errors.errors = vec![ServerError::new("not \"found\"", None)];
        same_as_serde(&with_errors);
        same_as_serde(&Response::from_errors(vec![ServerError::new(
            "refused", None,
        )]));
    }

    #[test]
    fn raw_values_are_written_as_their_text_as_serde_json_writes_them() {
        let text = r#"{"id":"a","kind":"PROPOSAL","n":[1,null]}"#;
        let data = object(vec![
            ("node", raw(text.to_owned())),
            (
                "list",
                Value::List(vec![raw("null".into()), raw("[]".into())]),
            ),
        ]);
        let response = Response::new(data);
        same_as_serde(&response);
        assert_eq!(
            String::from_utf8_lossy(&to_json(&response)),
            format!(r#"{{"data":{{"node":{text},"list":[null,[]]}}}}"#)
        );
        // An object with the token beside another key is an ordinary object.
        same_as_serde(&Response::new(object(vec![
            (RAW_VALUE_TOKEN, Value::String("1".into())),
            ("b", Value::Null),
        ])));
    }

    proptest! {
        #[test]
        fn any_text_is_escaped_as_serde_json_escapes_it(text in any::<String>(), key in "[a-z\"\\\\\\x00-\\x1f é]{0,40}") {
            let data = object(vec![(key.as_str(), Value::String(text.clone())), ("t", Value::Enum(Name::new(&text)))]);
            let response = Response::new(data);
            prop_assert_eq!(to_json(&response), serde_json::to_vec(&response).expect("writes"));
        }

        #[test]
        fn any_eight_bytes_are_flagged_exactly_when_one_needs_escaping(bytes in any::<[u8; 8]>()) {
            let expected = bytes.iter().any(|&b| ESCAPE[usize::from(b)] != 0);
            prop_assert_eq!(needs_escape(u64::from_le_bytes(bytes)), expected);
        }
    }
}
