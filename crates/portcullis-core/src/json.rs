//! A small JSON reader that keeps positions.
//!
//! `serde_json` stops at the first problem and forgets where values came from;
//! policy authors need every problem at once, each with its line and column.
//! This reader builds a tree whose every value and key knows its byte span, and
//! keeps duplicate keys so the validator can report them. It accepts exactly
//! RFC 8259 JSON; nesting is bounded by [`MAX_DEPTH`].
//!
//! [`parse_lean`] reads the same documents with the same errors, but keeps
//! the arrays its caller selects that hold only strings without escapes as
//! their text ([`Kind::Strings`]): a policy's address lists, 10^5 strings
//! in a large one, cost no value and no allocation per element then.

use alloc::string::String;
use alloc::vec::Vec;

/// Deepest nesting of arrays and objects accepted. Policies are shallow (a
/// handful of levels); the bound keeps hostile input from exhausting the stack.
pub const MAX_DEPTH: usize = 64;

/// A half-open byte range in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// A JSON value with the span of its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// What the value is.
    pub kind: Kind,
    /// Where it is.
    pub span: Span,
}

/// The kinds of JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number, kept as its source text (policies only use integers).
    Number(String),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object, members in document order, duplicates kept.
    Object(Vec<Member>),
    /// A non-empty array of strings without escapes, kept as its text (only
    /// from [`parse_lean`]): the element count. [`Value::strings`] reads the
    /// elements from the document's text.
    Strings(usize),
}

/// One `"key": value` member of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The key, unescaped.
    pub key: String,
    /// Where the key is.
    pub key_span: Span,
    /// The value.
    pub value: Value,
}

impl Value {
    /// A short name of the value's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Number(_) => "a number",
            Kind::String(_) => "a string",
            Kind::Array(_) | Kind::Strings(_) => "an array",
            Kind::Object(_) => "an object",
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::String(s) => Some(s),
            _ => None,
        }
    }

    /// The member named `key` (the first one, if duplicated).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match &self.kind {
            Kind::Object(m) => m.iter().find(|m| m.key == key).map(|m| &m.value),
            _ => None,
        }
    }

    /// The elements of a [`Kind::Strings`] array, each with its span (its
    /// quotes included, as a string value's span is), read from `text`,
    /// the document the value was parsed from. Empty for any other kind.
    pub fn strings<'t>(&self, text: &'t str) -> Strings<'t> {
        let inner = match self.kind {
            Kind::Strings(_) => text.get(self.span.start..self.span.end).unwrap_or(""),
            _ => "",
        };
        Strings {
            text: inner,
            at: self.span.start,
        }
    }

    /// The value with every [`Kind::Strings`] list (of a lean tree, see
    /// [`parse_lean`]) expanded into an array of string values read from
    /// `text`: what [`parse`] gives for the same document. For tests and
    /// fuzzers that hold the two trees to each other.
    pub fn expanded(self, text: &str) -> Value {
        let kind = match self.kind {
            Kind::Strings(_) => Kind::Array(
                self.strings(text)
                    .map(|(span, s)| Value {
                        kind: Kind::String(s.into()),
                        span,
                    })
                    .collect(),
            ),
            Kind::Array(a) => Kind::Array(a.into_iter().map(|x| x.expanded(text)).collect()),
            Kind::Object(m) => Kind::Object(
                m.into_iter()
                    .map(|m| Member {
                        value: m.value.expanded(text),
                        ..m
                    })
                    .collect(),
            ),
            k => k,
        };
        Value { kind, ..self }
    }

    /// The number as a non-negative integer, if it is one that fits.
    pub fn as_u64(&self) -> Option<u64> {
        match &self.kind {
            Kind::Number(n) => n.parse::<u64>().ok(),
            _ => None,
        }
    }
}

/// The elements of a [`Kind::Strings`] array: see [`Value::strings`].
#[derive(Debug, Clone)]
pub struct Strings<'t> {
    /// What is left of the array's text.
    text: &'t str,
    /// Its offset in the document.
    at: usize,
}

