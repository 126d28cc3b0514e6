//! Reading PostgreSQL's text form of an array (`array_out`), so NDJSON can
//! present arrays as JSON arrays of properly encoded elements.
//!
//! `{1,2,NULL}`, `{"a b","c\"d",""}`, `{{1,2},{3,4}}`: elements are separated
//! by the element type's delimiter (`,` for all but `box`), quoted when they
//! contain special characters (with `\` escaping `"` and `\`), and an
//! unquoted `NULL` is the null element. An array whose lower bound is not 1
//! is printed with a dimension prefix (`[0:1]={7,8}`); a JSON array cannot
//! carry that, so [`parse`] returns `None` and the encoder keeps the text.

use std::borrow::Cow;

/// One element of a parsed array, or a nested dimension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node<'a> {
    Null,
    Value(Cow<'a, str>),
    List(Vec<Node<'a>>),
}

/// Parse `text`; `None` for a dimension prefix or anything malformed.
pub(crate) fn parse(text: &str, delimiter: u8) -> Option<Node<'_>> {
    let mut parser = Parser {
        text,
        pos: 0,
        delimiter,
    };
    let node = parser.list()?;
    (parser.pos == text.len()).then_some(node)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    delimiter: u8,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn list(&mut self) -> Option<Node<'a>> {
        if self.peek()? != b'{' {
            return None;
        }
        self.pos += 1;
        let mut items = Vec::new();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(Node::List(items));
        }
        loop {
            let item = match self.peek()? {
                b'{' => self.list()?,
                b'"' => self.quoted()?,
                _ => self.unquoted()?,
            };
            items.push(item);
            match self.peek()? {
                b'}' => {
                    self.pos += 1;
                    return Some(Node::List(items));
                }
                b if b == self.delimiter => self.pos += 1,
                _ => return None,
            }
        }
    }

    fn quoted(&mut self) -> Option<Node<'a>> {
        self.pos += 1; // the opening quote
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut owned: Option<String> = None;
        let mut run_start = start;
        loop {
            let b = *bytes.get(self.pos)?;
            match b {
                b'"' => {
                    let value = match owned {
                        None => Cow::Borrowed(&self.text[start..self.pos]),
                        Some(mut s) => {
                            s.push_str(&self.text[run_start..self.pos]);
                            Cow::Owned(s)
                        }
                    };
                    self.pos += 1;
                    return Some(Node::Value(value));
                }
                b'\\' => {
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(&self.text[run_start..self.pos]);
                    // The escaped character may be multi-byte UTF-8.
                    let ch = self.text[self.pos + 1..].chars().next()?;
                    s.push(ch);
                    self.pos += 1 + ch.len_utf8();
                    run_start = self.pos;
                }
                _ => self.pos += 1,
            }
        }
    }

    fn unquoted(&mut self) -> Option<Node<'a>> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == self.delimiter || b == b'}' {
                break;
            }
            if matches!(b, b'{' | b'"' | b'\\') {
                return None;
            }
            self.pos += 1;
        }
        let raw = self.text[start..self.pos].trim();
        if raw.is_empty() {
            return None;
        }
        Some(if raw.eq_ignore_ascii_case("NULL") {
            Node::Null
        } else {
            Node::Value(Cow::Borrowed(raw))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Node<'_> {
        Node::Value(Cow::Borrowed(s))
    }

    #[test]
    fn flat_nested_quoted_and_null_elements() {
        assert_eq!(
            parse("{1,NULL,3}", b','),
            Some(Node::List(vec![v("1"), Node::Null, v("3")]))
        );
        assert_eq!(
            parse(r#"{"a b","c\"d\\","","NULL",漢字}"#, b','),
            Some(Node::List(vec![
                v("a b"),
                Node::Value(Cow::Owned("c\"d\\".into())),
                v(""),
                v("NULL"),
                v("漢字"),
            ]))
        );
        assert_eq!(
            parse("{{1,2},{3,4}}", b','),
            Some(Node::List(vec![
                Node::List(vec![v("1"), v("2")]),
                Node::List(vec![v("3"), v("4")]),
            ]))
        );
        assert_eq!(parse("{}", b','), Some(Node::List(vec![])));
        assert_eq!(
            parse("{(1,1),(0,0);(2,2),(1,1)}", b';'),
            Some(Node::List(vec![v("(1,1),(0,0)"), v("(2,2),(1,1)")]))
        );
    }

    #[test]
    fn dimension_prefixes_and_garbage_are_refused() {
        assert_eq!(parse("[0:1]={7,8}", b','), None);
        assert_eq!(parse("{1,2", b','), None);
        assert_eq!(parse("{1,2}x", b','), None);
    }
}
