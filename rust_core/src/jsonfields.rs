//! A fast reader for one flat JSON object per line, the shape of the
//! Pushshift dumps: it walks the top-level keys, hands the caller the raw
//! value of each, and skips everything else without building it (nested
//! objects and arrays are stepped over by their brackets, strings by a SIMD
//! search for the closing quote). It validates only what it reads: the
//! object's structure, and the values the caller asks to decode.
//!
//! On anything it does not expect (an escaped key, a duplicate wanted key,
//! odd bytes between tokens) it returns `None`, and the caller falls back to
//! a full `serde_json` parse, which either agrees or reports the error.

use std::borrow::Cow;

/// A top-level value as it sits in the line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Raw<'a> {
    /// The bytes between the quotes, and whether they hold a backslash.
    Str {
        inner: &'a [u8],
        escaped: bool,
    },
    /// A number's bytes (not yet checked against JSON's grammar).
    Num(&'a [u8]),
    Bool(bool),
    Null,
    /// An object or array, skipped.
    Nested,
}

#[cfg(target_arch = "x86_64")]
type Two = memchr::arch::x86_64::sse2::memchr::Two;
#[cfg(not(target_arch = "x86_64"))]
type Two = memchr::arch::all::memchr::Two;

/// The first `"` or `\` at or after `from`. SSE2 is part of every x86_64, so
/// this needs neither `unsafe` nor the runtime dispatch `memchr2` pays per call,
/// which matters on the short strings (keys, flags) that make up most fields.
#[inline(always)]
fn quote_or_backslash(b: &[u8], from: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    let two = Two::new(b'"', b'\\')?;
    #[cfg(not(target_arch = "x86_64"))]
    let two = Two::new(b'"', b'\\');
    two.find(b.get(from..)?).map(|k| from + k)
}

#[inline(always)]
fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// `b[i]` is an opening quote: one past the closing quote, and whether the
/// string holds an escape.
#[inline(always)]
fn string_end(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut j = i + 1;
    let mut escaped = false;
    loop {
        let k = quote_or_backslash(b, j)?;
        if b[k] == b'"' {
            return Some((k + 1, escaped));
        }
        escaped = true;
        j = k + 2;
    }
}

/// `b[i]` opens an object or array: one past its closing bracket.
fn nested_end(b: &[u8], i: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = i;
    while let Some(&c) = b.get(j) {
        match c {
            b'"' => {
                j = string_end(b, j)?.0;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            _ => {}
        }
        j += 1;
    }
    None
}

/// Walk the top-level object in `line` (surrounding whitespace allowed) and
/// call `each(key, value)` per member, in order; `each` returns `None` to
/// give up. `None` when the line is not the flat shape this reads.
pub fn for_each_field<'a>(
    line: &'a [u8],
    mut each: impl FnMut(&'a [u8], Raw<'a>) -> Option<()>,
) -> Option<()> {
    let b = line;
    let mut i = ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (ws(b, i + 1) == b.len()).then_some(());
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = quote_or_backslash(b, i + 1)?;
        if b[key_end] != b'"' {
            return None;
        }
        let key = &b[i + 1..key_end];
        i = ws(b, key_end + 1);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(b, i + 1);
        let (value, next) = match *b.get(i)? {
            b'"' => {
                let (end, escaped) = string_end(b, i)?;
                let inner = &b[i + 1..end - 1];
                (Raw::Str { inner, escaped }, end)
            }
            b'{' | b'[' => (Raw::Nested, nested_end(b, i)?),
            b'n' if b.get(i..i + 4) == Some(b"null") => (Raw::Null, i + 4),
            b't' if b.get(i..i + 4) == Some(b"true") => (Raw::Bool(true), i + 4),
            b'f' if b.get(i..i + 5) == Some(b"false") => (Raw::Bool(false), i + 5),
            b'-' | b'0'..=b'9' => {
                let mut j = i + 1;
                while let Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') = b.get(j) {
                    j += 1;
                }
                (Raw::Num(&b[i..j]), j)
            }
            _ => return None,
        };
        each(key, value)?;
        i = ws(b, next);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            Some(b'}') => return (ws(b, i + 1) == b.len()).then_some(()),
            _ => return None,
        }
    }
}

