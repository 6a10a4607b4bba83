//! A small XML reader that keeps positions.
//!
//! It reads what APIM policy documents use: elements, attributes, text,
//! comments, CDATA sections, the five predefined entities (`&lt;` `&gt;`
//! `&amp;` `&apos;` `&quot;`) and numeric character references, and an XML
//! declaration at the very start. Every element, attribute and text node
//! knows its line and column.
//!
//! What it does *not* do, on purpose: it never expands an entity. A
//! `<!DOCTYPE` (internal or external DTD), an `<!ENTITY` declaration, any
//! other `<!...>` markup, and a reference to any entity other than the five
//! are refused with their line and column, so "billion laughs" and external
//! entity (XXE) inputs cannot do anything. Processing instructions other than
//! the XML declaration are refused too. Nesting is bounded by [`MAX_DEPTH`].
//! Namespaces are not interpreted (a prefixed name is just a name).
//!
//! ```
//! use portcullis_import::xml;
//! let doc = xml::parse("<a x='1'>t&amp;<b/></a>").unwrap();
//! assert_eq!(doc.name, "a");
//! assert_eq!(doc.attr("x"), Some("1"));
//! assert_eq!(doc.text(), "t&");
//! assert!(xml::parse("<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>").is_err());
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::lines::Lines;

/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 64;

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line.
    pub line: u32,
    /// Column.
    pub column: u32,
}

impl Pos {
    /// As a pair.
    pub fn pair(self) -> (u32, u32) {
        (self.line, self.column)
    }
}

/// An attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Its name.
    pub name: String,
    /// Its value, references replaced.
    pub value: String,
    /// Where its name starts.
    pub pos: Pos,
}

/// A node inside an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data (text or CDATA), references replaced.
    Text {
        /// The text.
        text: String,
        /// Where it starts.
        pos: Pos,
    },
    /// A comment's text.
    Comment {
        /// The text between `<!--` and `-->`.
        text: String,
        /// Where it starts.
        pos: Pos,
    },
}

/// An element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Its name.
    pub name: String,
    /// Its attributes, in document order.
    pub attrs: Vec<Attr>,
    /// Its children, in document order.
    pub children: Vec<Node>,
    /// Where its `<` is.
    pub pos: Pos,
}

impl Element {
    /// The value of the attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }

    /// The child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// All character data directly inside this element, concatenated.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text { text, .. } = n {
                s.push_str(text);
            }
        }
        s
    }
}

/// Why a text is not XML this reader accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    /// Where.
    pub pos: Pos,
    /// What.
    pub message: String,
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.pos.line, self.pos.column, self.message)
    }
}

/// Parses a document with one root element.
pub fn parse(text: &str) -> Result<Element, XmlError> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
        lines: Lines::new(text),
    };
    if text.starts_with('\u{feff}') {
        p.i = 3;
    }
    if p.s.get(p.i..).is_some_and(|r| r.starts_with(b"<?xml")) {
        let after = p.s.get(p.i + 5).copied();
        if matches!(after, Some(b' ' | b'\t' | b'\r' | b'\n' | b'?')) {
            p.skip_past(b"?>", "unterminated XML declaration")?;
        }
    }
    p.misc()?;
    if p.peek() != Some(b'<') {
        return Err(p.err(p.i, "expected the root element"));
    }
    let root = p.element(0)?;
    p.misc()?;
    if p.i < p.s.len() {
        return Err(p.err(p.i, "text after the root element"));
    }
    Ok(root)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    lines: Lines<'a>,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (c as u32) >= 0xC0
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit() || c == '-' || c == '.' || c == '\u{b7}'
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{fffe}' && c != '\u{ffff}')
}

