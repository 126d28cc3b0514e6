//! The S3/MinIO object store, through the `minio` crate: one private bucket
//! per area (`ferry-assets`, `ferry-exports` by default), keys exactly as
//! `ObjectKey` spells them (`<tenant>/...`).
//!
//! Why it looks the way it does:
//! - Uploads stream from the file in parts of [`PART_SIZE_BYTES_DEFAULT`]
//!   (16 MiB): a file larger than one part becomes a multipart upload, so at
//!   most one part is in memory whatever the bundle size. S3 makes the object
//!   visible only when the upload completes, which gives the port's
//!   "old object or whole new one" guarantee; a failed upload is aborted
//!   (best effort — if the server is gone, the lifecycle rule's
//!   abort-incomplete-uploads clause or an operator cleans it up).
//! - Reads stream the HTTP body; nothing holds a whole object.
//! - Copies are server-side (`CopyObject`, or `UploadPartCopy` parts for
//!   objects over 5 GiB, through minio's `compose_object` with the one
//!   source: its `copy_object` would compose a large object onto its own
//!   source); no byte passes through ferry, and the target appears whole.
//! - Listing asks the server for the prefix `<tenant>/` (with the slash, so
//!   `acme` never sees `acme2/...`) and then re-validates every returned key
//!   with `ObjectKey::parse` + `is_under`: a key that would escape the prefix
//!   (`acme/../acme2/x`, put there by some other tool) is refused, not listed.
//! - Downloads are redirects to a presigned GET that lives at most the given
//!   ttl; the S3 server checks the signature, so a tampered URL is refused
//!   there, and ferry never streams the bundle itself.
//! - Expiry is the engine's durable timer. Where the server has a bucket
//!   lifecycle API, the exports bucket also gets a rule that expires objects
//!   after [`EXPORTS_EXPIRY_DAYS_DEFAULT`] days as a backstop; servers without
//!   one (s3s-fs) are logged and tolerated, never relied upon.
//! - Errors carry stable codes: connection failures and 5xx are retryable
//!   (`s3_unavailable`), denied credentials or signatures are permanent
//!   (`s3_denied`), other 4xx permanent (`s3_rejected`, `s3_no_bucket`,
//!   `s3_not_implemented`, `s3_invalid_request`).

use crate::error_text::error_chain;
use async_trait::async_trait;
use bytes::Bytes;
use ferry_engine::TenantId;
use ferry_workflows::ports::objects::{
    check_same_tenant, object_not_found, Area, DownloadTarget, ObjectKey, ObjectMeta, ObjectPage,
    ObjectReader, ObjectStore, LIST_LIMIT_MAX,
};
use ferry_workflows::ports::PortError;
use futures::StreamExt;
use minio::s3::builders::ComposeSource;
use minio::s3::client::{MinioClient, MinioClientBuilder};
use minio::s3::creds::StaticProvider;
use minio::s3::error::{Error as MinioError, NetworkError, S3ServerError, ValidationErr};
use minio::s3::http::BaseUrl;
use minio::s3::lifecycle_config::{LifecycleConfig, LifecycleRule};
use minio::s3::minio_error_response::MinioErrorCode;
use minio::s3::response_traits::HasEtagFromHeaders;
use minio::s3::segmented_bytes::SegmentedBytes;
use minio::s3::types::{Filter, PartInfo, Region, S3Api, ToStream};
use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Bytes per multipart part (and the largest single-request upload).
pub const PART_SIZE_BYTES_DEFAULT: u64 = 16 * 1024 * 1024;
/// S3's smallest allowed part (except the last).
pub const PART_SIZE_BYTES_MIN: u64 = 5 * 1024 * 1024;
/// S3's most parts per upload; larger files get larger parts.
pub const PARTS_PER_UPLOAD_MAX: u64 = 10_000;
/// Lifecycle backstop on the exports bucket. Longer than the 24 h link life,
/// so the rule never removes a bundle before the engine's timer would.
pub const EXPORTS_EXPIRY_DAYS_DEFAULT: u32 = 2;
/// Longest presigned URL S3 accepts (7 days).
pub const PRESIGN_TTL_SECS_MAX: u64 = 604_800;
pub const ASSETS_BUCKET_DEFAULT: &str = "ferry-assets";
pub const EXPORTS_BUCKET_DEFAULT: &str = "ferry-exports";
pub const BACKUPS_BUCKET_DEFAULT: &str = "ferry-backups";
pub const REGION_DEFAULT: &str = "us-east-1";
/// The listing delimiter: a character no valid key contains (see `list`).
const LIST_DELIMITER: &str = "\\";

