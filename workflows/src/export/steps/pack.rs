//! Packing a work file on a second core while it is being produced.
//!
//! A table dump is CPU-bound on one thread (decoding rows, encoding JSON or
//! CSV), and so is deflate. Done one after the other they add up; done side
//! by side they overlap. [`PackingWriter`] is the `Write` a dump writes
//! into: it hands fixed-size chunks over a bounded channel to a packing
//! thread, which hashes them (blake3 for the manifest, CRC-32 for the ZIP
//! entry), deflates them and writes the raw deflate stream to the work
//! file. The bundle step then copies that stream into the archive as it is
//! ([`crate::bundle::BundleWriter::add_packed`]). Data that is compressed
//! already (a `pg_dump -Fc` file, gzip, zstd, …, recognised by its first
//! bytes) is written as it is and stored, not deflated a second time.
//!
//! Memory stays bounded: at most [`QUEUE_CHUNKS`] chunks wait in the channel
//! and the producer fills one more. Buffers travel back to the producer to
//! be reused. Dropping the writer without [`PackingWriter::finish`] (a
//! failed or cancelled dump) stops the thread without syncing the file; the
//! caller removes it.

use super::Live;
use crate::bundle::{PackMethod, Packed};
use flate2::write::DeflateEncoder;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Bytes handed to the packing thread at a time.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks that may wait for the packing thread.
pub const QUEUE_CHUNKS: usize = 4;

/// First bytes of formats that are compressed already.
const COMPRESSED_MAGIC: [&[u8]; 5] = [
    b"PGDMP",                           // pg_dump custom format (compressed by pg_dump)
    &[0x1f, 0x8b],                      // gzip
    &[0x28, 0xb5, 0x2f, 0xfd],          // zstd
    &[0xfd, b'7', b'z', b'X', b'Z', 0], // xz
    b"PK\x03\x04",                      // zip
];

/// What packing a file produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PackedFile {
    /// Size and blake3 (hex) of the data as the producer wrote it.
    pub bytes: u64,
    pub blake3: String,
    /// How it is encoded in the work file.
    pub packed: Packed,
}

/// A `Write` that packs on another thread; see the module documentation.
pub(crate) struct PackingWriter {
    buf: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
    spare: Receiver<Vec<u8>>,
    worker: Option<JoinHandle<io::Result<PackedFile>>>,
    abandoned: Arc<AtomicBool>,
    live: Arc<Live>,
}

impl PackingWriter {
    /// Create `path` and start its packing thread; `level` is the deflate
    /// level (0–9).
    pub fn create(path: &Path, level: u32, live: Arc<Live>) -> io::Result<Self> {
        let file = File::create(path)?;
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(QUEUE_CHUNKS);
        let (spare_tx, spare) = mpsc::sync_channel::<Vec<u8>>(QUEUE_CHUNKS + 1);
        let abandoned = Arc::new(AtomicBool::new(false));
        let stop = abandoned.clone();
        let worker = std::thread::Builder::new()
            .name("ferry-pack".into())
            .spawn(move || pack(rx, spare_tx, file, level, &stop))?;
        Ok(PackingWriter {
            buf: Vec::with_capacity(CHUNK_BYTES),
            tx: Some(tx),
            spare,
            worker: Some(worker),
            abandoned,
            live,
        })
    }

    /// Hand the filled buffer to the packing thread.
    fn send(&mut self) -> io::Result<()> {
        let next = match self.spare.try_recv() {
            Ok(mut v) => {
                v.clear();
                v
            }
            Err(_) => Vec::with_capacity(CHUNK_BYTES),
        };
        let full = std::mem::replace(&mut self.buf, next);
        let sent = match &self.tx {
            Some(tx) => tx.send(full).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            // The thread stopped: its own error says why.
            Err(self
                .join()
                .err()
                .unwrap_or_else(|| io::Error::other("the packing thread stopped early")))
        }
    }

    fn join(&mut self) -> io::Result<PackedFile> {
        self.tx = None;
        match self.worker.take() {
            Some(w) => w
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the packing thread panicked"))),
            None => Err(io::Error::other("the packing thread is gone")),
        }
    }

    /// Pack what is left, flush and fsync the file.
    pub fn finish(mut self) -> io::Result<PackedFile> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        self.join()
    }
}

impl Write for PackingWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // Not `ErrorKind::Interrupted`: `write_all` and `BufWriter` retry
        // those, and a cancelled dump would spin instead of stopping.
        if self.live.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("export step cancelled"));
        }
        let n = data.len().min(CHUNK_BYTES - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_BYTES {
            self.send()?;
        }
        self.live.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// Chunks go to the packing thread when full; `finish` sends the rest.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PackingWriter {
    fn drop(&mut self) {
        if self.worker.is_some() {
            self.abandoned.store(true, Ordering::SeqCst);
            let _ = self.join();
        }
    }
}

