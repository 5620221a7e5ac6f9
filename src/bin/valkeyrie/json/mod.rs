//! The JSON the tool reads and writes: a small tree that keeps what `serde_json::Value`
//! loses (the exact text of every number, and object entries in document order, duplicates
//! included), plus the three syntaxes built on it: keys ([`key`]), values as plain JSON
//! ([`value`]) and the lossless dump encoding ([`tagged`]).
//!
//! `serde_json` is built without `arbitrary_precision`, so it reads an integer beyond
//! 64 bits as a float. This parser keeps the literal instead and lets the syntaxes decide:
//! `["k", 170141183460469231731687303715884105727]` is an exact `Int` key part.

pub mod key;
pub mod tagged;
pub mod value;

use std::fmt::Write as _;

use anyhow::{Result, bail};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde::Deserialize as _;

/// Deepest nesting of arrays and objects accepted in arguments (`serde_json`'s default
/// limit too). Dump lines may nest deeper: see [`parse_nested`].
const MAX_DEPTH: usize = 128;

/// A parsed JSON document.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written (valid JSON number syntax).
    Number(String),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object's entries in document order.
    Object(Vec<(String, Json)>),
}

/// A number literal read as an integer or a float.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    /// An integer literal (no `.`, `e` or `E`) that fits in an `i128`.
    Int(i128),
    /// Any other literal.
    Float(f64),
}

impl Json {
    /// A JSON string.
    pub fn str(s: impl Into<String>) -> Json {
        Json::String(s.into())
    }

    /// An integer as a JSON number.
    pub fn int(i: impl Into<i128>) -> Json {
        Json::Number(i.into().to_string())
    }

    /// A one-entry object `{name: value}`: the shape of every tagged form.
    pub fn tag(name: &str, value: Json) -> Json {
        Json::Object(vec![(name.to_owned(), value)])
    }

    /// A name for the kind of JSON value, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    /// The single entry of a one-entry object.
    pub fn as_tag(&self) -> Option<(&str, &Json)> {
        match self {
            Json::Object(entries) if entries.len() == 1 => {
                entries.first().map(|(k, v)| (k.as_str(), v))
            }
            _ => None,
        }
    }

    /// Serializes compactly, or indented by two spaces when `pretty`.
    pub fn to_text(&self, pretty: bool) -> String {
        let mut out = String::new();
        self.write(&mut out, pretty.then_some(0));
        out
    }

    fn write(&self, out: &mut String, indent: Option<usize>) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_string(out, s),
            Json::Array(items) => {
                write_container(out, indent, '[', ']', items, |out, item, inner| {
                    item.write(out, inner);
                });
            }
            Json::Object(entries) => {
                write_container(out, indent, '{', '}', entries, |out, (k, v), inner| {
                    write_string(out, k);
                    out.push_str(if inner.is_some() { ": " } else { ":" });
                    v.write(out, inner);
                });
            }
        }
    }
}

fn write_container<T>(
    out: &mut String,
    indent: Option<usize>,
    open: char,
    close: char,
    items: &[T],
    mut write_item: impl FnMut(&mut String, &T, Option<usize>),
) {
    out.push(open);
    if items.is_empty() {
        out.push(close);
        return;
    }
    let inner = indent.map(|i| i + 1);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        newline(out, inner);
        write_item(out, item, inner);
    }
    newline(out, indent);
    out.push(close);
}

fn newline(out: &mut String, indent: Option<usize>) {
    if let Some(level) = indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str("  ");
        }
    }
}

/// Writes `s` as a JSON string literal; everything outside printable ASCII is escaped, so
/// the output is ASCII.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// The text of a finite float: the shortest form that reads back as the same `f64`, always
/// with a `.` or an exponent so that it reads back as a float, not an integer.
pub fn float_text(f: f64) -> Option<String> {
    if !f.is_finite() {
        return None;
    }
    let text = serde_json::to_string(&f).ok()?;
    Some(if text.contains(['.', 'e', 'E']) {
        text
    } else {
        format!("{text}.0")
    })
}

/// The bits of the NaN Rust's `f64::NAN` has, which `"NaN"` stands for.
const NAN_BITS: u64 = 0x7ff8_0000_0000_0000;

/// A float as the tagged forms hold it: a number when finite, else `"inf"`, `"-inf"`,
/// `"NaN"`, `"-NaN"`, or `"0x"` and 16 hex digits of the bits for a NaN with a payload.
pub fn float_json(f: f64) -> Json {
    if let Some(text) = float_text(f) {
        return Json::Number(text);
    }
    let bits = f.to_bits();
    Json::str(if f == f64::INFINITY {
        "inf".to_owned()
    } else if f == f64::NEG_INFINITY {
        "-inf".to_owned()
    } else if bits == NAN_BITS {
        "NaN".to_owned()
    } else if bits == NAN_BITS | (1 << 63) {
        "-NaN".to_owned()
    } else {
        format!("0x{bits:016x}")
    })
}

