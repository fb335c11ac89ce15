//! RFC 8785 JSON Canonicalization Scheme over `serde_json::Value`.
//!
//! Object members are sorted by their UTF-16 code units, strings use the minimal
//! escapes of ECMAScript's `JSON.stringify`, numbers are written as ECMAScript's
//! `Number.prototype.toString` does (via `ryu-js`). Integers outside ±2^53 are
//! refused rather than silently rounded.

use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::Value;

const MAX_SAFE: u64 = (1 << 53) - 1;

/// Canonical bytes of any serialisable value.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let v = serde_json::to_value(value)?;
    let mut out = Vec::with_capacity(256);
    write_value(&v, &mut out)?;
    Ok(out)
}

/// Canonical bytes of a JSON value.
pub fn value_to_vec(value: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out)?;
    Ok(out)
}

/// Canonical form of JSON text (parse, then canonicalise).
pub fn canonicalize_str(text: &str) -> Result<Vec<u8>> {
    let v: Value = serde_json::from_str(text)?;
    value_to_vec(&v)
}

fn write_value(v: &Value, out: &mut Vec<u8>) -> Result<()> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_value(val, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_number(n: &serde_json::Number, out: &mut Vec<u8>) -> Result<()> {
    if let Some(u) = n.as_u64() {
        if u > MAX_SAFE {
            return Err(Error::Canonical(format!(
                "integer {u} is outside the IEEE-754 safe range"
            )));
        }
        out.extend_from_slice(u.to_string().as_bytes());
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_SAFE {
            return Err(Error::Canonical(format!(
                "integer {i} is outside the IEEE-754 safe range"
            )));
        }
        out.extend_from_slice(i.to_string().as_bytes());
    } else {
        let f = n
            .as_f64()
            .ok_or_else(|| Error::Canonical(format!("number {n} is not representable")))?;
        if !f.is_finite() {
            return Err(Error::Canonical(
                "NaN and infinities have no JSON form".into(),
            ));
        }
        if f == 0.0 {
            out.push(b'0');
        } else {
            let mut buf = ryu_js::Buffer::new();
            out.extend_from_slice(buf.format_finite(f).as_bytes());
        }
    }
    Ok(())
}

/// Append `s` as a canonical JSON string.
pub(crate) fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x00..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        String::from_utf8(canonicalize_str(s).unwrap()).unwrap()
    }

    #[test]
    fn rfc8785_section_3_2_2_example() {
        // The example of RFC 8785 §3.2.2 (numbers, literals, string escapes).
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        expect_test::expect![[r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#]]
            .assert_eq(&canon(input));
    }

    #[test]
    fn rfc8785_sorting_by_utf16_code_units() {
        // RFC 8785 §3.2.3: sorting is by UTF-16 code units, not by code points.
        let input = r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#;
        let want = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(canon(input), want);
    }

    #[test]
    fn numbers_follow_ecmascript() {
        for (input, want) in [
            ("0", "0"),
            ("-0.0", "0"),
            ("1.0", "1"),
            ("100", "100"),
            ("-1.5", "-1.5"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("0.000001", "0.000001"),
            ("0.0000001", "1e-7"),
            ("9007199254740991", "9007199254740991"),
        ] {
            assert_eq!(canon(input), want, "input {input}");
        }
        assert!(canonicalize_str("9007199254740993").is_err());
    }
}
