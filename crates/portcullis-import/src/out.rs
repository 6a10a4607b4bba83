//! A tiny JSON builder with a deterministic pretty printer: the importers
//! build the policy document as a tree and print it the same way every time
//! (keys in the order the mapping pushes them, two-space indent, arrays of
//! scalars on one line).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// A JSON value to print.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<J>),
    /// An object, keys in insertion order.
    Obj(Vec<(String, J)>),
}

impl J {
    /// An empty object.
    pub fn obj() -> J {
        J::Obj(Vec::new())
    }

    /// A string value.
    pub fn s(s: &str) -> J {
        J::Str(String::from(s))
    }

    /// An array of strings.
    pub fn strs<'a>(items: impl IntoIterator<Item = &'a str>) -> J {
        J::Arr(items.into_iter().map(J::s).collect())
    }

    /// Adds a member to an object (no-op on other kinds).
    pub fn with(mut self, key: &str, v: J) -> J {
        self.push(key, v);
        self
    }

    /// Adds a member to an object (no-op on other kinds).
    pub fn push(&mut self, key: &str, v: J) {
        if let J::Obj(m) = self {
            m.push((String::from(key), v));
        }
    }

    fn is_scalar(&self) -> bool {
        !matches!(self, J::Arr(_) | J::Obj(_))
    }

    /// The pretty text, ending with a newline.
    pub fn pretty(&self) -> String {
        let mut s = String::new();
        self.write(&mut s, 0);
        s.push('\n');
        s
    }

    fn write(&self, out: &mut String, indent: usize) {
        match self {
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(n) => {
                let _ = write!(out, "{n}");
            }
            J::Str(s) => quote(out, s),
            J::Arr(items) if items.is_empty() => out.push_str("[]"),
            J::Arr(items) if items.iter().all(J::is_scalar) => {
                out.push('[');
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    it.write(out, indent);
                }
                out.push(']');
            }
            J::Arr(items) => {
                out.push('[');
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, indent + 1);
                    it.write(out, indent + 1);
                }
                newline(out, indent);
                out.push(']');
            }
            J::Obj(m) if m.is_empty() => out.push_str("{}"),
            J::Obj(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, indent + 1);
                    quote(out, k);
                    out.push_str(": ");
                    v.write(out, indent + 1);
                }
                newline(out, indent);
                out.push('}');
            }
        }
    }
}

fn newline(out: &mut String, indent: usize) {
    out.push('\n');
    for _ in 0..indent {
        out.push_str("  ");
    }
}

/// Appends `s` as a JSON string literal.
pub fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_deterministically_and_round_trips() {
        let v = J::obj()
            .with("name", J::s("a\"b\n\u{1}"))
            .with("list", J::strs(["x", "y"]))
            .with(
                "rules",
                J::Arr(alloc::vec![J::obj().with("p", J::Int(100))]),
            )
            .with("empty", J::Arr(Vec::new()))
            .with("on", J::Bool(true));
        let text = v.pretty();
        assert_eq!(
            text,
            "{\n  \"name\": \"a\\\"b\\n\\u0001\",\n  \"list\": [\"x\", \"y\"],\n  \"rules\": [\n    {\n      \"p\": 100\n    }\n  ],\n  \"empty\": [],\n  \"on\": true\n}\n"
        );
        let back = portcullis_core::json::parse(&text).unwrap();
        assert_eq!(
            back.get("name").and_then(|n| n.as_str()),
            Some("a\"b\n\u{1}")
        );
    }
}
