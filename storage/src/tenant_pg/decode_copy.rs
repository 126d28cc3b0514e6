//! Reading a row of PostgreSQL's `COPY ... TO STDOUT` text format, the way
//! tables are read for an export (`copy_out.rs`).
//!
//! Columns are separated by a tab; `\N` alone is NULL; inside a value a
//! backslash starts an escape: `\b \f \n \r \t \v` for those control
//! characters, one to three octal digits or `\x` and one or two hex digits
//! for a byte, and a backslash before any other character for that
//! character (`\\` is a backslash). The server writes each value with its
//! type's output function, so what is left after unescaping is exactly
//! PostgreSQL's own text output. A raw tab or newline never occurs inside a
//! value, which is what makes splitting on them safe.

use ferry_workflows::ports::PortError;

/// Where one field's text is: NULL, a slice of the line, or a slice of the
/// unescaped buffer.
#[derive(Clone, Copy)]
enum Span {
    Null,
    Line(usize, usize),
    Unescaped(usize, usize),
}

/// Splits lines into their values, reusing its buffers between rows.
#[derive(Default)]
pub(crate) struct Fields {
    unescaped: Vec<u8>,
    spans: Vec<Span>,
}

impl Fields {
    /// The `columns` values of `line` (without its newline), `None` for
    /// NULL. Values without escapes are borrowed from the line.
    pub(crate) fn split<'a>(
        &'a mut self,
        line: &'a [u8],
        columns: usize,
    ) -> Result<Vec<Option<&'a [u8]>>, PortError> {
        self.unescaped.clear();
        self.spans.clear();
        if columns > 0 {
            let mut start = 0;
            loop {
                let end = memchr::memchr(b'\t', &line[start..]).map_or(line.len(), |i| start + i);
                let field = &line[start..end];
                let span = if field == b"\\N" {
                    Span::Null
                } else if memchr::memchr(b'\\', field).is_none() {
                    Span::Line(start, end)
                } else {
                    let from = self.unescaped.len();
                    unescape(field, &mut self.unescaped);
                    Span::Unescaped(from, self.unescaped.len())
                };
                self.spans.push(span);
                if end == line.len() {
                    break;
                }
                start = end + 1;
            }
        } else if !line.is_empty() {
            self.spans.push(Span::Null);
        }
        if self.spans.len() != columns {
            return Err(PortError::permanent(
                "tenant_db_error",
                format!(
                    "a row of COPY output had {} values where the table has {columns} columns",
                    self.spans.len()
                ),
            ));
        }
        let unescaped = &self.unescaped;
        Ok(self
            .spans
            .iter()
            .map(|span| match *span {
                Span::Null => None,
                Span::Line(a, b) => Some(&line[a..b]),
                Span::Unescaped(a, b) => Some(&unescaped[a..b]),
            })
            .collect())
    }
}

/// Append the unescaped bytes of `field` to `out`.
fn unescape(field: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < field.len() {
        let Some(at) = memchr::memchr(b'\\', &field[i..]) else {
            out.extend_from_slice(&field[i..]);
            return;
        };
        out.extend_from_slice(&field[i..i + at]);
        i += at + 1;
        let Some(&c) = field.get(i) else {
            // A trailing lone backslash: COPY FROM keeps it.
            out.push(b'\\');
            return;
        };
        i += 1;
        match c {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut value = u32::from(c - b'0');
                for _ in 0..2 {
                    match field.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(value as u8);
            }
            b'x' if field.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut value = 0u32;
                for _ in 0..2 {
                    match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            value = value * 16 + d;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(value as u8);
            }
            other => out.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant_pg::encode_copy;

    fn split(line: &[u8], columns: usize) -> Vec<Option<Vec<u8>>> {
        Fields::default()
            .split(line, columns)
            .unwrap()
            .into_iter()
            .map(|v| v.map(<[u8]>::to_vec))
            .collect()
    }

    #[test]
    fn nulls_plain_and_escaped_values() {
        assert_eq!(
            split(b"1\t\\N\ta\\tb\\\\c\\nd\\re\t\\\\N\t", 5),
            vec![
                Some(b"1".to_vec()),
                None,
                Some(b"a\tb\\c\nd\re".to_vec()),
                Some(b"\\N".to_vec()),
                Some(Vec::new()),
            ]
        );
    }

    #[test]
    fn every_escape_the_server_may_write() {
        assert_eq!(
            split(b"\\b\\f\\v\\101\\7\\x41\\x4g\\q\\\\x00ff", 1),
            vec![Some(b"\x08\x0c\x0bA\x07A\x04gq\\x00ff".to_vec())]
        );
    }

    #[test]
    fn what_the_encoder_writes_reads_back() {
        let values: Vec<Option<Vec<u8>>> = vec![
            Some(b"tab\there, newline\nthere, \\ and \r".to_vec()),
            None,
            Some(b"\\N".to_vec()),
            Some((0u8..=255).filter(|b| *b != 0).collect()),
        ];
        let mut line = Vec::new();
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                line.push(b'\t');
            }
            match value {
                Some(bytes) => encode_copy::write_escaped(&mut line, bytes).unwrap(),
                None => line.extend_from_slice(b"\\N"),
            }
        }
        assert_eq!(split(&line, values.len()), values);
    }

    #[test]
    fn zero_columns_and_a_wrong_count() {
        assert!(split(b"", 0).is_empty());
        let mut fields = Fields::default();
        let err = fields.split(b"1\t2", 3).unwrap_err();
        assert_eq!(err.code, "tenant_db_error");
        assert!(fields.split(b"x", 0).is_err());
    }
}
