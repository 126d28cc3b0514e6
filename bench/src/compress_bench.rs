//! Compression of bundle entries, measured on real export data so the
//! default is chosen by figures (issue 3): deflate (flate2 with the zlib-rs
//! backend, what ferry writes) at several levels, and zstd (ZIP method 93,
//! which Debian's `unzip` cannot open) for comparison. One thread per
//! codec run, as on the export's packing thread.
//!
//! Usage: `compress-bench [--max-mb N] FILE...` — the files are read once
//! (up to N MB in all, default 512) and every codec compresses all of them;
//! prints a Markdown table: input MB/s, output bytes, ratio.

use anyhow::Context;
use std::io::Write;
use std::time::Instant;

enum Codec {
    Deflate(u32),
    Zstd(i32),
}

impl Codec {
    fn name(&self) -> String {
        match self {
            Codec::Deflate(l) => format!("deflate {l} (zlib-rs)"),
            Codec::Zstd(l) => format!("zstd {l}"),
        }
    }

    fn compress(&self, data: &[u8]) -> anyhow::Result<usize> {
        Ok(match self {
            Codec::Deflate(level) => {
                let mut enc = flate2::write::DeflateEncoder::new(
                    Vec::with_capacity(data.len() / 4),
                    flate2::Compression::new(*level),
                );
                // Chunks of 256 KiB, as the packing thread writes them.
                for chunk in data.chunks(256 * 1024) {
                    enc.write_all(chunk)?;
                }
                enc.finish()?.len()
            }
            Codec::Zstd(level) => {
                let mut enc =
                    zstd::stream::Encoder::new(Vec::with_capacity(data.len() / 4), *level)?;
                for chunk in data.chunks(256 * 1024) {
                    enc.write_all(chunk)?;
                }
                enc.finish()?.len()
            }
        })
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    let mut max_mb: usize = 512;
    let mut files = Vec::new();
    while let Some(a) = args.next() {
        if a == "--max-mb" {
            max_mb = args.next().context("--max-mb needs a value")?.parse()?;
        } else {
            files.push(a);
        }
    }
    anyhow::ensure!(
        !files.is_empty(),
        "usage: compress-bench [--max-mb N] FILE..."
    );
    let mut inputs = Vec::new();
    let mut total = 0usize;
    for f in &files {
        let mut data = std::fs::read(f).with_context(|| format!("reading {f}"))?;
        data.truncate((max_mb << 20).saturating_sub(total));
        total += data.len();
        inputs.push(data);
        if total >= max_mb << 20 {
            break;
        }
    }
    let codecs = [
        Codec::Deflate(1),
        Codec::Deflate(2),
        Codec::Deflate(3),
        Codec::Deflate(4),
        Codec::Deflate(6),
        Codec::Zstd(1),
        Codec::Zstd(3),
    ];
    println!(
        "Input: {} files, {:.1} MB\n",
        inputs.len(),
        total as f64 / 1e6
    );
    println!("| codec | input MB/s (one thread) | seconds | output bytes | ratio |");
    println!("|---|---:|---:|---:|---:|");
    for codec in &codecs {
        let t0 = Instant::now();
        let mut out = 0usize;
        for data in &inputs {
            out += codec.compress(data)?;
        }
        let s = t0.elapsed().as_secs_f64();
        println!(
            "| {} | {:.0} | {:.2} | {} | {:.2} |",
            codec.name(),
            total as f64 / 1e6 / s,
            s,
            out,
            total as f64 / out as f64
        );
    }
    Ok(())
}
