//! PostgreSQL's `COPY ... FROM stdin` text format, for the row-mode native
//! dump (`native.rs`).
//!
//! Columns are separated by a tab and rows end with a newline; NULL is `\N`;
//! a backslash, tab, newline or carriage return inside a value is written as
//! `\\`, `\t`, `\n`, `\r`. Values are PostgreSQL's own text output, unchanged,
//! so `COPY ... FROM` (or `psql`) reads back exactly what was there.

use std::io::{self, Write};

/// Write one row in COPY text format.
pub(crate) fn write_row(out: &mut impl Write, row: &[Option<Vec<u8>>]) -> io::Result<()> {
    for (i, value) in row.iter().enumerate() {
        if i > 0 {
            out.write_all(b"\t")?;
        }
        match value {
            None => out.write_all(b"\\N")?,
            Some(bytes) => write_escaped(out, bytes)?,
        }
    }
    out.write_all(b"\n")
}

pub(crate) fn write_escaped(out: &mut (impl Write + ?Sized), bytes: &[u8]) -> io::Result<()> {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.write_all(&bytes[start..i])?;
        out.write_all(escape)?;
        start = i + 1;
    }
    out.write_all(&bytes[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specials_are_escaped_and_null_is_backslash_n() {
        let mut out = Vec::new();
        write_row(
            &mut out,
            &[
                Some(b"a\tb\\c\nd\re".to_vec()),
                None,
                Some(b"\\N".to_vec()),
                Some(Vec::new()),
            ],
        )
        .unwrap();
        assert_eq!(out, b"a\\tb\\\\c\\nd\\re\t\\N\t\\\\N\t\n");
    }
}