/// A string value decoded as `serde_json` would: `None` where it would reject
/// it (bad UTF-8, a raw control character, a bad escape).
pub fn decode_str<'a>(inner: &'a [u8], escaped: bool) -> Option<Cow<'a, str>> {
    if !escaped {
        if inner.iter().any(|&c| c < 0x20) {
            return None;
        }
        return std::str::from_utf8(inner).ok().map(Cow::Borrowed);
    }
    let mut quoted = Vec::with_capacity(inner.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(inner);
    quoted.push(b'"');
    serde_json::from_slice::<String>(&quoted)
        .ok()
        .map(Cow::Owned)
}

/// A number's bytes, if they follow JSON's grammar:
/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
pub fn is_json_number(n: &[u8]) -> bool {
    let digits = |s: &[u8], i: usize| {
        let mut j = i;
        while s.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        j
    };
    let mut i = usize::from(n.first() == Some(&b'-'));
    match n.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(n, i),
        _ => return false,
    }
    if n.get(i) == Some(&b'.') {
        let j = digits(n, i + 1);
        if j == i + 1 {
            return false;
        }
        i = j;
    }
    if let Some(b'e' | b'E') = n.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = n.get(i) {
            i += 1;
        }
        let j = digits(n, i);
        if j == i {
            return false;
        }
        i = j;
    }
    i == n.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> Option<Vec<(String, Raw<'_>)>> {
        let mut out = Vec::new();
        for_each_field(line.as_bytes(), |k, v| {
            out.push((String::from_utf8_lossy(k).into_owned(), v));
            Some(())
        })?;
        Some(out)
    }

    #[test]
    fn walks_top_level_members_and_skips_nested_ones() {
        let line = r#"{"a":1,"crosspost_parent_list":[{"subreddit":"x","t":"}]\"{"}],"b" : "q\"uote" , "c":null,"d":true,"e":{}}"#;
        let got = fields(line).expect("flat");
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "crosspost_parent_list", "b", "c", "d", "e"]);
        assert_eq!(got[0].1, Raw::Num(b"1"));
        assert_eq!(got[1].1, Raw::Nested);
        assert_eq!(
            got[2].1,
            Raw::Str {
                inner: br#"q\"uote"#,
                escaped: true
            }
        );
        assert_eq!((got[3].1, got[4].1), (Raw::Null, Raw::Bool(true)));
        assert_eq!(fields("  {}\n").expect("empty"), vec![]);
        // Nesting is counted, not recursed into: a hostile depth costs no stack.
        let deep = format!(
            "{{\"a\":{}{},\"b\":2}}",
            "[".repeat(200_000),
            "]".repeat(200_000)
        );
        let got = fields(&deep).expect("deep");
        assert_eq!((got[0].1, got[1].1), (Raw::Nested, Raw::Num(b"2")));
    }

    #[test]
    fn gives_up_on_what_it_does_not_read() {
        for line in [
            "",
            "[1]",
            r#"{"a":1"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":nul}"#,
            r#"{"a":1} x"#,
            r#"{"\u0061":1}"#,
            r#"{"a":[1,2}"#,
            r#"{"a":"open}"#,
            r#"{"a":]}"#,
        ] {
            assert!(fields(line).is_none(), "{line:?}");
        }
    }

    #[test]
    fn strings_and_numbers_decode_as_serde_json_would() {
        assert_eq!(decode_str(b"plain", false).as_deref(), Some("plain"));
        assert_eq!(
            decode_str(br"a\nb \u00e9 \ud83d\ude00", true).as_deref(),
            Some("a\nb \u{e9} \u{1f600}")
        );
        assert_eq!(decode_str(b"tab\there", false), None);
        assert_eq!(decode_str(br"bad \x", true), None);
        assert_eq!(decode_str(b"\xff", false), None);
        for ok in ["0", "-1", "12.5", "1e9", "1E+2", "-0.0e-3"] {
            assert!(is_json_number(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "-", "01", "1.", ".5", "1e", "1-2", "+1", "1e+"] {
            assert!(!is_json_number(bad.as_bytes()), "{bad}");
        }
    }
}
