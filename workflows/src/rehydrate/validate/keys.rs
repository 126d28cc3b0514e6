//! Key prints sorted in bounded memory: an external merge sort.
//!
//! A key check must see every key of a table that may not fit in memory,
//! so each row contributes a fixed-size [`KeyRecord`] (16 bytes of the
//! blake3 of its key values, plus where the row is) to a [`KeySorter`].
//! The sorter keeps at most `chunk_records` in memory; a full chunk is
//! sorted and written to a run file in the validation's work directory.
//! [`KeySorter::finish`] merges the runs, [`MERGE_FANIN`] at a time (so
//! open files and buffers stay bounded too), into one sorted file that can
//! be read any number of times. Even a small table's keys go to a file, so
//! keys of finished tables never stay in memory.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Runs merged at once.
pub(super) const MERGE_FANIN: usize = 16;
const RECORD_BYTES: usize = 32;
const IO_BUFFER_BYTES: usize = 64 * 1024;

/// One key print: sorted by print, then by line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct KeyRecord {
    pub print: [u8; 16],
    /// 1-based line of the row in its table file.
    pub line: u64,
    /// Byte offset of the row, to quote its key in the report.
    pub offset: u64,
}

impl KeyRecord {
    /// The print of a key: 16 bytes of the blake3 of its encoded values.
    pub fn print_of(values: &[&[u8]]) -> [u8; 16] {
        let mut h = blake3::Hasher::new();
        for v in values {
            // Encoded JSON never holds a raw control byte, so 0x1f separates.
            h.update(v);
            h.update(&[0x1f]);
        }
        let mut print = [0u8; 16];
        print.copy_from_slice(&h.finalize().as_bytes()[..16]);
        print
    }

    fn write(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.print)?;
        w.write_all(&self.line.to_le_bytes())?;
        w.write_all(&self.offset.to_le_bytes())
    }

    fn read(r: &mut impl Read) -> io::Result<Option<KeyRecord>> {
        let mut b = [0u8; RECORD_BYTES];
        match r.read_exact(&mut b) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut print = [0u8; 16];
        print.copy_from_slice(&b[..16]);
        Ok(Some(KeyRecord {
            print,
            line: u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")),
            offset: u64::from_le_bytes(b[24..32].try_into().expect("8 bytes")),
        }))
    }
}

/// How the key checks used memory and disk (for tests and operators).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyStats {
    /// Key prints sorted.
    pub records: u64,
    /// Sorted runs written to disk (one per chunk; at least one per key).
    pub runs_spilled: u64,
    /// Merges of up to `MERGE_FANIN` runs into one.
    pub merges: u64,
    /// Bytes written to run files, merges included.
    pub spilled_bytes: u64,
}

/// Collects key prints and sorts them.
pub(super) struct KeySorter {
    dir: PathBuf,
    name: String,
    chunk: Vec<KeyRecord>,
    chunk_max: usize,
    runs: Vec<PathBuf>,
    next_run: usize,
}

/// A sorted file of key prints, readable many times.
pub(super) struct SortedKeys(PathBuf);

impl SortedKeys {
    pub fn iter(&self) -> io::Result<impl Iterator<Item = io::Result<KeyRecord>>> {
        let mut r = BufReader::with_capacity(IO_BUFFER_BYTES, File::open(&self.0)?);
        Ok(std::iter::from_fn(move || {
            KeyRecord::read(&mut r).transpose()
        }))
    }
}

impl KeySorter {
    /// A sorter whose run files are named after `name` in `dir`.
    pub fn new(dir: &Path, name: String, chunk_max: usize) -> KeySorter {
        KeySorter {
            dir: dir.to_owned(),
            name,
            chunk: Vec::new(),
            chunk_max: chunk_max.max(2),
            runs: Vec::new(),
            next_run: 0,
        }
    }

    pub fn push(&mut self, r: KeyRecord, stats: &mut KeyStats) -> io::Result<()> {
        self.chunk.push(r);
        stats.records += 1;
        if self.chunk.len() >= self.chunk_max {
            self.spill(stats)?;
        }
        Ok(())
    }

    fn run_path(&mut self) -> PathBuf {
        self.next_run += 1;
        self.dir
            .join(format!("{}.{}.run", self.name, self.next_run))
    }

    fn spill(&mut self, stats: &mut KeyStats) -> io::Result<()> {
        self.chunk.sort_unstable();
        let path = self.run_path();
        let mut w = BufWriter::with_capacity(IO_BUFFER_BYTES, File::create(&path)?);
        for r in &self.chunk {
            r.write(&mut w)?;
        }
        w.flush()?;
        stats.runs_spilled += 1;
        stats.spilled_bytes += (self.chunk.len() * RECORD_BYTES) as u64;
        self.chunk.clear();
        self.runs.push(path);
        Ok(())
    }

    /// Sort everything pushed.
    pub fn finish(mut self, stats: &mut KeyStats) -> io::Result<SortedKeys> {
        if !self.chunk.is_empty() || self.runs.is_empty() {
            self.spill(stats)?;
        }
        self.chunk = Vec::new();
        while self.runs.len() > 1 {
            let mut merged = Vec::new();
            for group in std::mem::take(&mut self.runs).chunks(MERGE_FANIN) {
                if let [single] = group {
                    merged.push(single.clone());
                    continue;
                }
                let out = self.run_path();
                stats.spilled_bytes += merge(group, &out)?;
                stats.merges += 1;
                for p in group {
                    std::fs::remove_file(p)?;
                }
                merged.push(out);
            }
            self.runs = merged;
        }
        Ok(SortedKeys(self.runs.pop().expect("one run")))
    }
}

/// Merge sorted run files into `out`; the bytes written.
fn merge(runs: &[PathBuf], out: &Path) -> io::Result<u64> {
    let mut readers = runs
        .iter()
        .map(|p| Ok(BufReader::with_capacity(IO_BUFFER_BYTES, File::open(p)?)))
        .collect::<io::Result<Vec<_>>>()?;
    let mut heap = BinaryHeap::with_capacity(readers.len());
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(rec) = KeyRecord::read(r)? {
            heap.push(Reverse((rec, i)));
        }
    }
    let mut w = BufWriter::with_capacity(IO_BUFFER_BYTES, File::create(out)?);
    let mut bytes = 0u64;
    while let Some(Reverse((rec, i))) = heap.pop() {
        rec.write(&mut w)?;
        bytes += RECORD_BYTES as u64;
        if let Some(next) = KeyRecord::read(&mut readers[i])? {
            heap.push(Reverse((next, i)));
        }
    }
    w.flush()?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spilled_runs_merge_into_one_sorted_sequence() {
        let dir = std::env::temp_dir().join(format!("ferry-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut stats = KeyStats::default();
        let mut s = KeySorter::new(&dir, "t".into(), 7);
        let n = 500u64;
        for i in 0..n {
            let v = ((i * 7919) % n).to_string();
            let rec = KeyRecord {
                print: KeyRecord::print_of(&[v.as_bytes()]),
                line: i + 1,
                offset: i,
            };
            s.push(rec, &mut stats).unwrap();
        }
        let sorted = s.finish(&mut stats).unwrap();
        let all: Vec<KeyRecord> = sorted.iter().unwrap().map(Result::unwrap).collect();
        assert_eq!(all.len() as u64, n);
        assert!(all.windows(2).all(|w| w[0] <= w[1]));
        assert!(stats.runs_spilled > MERGE_FANIN as u64, "{stats:?}");
        assert!(stats.merges > 1, "{stats:?}");
        // Only the final run is left.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
