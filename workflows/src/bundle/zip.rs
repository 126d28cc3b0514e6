//! The bytes of the ZIP container (APPNOTE 6.3), only what bundles need:
//! local file headers, data descriptors, central directory records and the
//! end records, with ZIP64 wherever a size, an offset or the entry count
//! does not fit the classic fields.
//!
//! async_zip (0.0.17) can only write entries it compresses itself, but an
//! export compresses its table files while they are dumped, on another core
//! (see `export::steps::pack`), and must copy that deflate stream into the
//! archive unchanged; a `pg_dump -Fc` file is compressed already and goes in
//! stored. So the writer frames entries itself with these pure functions,
//! and [`super::writer`] does the I/O. async_zip still reads bundles
//! ([`super::verify`]), which checks this framing on every verify.

/// Compression methods (APPNOTE 4.4.5).
pub const METHOD_STORED: u16 = 0;
pub const METHOD_DEFLATE: u16 = 8;

/// The largest value of a classic 32-bit size or offset field; this value
/// itself means "see the ZIP64 extra field".
const U32_MAX: u64 = 0xFFFF_FFFF;
/// Most entries the classic end record can count.
const U16_MAX: u64 = 0xFFFF;
/// A streamed entry whose source is at least this large gets ZIP64 sizes
/// in advance: deflate may grow incompressible input by well under 1%, so
/// a smaller source can never need them.
pub const STREAM_ZIP64_FROM_BYTES: u64 = 0xF000_0000;

const LOCAL_SIG: u32 = 0x0403_4b50;
const DESCRIPTOR_SIG: u32 = 0x0807_4b50;
pub(crate) const CENTRAL_SIG: u32 = 0x0201_4b50;
const END_SIG: u32 = 0x0605_4b50;
pub(crate) const END64_SIG: u32 = 0x0606_4b50;
pub(crate) const LOCATOR64_SIG: u32 = 0x0706_4b50;
const ZIP64_EXTRA_ID: u16 = 0x0001;

/// General purpose flags: sizes follow in a data descriptor; names are UTF-8.
const FLAG_DESCRIPTOR: u16 = 1 << 3;
const FLAG_UTF8: u16 = 1 << 11;
/// Version needed to extract: 2.0 (deflate), 4.5 (ZIP64).
const VERSION_DEFLATE: u16 = 20;
const VERSION_ZIP64: u16 = 45;
/// Version made by: Unix (3), so the external attributes carry the mode.
const MADE_BY: u16 = (3 << 8) | VERSION_ZIP64;
/// External attributes of a regular file, rw-r--r--.
const UNIX_FILE_ATTRS: u32 = 0o100644 << 16;

/// One entry as the central directory records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub method: u16,
    /// MS-DOS time and date of last modification.
    pub dos_time: u16,
    pub dos_date: u16,
    pub crc32: u32,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    /// Offset of the entry's local header in the archive.
    pub offset: u64,
    /// The sizes and CRC follow the data in a descriptor (streamed entry).
    pub descriptor: bool,
    /// The local header (and descriptor) carry ZIP64 sizes.
    pub zip64_sizes: bool,
}

impl Entry {
    /// An entry whose sizes and CRC are known before its data is written.
    #[allow(clippy::too_many_arguments)]
    pub fn known(
        name: &str,
        method: u16,
        (dos_time, dos_date): (u16, u16),
        crc32: u32,
        compressed_bytes: u64,
        uncompressed_bytes: u64,
        offset: u64,
    ) -> Entry {
        Entry {
            name: name.to_owned(),
            method,
            dos_time,
            dos_date,
            crc32,
            compressed_bytes,
            uncompressed_bytes,
            offset,
            descriptor: false,
            zip64_sizes: compressed_bytes >= U32_MAX || uncompressed_bytes >= U32_MAX,
        }
    }

    /// A deflated entry streamed from a source of `source_bytes`; its CRC
    /// and sizes are filled in by [`Entry::streamed_done`].
    pub fn streamed(
        name: &str,
        (dos_time, dos_date): (u16, u16),
        source_bytes: u64,
        offset: u64,
    ) -> Entry {
        Entry {
            name: name.to_owned(),
            method: METHOD_DEFLATE,
            dos_time,
            dos_date,
            crc32: 0,
            compressed_bytes: 0,
            uncompressed_bytes: 0,
            offset,
            descriptor: true,
            zip64_sizes: source_bytes >= STREAM_ZIP64_FROM_BYTES,
        }
    }