/// Where the S3 server is and how to talk to it.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `http://host:port` or `https://host`; without a scheme, https.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub assets_bucket: String,
    pub exports_bucket: String,
    /// Rehydration backups; no lifecycle rule (their retention timer
    /// deletes them, and a backup must never vanish early).
    pub backups_bucket: String,
    pub part_size_bytes: u64,
    pub exports_expiry_days: u32,
}

// The secret key must never reach a log line.
impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("region", &self.region)
            .field("assets_bucket", &self.assets_bucket)
            .field("exports_bucket", &self.exports_bucket)
            .field("backups_bucket", &self.backups_bucket)
            .field("part_size_bytes", &self.part_size_bytes)
            .field("exports_expiry_days", &self.exports_expiry_days)
            .finish()
    }
}

fn config_err(message: impl Into<String>) -> PortError {
    PortError::permanent("s3_config", message)
}

impl S3Config {
    /// A configuration with the default region, buckets and part size.
    pub fn new(
        endpoint: impl Into<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> S3Config {
        S3Config {
            endpoint: endpoint.into(),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            region: REGION_DEFAULT.to_owned(),
            assets_bucket: ASSETS_BUCKET_DEFAULT.to_owned(),
            exports_bucket: EXPORTS_BUCKET_DEFAULT.to_owned(),
            backups_bucket: BACKUPS_BUCKET_DEFAULT.to_owned(),
            part_size_bytes: PART_SIZE_BYTES_DEFAULT,
            exports_expiry_days: EXPORTS_EXPIRY_DAYS_DEFAULT,
        }
    }

    /// From variables looked up by `get`: `MINIO_ENDPOINT` (required to
    /// enable S3), `MINIO_ACCESS_KEY` and `MINIO_SECRET_KEY` (required with
    /// it), `MINIO_REGION` (default `us-east-1`), and optionally
    /// `MINIO_ASSETS_BUCKET` / `MINIO_EXPORTS_BUCKET` / `MINIO_BACKUPS_BUCKET`
    /// (defaults `ferry-assets` / `ferry-exports` / `ferry-backups`) and
    /// `MINIO_PART_SIZE_BYTES` (default [`PART_SIZE_BYTES_DEFAULT`], at least
    /// [`PART_SIZE_BYTES_MIN`]).
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<S3Config>, PortError> {
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let Some(endpoint) = non_empty("MINIO_ENDPOINT") else {
            return Ok(None);
        };
        let access = non_empty("MINIO_ACCESS_KEY")
            .ok_or_else(|| config_err("MINIO_ACCESS_KEY must be set with MINIO_ENDPOINT"))?;
        let secret = non_empty("MINIO_SECRET_KEY")
            .ok_or_else(|| config_err("MINIO_SECRET_KEY must be set with MINIO_ENDPOINT"))?;
        let mut cfg = S3Config::new(endpoint.trim(), access, secret);
        if let Some(region) = non_empty("MINIO_REGION") {
            cfg.region = region;
        }
        if let Some(b) = non_empty("MINIO_ASSETS_BUCKET") {
            cfg.assets_bucket = b;
        }
        if let Some(b) = non_empty("MINIO_EXPORTS_BUCKET") {
            cfg.exports_bucket = b;
        }
        if let Some(b) = non_empty("MINIO_BACKUPS_BUCKET") {
            cfg.backups_bucket = b;
        }
        if let Some(size) = non_empty("MINIO_PART_SIZE_BYTES") {
            cfg.part_size_bytes = size.trim().parse().map_err(|_| {
                config_err(format!(
                    "MINIO_PART_SIZE_BYTES must be a number of bytes, not {size:?}"
                ))
            })?;
        }
        cfg.validate()?;
        Ok(Some(cfg))
    }

    /// Check what can be checked without the server.
    pub fn validate(&self) -> Result<(), PortError> {
        self.endpoint
            .parse::<BaseUrl>()
            .map_err(|e| config_err(format!("MINIO_ENDPOINT is not a valid base URL: {e}")))?;
        Region::new(&self.region).map_err(|e| config_err(format!("MINIO_REGION: {e}")))?;
        for b in [
            &self.assets_bucket,
            &self.exports_bucket,
            &self.backups_bucket,
        ] {
            minio::s3::types::BucketName::new(b.as_str())
                .map_err(|e| config_err(format!("bucket name {b:?}: {e}")))?;
        }
        if self.assets_bucket == self.exports_bucket
            || self.assets_bucket == self.backups_bucket
            || self.exports_bucket == self.backups_bucket
        {
            return Err(config_err(
                "the assets, exports and backups buckets must differ",
            ));
        }
        if self.part_size_bytes < PART_SIZE_BYTES_MIN {
            return Err(config_err(format!(
                "part size must be at least {PART_SIZE_BYTES_MIN} bytes"
            )));
        }
        Ok(())
    }
}

/// Whether the exports bucket got its lifecycle backstop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LifecycleStatus {
    /// The rule is in place.
    Applied { expiry_days: u32 },
    /// The server has no (usable) lifecycle API; expiry rests on the
    /// engine's timer alone, as it always must.
    Unsupported { reason: String },
}