/// A file writer that hashes and counts what it writes (the packed bytes).
struct CountingFile {
    inner: BufWriter<File>,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl Write for CountingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Sink {
    Stored(CountingFile),
    Deflate(DeflateEncoder<CountingFile>),
}

/// The packing thread: hash, compress (or store) and write every chunk.
fn pack(
    rx: Receiver<Vec<u8>>,
    spare: SyncSender<Vec<u8>>,
    file: File,
    level: u32,
    abandoned: &AtomicBool,
) -> io::Result<PackedFile> {
    let mut out = Some(CountingFile {
        inner: BufWriter::with_capacity(CHUNK_BYTES, file),
        hasher: blake3::Hasher::new(),
        bytes: 0,
    });
    let mut sink: Option<Sink> = None;
    let mut raw = blake3::Hasher::new();
    let mut crc = crc32fast::Hasher::new();
    let mut bytes = 0u64;
    for chunk in rx {
        if abandoned.load(Ordering::Relaxed) {
            break;
        }
        let sink = sink.get_or_insert_with(|| {
            let file = out.take().expect("the sink is chosen once");
            if COMPRESSED_MAGIC.iter().any(|m| chunk.starts_with(m)) {
                Sink::Stored(file)
            } else {
                Sink::Deflate(DeflateEncoder::new(file, flate2::Compression::new(level)))
            }
        });
        raw.update(&chunk);
        crc.update(&chunk);
        bytes += chunk.len() as u64;
        match sink {
            Sink::Stored(w) => w.write_all(&chunk)?,
            Sink::Deflate(w) => w.write_all(&chunk)?,
        }
        // The producer may be gone or have enough spares; either is fine.
        let _ = spare.try_send(chunk);
    }
    if abandoned.load(Ordering::Relaxed) {
        return Err(io::Error::other("packing abandoned"));
    }
    let (method, mut file) = match sink {
        // Nothing was written: an empty stored entry.
        None => (PackMethod::Stored, out.take().expect("unused")),
        Some(Sink::Stored(w)) => (PackMethod::Stored, w),
        Some(Sink::Deflate(w)) => (PackMethod::Deflate, w.finish()?),
    };
    file.flush()?;
    file.inner.get_ref().sync_all()?;
    Ok(PackedFile {
        bytes,
        blake3: raw.finalize().to_hex().to_string(),
        packed: Packed {
            method,
            crc32: crc.finalize(),
            bytes: file.bytes,
            blake3: file.hasher.finalize().to_hex().to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn pack_bytes(data: &[u8]) -> (PackedFile, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = PackingWriter::create(&path, 1, Arc::new(Live::default())).unwrap();
        // Odd-sized writes cross chunk boundaries.
        for part in data.chunks(100_003) {
            w.write_all(part).unwrap();
        }
        let packed = w.finish().unwrap();
        (packed, std::fs::read(&path).unwrap())
    }

    #[test]
    fn deflates_and_hashes_what_was_written() {
        let data: Vec<u8> = (0..1_000_000u32)
            .flat_map(|i| format!("{{\"id\":{i}}}\n").into_bytes())
            .collect();
        let (p, file) = pack_bytes(&data);
        assert_eq!(p.bytes, data.len() as u64);
        assert_eq!(p.blake3, blake3::hash(&data).to_hex().to_string());
        assert_eq!(p.packed.method, PackMethod::Deflate);
        assert_eq!(p.packed.crc32, crc32fast::hash(&data));
        assert_eq!(p.packed.bytes, file.len() as u64);
        assert_eq!(p.packed.blake3, blake3::hash(&file).to_hex().to_string());
        let mut back = Vec::new();
        flate2::read::DeflateDecoder::new(&file[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn compressed_input_is_stored() {
        let mut data = b"PGDMP".to_vec();
        data.extend((0..300_000u32).map(|i| (i * 7919 % 251) as u8));
        let (p, file) = pack_bytes(&data);
        assert_eq!(p.packed.method, PackMethod::Stored);
        assert_eq!(file, data);
        assert_eq!(p.packed.blake3, p.blake3);
    }

    /// Regression: a cancel error of kind `Interrupted` made `write_all`
    /// retry forever instead of stopping the dump.
    #[test]
    fn a_cancelled_dump_stops_writing() {
        let dir = tempfile::tempdir().unwrap();
        let live = Arc::new(Live::default());
        let mut w = PackingWriter::create(&dir.path().join("f"), 1, live.clone()).unwrap();
        w.write_all(b"before").unwrap();
        live.cancel.store(true, Ordering::SeqCst);
        let mut out = io::BufWriter::new(&mut w);
        let err = out
            .write_all(&[0u8; 100_000])
            .and_then(|_| out.flush())
            .unwrap_err();
        assert_eq!(err.to_string(), "export step cancelled");
    }

    #[test]
    fn empty_input_is_an_empty_stored_entry() {
        let (p, file) = pack_bytes(b"");
        assert_eq!(
            (p.bytes, p.packed.method, file.len()),
            (0, PackMethod::Stored, 0)
        );
    }
}
