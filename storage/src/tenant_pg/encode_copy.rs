//! Writing values in PostgreSQL's `COPY ... FROM stdin` text format, for
//! loading rows (`import_copy.rs`).
//!
//! Columns are separated by a tab and rows end with a newline; NULL is `\N`;
//! a backslash, tab, newline or carriage return inside a value is written as
//! `\\`, `\t`, `\n`, `\r`. Values are PostgreSQL's own text output, unchanged,
//! so `COPY ... FROM` (or `psql`) reads back exactly what was there.

use std::io::{self, Write};

/// Write `bytes` as one value of COPY text format.
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
    fn specials_are_escaped() {
        let mut out = Vec::new();
        write_escaped(&mut out, b"a\tb\\c\nd\re").unwrap();
        assert_eq!(out, b"a\\tb\\\\c\\nd\\re");
    }
}