/// Reads what [`float_json`] writes; also a number string such as `"-0"` or `"1.5"`.
pub fn float_from_json(j: &Json) -> Result<f64> {
    let text = match j {
        Json::Number(n) => n.as_str(),
        Json::String(s) => s.as_str(),
        other => bail!("expected a number or a string, found {}", other.kind()),
    };
    if let Some(digits) = text.strip_prefix("0x") {
        if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("{text:?} is not 0x and 16 hex digits");
        }
        return Ok(f64::from_bits(u64::from_str_radix(digits, 16)?));
    }
    Ok(match text {
        "inf" | "Infinity" | "+inf" => f64::INFINITY,
        "-inf" | "-Infinity" => f64::NEG_INFINITY,
        "NaN" | "nan" => f64::from_bits(NAN_BITS),
        "-NaN" | "-nan" => f64::from_bits(NAN_BITS | (1 << 63)),
        other => match other.parse::<f64>() {
            Ok(f) if f.is_finite() => f,
            _ => bail!(
                "{other:?} is not a float (a number, \"NaN\", \"-NaN\", \"inf\", \"-inf\" \
                 or \"0x\" and 16 hex digits of the bits)"
            ),
        },
    })
}

/// Reads an integer from a number literal or a decimal string.
pub fn int_from_json(j: &Json) -> Result<i128> {
    let text = match j {
        Json::Number(n) => n.as_str(),
        Json::String(s) => s.as_str(),
        other => bail!("expected an integer, found {}", other.kind()),
    };
    text.parse::<i128>()
        .map_err(|_| anyhow::anyhow!("{text:?} is not an integer in the 128-bit range"))
}

/// Reads a number literal: an integer when it has no fraction or exponent, else a float.
pub fn number(text: &str) -> Result<Num> {
    if text.contains(['.', 'e', 'E']) {
        let f: f64 = text.parse()?;
        if !f.is_finite() {
            bail!("the number {text} is beyond the range of a 64-bit float");
        }
        Ok(Num::Float(f))
    } else {
        match text.parse::<i128>() {
            Ok(i) => Ok(Num::Int(i)),
            Err(_) => bail!("the integer {text} is beyond the 128-bit range"),
        }
    }
}

/// Base64 as the tool writes it: standard alphabet, padded.
pub fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Reads standard base64, with or without padding.
pub fn base64_decode(text: &str) -> Result<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT
        .decode(text)
        .map_err(|e| anyhow::anyhow!("{text:?} is not standard base64: {e}"))
}

/// Parses one JSON document (surrounding whitespace allowed), nested at most 128 levels.
///
/// Syntax errors are reported by `serde_json`, with line and column; this parser then reads
/// the validated text exactly.
pub fn parse(text: &str) -> Result<Json> {
    parse_nested(text, MAX_DEPTH)
}

/// [`parse`], with arrays and objects nested at most `max_depth` levels (`[[1]]` is 2).
///
/// The nesting is measured first, without recursion, so a document of any depth is refused
/// before anything recurses over it; `serde_json` then validates it without its own limit
/// of 128 levels. Deep documents need a deep stack: the tool runs its commands on a thread
/// with a large one (`main.rs`).
pub fn parse_nested(text: &str, max_depth: usize) -> Result<Json> {
    let depth = nesting(text);
    if depth > max_depth {
        bail!("nested {depth} levels deep; the limit is {max_depth}");
    }
    let mut validator = serde_json::Deserializer::from_str(text);
    validator.disable_recursion_limit();
    serde::de::IgnoredAny::deserialize(&mut validator)?;
    validator.end()?;
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        max_depth,
    };
    let value = p.value(1)?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        bail!("trailing characters at byte {}", p.pos);
    }
    Ok(value)
}