    /// Record what streaming the entry produced. Fails if the sizes need
    /// ZIP64 but the local header did not announce it (the source grew
    /// while it was read).
    pub fn streamed_done(
        &mut self,
        crc32: u32,
        compressed_bytes: u64,
        uncompressed_bytes: u64,
    ) -> Result<(), String> {
        if !self.zip64_sizes && (compressed_bytes >= U32_MAX || uncompressed_bytes >= U32_MAX) {
            return Err(format!(
                "{} grew past 4 GiB while it was written",
                self.name
            ));
        }
        self.crc32 = crc32;
        self.compressed_bytes = compressed_bytes;
        self.uncompressed_bytes = uncompressed_bytes;
        Ok(())
    }

    fn flags(&self) -> u16 {
        if self.descriptor {
            FLAG_UTF8 | FLAG_DESCRIPTOR
        } else {
            FLAG_UTF8
        }
    }

    fn version_needed(&self, zip64: bool) -> u16 {
        if zip64 {
            VERSION_ZIP64
        } else {
            VERSION_DEFLATE
        }
    }
}

fn u16le(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn u32le(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn u64le(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A classic 32-bit field: the value, or the ZIP64 marker.
fn field32(v: u64) -> u32 {
    if v >= U32_MAX {
        U32_MAX as u32
    } else {
        v as u32
    }
}

fn zip64_extra(values: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 8 * values.len());
    u16le(&mut out, ZIP64_EXTRA_ID);
    u16le(&mut out, (8 * values.len()) as u16);
    for v in values {
        u64le(&mut out, *v);
    }
    out
}

/// The local file header of `e`, written just before its data.
pub fn local_header(e: &Entry) -> Vec<u8> {
    // A streamed entry's header holds zeros; a ZIP64 one announces 8-byte
    // sizes with an extra field (zeros too, the descriptor has the values).
    let (crc, csize, usize_) = if e.descriptor {
        (0, 0, 0)
    } else {
        (e.crc32, e.compressed_bytes, e.uncompressed_bytes)
    };
    // APPNOTE 4.5.3: in a local header the ZIP64 field holds both sizes.
    let extra = if e.zip64_sizes {
        zip64_extra(&[usize_, csize])
    } else {
        Vec::new()
    };
    let (c32, u32_) = if e.zip64_sizes {
        (U32_MAX as u32, U32_MAX as u32)
    } else {
        (csize as u32, usize_ as u32)
    };
    let mut out = Vec::with_capacity(30 + e.name.len() + extra.len());
    u32le(&mut out, LOCAL_SIG);
    u16le(&mut out, e.version_needed(e.zip64_sizes));
    u16le(&mut out, e.flags());
    u16le(&mut out, e.method);
    u16le(&mut out, e.dos_time);
    u16le(&mut out, e.dos_date);
    u32le(&mut out, crc);
    u32le(&mut out, c32);
    u32le(&mut out, u32_);
    u16le(&mut out, e.name.len() as u16);
    u16le(&mut out, extra.len() as u16);
    out.extend_from_slice(e.name.as_bytes());
    out.extend_from_slice(&extra);
    out
}

/// The data descriptor that follows a streamed entry's data.
pub fn data_descriptor(e: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    u32le(&mut out, DESCRIPTOR_SIG);
    u32le(&mut out, e.crc32);
    if e.zip64_sizes {
        u64le(&mut out, e.compressed_bytes);
        u64le(&mut out, e.uncompressed_bytes);
    } else {
        u32le(&mut out, e.compressed_bytes as u32);
        u32le(&mut out, e.uncompressed_bytes as u32);
    }
    out
}

/// The central directory record of `e`.
pub fn central_record(e: &Entry) -> Vec<u8> {
    // APPNOTE 4.5.3: only the fields that overflow, in this order.
    let mut wide = Vec::new();
    for v in [e.uncompressed_bytes, e.compressed_bytes, e.offset] {
        if v >= U32_MAX {
            wide.push(v);
        }
    }
    let extra = if wide.is_empty() {
        Vec::new()
    } else {
        zip64_extra(&wide)
    };
    let mut out = Vec::with_capacity(46 + e.name.len() + extra.len());
    u32le(&mut out, CENTRAL_SIG);
    u16le(&mut out, MADE_BY);
    u16le(
        &mut out,
        e.version_needed(e.zip64_sizes || !wide.is_empty()),
    );
    u16le(&mut out, e.flags());
    u16le(&mut out, e.method);
    u16le(&mut out, e.dos_time);
    u16le(&mut out, e.dos_date);
    u32le(&mut out, e.crc32);
    u32le(&mut out, field32(e.compressed_bytes));
    u32le(&mut out, field32(e.uncompressed_bytes));
    u16le(&mut out, e.name.len() as u16);
    u16le(&mut out, extra.len() as u16);
    u16le(&mut out, 0); // comment length
    u16le(&mut out, 0); // disk number start
    u16le(&mut out, 0); // internal attributes
    u32le(&mut out, UNIX_FILE_ATTRS);
    u32le(&mut out, field32(e.offset));
    out.extend_from_slice(e.name.as_bytes());
    out.extend_from_slice(&extra);
    out
}

/// The records after the central directory: the ZIP64 end record and its
/// locator when anything overflows the classic end record, then the
/// classic end record. `end_offset` is where these records start (just
/// after the central directory).
pub fn end_records(
    entries: u64,
    directory_offset: u64,
    directory_bytes: u64,
    end_offset: u64,
) -> Vec<u8> {
    let zip64 = entries >= U16_MAX || directory_offset >= U32_MAX || directory_bytes >= U32_MAX;
    let mut out = Vec::with_capacity(22 + 76);
    if zip64 {
        u32le(&mut out, END64_SIG);
        u64le(&mut out, 44); // size of the rest of this record
        u16le(&mut out, MADE_BY);
        u16le(&mut out, VERSION_ZIP64);
        u32le(&mut out, 0); // this disk
        u32le(&mut out, 0); // disk with the central directory
        u64le(&mut out, entries);
        u64le(&mut out, entries);
        u64le(&mut out, directory_bytes);
        u64le(&mut out, directory_offset);
        u32le(&mut out, LOCATOR64_SIG);
        u32le(&mut out, 0); // disk with the ZIP64 end record
        u64le(&mut out, end_offset);
        u32le(&mut out, 1); // total disks
    }
    let count = if zip64 {
        U16_MAX as u16
    } else {
        entries as u16
    };
    u32le(&mut out, END_SIG);
    u16le(&mut out, 0);
    u16le(&mut out, 0);
    u16le(&mut out, count);
    u16le(&mut out, count);
    u32le(&mut out, field32(directory_bytes));
    u32le(&mut out, field32(directory_offset));
    u16le(&mut out, 0); // comment length
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_entries_use_classic_fields() {
        let e = Entry::known("a.txt", METHOD_DEFLATE, (0, 0), 7, 10, 20, 0);
        assert!(!e.zip64_sizes);
        assert_eq!(local_header(&e).len(), 30 + 5);
        assert_eq!(central_record(&e).len(), 46 + 5);
        assert_eq!(end_records(1, 100, 51, 151).len(), 22);
    }

    #[test]
    fn large_values_move_to_zip64_fields() {
        let e = Entry::known("big", METHOD_STORED, (0, 0), 1, 5 << 30, 5 << 30, 6 << 30);
        assert!(e.zip64_sizes);
        // Local: both sizes; central: both sizes and the offset.
        assert_eq!(local_header(&e).len(), 30 + 3 + 4 + 16);
        assert_eq!(central_record(&e).len(), 46 + 3 + 4 + 24);
        assert_eq!(
            end_records(70_000, 7 << 30, 10, 8 << 30).len(),
            56 + 20 + 22
        );
    }

    #[test]
    fn streamed_entries_must_announce_zip64_in_advance() {
        let mut e = Entry::streamed("s", (0, 0), 10, 0);
        assert!(e.streamed_done(1, 5 << 30, 5 << 30).is_err());
        let mut e = Entry::streamed("s", (0, 0), 5 << 30, 0);
        e.streamed_done(1, 5 << 30, 5 << 30).unwrap();
        assert_eq!(data_descriptor(&e).len(), 24);
    }
}
