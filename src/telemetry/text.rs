//! JSON text turned into output bytes without building a tree: used per event on the hot path.
//!
//! `compact_into` removes insignificant whitespace, so an event keeps its key order and number
//! spelling ("exactly as received") yet fits on one line. `unescape_into` writes a JSON string's
//! contents, so a `function` line is printed as the function wrote it.

/// Appends `json` with all whitespace outside strings removed, copying runs rather than bytes.
pub fn compact_into(json: &str, out: &mut Vec<u8>) {
    let bytes = json.as_bytes();
    out.reserve(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        let run = rest
            .iter()
            .position(|&b| matches!(b, b' ' | b'\n' | b'\r' | b'\t' | b'"'))
            .unwrap_or(rest.len());
        out.extend_from_slice(rest.get(..run).unwrap_or_default());
        rest = rest.get(run..).unwrap_or_default();
        match rest.first() {
            Some(b'"') => {
                let end = string_end(rest);
                out.extend_from_slice(rest.get(..end).unwrap_or_default());
                rest = rest.get(end..).unwrap_or_default();
            }
            Some(_) => rest = rest.get(1..).unwrap_or_default(),
            None => {}
        }
    }
}

/// Length of the string literal at the start of `s` (which starts with `"`), quotes included.
pub fn string_end(s: &[u8]) -> usize {
    let mut i = 1;
    while let Some(offset) = s
        .get(i..)
        .and_then(|r| r.iter().position(|&b| b == b'"' || b == b'\\'))
    {
        i += offset;
        if s.get(i) == Some(&b'"') {
            return i + 1;
        }
        i += 2;
    }
    s.len()
}

/// Appends the contents of the JSON string literal `json` (with its quotes). Invalid escapes,
/// which a parsed batch cannot contain, are copied through as they are.
pub fn unescape_into(json: &str, out: &mut Vec<u8>) {
    let inner = json
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(json);
    let bytes = inner.as_bytes();
    let mut i = 0;
    while let Some(offset) = bytes
        .get(i..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\\'))
    {
        out.extend_from_slice(bytes.get(i..i + offset).unwrap_or_default());
        i += offset;
        let consumed = match bytes.get(i + 1) {
            Some(b'n') => push(out, b"\n"),
            Some(b't') => push(out, b"\t"),
            Some(b'r') => push(out, b"\r"),
            Some(b'b') => push(out, b"\x08"),
            Some(b'f') => push(out, b"\x0c"),
            Some(&c @ (b'"' | b'\\' | b'/')) => push(out, &[c]),
            Some(b'u') => unicode_escape(bytes.get(i..).unwrap_or_default(), out),
            _ => push(out, b"\\") - 1,
        };
        i += consumed;
    }
    out.extend_from_slice(bytes.get(i..).unwrap_or_default());
}

fn push(out: &mut Vec<u8>, bytes: &[u8]) -> usize {
    out.extend_from_slice(bytes);
    2
}

/// Decodes `\uXXXX` (and a following low surrogate); returns the bytes consumed.
fn unicode_escape(s: &[u8], out: &mut Vec<u8>) -> usize {
    let hex = |at: usize| {
        s.get(at..at + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
    };
    let Some(high) = hex(2) else {
        return push(out, b"\\") - 1;
    };
    let (code, consumed) = if (0xD800..0xDC00).contains(&high) {
        match (s.get(6..8), hex(8)) {
            (Some(b"\\u"), Some(low)) if (0xDC00..0xE000).contains(&low) => {
                (0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00), 12)
            }
            _ => (0xFFFD, 6),
        }
    } else {
        (high, 6)
    };
    let c = char::from_u32(code).unwrap_or('\u{FFFD}');
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    consumed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unescaped(json: &str) -> String {
        let mut out = Vec::new();
        unescape_into(json, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn unescape_matches_serde_for_every_escape() {
        let cases = [
            r#""plain""#,
            r#""line\n""#,
            r#""tab\tcr\r\nquote\" back\\ slash\/ b\b f\f""#,
            r#""nul \u0000 e\u0301 snow \u2603 emoji \ud83d\ude00""#,
            r#""""#,
            r#""[INFO]\t2026-03-14T09:21:07.126Z\tid\tmsg\n""#,
        ];
        for json in cases {
            let expected: String = serde_json::from_str(json).unwrap();
            assert_eq!(unescaped(json), expected, "{json}");
        }
    }

    #[test]
    fn lone_surrogate_becomes_replacement_character() {
        assert_eq!(unescaped(r#""a\ud83dz""#), "a\u{FFFD}z");
    }

    #[test]
    fn compact_handles_escaped_quotes_and_backslashes_at_string_ends() {
        let mut out = Vec::new();
        compact_into(r#"{ "a" : "x\\" , "b" : "\"" , "c" : "un"#, &mut out);
        assert_eq!(out, br#"{"a":"x\\","b":"\"","c":"un"#);
    }

    #[test]
    fn compact_keeps_strings_and_order() {
        let mut out = Vec::new();
        compact_into(
            "{\n  \"b\" : [1, 2.0e1],\n  \"a\": \"x y \\\" z\"\n}",
            &mut out,
        );
        assert_eq!(out, br#"{"b":[1,2.0e1],"a":"x y \" z"}"#);
    }
}
