//! Writing the `lite` NDJSON encoding, for every tenant store: the row
//! object's framing and the tagged objects (`$float`, `$base64`,
//! `$textBase64`) that `lite_read` recognises. What a value of a column is
//! written as is each store's business (`encode_json.rs` of each); the
//! shape around it is one thing here, so the stores cannot drift apart.

use base64::Engine as _;
use std::io::{self, Write};

/// Write one row as a JSON object and a `\n`: keys in `columns` order, each
/// value written by `write_value`.
pub(crate) fn write_row<W: Write, V>(
    out: &mut W,
    columns: &[String],
    values: impl IntoIterator<Item = V>,
    mut write_value: impl FnMut(&mut W, V) -> io::Result<()>,
) -> io::Result<()> {
    out.write_all(b"{")?;
    for (i, (name, value)) in columns.iter().zip(values).enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write_string(out, name)?;
        out.write_all(b":")?;
        write_value(out, value)?;
    }
    out.write_all(b"}\n")
}

/// `{"<tag>":"<text>"}`.
pub(crate) fn tagged(out: &mut impl Write, tag: &str, text: &str) -> io::Result<()> {
    out.write_all(b"{")?;
    write_string(out, tag)?;
    out.write_all(b":")?;
    write_string(out, text)?;
    out.write_all(b"}")
}

/// `{"<tag>":"<standard base64 of bytes, with padding>"}`.
pub(crate) fn tagged_base64(out: &mut impl Write, tag: &str, bytes: &[u8]) -> io::Result<()> {
    tagged(
        out,
        tag,
        &base64::engine::general_purpose::STANDARD.encode(bytes),
    )
}

/// A JSON string, Unicode unescaped.
pub(crate) fn write_string(out: &mut impl Write, s: &str) -> io::Result<()> {
    serde_json::to_writer(&mut *out, s).map_err(io::Error::from)
}
