//! A GraphQL answer written as JSON: byte for byte what `serde_json` writes for an
//! `async_graphql::Response`, without going through serde's serializer for every value.
//!
//! A dashboard answer is some 1,700 values; through serde each is a trait call, a key through
//! the serializer's map state, a string escaped byte by byte, into a buffer that starts at 128
//! bytes and doubles — a seventh of the server's instructions for the benchmark's W1 after
//! its fields were answered plainly (BENCHMARKS.md). Here values are written by one match,
//! and a string is scanned eight bytes at a time for the three kinds of byte JSON escapes, then
//! copied whole when it has none (nearly always).
//! Numbers, bytes, errors and extensions (rare, small) still go through `serde_json`.
//! (async-graphql-value's `raw_value` feature, which writes some objects as raw text, is off.)

use async_graphql::{Response, Value};

/// `response` as `serde_json::to_vec` writes it: `data`, then `extensions` and `errors` when
/// there are any.
pub fn to_json(response: &Response) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"data\":");
    write_value(&mut out, &response.data);
    if !response.extensions.is_empty() {
        out.extend_from_slice(b",\"extensions\":");
        serde(&mut out, &response.extensions);
    }
    if !response.errors.is_empty() {
        out.extend_from_slice(b",\"errors\":");
        serde(&mut out, &response.errors);
    }
    out.push(b'}');
    out
}

fn serde(out: &mut Vec<u8>, value: &impl serde::Serialize) {
    // Writing into a Vec fails only for values serde_json cannot represent, which a GraphQL
    // answer never holds (its keys are strings); `null` keeps the JSON well-formed regardless.
    let start = out.len();
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"null");
    }
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Boolean(true) => out.extend_from_slice(b"true"),
        Value::Boolean(false) => out.extend_from_slice(b"false"),
        Value::String(text) => write_str(out, text),
        Value::Enum(name) => write_str(out, name),
        Value::Number(number) => serde(out, number),
        Value::Binary(_) => serde(out, value),
        Value::List(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(fields) => {
            out.push(b'{');
            for (index, (key, item)) in fields.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write_value(out, item);
            }
            out.push(b'}');
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

fn write_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if needs_any_escape(bytes) {
        write_escaped(out, bytes);
    } else {
        // Nearly every text of an answer: ids, names, dates, keys.
        out.extend_from_slice(bytes);
    }
    out.push(b'"');
}

/// `bytes` with every byte that needs it escaped as `serde_json` escapes it.
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let escape = ESCAPE[usize::from(byte)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..at]);
        if escape == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0x0f)]);
        } else {
            out.push(b'\\');
            out.push(escape);
        }
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::indexmap::IndexMap;
    use async_graphql::{Name, ServerError};
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