/// The S3 `ObjectStore`.
#[derive(Clone)]
pub struct S3Objects {
    client: MinioClient,
    cfg: S3Config,
    lifecycle: LifecycleStatus,
}

impl fmt::Debug for S3Objects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Objects")
            .field("cfg", &self.cfg)
            .field("lifecycle", &self.lifecycle)
            .finish()
    }
}

/// Map a minio error to a port error with a stable code. `op` names the
/// operation for the message; messages never carry credentials (requests
/// are signed in headers, and no URL here holds a secret).
fn s3_err(op: &str, e: MinioError) -> PortError {
    let msg = |detail: &dyn fmt::Display| format!("{op}: {detail}");
    let by_status = |status: u16, detail: &dyn fmt::Display| {
        if status >= 500 || status == 408 || status == 429 {
            PortError::retryable("s3_unavailable", msg(detail))
        } else if status == 401 || status == 403 {
            PortError::permanent("s3_denied", msg(detail))
        } else {
            PortError::permanent("s3_rejected", msg(detail))
        }
    };
    match &e {
        // Connection refused or reset, timeouts, a body cut off: the server
        // is (for now) not there.
        MinioError::Validation(ValidationErr::HttpError(_))
        | MinioError::Validation(ValidationErr::IOError(_))
        | MinioError::Network(NetworkError::ReqwestError(_)) => {
            PortError::retryable("s3_unavailable", msg(&error_chain(&e)))
        }
        MinioError::Network(NetworkError::ServerError(status)) => by_status(*status, &e),
        MinioError::DriveIo(_) => PortError::retryable("s3_io", msg(&error_chain(&e))),
        MinioError::Validation(_) => {
            PortError::permanent("s3_invalid_request", msg(&error_chain(&e)))
        }
        MinioError::S3Server(S3ServerError::InvalidServerResponse {
            http_status_code, ..
        })
        | MinioError::S3Server(S3ServerError::HttpError(http_status_code, _)) => {
            by_status(*http_status_code, &e)
        }
        MinioError::S3Server(S3ServerError::S3Error(resp)) => {
            let detail = format!(
                "{:?}{}",
                resp.code(),
                resp.message()
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
            match resp.code() {
                MinioErrorCode::AccessDenied => PortError::permanent("s3_denied", msg(&detail)),
                MinioErrorCode::NoSuchBucket => PortError::permanent("s3_no_bucket", msg(&detail)),
                MinioErrorCode::NoSuchKey => PortError::permanent("object_not_found", msg(&detail)),
                MinioErrorCode::MethodNotAllowed | MinioErrorCode::NotSupported => {
                    PortError::permanent("s3_not_implemented", msg(&detail))
                }
                // minio-rs lower-cases the codes it has no variant for.
                MinioErrorCode::OtherError(code) => match code.to_ascii_lowercase().as_str() {
                    "internalerror"
                    | "serviceunavailable"
                    | "slowdown"
                    | "requesttimeout"
                    | "operationaborted"
                    | "xminioservernotinitialized"
                    // The upload vanished (aborted or expired) between parts:
                    // a fresh attempt starts a new one.
                    | "nosuchupload" => PortError::retryable("s3_unavailable", msg(&detail)),
                    "signaturedoesnotmatch"
                    | "invalidaccesskeyid"
                    | "expiredtoken"
                    | "invalidtoken"
                    | "requesttimetooskewed" => PortError::permanent("s3_denied", msg(&detail)),
                    "notimplemented" => PortError::permanent("s3_not_implemented", msg(&detail)),
                    c if c.starts_with("http 5") => {
                        PortError::retryable("s3_unavailable", msg(&detail))
                    }
                    _ => PortError::permanent("s3_rejected", msg(&detail)),
                },
                _ => PortError::permanent("s3_rejected", msg(&detail)),
            }
        }
    }
}

fn is_not_found(e: &MinioError) -> bool {
    matches!(e, MinioError::S3Server(S3ServerError::S3Error(r))
        if matches!(r.code(), MinioErrorCode::NoSuchKey))
}

/// A request's answer; `None` where the key it names does not exist.
fn unless_not_found<T>(op: &str, sent: Result<T, MinioError>) -> Result<Option<T>, PortError> {
    match sent {
        Ok(r) => Ok(Some(r)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(s3_err(op, e)),
    }
}

fn is_not_implemented(e: &PortError) -> bool {
    // s3s-fs answers 501 NotImplemented for the lifecycle API; other servers
    // refuse with 400/405 or deny it. None of that may stop ferry.
    !e.retryable
}

fn validation(op: &str, e: ValidationErr) -> PortError {
    s3_err(op, MinioError::Validation(e))
}

impl S3Objects {
    /// Connect: build the client, create both buckets if missing (S3
    /// buckets are private unless a policy says otherwise, and ferry sets
    /// none), and try the lifecycle backstop on the exports bucket.
    pub async fn connect(cfg: S3Config) -> Result<S3Objects, PortError> {
        cfg.validate()?;
        let mut base_url: BaseUrl = cfg
            .endpoint
            .parse()
            .map_err(|e| config_err(format!("MINIO_ENDPOINT: {e}")))?;
        // A fixed region spares the GetBucketLocation round trip and makes
        // presigning (which needs the region) purely local.
        base_url.region =
            Region::new(&cfg.region).map_err(|e| config_err(format!("MINIO_REGION: {e}")))?;
        let client = MinioClientBuilder::new(base_url)
            .provider(Some(StaticProvider::new(
                &cfg.access_key,
                &cfg.secret_key,
                None,
            )))
            .app_info(Some((
                "ferry".to_owned(),
                env!("CARGO_PKG_VERSION").to_owned(),
            )))
            .build()
            .map_err(|e| s3_err("client", e))?;
        let mut store = S3Objects {
            client,
            cfg,
            lifecycle: LifecycleStatus::Unsupported {
                reason: "not tried".into(),
            },
        };
        for area in Area::ALL {
            store.ensure_bucket(area).await?;
        }
        store.lifecycle = store.apply_lifecycle().await?;
        Ok(store)
    }

    pub fn config(&self) -> &S3Config {
        &self.cfg
    }

    /// The bucket of an area.
    pub fn bucket(&self, area: Area) -> &str {
        match area {
            Area::Assets => &self.cfg.assets_bucket,
            Area::Exports => &self.cfg.exports_bucket,
            Area::Backups => &self.cfg.backups_bucket,
        }
    }

    /// Whether the exports bucket has its lifecycle backstop.
    pub fn lifecycle(&self) -> &LifecycleStatus {
        &self.lifecycle
    }

    /// The underlying client, for tests and tools that need raw S3 access.
    pub fn client(&self) -> &MinioClient {
        &self.client
    }

    async fn ensure_bucket(&self, area: Area) -> Result<(), PortError> {
        let bucket = self.bucket(area);
        let exists = self
            .client
            .bucket_exists(bucket)
            .map_err(|e| validation("bucket_exists", e))?
            .build()
            .send()
            .await
            .map_err(|e| s3_err("bucket_exists", e))?
            .exists();
        if exists {
            return Ok(());
        }
        match self
            .client
            .create_bucket(bucket)
            .map_err(|e| validation("create_bucket", e))?
            .build()
            .send()
            .await
        {
            Ok(_) => {
                tracing::info!(bucket, "created S3 bucket");
                Ok(())
            }
            // Another ferry created it between our check and our create.
            Err(MinioError::S3Server(S3ServerError::S3Error(r)))
                if matches!(r.code(), MinioErrorCode::BucketAlreadyOwnedByYou) =>
            {
                Ok(())
            }
            Err(e) => Err(s3_err("create_bucket", e)),
        }
    }

    async fn apply_lifecycle(&self) -> Result<LifecycleStatus, PortError> {
        let days = self.cfg.exports_expiry_days;
        let rule = LifecycleRule {
            id: "ferry-exports-backstop".into(),
            status: true,
            filter: Filter {
                and_operator: None,
                prefix: Some(String::new()),
                tag: None,
            },
            expiration_days: Some(days),
            abort_incomplete_multipart_upload_days_after_initiation: Some(1),
            ..LifecycleRule::default()
        };
        let sent = self
            .client
            .put_bucket_lifecycle(self.bucket(Area::Exports))
            .map_err(|e| validation("put_bucket_lifecycle", e))?
            .life_cycle_config(LifecycleConfig { rules: vec![rule] })
            .build()
            .send()
            .await;
        match sent {
            Ok(_) => Ok(LifecycleStatus::Applied { expiry_days: days }),
            Err(e) => {
                let e = s3_err("put_bucket_lifecycle", e);
                if is_not_implemented(&e) {
                    tracing::warn!(
                        error = %e,
                        "the S3 server refused a lifecycle rule; exports expire by the engine's timer only"
                    );
                    Ok(LifecycleStatus::Unsupported {
                        reason: e.to_string(),
                    })
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Upload `path` as one request (files up to one part).
    async fn put_single(
        &self,
        bucket: &str,
        key: &ObjectKey,
        file: &mut tokio::fs::File,
        size: u64,
    ) -> Result<u64, PortError> {
        let data = read_part(file, size as usize)
            .await
            .map_err(|e| PortError::retryable("object_io", e.to_string()))?;
        let n = data.len() as u64;
        self.client
            .put_object(bucket, key.as_str(), SegmentedBytes::from(data))
            .map_err(|e| validation("put_object", e))?
            .build()
            .send()
            .await
            .map_err(|e| s3_err("put_object", e))?;
        Ok(n)
    }

    /// Upload `path` as a multipart upload, one part in memory at a time.
    async fn put_multipart(
        &self,
        bucket: &str,
        key: &ObjectKey,
        file: &mut tokio::fs::File,
        part_size: u64,
    ) -> Result<u64, PortError> {
        let upload_id = self
            .client
            .create_multipart_upload(bucket, key.as_str())
            .map_err(|e| validation("create_multipart_upload", e))?
            .build()
            .send()
            .await
            .map_err(|e| s3_err("create_multipart_upload", e))?
            .upload_id()
            .await
            .map_err(|e| validation("create_multipart_upload", e))?;
        let uploaded = async {
            let mut parts: Vec<PartInfo> = Vec::new();
            let mut total = 0u64;
            loop {
                let data = read_part(file, part_size as usize)
                    .await
                    .map_err(|e| PortError::retryable("object_io", e.to_string()))?;
                if data.is_empty() && !parts.is_empty() {
                    break;
                }
                let n = data.len() as u64;
                let number = u16::try_from(parts.len() + 1).map_err(|_| {
                    PortError::permanent("object_too_large", "more than 10000 parts")
                })?;
                let resp = self
                    .client
                    .upload_part(
                        bucket,
                        key.as_str(),
                        upload_id.clone(),
                        number,
                        SegmentedBytes::from(data),
                    )
                    .map_err(|e| validation("upload_part", e))?
                    .build()
                    .send()
                    .await
                    .map_err(|e| s3_err("upload_part", e))?;
                let etag = resp.etag().map_err(|e| validation("upload_part", e))?;
                parts.push(PartInfo::new(number, etag, n, None));
                total += n;
                // Lets a test stop the server between two parts.
                ferry_workflows::failpoints::hit("objects.s3.part.after")
                    .await
                    .map_err(|e| PortError::permanent(e.code, e.message))?;
                if n < part_size {
                    break;
                }
            }
            self.client
                .complete_multipart_upload(bucket, key.as_str(), upload_id.clone(), parts)
                .map_err(|e| validation("complete_multipart_upload", e))?
                .build()
                .send()
                .await
                .map_err(|e| s3_err("complete_multipart_upload", e))?;
            Ok::<u64, PortError>(total)
        }
        .await;
        if uploaded.is_err() {
            // Free the parts already stored. If the server is gone this
            // fails too; the parts are then invisible garbage that the
            // lifecycle rule (where supported) or an operator removes.
            let abort = async {
                self.client
                    .abort_multipart_upload(bucket, key.as_str(), upload_id.clone())
                    .map_err(|e| validation("abort_multipart_upload", e))?
                    .build()
                    .send()
                    .await
                    .map_err(|e| s3_err("abort_multipart_upload", e))
            };
            if let Err(e) = abort.await {
                tracing::warn!(%key, error = %e, "could not abort a failed multipart upload");
            }
        }
        uploaded
    }
}

/// Read up to `want` bytes (fewer only at the end of the file).
async fn read_part(file: &mut tokio::fs::File, want: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; want];
    let mut filled = 0;
    while filled < want {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(Bytes::from(buf))
}

/// The part size for a file of `size` bytes: the configured one, grown so
/// the upload fits in S3's 10,000 parts.
fn part_size_for(size: u64, configured: u64) -> u64 {
    let needed = size.div_ceil(PARTS_PER_UPLOAD_MAX);
    configured.max(needed)
}

#[async_trait]
impl ObjectStore for S3Objects {
    fn backend(&self) -> &'static str {
        "s3"
    }

    async fn put_file(
        &self,
        area: Area,
        key: &ObjectKey,
        path: &Path,
    ) -> Result<ObjectMeta, PortError> {
        let mut file = tokio::fs::File::open(path).await.map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                PortError::permanent(
                    "source_missing",
                    format!("{} does not exist", path.display()),
                )
            } else {
                PortError::retryable("object_io", e.to_string())
            }
        })?;
        let size = file
            .metadata()
            .await
            .map_err(|e| PortError::retryable("object_io", e.to_string()))?
            .len();
        let bucket = self.bucket(area);
        let part_size = part_size_for(size, self.cfg.part_size_bytes);
        let written = if size <= part_size {
            self.put_single(bucket, key, &mut file, size).await?
        } else {
            self.put_multipart(bucket, key, &mut file, part_size)
                .await?
        };
        // The upload succeeded; a failed stat only costs the timestamp.
        let modified = match self.head(area, key).await {
            Ok(Some(meta)) => meta.modified,
            _ => None,
        };
        Ok(ObjectMeta {
            key: key.clone(),
            size: written,
            modified,
        })
    }

    async fn open(&self, area: Area, key: &ObjectKey) -> Result<Option<ObjectReader>, PortError> {
        let sent = self
            .client
            .get_object(self.bucket(area), key.as_str())
            .map_err(|e| validation("get_object", e))?
            .build()
            .send()
            .await;
        let Some(resp) = unless_not_found("get_object", sent)? else {
            return Ok(None);
        };
        let (stream, _size) = resp
            .into_boxed_stream()
            .map_err(|e| s3_err("get_object", e))?;
        Ok(Some(Box::pin(tokio_util::io::StreamReader::new(stream))))
    }

    async fn head(&self, area: Area, key: &ObjectKey) -> Result<Option<ObjectMeta>, PortError> {
        let sent = self
            .client
            .stat_object(self.bucket(area), key.as_str())
            .map_err(|e| validation("stat_object", e))?
            .build()
            .send()
            .await;
        let Some(resp) = unless_not_found("stat_object", sent)? else {
            return Ok(None);
        };
        Ok(Some(ObjectMeta {
            key: key.clone(),
            size: resp.size().map_err(|e| validation("stat_object", e))?,
            modified: resp.last_modified().ok().flatten(),
        }))
    }

    async fn delete(&self, area: Area, key: &ObjectKey) -> Result<bool, PortError> {
        // S3 deletes succeed whether or not the object existed; the port
        // reports which, so look first. A concurrent delete between the two
        // requests makes this `true` twice, which callers tolerate.
        if self.head(area, key).await?.is_none() {
            return Ok(false);
        }
        let sent = self
            .client
            .delete_object(self.bucket(area), key.as_str())
            .map_err(|e| validation("delete_object", e))?
            .build()
            .send()
            .await;
        Ok(unless_not_found("delete_object", sent)?.is_some())
    }

    async fn copy(
        &self,
        from_area: Area,
        from: &ObjectKey,
        to_area: Area,
        to: &ObjectKey,
    ) -> Result<Option<ObjectMeta>, PortError> {
        check_same_tenant(from, to)?;
        let source = ComposeSource::new(self.bucket(from_area), from.as_str())
            .map_err(|e| validation("copy_object", e))?;
        let sent = self
            .client
            .compose_object(self.bucket(to_area), to.as_str(), vec![source])
            .map_err(|e| validation("copy_object", e))?
            .build()
            .send()
            .await;
        if unless_not_found("copy_object", sent)?.is_none() {
            return Ok(None);
        }
        // The size of what was copied is the target's, read back.
        self.head(to_area, to).await?.map(Some).ok_or_else(|| {
            PortError::retryable("s3_unavailable", format!("copy_object: {to} vanished"))
        })
    }

    async fn list(
        &self,
        area: Area,
        tenant: &TenantId,
        start_after: Option<&ObjectKey>,
        limit: usize,
    ) -> Result<ObjectPage, PortError> {
        let limit = limit.clamp(1, LIST_LIMIT_MAX);
        if let Some(after) = start_after {
            if !after.is_under(tenant) {
                return Err(PortError::permanent(
                    "invalid_object_key",
                    "start_after lies outside the tenant's prefix",
                ));
            }
        }
        // The trailing slash is what keeps `acme2/...` out of `acme`'s list.
        let prefix = format!("{}/", tenant.as_str());
        let mut cursor: Option<String> = start_after.map(|k| k.as_str().to_owned());
        let mut objects: Vec<ObjectMeta> = Vec::new();
        let mut more = false;
        loop {
            let want = u16::try_from(limit - objects.len()).unwrap_or(u16::MAX);
            let mut stream = self
                .client
                .list_objects(self.bucket(area))
                .map_err(|e| validation("list_objects", e))?
                .prefix(Some(prefix.clone()))
                // minio-rs always sends `delimiter=`, even when listing
                // recursively; S3 and MinIO read an empty delimiter as none,
                // but s3s-fs splits on it and returns one-character common
                // prefixes instead of keys. A backslash can never occur in
                // an `ObjectKey`, so as the delimiter it groups nothing we
                // could list and makes every server return the keys
                // themselves (keys with a backslash come back as common
                // prefixes, which are skipped below).
                .delimiter(Some(LIST_DELIMITER.to_owned()))
                // Ask for raw keys: some servers echo `encoding-type=url`
                // without encoding, and decoding would then corrupt keys.
                .disable_url_encoding(true)
                .max_keys(Some(want))
                .start_after(cursor.clone())
                .build()
                .to_stream()
                .await;
            let page = match stream.next().await {
                Some(Ok(page)) => page,
                Some(Err(e)) => return Err(s3_err("list_objects", e)),
                None => break,
            };
            let mut last_raw: Option<String> = None;
            for entry in page.contents {
                last_raw = Some(entry.name.clone());
                if entry.is_prefix || entry.is_delete_marker {
                    continue;
                }
                // Re-validate what the server returned: a key written by
                // another tool may not be a valid key, or may try to climb
                // out of the prefix (`acme/../acme2/x`). Such keys are
                // refused, never handed to a step.
                match ObjectKey::parse(&entry.name) {
                    Ok(key) if key.is_under(tenant) => {
                        if objects.len() == limit {
                            more = true;
                            break;
                        }
                        objects.push(ObjectMeta {
                            key,
                            size: entry.size.unwrap_or(0),
                            modified: entry.last_modified,
                        });
                    }
                    _ => {
                        tracing::warn!(
                            bucket = self.bucket(area),
                            key = %entry.name.escape_debug(),
                            "refusing an object key outside the tenant prefix rules"
                        );
                    }
                }
            }
            if more {
                break;
            }
            if !page.is_truncated {
                break;
            }
            if objects.len() == limit {
                more = true;
                break;
            }
            match last_raw {
                Some(raw) => cursor = Some(raw),
                // Truncated yet empty: nothing to resume from.
                None => break,
            }
        }
        Ok(ObjectPage::new(objects, more))
    }

    async fn download_target(
        &self,
        area: Area,
        key: &ObjectKey,
        ttl: Duration,
    ) -> Result<DownloadTarget, PortError> {
        if self.head(area, key).await?.is_none() {
            return Err(object_not_found(key));
        }
        let secs = ttl.as_secs().clamp(1, PRESIGN_TTL_SECS_MAX) as u32;
        let resp = self
            .client
            .get_presigned_object_url(
                self.bucket(area),
                key.as_str(),
                minio::s3::client::Method::GET,
            )
            .map_err(|e| validation("presign", e))?
            .expiry_seconds(Some(secs))
            .build()
            .send()
            .await
            .map_err(|e| s3_err("presign", e))?;
        Ok(DownloadTarget::Redirect(resp.url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_env_needs_an_endpoint_and_both_keys() {
        assert_eq!(S3Config::from_lookup(|_| None).unwrap(), None);
        let vars = |extra: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                extra
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let err = S3Config::from_lookup(vars(&[("MINIO_ENDPOINT", "http://127.0.0.1:9000")]))
            .unwrap_err();
        assert_eq!(err.code, "s3_config");
        let cfg = S3Config::from_lookup(vars(&[
            ("MINIO_ENDPOINT", "http://127.0.0.1:9000"),
            ("MINIO_ACCESS_KEY", "ak"),
            ("MINIO_SECRET_KEY", "sk-very-secret"),
            ("MINIO_REGION", "eu-west-1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(cfg.region, "eu-west-1");
        assert_eq!(cfg.exports_bucket, EXPORTS_BUCKET_DEFAULT);
        assert_eq!(cfg.part_size_bytes, PART_SIZE_BYTES_DEFAULT);
        assert!(!format!("{cfg:?}").contains("sk-very-secret"));
        let bad = S3Config::from_lookup(vars(&[
            ("MINIO_ENDPOINT", "ftp://x"),
            ("MINIO_ACCESS_KEY", "ak"),
            ("MINIO_SECRET_KEY", "sk"),
        ]));
        assert_eq!(bad.unwrap_err().code, "s3_config");
        let keys = [
            ("MINIO_ENDPOINT", "http://127.0.0.1:9000"),
            ("MINIO_ACCESS_KEY", "ak"),
            ("MINIO_SECRET_KEY", "sk"),
        ];
        let with_part = |size: &'static str| {
            let mut all = keys.to_vec();
            all.push(("MINIO_PART_SIZE_BYTES", size));
            let all: &'static [(&str, &str)] = Vec::leak(all);
            S3Config::from_lookup(vars(all))
        };
        assert_eq!(
            with_part("5242880").unwrap().unwrap().part_size_bytes,
            PART_SIZE_BYTES_MIN
        );
        for bad in ["1048576", "16MiB", "-1"] {
            assert_eq!(with_part(bad).unwrap_err().code, "s3_config", "{bad}");
        }
    }

    #[test]
    fn part_size_grows_to_fit_ten_thousand_parts() {
        assert_eq!(
            part_size_for(10, PART_SIZE_BYTES_DEFAULT),
            PART_SIZE_BYTES_DEFAULT
        );
        let huge = 400 * 1024 * 1024 * 1024u64;
        let p = part_size_for(huge, PART_SIZE_BYTES_DEFAULT);
        assert!(huge.div_ceil(p) <= PARTS_PER_UPLOAD_MAX);
    }

    #[test]
    fn server_errors_are_retryable_and_denials_permanent() {
        let e = s3_err("x", MinioError::Network(NetworkError::ServerError(503)));
        assert!(e.retryable);
        assert_eq!(e.code, "s3_unavailable");
        let e = s3_err("x", MinioError::Network(NetworkError::ServerError(403)));
        assert!(!e.retryable);
        assert_eq!(e.code, "s3_denied");
        let e = s3_err(
            "x",
            MinioError::S3Server(S3ServerError::InvalidServerResponse {
                message: "m".into(),
                http_status_code: 502,
                content_type: "text/html".into(),
            }),
        );
        assert!(e.retryable);
    }

    fn server_says(code: &str) -> PortError {
        let resp = minio::s3::minio_error_response::MinioErrorResponse::new(
            Default::default(),
            code.parse().unwrap(),
            Some("m".into()),
            String::new(),
            String::new(),
            String::new(),
            None,
            None,
        );
        s3_err(
            "x",
            MinioError::S3Server(S3ServerError::S3Error(Box::new(resp))),
        )
    }

    #[test]
    fn s3_error_codes_map_whatever_their_case() {
        for (code, expect, retryable) in [
            ("SignatureDoesNotMatch", "s3_denied", false),
            ("InvalidAccessKeyId", "s3_denied", false),
            ("AccessDenied", "s3_denied", false),
            ("InternalError", "s3_unavailable", true),
            ("SlowDown", "s3_unavailable", true),
            ("NoSuchUpload", "s3_unavailable", true),
            ("NotImplemented", "s3_not_implemented", false),
            ("NoSuchBucket", "s3_no_bucket", false),
            ("EntityTooSmall", "s3_rejected", false),
        ] {
            let e = server_says(code);
            assert_eq!(
                (e.code.as_str(), e.retryable),
                (expect, retryable),
                "{code}"
            );
        }
    }
}
