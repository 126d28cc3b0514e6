//! A writer that hashes what it is given: the sink a content hash is
//! computed through.
//!
//! Rehydration verifies a table by comparing the blake3 of the `lite`
//! NDJSON an export would write for it now with the manifest's entry. The
//! stores compute it by running their own dump code into this sink, so the
//! bytes hashed are the bytes an export writes, by construction, and
//! nothing is kept.

use std::io::{self, Write};

/// Hashes everything written to it with blake3.
#[derive(Default)]
pub(crate) struct HashSink {
    hasher: blake3::Hasher,
}

impl HashSink {
    /// Lowercase hex of the blake3 of everything written so far, as
    /// manifests spell it.
    pub(crate) fn hex(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }
}

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_like_blake3_of_the_whole() {
        let mut sink = HashSink::default();
        sink.write_all(b"{\"a\":1}\n").unwrap();
        sink.write_all(b"{\"a\":2}\n").unwrap();
        assert_eq!(
            sink.hex(),
            blake3::hash(b"{\"a\":1}\n{\"a\":2}\n").to_hex().to_string()
        );
    }
}