impl<'t> Iterator for Strings<'t> {
    type Item = (Span, &'t str);

    fn next(&mut self) -> Option<(Span, &'t str)> {
        // Between elements only whitespace, commas and brackets; inside
        // them no quote (no escapes), so quotes pair up.
        // A byte loop: elements are short, a general search costs more.
        let quote = |t: &str| t.bytes().position(|b| b == b'"');
        let open = quote(self.text)?;
        let after = self.text.get(open + 1..)?;
        let len = quote(after)?;
        let s = after.get(..len)?;
        let span = Span {
            start: self.at + open,
            end: self.at + open + len + 2,
        };
        self.text = after.get(len + 1..)?;
        self.at = span.end;
        Some((span, s))
    }
}

/// Which arrays [`parse_lean`] keeps as text: called with the key of the
/// object holding the array's member (`None` at the top level or inside
/// an array) and the member's own key.
pub type Capture = fn(Option<&str>, &str) -> bool;

/// A syntax error: what and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What is wrong.
    pub message: &'static str,
}

/// Parses a whole document: one value, surrounded only by whitespace.
pub fn parse(text: &str) -> Result<Value, SyntaxError> {
    if text.starts_with('\u{feff}') {
        return Err(SyntaxError {
            offset: 0,
            message: "the text starts with a byte-order mark (BOM); save it as UTF-8 without BOM",
        });
    }
    parse_with(text, None)
}

/// [`parse`], except that an array `capture` selects that holds only
/// strings without escapes (one or more) becomes a [`Kind::Strings`]:
/// the same document is accepted or refused with the same error.
pub fn parse_lean(text: &str, capture: Capture) -> Result<Value, SyntaxError> {
    parse_with(text, Some(capture))
}

fn parse_with(text: &str, capture: Option<Capture>) -> Result<Value, SyntaxError> {
    if text.starts_with('\u{feff}') {
        return Err(SyntaxError {
            offset: 0,
            message: "the text starts with a byte-order mark (BOM); save it as UTF-8 without BOM",
        });
    }
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
        capture,
    };
    p.ws();
    let v = p.value(0, None)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("unexpected text after the JSON value"));
    }
    Ok(v)
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let mut line = 1u32;
    let mut col = 1u32;
    for (i, c) in text.char_indices() {
        if i >= offset {
            break;
        }
        if c == '\n' {
            line = line.saturating_add(1);
            col = 1;
        } else {
            col = col.saturating_add(1);
        }
    }
    (line, col)
}

/// Line and column ([`line_col`]'s numbering) of many offsets of one text,
/// without rescanning it: the line starts are found once, a line is a
/// binary search, and a column is counted from the last position asked for
/// when that was earlier on the same line (as it is when positions are
/// asked for in document order). So positioning every value of a document,
/// even a one-line document, costs time linear in its size.
///
/// ```
/// use portcullis_core::json::{line_col, LineIndex};
///
/// let text = "{\n  \"é\": [1,\n 2]}";
/// let mut idx = LineIndex::new(text);
/// for off in [0, 5, 9, 14, 3] {
///     assert_eq!(idx.line_col(off), line_col(text, off));
/// }
/// ```
#[derive(Debug, Clone)]
pub struct LineIndex<'t> {
    text: &'t str,
    /// Byte offset where each line starts (the first is 0).
    starts: Vec<usize>,
    /// The last position computed: (offset, its line's start, its column).
    last: (usize, usize, u32),
    scanned: usize,
}

impl<'t> LineIndex<'t> {
    /// The text indexed.
    pub fn text(&self) -> &'t str {
        self.text
    }

    /// Indexes the lines of `text` (one pass).
    pub fn new(text: &'t str) -> LineIndex<'t> {
        let mut starts = alloc::vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i.saturating_add(1)),
        );
        LineIndex {
            text,
            starts,
            last: (0, 0, 1),
            scanned: text.len(),
        }
    }

    /// The line and column of byte `offset` (clamped to the text).
    pub fn line_col(&mut self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        // Lines whose start is at or before the offset (at least the first).
        let n = self.starts.partition_point(|s| *s <= offset);
        let start = n
            .checked_sub(1)
            .and_then(|i| self.starts.get(i))
            .copied()
            .unwrap_or(0);
        let (from, col) = match self.last {
            (o, s, c) if s == start && o <= offset => (o, c),
            _ => (start, 1),
        };
        let chars = self
            .text
            .as_bytes()
            .get(from..offset)
            .unwrap_or_default()
            .iter()
            // The first byte of each character.
            .filter(|b| (**b & 0xC0) != 0x80)
            .count();
        self.scanned = self.scanned.saturating_add(offset.saturating_sub(from));
        let col = col.saturating_add(u32::try_from(chars).unwrap_or(u32::MAX));
        self.last = (offset, start, col);
        (u32::try_from(n.max(1)).unwrap_or(u32::MAX), col)
    }

    /// Bytes of the text read so far (indexing included): for tests that
    /// hold a reader to linear time by counting, not by the clock.
    pub fn scanned(&self) -> usize {
        self.scanned
    }
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    capture: Option<Capture>,
}