/// How deeply arrays and objects nest in `text` (0 for a scalar), counting brackets outside
/// strings. Exact for valid JSON; for invalid JSON it only bounds the work of what follows.
fn nesting(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// A recursive-descent reader over text `serde_json` has already validated.
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Deepest nesting of arrays and objects allowed.
    max_depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<()> {
        self.skip_ws();
        if self.peek() != Some(byte) {
            bail!("expected '{}' at byte {}", char::from(byte), self.pos);
        }
        self.pos += 1;
        Ok(())
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json> {
        if !self.text[self.pos..].starts_with(word) {
            bail!("expected {word} at byte {}", self.pos);
        }
        self.pos += word.len();
        Ok(value)
    }

    /// Reads a value; `depth` is the nesting of arrays and objects it would open (1 at the
    /// top level).
    fn value(&mut self, depth: usize) -> Result<Json> {
        self.skip_ws();
        if matches!(self.peek(), Some(b'[' | b'{')) && depth > self.max_depth {
            bail!("nested more than {} levels deep", self.max_depth);
        }
        match self.peek() {
            Some(b'n') => self.literal("null", Json::Null),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'"') => self.string().map(Json::String),
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    if self.peek() == Some(b',') {
                        self.pos += 1;
                    } else {
                        self.expect(b']')?;
                        return Ok(Json::Array(items));
                    }
                }
            }
            Some(b'{') => {
                self.pos += 1;
                let mut entries = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(Json::Object(entries));
                }
                loop {
                    self.skip_ws();
                    let name = self.string()?;
                    self.expect(b':')?;
                    entries.push((name, self.value(depth + 1)?));
                    self.skip_ws();
                    if self.peek() == Some(b',') {
                        self.pos += 1;
                    } else {
                        self.expect(b'}')?;
                        return Ok(Json::Object(entries));
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.pos += 1;
                }
                Ok(Json::Number(self.text[start..self.pos].to_owned()))
            }
            _ => bail!("expected a JSON value at byte {}", self.pos),
        }
    }

    /// Reads a string literal; `serde_json` decodes its escapes.
    fn string(&mut self) -> Result<String> {
        if self.peek() != Some(b'"') {
            bail!("expected a string at byte {}", self.pos);
        }
        let start = self.pos;
        self.pos += 1;
        loop {
            match self.peek() {
                Some(b'"') => break,
                Some(b'\\') => self.pos += 2,
                Some(_) => self.pos += 1,
                None => bail!("unterminated string at byte {start}"),
            }
        }
        self.pos += 1;
        Ok(serde_json::from_str(&self.text[start..self.pos])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_duplicates_and_big_numbers() {
        let j = parse(
            r#" {"b": 1, "a": [2.5, -0.0, 1e3], "b": 340282366920938463463374607431768211456} "#,
        )
        .unwrap();
        let Json::Object(entries) = &j else {
            panic!("not an object")
        };
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].0, "b");
        assert_eq!(
            entries[2].1,
            Json::Number("340282366920938463463374607431768211456".into())
        );
        assert_eq!(
            j.to_text(false),
            r#"{"b":1,"a":[2.5,-0.0,1e3],"b":340282366920938463463374607431768211456}"#
        );
    }

    #[test]
    fn strings_round_trip_as_ascii() {
        let j = parse(r#""a\"\\\u00e9\ud83d\ude00\n""#).unwrap();
        assert_eq!(j, Json::String("a\"\\\u{e9}\u{1f600}\n".into()));
        let text = j.to_text(false);
        assert!(text.is_ascii());
        assert_eq!(parse(&text).unwrap(), j);
    }

    #[test]
    fn floats_always_read_back_as_floats() {
        for f in [
            0.0,
            -0.0,
            1.0,
            1.5,
            1e300,
            -2.5e-300,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            let text = float_text(f).unwrap();
            assert_eq!(number(&text).unwrap(), Num::Float(f), "{text}");
            if let Num::Float(g) = number(&text).unwrap() {
                assert_eq!(g.to_bits(), f.to_bits());
            }
        }
        assert_eq!(number("12").unwrap(), Num::Int(12));
        assert!(number("1e999").is_err());
    }

    #[test]
    fn errors_and_depth() {
        assert!(parse("{bad").is_err());
        assert!(parse("[1] 2").is_err());
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(&deep).is_err());
        assert!(parse_nested(&deep, 200).is_ok());
        assert!(parse_nested(&deep, 199).is_err());
        let nested = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert!(parse(&nested(128)).is_ok());
        assert!(parse(&nested(129)).is_err());
        // Brackets inside strings do not count; an unbalanced deep input is refused before
        // anything recurses over it.
        assert!(parse(r#"["[[[\"{{", "]]"]"#).is_ok());
        assert_eq!(nesting(r#"["[[[\"{{", {"a": []}]"#), 3);
        assert!(parse_nested(&"[".repeat(1_000_000), 5000).is_err());
        assert_eq!(parse("[]").unwrap().to_text(true), "[]");
        assert_eq!(
            parse(r#"{"a":[1]}"#).unwrap().to_text(true),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
    }
}
