//! `ferry download ID [-o FILE]`: stream a finished export's bundle to a
//! file — by default the name the server gives in `Content-Disposition`,
//! `export_{tenant}_{timestamp}.zip` — through a temporary file beside it,
//! hashing as it writes (never holding the bundle in memory), and keep it
//! only if its size and blake3 checksum are the ones the export's status
//! states.

use super::client::{ApiClient, ClientArgs};
use super::out::{self, CliError};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct DownloadArgs {
    /// The export's id.
    id: String,
    /// Where to write the bundle (default: the server's file name, in the
    /// current folder).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

/// A bundle written to disk and checked.
pub struct Downloaded {
    pub path: PathBuf,
    pub size_bytes: u64,
    pub blake3: String,
}

impl Downloaded {
    pub fn to_json(&self) -> Value {
        json!({
            "file": self.path,
            "sizeBytes": self.size_bytes,
            "blake3": self.blake3,
            "verified": true,
        })
    }
}

pub fn run(args: DownloadArgs) -> anyhow::Result<ExitCode> {
    // Large bundles: no overall deadline, only the connect timeout.
    let api = ApiClient::new(&args.client, Duration::from_secs(24 * 3600))?;
    let got = fetch(&api, &args.id, args.output.as_deref())?;
    if out::json() {
        let mut doc = got.to_json();
        doc["id"] = json!(args.id);
        out::document(&doc);
    } else {
        println!(
            "{}: {} bytes, blake3 {} (checked)",
            got.path.display(),
            got.size_bytes,
            got.blake3
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The file name in a `Content-Disposition` header, if it is a plain name
/// (no folder, not hidden).
fn disposition_name(header: &str) -> Option<String> {
    let rest = header.split("filename=").nth(1)?;
    let name = rest.split(';').next()?.trim().trim_matches('"');
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 255;
    plain.then(|| name.to_owned())
}

/// Download export `id`'s bundle to `output` (or the server's file name);
/// checked against the status's `sizeBytes` and `checksum` (blake3).
pub fn fetch(api: &ApiClient, id: &str, output: Option<&Path>) -> anyhow::Result<Downloaded> {
    let status = api.get_json(&format!("/api/v1/tenant/export/{id}/status"))?;
    let mut resp = api.send(api.get(&format!("/api/v1/tenant/export/{id}/download")))?;
    let server_name = resp
        .headers()
        .get(reqwest::header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .and_then(disposition_name)
        .or_else(|| status["fileName"].as_str().and_then(disposition_name_plain))
        .unwrap_or_else(|| format!("export_{id}.zip"));
    let path = output.map_or_else(|| PathBuf::from(&server_name), Path::to_path_buf);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let expected_size = status["sizeBytes"].as_u64().or(resp.content_length());
    let expected_sum = status["checksum"].as_str().map(str::to_owned).or_else(|| {
        resp.headers()
            .get("X-Content-Checksum-Blake3")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });

    let bar = ProgressBar::new(expected_size.unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {bytes}/{total_bytes} {msg}")?
            .progress_chars("=> "),
    );
    let mut tmp = tempfile::Builder::new()
        .prefix(".ferry-download-")
        .tempfile_in(&dir)
        .map_err(|e| CliError::failed("write_failed", format!("{}: {e}", dir.display())))?;
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = resp
            .read(&mut buf)
            .map_err(|e| CliError::failed("download_interrupted", e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|e| CliError::failed("write_failed", e.to_string()))?;
        size += n as u64;
        bar.set_position(size);
    }
    tmp.as_file().sync_all()?;
    bar.finish_and_clear();
    let sum = hasher.finalize().to_hex().to_string();
    if let Some(want) = expected_size {
        if want != size {
            return Err(CliError::failed(
                "size_mismatch",
                format!("the bundle has {size} bytes; the server states {want}"),
            )
            .into());
        }
    }
    if let Some(want) = expected_sum {
        if !want.eq_ignore_ascii_case(&sum) {
            return Err(CliError::failed(
                "checksum_mismatch",
                format!("the bundle's blake3 is {sum}; the server states {want}"),
            )
            .into());
        }
    }
    // A temporary file is private (0600); the bundle gets the usual mode.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(&path)
        .map_err(|e| CliError::failed("write_failed", format!("{}: {e}", path.display())))?;
    Ok(Downloaded {
        path,
        size_bytes: size,
        blake3: sum,
    })
}

fn disposition_name_plain(name: &str) -> Option<String> {
    disposition_name(&format!("filename=\"{name}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_file_name_is_taken_from_the_header() {
        assert_eq!(
            disposition_name("attachment; filename=\"export_acme_20250101T000000Z.zip\""),
            Some("export_acme_20250101T000000Z.zip".into())
        );
        assert_eq!(
            disposition_name("attachment; filename=a.zip; x=y"),
            Some("a.zip".into())
        );
        for bad in [
            "attachment; filename=\"../etc/passwd\"",
            "attachment; filename=\"/tmp/x.zip\"",
            "attachment; filename=\".hidden\"",
            "attachment; filename=\"\"",
            "attachment",
        ] {
            assert_eq!(disposition_name(bad), None, "{bad}");
        }
    }
}