impl Parser<'_> {
    fn err(&self, message: &'static str) -> SyntaxError {
        SyntaxError {
            offset: self.i,
            message,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// A value; `key` is the key of the object it is a member of.
    fn value(&mut self, depth: usize, key: Option<&str>) -> Result<Value, SyntaxError> {
        let start = self.i;
        let kind = match self.peek() {
            None => return Err(self.err("unexpected end of text, expected a value")),
            Some(b'{') => self.object(depth, key)?,
            Some(b'[') => self.array(depth)?,
            Some(b'"') => Kind::String(self.string()?),
            Some(b't') => self.literal("true", Kind::Bool(true))?,
            Some(b'f') => self.literal("false", Kind::Bool(false))?,
            Some(b'n') => self.literal("null", Kind::Null)?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(_) => return Err(self.err("expected a value")),
        };
        Ok(Value {
            kind,
            span: Span { start, end: self.i },
        })
    }

    fn literal(&mut self, word: &str, kind: Kind) -> Result<Kind, SyntaxError> {
        if self.s.get(self.i..self.i + word.len()) == Some(word.as_bytes()) {
            self.i += word.len();
            Ok(kind)
        } else {
            Err(self.err("expected a value"))
        }
    }

    fn digits(&mut self) -> usize {
        let from = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - from
    }

    fn number(&mut self) -> Result<Kind, SyntaxError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.i += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.err("numbers may not have leading zeros"));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("expected a digit")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(self.err("expected a digit after the decimal point"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("expected a digit in the exponent"));
            }
        }
        Ok(Kind::Number(String::from(
            self.text.get(start..self.i).unwrap_or(""),
        )))
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.err("expected four hex digits after \\u")),
            };
            v = v * 16 + u32::from(d);
            self.i += 1;
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            let run = self.i;
            while let Some(c) = self.peek() {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            // The input is a &str and we only stop at ASCII bytes, so the run
            // is on character boundaries.
            out.push_str(self.text.get(run..self.i).unwrap_or(""));
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.i += 1;
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err(self.err("unpaired surrogate in \\u escape"));
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("unpaired surrogate in \\u escape"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            match char::from_u32(cp) {
                                Some(c) => out.push(c),
                                None => return Err(self.err("unpaired surrogate in \\u escape")),
                            }
                            continue;
                        }
                        _ => return Err(self.err("unknown escape in string")),
                    };
                    self.i += 1;
                    out.push(c);
                }
                Some(_) => return Err(self.err("control character in string (escape it)")),
            }
        }
    }

    /// At `[`: the array as [`Kind::Strings`] when it is one or more
    /// strings without escapes or control characters, else `None` with the
    /// position unchanged (the full parser then reads it, errors included).
    fn plain_strings(&mut self) -> Option<Kind> {
        let start = self.i;
        self.i += 1;
        let mut count = 0usize;
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                break;
            }
            self.i += 1;
            let rest = self.s.get(self.i..).unwrap_or(&[]);
            match rest
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            {
                Some(n) if rest.get(n) == Some(&b'"') => self.i += n,
                _ => break,
            }
            self.i += 1;
            count += 1;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Some(Kind::Strings(count));
                }
                _ => break,
            }
        }
        self.i = start;
        None
    }

    fn array(&mut self, depth: usize) -> Result<Kind, SyntaxError> {
        if depth >= MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Kind::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth + 1, None)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Kind::Array(items));
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    /// An object; `own` is the key it is the value of.
    fn object(&mut self, depth: usize, own: Option<&str>) -> Result<Kind, SyntaxError> {
        if depth >= MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.i += 1;
        let mut members = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Kind::Object(members));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            let ks = self.i;
            let key = self.string()?;
            let key_span = Span {
                start: ks,
                end: self.i,
            };
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':' after the key"));
            }
            self.i += 1;
            self.ws();
            let vstart = self.i;
            let lean = match self.capture {
                Some(c) if self.peek() == Some(b'[') && depth + 1 < MAX_DEPTH && c(own, &key) => {
                    self.plain_strings()
                }
                _ => None,
            };
            let value = match lean {
                Some(kind) => Value {
                    kind,
                    span: Span {
                        start: vstart,
                        end: self.i,
                    },
                },
                None => self.value(depth + 1, Some(&key))?,
            };
            members.push(Member {
                key,
                key_span,
                value,
            });
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Kind::Object(members));
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_keeps_spans() {
        let t = "{\n  \"a\": [1, \"x\\u00e9\\ud83d\\ude00\"], \"a\": null }";
        let v = parse(t).unwrap();
        let Kind::Object(m) = &v.kind else { panic!() };
        assert_eq!(m.len(), 2, "duplicates are kept");
        assert_eq!(line_col(t, m[0].key_span.start), (2, 3));
        let Kind::Array(a) = &m[0].value.kind else {
            panic!()
        };
        assert_eq!(a[1].as_str(), Some("xé😀"));
    }

    #[test]
    fn rejects_bad_json() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "1.",
            "\"\\x\"",
            "\"a\nb\"",
            "nul",
            "[1] x",
            "\"\\ud800\"",
            "-",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_byte_order_mark_is_named() {
        let e = parse("\u{feff}{}").unwrap_err();
        assert!(e.message.contains("byte-order mark"), "{e:?}");
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&deep).unwrap_err().message, "nesting too deep");
        let ok = alloc::format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    fn caps(_: Option<&str>, key: &str) -> bool {
        key == "a"
    }

    /// The lean tree's string lists, expanded: must equal the full tree
    /// (and each list holds as many strings as it says).
    fn expand(v: Value, text: &str) -> Value {
        fn counts(v: &Value, text: &str) {
            match &v.kind {
                Kind::Strings(n) => assert_eq!(v.strings(text).count(), *n),
                Kind::Array(a) => a.iter().for_each(|x| counts(x, text)),
                Kind::Object(m) => m.iter().for_each(|m| counts(&m.value, text)),
                _ => {}
            }
        }
        counts(&v, text);
        v.expanded(text)
    }

    #[test]
    fn lean_lists_read_like_the_full_tree() {
        for t in [
            r#"{"a": ["x", "é😀", " y ,z" , ""], "b": ["p"]}"#,
            r#"{"a": []}"#,
            r#"{"a": ["x\"y"]}"#,
            r#"{"a": ["x", 1]}"#,
            r#"{"a": ["x", ["y"]]}"#,
            r#"{"a": "x", "c": {"a": ["q","r"]}}"#,
            r#"[{"a": ["x"]}, ["a"]]"#,
            "{\"a\":\n[\n\"x\"\n,\"y\"]}",
            r#"{"a": ["x",]}"#,
            r#"{"a": ["x" "y"]}"#,
            r#"{"a": ["x"#,
            "{\"a\": [\"x\u{1}\"]}",
            r#"{"a": ["x"], "a": ["y", "z"]} x"#,
        ] {
            let full = parse(t);
            let lean = parse_lean(t, caps);
            match (full, lean) {
                (Ok(f), Ok(l)) => assert_eq!(expand(l, t), f, "{t}"),
                (f, l) => assert_eq!(f.err(), l.err(), "{t}"),
            }
        }
        let t = r#"{"a": ["x", "y"], "b": ["x"]}"#;
        let v = parse_lean(t, caps).unwrap();
        assert_eq!(v.get("a").unwrap().kind, Kind::Strings(2));
        assert_eq!(v.get("a").unwrap().kind_name(), "an array");
        assert!(matches!(v.get("b").unwrap().kind, Kind::Array(_)));
        let v = parse_lean(r#"{"a": ["x\n"]}"#, caps).unwrap();
        assert!(
            matches!(v.get("a").unwrap().kind, Kind::Array(_)),
            "escapes: full tree"
        );
    }

    #[test]
    fn lean_lists_keep_the_depth_bound() {
        let deep = alloc::format!(
            "{}{{\"a\": [\"x\"]}}{}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert_eq!(parse(&deep).err(), parse_lean(&deep, caps).err());
    }
}