impl Parser<'_> {
    fn pos(&self, at: usize) -> Pos {
        let (line, column) = self.lines.at(at);
        Pos { line, column }
    }

    fn err(&self, at: usize, message: &str) -> XmlError {
        XmlError {
            pos: self.pos(at),
            message: String::from(message),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn starts(&self, lit: &[u8]) -> bool {
        self.s.get(self.i..).is_some_and(|r| r.starts_with(lit))
    }

    fn ws(&mut self) -> bool {
        let from = self.i;
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.i += 1;
        }
        self.i > from
    }

    fn skip_past(&mut self, end: &[u8], message: &str) -> Result<usize, XmlError> {
        let from = self.i;
        let rest = self.s.get(self.i..).unwrap_or(&[]);
        match rest.windows(end.len()).position(|w| w == end) {
            Some(k) => {
                self.i += k + end.len();
                Ok(from + k)
            }
            None => Err(self.err(from, message)),
        }
    }

    /// Markup that is refused wherever it appears: DTDs, entity
    /// declarations, other `<!` declarations, processing instructions.
    fn refused(&self) -> Option<XmlError> {
        if self.starts(b"<!DOCTYPE") {
            Some(self.err(
                self.i,
                "a DTD (<!DOCTYPE ...>) is refused: entities are never expanded; remove it",
            ))
        } else if self.starts(b"<!ENTITY") {
            Some(self.err(
                self.i,
                "an entity declaration (<!ENTITY ...>) is refused: entities are never expanded",
            ))
        } else if self.starts(b"<!") && !self.starts(b"<!--") && !self.starts(b"<![CDATA[") {
            Some(self.err(self.i, "markup declarations (<!...>) are refused"))
        } else if self.starts(b"<?") {
            Some(self.err(
                self.i,
                "processing instructions (<?...?>) are refused (only the XML declaration, first)",
            ))
        } else {
            None
        }
    }

    /// Whitespace and comments outside the root element.
    fn misc(&mut self) -> Result<(), XmlError> {
        loop {
            self.ws();
            if let Some(e) = self.refused() {
                return Err(e);
            }
            if self.starts(b"<!--") {
                self.comment()?;
            } else if self.i < self.s.len() && self.peek() != Some(b'<') {
                return Err(self.err(self.i, "text outside the root element"));
            } else {
                return Ok(());
            }
        }
    }

    fn comment(&mut self) -> Result<String, XmlError> {
        let start = self.i;
        self.i += 4;
        let from = self.i;
        let end = self.skip_past(b"-->", "unterminated comment")?;
        let body = self.text.get(from..end).unwrap_or("");
        if body.contains("--") || body.ends_with('-') {
            return Err(self.err(start, "'--' is not allowed inside a comment"));
        }
        self.check_chars(from, body)?;
        Ok(String::from(body))
    }

    fn check_chars(&self, from: usize, s: &str) -> Result<(), XmlError> {
        for (k, c) in s.char_indices() {
            if !is_xml_char(c) {
                return Err(self.err(
                    from + k,
                    "a character XML does not allow (a control character)",
                ));
            }
        }
        Ok(())
    }

    fn name(&mut self) -> Result<String, XmlError> {
        let from = self.i;
        let rest = self.text.get(self.i..).unwrap_or("");
        let mut chars = rest.char_indices();
        match chars.next() {
            Some((_, c)) if is_name_start(c) => {}
            _ => return Err(self.err(from, "expected a name")),
        }
        let len = chars
            .find(|(_, c)| !is_name_char(*c))
            .map_or(rest.len(), |(k, _)| k);
        self.i += len;
        Ok(String::from(rest.get(..len).unwrap_or("")))
    }

    fn element(&mut self, depth: usize) -> Result<Element, XmlError> {
        let start = self.i;
        let start_pos = self.pos(start);
        if depth >= MAX_DEPTH {
            return Err(self.err(start, "elements nested too deep"));
        }
        self.i += 1; // '<'
        let name = self.name()?;
        let mut attrs: Vec<Attr> = Vec::new();
        loop {
            let had_ws = self.ws();
            match self.peek() {
                Some(b'/') => {
                    self.i += 1;
                    if self.peek() != Some(b'>') {
                        return Err(self.err(self.i, "expected '>' after '/'"));
                    }
                    self.i += 1;
                    return Ok(Element {
                        name,
                        attrs,
                        children: Vec::new(),
                        pos: start_pos,
                    });
                }
                Some(b'>') => {
                    self.i += 1;
                    break;
                }
                None => return Err(self.err(start, "unterminated start tag")),
                Some(_) => {
                    if !had_ws {
                        return Err(self.err(self.i, "expected whitespace before an attribute"));
                    }
                    let at = self.i;
                    let an = self.name()?;
                    if attrs.iter().any(|a| a.name == an) {
                        return Err(self.err(at, "duplicate attribute"));
                    }
                    self.ws();
                    if self.peek() != Some(b'=') {
                        return Err(self.err(self.i, "expected '=' after the attribute name"));
                    }
                    self.i += 1;
                    self.ws();
                    let value = self.attr_value()?;
                    attrs.push(Attr {
                        name: an,
                        value,
                        pos: self.pos(at),
                    });
                }
            }
        }
        let mut children = Vec::new();
        loop {
            if let Some(e) = self.refused() {
                return Err(e);
            }
            if self.starts(b"</") {
                let at = self.i;
                self.i += 2;
                let end = self.name()?;
                self.ws();
                if self.peek() != Some(b'>') {
                    return Err(self.err(self.i, "expected '>' to close the end tag"));
                }
                self.i += 1;
                if end != name {
                    return Err(XmlError {
                        pos: self.pos(at),
                        message: alloc::format!(
                            "end tag </{end}> does not match <{name}> at {}:{}",
                            start_pos.line,
                            start_pos.column
                        ),
                    });
                }
                return Ok(Element {
                    name,
                    attrs,
                    children,
                    pos: start_pos,
                });
            } else if self.starts(b"<!--") {
                let pos = self.pos(self.i);
                let text = self.comment()?;
                children.push(Node::Comment { text, pos });
            } else if self.starts(b"<![CDATA[") {
                let pos = self.pos(self.i);
                self.i += 9;
                let from = self.i;
                let end = self.skip_past(b"]]>", "unterminated CDATA section")?;
                let body = self.text.get(from..end).unwrap_or("");
                self.check_chars(from, body)?;
                children.push(Node::Text {
                    text: String::from(body),
                    pos,
                });
            } else if self.peek() == Some(b'<') {
                children.push(Node::Element(self.element(depth + 1)?));
            } else if self.peek().is_none() {
                return Err(XmlError {
                    pos: self.pos(start),
                    message: alloc::format!("<{name}> is never closed"),
                });
            } else {
                let pos = self.pos(self.i);
                let text = self.chars(b'<')?;
                children.push(Node::Text { text, pos });
            }
        }
    }

    fn attr_value(&mut self) -> Result<String, XmlError> {
        let q = match self.peek() {
            Some(q @ (b'"' | b'\'')) => q,
            _ => return Err(self.err(self.i, "expected a quoted attribute value")),
        };
        let open = self.i;
        self.i += 1;
        let v = self.chars(q)?;
        if self.peek() != Some(q) {
            return Err(self.err(open, "unterminated attribute value"));
        }
        self.i += 1;
        Ok(v)
    }

    /// Character data up to `stop` (not consumed), with references replaced.
    /// In attribute values (`stop` is a quote) `<` is an error and
    /// whitespace characters become spaces.
    fn chars(&mut self, stop: u8) -> Result<String, XmlError> {
        let in_attr = stop != b'<';
        let mut out = String::new();
        loop {
            let run = self.i;
            while let Some(c) = self.peek() {
                if c == stop || c == b'&' || (in_attr && c == b'<') || (!in_attr && c == b']') {
                    break;
                }
                self.i += 1;
            }
            let piece = self.text.get(run..self.i).unwrap_or("");
            self.check_chars(run, piece)?;
            if in_attr {
                out.extend(piece.chars().map(|c| {
                    if matches!(c, '\t' | '\n' | '\r') {
                        ' '
                    } else {
                        c
                    }
                }));
            } else {
                out.push_str(piece);
            }
            match self.peek() {
                None => return Ok(out),
                Some(b'&') => out.push(self.reference()?),
                Some(b'<') if in_attr => {
                    return Err(self.err(self.i, "'<' in an attribute value (write &lt;)"))
                }
                Some(b']') => {
                    if self.starts(b"]]>") {
                        return Err(self.err(self.i, "']]>' is not allowed in text"));
                    }
                    out.push(']');
                    self.i += 1;
                }
                Some(_) => return Ok(out),
            }
        }
    }

    fn reference(&mut self) -> Result<char, XmlError> {
        let at = self.i;
        self.i += 1;
        let rest = self.s.get(self.i..).unwrap_or(&[]);
        let Some(semi) = rest.iter().take(40).position(|b| *b == b';') else {
            return Err(self.err(at, "'&' must start a reference ending in ';' (write &amp;)"));
        };
        let body = self.text.get(self.i..self.i + semi).unwrap_or("");
        self.i += semi + 1;
        let c = match body {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "apos" => '\'',
            "quot" => '"',
            _ => {
                let cp = if let Some(h) = body.strip_prefix("#x") {
                    u32::from_str_radix(h, 16)
                        .ok()
                        .filter(|_| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
                } else if let Some(d) = body.strip_prefix('#') {
                    d.parse::<u32>()
                        .ok()
                        .filter(|_| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                } else {
                    return Err(XmlError {
                        pos: self.pos(at),
                        message: alloc::format!(
                            "entity &{body}; is refused: only &lt; &gt; &amp; &apos; &quot; and numeric references are read, and entities are never expanded"
                        ),
                    });
                };
                match cp.and_then(char::from_u32) {
                    Some(c) if is_xml_char(c) => c,
                    _ => {
                        return Err(self.err(
                            at,
                            "a character reference to a character XML does not allow",
                        ))
                    }
                }
            }
        };
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_elements_attributes_text_cdata_comments() {
        let t = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!-- top -->\n<policies>\n  <inbound a=\"x&#x41;&#66;\" b='&quot;'>\n    <v>1 &lt; 2</v><![CDATA[<raw>&amp;]]><!-- c -->\n  </inbound>\n</policies>\n";
        let root = parse(t).unwrap();
        assert_eq!(root.name, "policies");
        assert_eq!(root.pos, Pos { line: 3, column: 1 });
        let inbound = root.elements().next().unwrap();
        assert_eq!(inbound.pos, Pos { line: 4, column: 3 });
        assert_eq!(inbound.attr("a"), Some("xAB"));
        assert_eq!(inbound.attr("b"), Some("\""));
        assert_eq!(
            inbound.attrs[1].pos,
            Pos {
                line: 4,
                column: 29
            }
        );
        let v = inbound.elements().next().unwrap();
        assert_eq!(v.text(), "1 < 2");
        assert!(inbound.text().contains("<raw>&amp;"));
        assert!(inbound
            .children
            .iter()
            .any(|n| matches!(n, Node::Comment { text, .. } if text == " c ")));
    }

    fn err(t: &str) -> XmlError {
        parse(t).unwrap_err()
    }

    #[test]
    fn refuses_dtds_entities_and_declarations_with_positions() {
        let e =
            err("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [<!ENTITY lol \"lol\">]>\n<a>&lol;</a>");
        assert_eq!(e.pos, Pos { line: 2, column: 1 });
        assert!(e.message.contains("DTD"), "{e}");
        let e = err("<a>\n  <!ENTITY x SYSTEM \"file:///etc/passwd\"></a>");
        assert_eq!(e.pos, Pos { line: 2, column: 3 });
        assert!(e.message.contains("entity declaration"));
        let e = err("<a>x &xxe; y</a>");
        assert_eq!(e.pos, Pos { line: 1, column: 6 });
        assert!(e.message.contains("&xxe;"), "{e}");
        assert!(err("<a b='&ext;'/>").message.contains("never expanded"));
        assert!(err("<a><!ELEMENT a ANY></a>").message.contains("<!"));
        assert!(err("<a><?php x ?></a>").message.contains("processing"));
        assert!(err("<a>&#0;</a>").message.contains("does not allow"));
        assert!(err("<a>&#xD800;</a>").message.contains("does not allow"));
    }

    #[test]
    fn malformed_xml_has_a_position() {
        for (t, line, col) in [
            ("<a>\n<b></a>", 2, 4),
            ("<a", 1, 1),
            ("<a x=1/>", 1, 6),
            ("<a x='1' x='2'/>", 1, 10),
            ("<a>\n\n  <b>", 3, 3),
            ("<a/>junk", 1, 5),
            ("x<a/>", 1, 1),
            ("<a>&amp</a>", 1, 4),
            ("<a><!-- a -- b --></a>", 1, 4),
            ("<a>]]></a>", 1, 4),
            ("<a x='<'/>", 1, 7),
            ("<a>\u{1}</a>", 1, 4),
            ("", 1, 1),
        ] {
            let e = err(t);
            assert_eq!((e.pos.line, e.pos.column), (line, col), "{t:?}: {e}");
        }
    }

    #[test]
    fn depth_is_bounded() {
        let deep = alloc::format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(err(&deep).message.contains("too deep"));
        let ok = alloc::format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }
}
