//! RFC 4180 records, shared by every tenant store's CSV encoder so all
//! backends quote alike: fields are quoted when they hold a comma, quote,
//! CR or LF, or are empty (so an empty string differs from NULL, which is
//! written as nothing at all); records end with CRLF.

use std::io::{self, Write};

/// Write the header record.
pub(crate) fn write_header(out: &mut impl Write, columns: &[String]) -> io::Result<()> {
    for (i, name) in columns.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write_field(out, name.as_bytes())?;
    }
    out.write_all(b"\r\n")
}

/// Write a non-NULL field, quoting it when RFC 4180 requires it or when it
/// is empty (so that it differs from NULL).
pub(crate) fn write_field(out: &mut impl Write, field: &[u8]) -> io::Result<()> {
    let needs_quotes = field.is_empty()
        || field
            .iter()
            .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
    if !needs_quotes {
        return out.write_all(field);
    }
    out.write_all(b"\"")?;
    for part in field.split_inclusive(|&b| b == b'"') {
        out.write_all(part)?;
        if part.last() == Some(&b'"') {
            out.write_all(b"\"")?;
        }
    }
    out.write_all(b"\"")
}
