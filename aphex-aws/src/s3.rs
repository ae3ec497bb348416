//! S3 adapters: the artifact store and the run recorder.
//!
//! Layout in the bucket (DESIGN §6, keyed by run since issue 15):
//! - `<pipeline>/artifacts/<run-id>/artifacts.tar.zst`: the archive of one
//!   run's build, tagged `commit-sha`, `run-id` and `timestamp`, its SHA-256
//!   also in the object metadata. Keyed by run, not commit: another run
//!   building the same commit (a retry, a pull-request check) writes its own
//!   key and can never change what this run's deploy restores;
//! - `<pipeline>/artifacts/<run-id>/metadata.json`: [`ArtifactMetadata`],
//!   written after the archive, so its presence means the archive is
//!   complete, and checked against it (size, SHA-256) on every download;
//! - `<pipeline>/runs/<newest-first-key>_<run-id>.json`: the run object, one
//!   [`RunRecord`] per run, written by `finalize`; the key starts with
//!   `9999999999999` minus the start time in milliseconds, so S3's
//!   lexicographic listing is newest first;
//! - `<pipeline>/pr/...`: the same layout for pull-request runs
//!   ([`S3ArtifactStore::for_pull_requests`]), the only prefix the
//!   pull-request role may write;
//! - `<pipeline>/runs/<run-id>/stages/<stage>.json`: one stage object per
//!   stage (a partial [`RunRecord`] with that one stage), written by the
//!   stage's own pod, so stages running in parallel never write the same
//!   object. Loading a run merges them into its run object; a run with stage
//!   objects only (no `finalize` yet) is listed as running;
//! - `<pipeline>/logs/<run-id>/<stage>/<index>.log`: a stage's log in
//!   pieces, stored while it runs (`aphex_stages::log_upload`).
//!
//! Large archives go up as a multipart upload with parts in parallel; every
//! download is checked against the SHA-256 recorded at upload.
//!
//! Every write may be repeated safely: a `PutObject` whose answer was lost
//! is sent again by the SDK and writes the same bytes to the same key; a
//! `CompleteMultipartUpload` whose answer was lost is recognised by the
//! object it left.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use aphex_stages::ports::{
    ArtifactMetadata, ArtifactStore, LogChunk, RecordError, RunListing, RunRecorder, StoreError,
};
use aphex_stages::record::{self, RunRecord, StageRecord};

use crate::client::{self, AwsError};

/// The archive's object name under `<pipeline>/artifacts/<run-id>/`.
pub const ARCHIVE_NAME: &str = "artifacts.tar.zst";
/// The metadata's object name under `<pipeline>/artifacts/<run-id>/`.
pub const METADATA_NAME: &str = "metadata.json";

/// Archives at least this large go up as a multipart upload.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// Part size of a multipart upload (S3's minimum is 5 MiB).
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;
/// Parts uploaded at once: bounds memory and connections.
pub const DEFAULT_PART_CONCURRENCY: usize = 4;
/// S3's smallest part (except the last).
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// `<pipeline>`, or `<pipeline>/<sub>` for a store scoped to `sub`.
fn rooted(pipeline: &str, sub: Option<&str>) -> String {
    match sub {
        None => pipeline.to_owned(),
        Some(sub) => format!("{pipeline}/{sub}"),
    }
}

/// Build artifacts in S3.
#[derive(Debug, Clone)]
pub struct S3ArtifactStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// The folder under `<pipeline>/` everything goes to (pull-request runs).
    sub: Option<&'static str>,
    multipart_threshold: u64,
    part_size: u64,
    part_concurrency: usize,
}

impl S3ArtifactStore {
    /// A store in `bucket`, with the default multipart settings.
    pub fn new(config: &SdkConfig, bucket: impl Into<String>) -> Self {
        S3ArtifactStore {
            client: client::s3(config),
            bucket: bucket.into(),
            sub: None,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
            part_concurrency: DEFAULT_PART_CONCURRENCY,
        }
    }

    /// Keeps everything under `<pipeline>/pr/`: a pull-request run's store
    /// (its role may write nowhere else).
    pub fn for_pull_requests(mut self) -> Self {
        self.sub = Some(aphex_template::cloudformation::PULL_REQUEST_PREFIX);
        self
    }

    fn root(&self, pipeline: &str) -> String {
        rooted(pipeline, self.sub)
    }

    /// Uses multipart uploads from `threshold` bytes, in parts of `part_size`
    /// (raised to S3's 5 MiB minimum), `concurrency` at a time.
    pub fn with_multipart(mut self, threshold: u64, part_size: u64, concurrency: usize) -> Self {
        self.multipart_threshold = threshold;
        self.part_size = part_size.max(MIN_PART_SIZE);
        self.part_concurrency = concurrency.max(1);
        self
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The folder of run `run_id`'s artifacts.
    pub fn artifacts_prefix(pipeline: &str, run_id: &str) -> String {
        format!("{pipeline}/artifacts/{run_id}/")
    }

    /// The archive's key for run `run_id` of `pipeline`.
    pub fn archive_key(pipeline: &str, run_id: &str) -> String {
        format!("{}{ARCHIVE_NAME}", Self::artifacts_prefix(pipeline, run_id))
    }

    /// The metadata's key for run `run_id` of `pipeline`.
    pub fn metadata_key(pipeline: &str, run_id: &str) -> String {
        format!("{}{METADATA_NAME}", Self::artifacts_prefix(pipeline, run_id))
    }

    fn url(&self, key: &str) -> String {
        s3_url(&self.bucket, key)
    }

    async fn put_whole(&self, archive: &Path, key: &str, tags: &str, sha256: &str) -> Result<(), StoreError> {
        let body = ByteStream::from_path(archive)
            .await
            .map_err(|e| StoreError::backend(format!("reading {}", archive.display()), e))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body)
            .tagging(tags)
            .metadata("sha256", sha256)
            .content_type("application/zstd")
            .send()
            .await
            .map_err(|e| {
                StoreError::backend(
                    format!("uploading {}", self.url(key)),
                    AwsError::new("S3", "PutObject", e),
                )
            })?;
        Ok(())
    }

    async fn put_multipart(
        &self,
        archive: &Path,
        size: u64,
        key: &str,
        tags: &str,
        sha256: &str,
    ) -> Result<(), StoreError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .tagging(tags)
            .metadata("sha256", sha256)
            .content_type("application/zstd")
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(|e| {
                StoreError::backend(
                    format!("starting the multipart upload of {}", self.url(key)),
                    AwsError::new("S3", "CreateMultipartUpload", e),
                )
            })?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let uploaded = match self.upload_parts(archive, size, key, &upload_id).await {
            Ok(parts) => self.complete(key, &upload_id, parts, size, sha256).await,
            Err(e) => Err(e),
        };
        if uploaded.is_err() {
            // Leaving the parts would keep paying for them; the error that
            // matters is the upload's, so an abort failure is only logged,
            // naming the upload.
            if let Err(abort) = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await
            {
                tracing::warn!(
                    key,
                    upload_id,
                    error = %AwsError::new("S3", "AbortMultipartUpload", abort),
                    "the parts of a failed multipart upload are left in the bucket (a lifecycle rule with AbortIncompleteMultipartUpload removes them)"
                );
            }
        }
        uploaded
    }

    /// Completes the upload. When the answer to the first attempt was lost,
    /// the SDK sends the call again, and S3 may answer `NoSuchUpload`: the
    /// upload is complete already. The object then holds this archive
    /// (its size and the SHA-256 in its metadata), which is checked.
    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        size: u64,
        sha256: &str,
    ) -> Result<(), StoreError> {
        let err = match self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        if err.code() == Some("NoSuchUpload") && self.holds(key, size, sha256).await {
            tracing::info!(
                key,
                "the answer to CompleteMultipartUpload was lost, but the object is complete"
            );
            return Ok(());
        }
        Err(StoreError::backend(
            format!("completing the upload of {}", self.url(key)),
            AwsError::new("S3", "CompleteMultipartUpload", err),
        ))
    }

    /// Whether the object at `key` is the archive of `size` bytes and `sha256`.
    async fn holds(&self, key: &str, size: u64, sha256: &str) -> bool {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => {
                head.content_length() == i64::try_from(size).ok()
                    && head
                        .metadata()
                        .and_then(|m| m.get("sha256"))
                        .is_some_and(|s| s == sha256)
            }
            Err(_) => false,
        }
    }

    /// Uploads every part, `part_concurrency` at a time, each streamed from
    /// its range of the file (memory stays small whatever the archive size).
    async fn upload_parts(
        &self,
        archive: &Path,
        size: u64,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<CompletedPart>, StoreError> {
        let count = size.div_ceil(self.part_size).max(1);
        let mut parts: Vec<CompletedPart> = futures::stream::iter(0..count)
            .map(|index| {
                let offset = index * self.part_size;
                let length = self.part_size.min(size - offset);
                self.upload_part(archive, key, upload_id, index as i32 + 1, offset, length)
            })
            .buffer_unordered(self.part_concurrency)
            .try_collect()
            .await?;
        parts.sort_by_key(|p| p.part_number());
        Ok(parts)
    }

    async fn upload_part(
        &self,
        archive: &Path,
        key: &str,
        upload_id: &str,
        number: i32,
        offset: u64,
        length: u64,
    ) -> Result<CompletedPart, StoreError> {
        let body = ByteStream::read_from()
            .path(archive)
            .offset(offset)
            .length(Length::Exact(length))
            .build()
            .await
            .map_err(|e| StoreError::backend(format!("reading {}", archive.display()), e))?;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                StoreError::backend(
                    format!("uploading part {number} of {}", self.url(key)),
                    AwsError::new("S3", "UploadPart", e),
                )
            })?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.e_tag().map(str::to_owned))
            .set_checksum_crc32(out.checksum_crc32().map(str::to_owned))
            .build())
    }

    /// Downloads `key` into `dest` (through a temporary file next to it) and
    /// returns the SHA-256 and size of what was read.
    async fn download(&self, key: &str, dest: &Path) -> Result<(String, u64), StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| not_found_or(e, self.url(key), "downloading", store_missing))?;
        let partial = partial_path(dest);
        let mut file = tokio::fs::File::create(&partial)
            .await
            .map_err(StoreError::io(format!("creating {}", partial.display())))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut body = out.body;
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| StoreError::backend(format!("downloading {}", self.url(key)), e))?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(StoreError::io(format!("writing {}", partial.display())))?;
        }
        file.flush()
            .await
            .map_err(StoreError::io(format!("writing {}", partial.display())))?;
        drop(file);
        tokio::fs::rename(&partial, dest)
            .await
            .map_err(StoreError::io(format!(
                "moving {} to {}",
                partial.display(),
                dest.display()
            )))?;
        Ok((hex::encode(hasher.finalize()), size))
    }
}

#[async_trait]
impl ArtifactStore for S3ArtifactStore {
    fn location(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    async fn put(&self, archive: &Path, metadata: &ArtifactMetadata) -> Result<(), StoreError> {
        let size = tokio::fs::metadata(archive)
            .await
            .map_err(StoreError::io(format!("reading {}", archive.display())))?
            .len();
        record::check_segment("run id", &metadata.run_id)?;
        let tags = tag_set(&[
            ("commit-sha", &metadata.commit_sha),
            ("run-id", &metadata.run_id),
            ("timestamp", &metadata.timestamp),
        ]);
        let archive_key = Self::archive_key(&self.root(&metadata.pipeline), &metadata.run_id);
        if size >= self.multipart_threshold {
            self.put_multipart(archive, size, &archive_key, &tags, &metadata.sha256)
                .await?;
        } else {
            self.put_whole(archive, &archive_key, &tags, &metadata.sha256)
                .await?;
        }
        let metadata_key = Self::metadata_key(&self.root(&metadata.pipeline), &metadata.run_id);
        let json = serde_json::to_vec_pretty(metadata).map_err(|source| StoreError::Metadata {
            context: "serializing the artifact metadata".to_owned(),
            source,
        })?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&metadata_key)
            .body(ByteStream::from(json))
            .tagging(&tags)
            .content_type("application/json")
            .send()
            .await
            .map_err(|e| {
                StoreError::backend(
                    format!("uploading {}", self.url(&metadata_key)),
                    AwsError::new("S3", "PutObject", e),
                )
            })?;
        tracing::info!(location = %self.url(&archive_key), size, "artifact stored");
        Ok(())
    }

    async fn get(&self, pipeline: &str, run_id: &str, dest: &Path) -> Result<ArtifactMetadata, StoreError> {
        record::check_segment("run id", run_id)?;
        let metadata_key = Self::metadata_key(&self.root(pipeline), run_id);
        let bytes = get_whole(
            &self.client,
            &self.bucket,
            &metadata_key,
            "downloading",
            store_missing,
        )
        .await?;
        let metadata: ArtifactMetadata =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Metadata {
                context: format!("reading {} (not artifact metadata)", self.url(&metadata_key)),
                source,
            })?;
        let archive_key = Self::archive_key(&self.root(pipeline), run_id);
        let (actual, size) = self.download(&archive_key, dest).await?;
        if actual != metadata.sha256 || size != metadata.size {
            // A corrupt archive must never be unpacked by mistake.
            let _ = tokio::fs::remove_file(dest).await;
            return Err(StoreError::Corrupt {
                what: self.url(&archive_key),
                expected: metadata.sha256,
                actual,
            });
        }
        Ok(metadata)
    }
}

/// Run records in S3, one JSON object per run.
#[derive(Debug, Clone)]
pub struct S3RunRecorder {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// The folder under `<pipeline>/` everything goes to (pull-request runs).
    sub: Option<&'static str>,
}

/// The largest start time the newest-first key can hold (year 2286).
const KEY_CLOCK_MAX: i128 = 9_999_999_999_999;

impl S3RunRecorder {
    /// Writes `record` as JSON at `key`. One PutObject replaces the whole
    /// object at once: readers never see half a record.
    async fn put_record(&self, key: &str, record: &RunRecord) -> Result<(), RecordError> {
        let json = serde_json::to_vec_pretty(record).map_err(|source| RecordError::Json {
            context: "serializing the run record".to_owned(),
            source,
        })?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(json))
            .content_type("application/json")
            .send()
            .await
            .map_err(|e| {
                RecordError::backend(
                    format!("writing {}", self.url(key)),
                    AwsError::new("S3", "PutObject", e),
                )
            })?;
        Ok(())
    }
    /// A recorder in `bucket`.
    pub fn new(config: &SdkConfig, bucket: impl Into<String>) -> Self {
        S3RunRecorder {
            client: client::s3(config),
            bucket: bucket.into(),
            sub: None,
        }
    }

    /// Keeps every record under `<pipeline>/pr/`: a pull-request run's
    /// recorder (its role may write nowhere else).
    pub fn for_pull_requests(mut self) -> Self {
        self.sub = Some(aphex_template::cloudformation::PULL_REQUEST_PREFIX);
        self
    }

    fn root(&self, pipeline: &str) -> String {
        rooted(pipeline, self.sub)
    }

    /// The folder of `pipeline`'s runs.
    pub fn runs_prefix(pipeline: &str) -> String {
        format!("{pipeline}/runs/")
    }

    /// The key of `run`: newer runs sort first.
    pub fn run_key(run: &RunRecord) -> String {
        Self::run_key_under(&run.pipeline, run)
    }

    /// The key of `run` under `root` (`<pipeline>`, or `<pipeline>/pr`).
    fn run_key_under(root: &str, run: &RunRecord) -> String {
        let millis =
            time::OffsetDateTime::parse(&run.started_at, &time::format_description::well_known::Rfc3339)
                .map(|t| t.unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(0)
                .clamp(0, KEY_CLOCK_MAX);
        format!(
            "{}{:013}_{}.json",
            Self::runs_prefix(root),
            KEY_CLOCK_MAX - millis,
            run.id
        )
    }

    fn url(&self, key: &str) -> String {
        s3_url(&self.bucket, key)
    }

    /// The pipelines with a top-level folder in the bucket (`aphex history
    /// --store` lists the runs of each; one without runs lists none).
    pub async fn pipelines(&self) -> Result<Vec<String>, RecordError> {
        let listed = self.list("", Depth::OneLevel).await?;
        Ok(listed
            .folders
            .iter()
            .map(|p| p.trim_end_matches('/').to_owned())
            .collect())
    }

    /// Every page of `ListObjectsV2` under `prefix`: the objects (key and
    /// size) and, one level deep, the folders (common prefixes).
    async fn list(&self, prefix: &str, depth: Depth) -> Result<Listed, RecordError> {
        let mut request = self.client.list_objects_v2().bucket(&self.bucket);
        if !prefix.is_empty() {
            request = request.prefix(prefix);
        }
        if depth == Depth::OneLevel {
            request = request.delimiter("/");
        }
        let mut pages = request.into_paginator().send();
        let mut listed = Listed::default();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                RecordError::backend(
                    format!("listing {}", self.url(prefix)),
                    AwsError::new("S3", "ListObjectsV2", e),
                )
            })?;
            listed.objects.extend(page.contents().iter().filter_map(|o| {
                let size = o.size().unwrap_or(0).max(0) as u64;
                Some((o.key()?.to_owned(), size))
            }));
            listed.folders.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix())
                    .map(str::to_owned),
            );
        }
        Ok(listed)
    }

    /// The folder of run `id`'s stage objects.
    pub fn stages_prefix(pipeline: &str, id: &str) -> String {
        format!("{}{id}/stages/", Self::runs_prefix(pipeline))
    }

    /// The key of `stage`'s object in run `id`.
    pub fn stage_key(pipeline: &str, id: &str, stage: &str) -> String {
        format!("{}{stage}.json", Self::stages_prefix(pipeline, id))
    }

    /// The folder of run `id`'s stage logs: beside the runs folder, so a
    /// log is never listed or removed as a record.
    pub fn logs_prefix(pipeline: &str, id: &str) -> String {
        format!("{pipeline}/logs/{id}/")
    }

    /// The key of piece `index` of `stage`'s log in run `id`.
    pub fn log_key(pipeline: &str, id: &str, stage: &str, index: u64) -> String {
        format!("{}{stage}/{index:08}.log", Self::logs_prefix(pipeline, id))
    }

    /// The run id in a run object's key (`<13 digits>_<id>.json` under the
    /// runs prefix), `None` for anything else.
    fn run_id_of(prefix: &str, key: &str) -> Option<String> {
        let (clock, id) = key.strip_prefix(prefix)?.strip_suffix(".json")?.split_once('_')?;
        let clock_ok = clock.len() == 13 && clock.bytes().all(|b| b.is_ascii_digit());
        (clock_ok && !id.is_empty()).then(|| id.to_owned())
    }

    /// One level of `pipeline`'s runs folder: the run objects in listing
    /// order (newest first) with their ids, and the ids that have a folder
    /// of stage objects. The `/` delimiter keeps stage objects out of the
    /// first list whatever they are named.
    async fn runs_level(&self, pipeline: &str) -> Result<RunsLevel, RecordError> {
        let prefix = Self::runs_prefix(pipeline);
        let listed = self.list(&prefix, Depth::OneLevel).await?;
        let mut level = RunsLevel::default();
        for (key, _) in listed.objects {
            if let Some(id) = Self::run_id_of(&prefix, &key) {
                level.runs.push((key, id));
            }
        }
        level.staged.extend(listed.folders.iter().filter_map(|p| {
            let id = p.strip_prefix(&prefix)?.strip_suffix('/')?;
            Some(id.to_owned())
        }));
        Ok(level)
    }

    /// The stage objects of run `id`.
    async fn stage_objects(&self, pipeline: &str, id: &str) -> Result<Vec<RunRecord>, RecordError> {
        let keys = self.stage_keys(pipeline, id).await?;
        self.read_all(keys).await
    }

    /// Removes run `id`'s stage objects. Best effort: the run object already
    /// holds their content (a pipeline stack without `s3:DeleteObject`, from
    /// an older Aphex, only leaves them in place), so a failure is a warning.
    async fn delete_stage_objects(&self, pipeline: &str, id: &str) {
        let keys = match self.stage_keys(pipeline, id).await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!("stage objects of run {id} left in place: {e}");
                return;
            }
        };
        for key in keys {
            if let Err(e) = self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
            {
                tracing::warn!(
                    "stage object {} left in place: {}",
                    self.url(&key),
                    AwsError::new("S3", "DeleteObject", e)
                );
            }
        }
    }

    /// The keys of run `id`'s stage objects.
    async fn stage_keys(&self, pipeline: &str, id: &str) -> Result<Vec<String>, RecordError> {
        let prefix = Self::stages_prefix(pipeline, id);
        let listed = self.list(&prefix, Depth::All).await?;
        Ok(listed
            .objects
            .into_iter()
            .map(|(key, _)| key)
            .filter(|k| k.ends_with(".json"))
            .collect())
    }

    /// Reads `keys`, eight at a time, in order.
    async fn read_all(&self, keys: Vec<String>) -> Result<Vec<RunRecord>, RecordError> {
        // Boxed so the futures' lifetimes do not trip async-trait's `Send` bound.
        let reads: Vec<_> = keys
            .into_iter()
            .map(|key| Box::pin(async move { self.read(&key).await }))
            .collect();
        futures::stream::iter(reads).buffered(8).try_collect().await
    }

    /// Run `id` from its run object (at `key`, when there is one) and its
    /// stage objects (when `staged`).
    async fn assemble(
        &self,
        pipeline: &str,
        id: &str,
        key: Option<&str>,
        staged: bool,
    ) -> Result<Option<RunRecord>, RecordError> {
        let run = match key {
            Some(key) => Some(self.read(key).await?),
            None => None,
        };
        let parts = if staged {
            self.stage_objects(pipeline, id).await?
        } else {
            Vec::new()
        };
        Ok(record::merge_stage_objects(run, parts))
    }

    async fn read(&self, key: &str) -> Result<RunRecord, RecordError> {
        let bytes = get_whole(&self.client, &self.bucket, key, "reading", record_missing).await?;
        serde_json::from_slice(&bytes).map_err(|source| RecordError::Json {
            context: format!("reading {} (not a run record)", self.url(key)),
            source,
        })
    }
}

#[async_trait]
impl RunRecorder for S3RunRecorder {
    async fn record(&self, run: &RunRecord) -> Result<(), RecordError> {
        let root = self.root(&run.pipeline);
        self.put_record(&Self::run_key_under(&root, run), run).await?;
        // A closed run's object holds every stage (finalize wrote it from
        // the merged record), so its stage objects are spent: removing them
        // leaves one JSON object per run. Loading merges them if they stay.
        if run.ended_at.is_some() {
            self.delete_stage_objects(&root, &run.id).await;
        }
        Ok(())
    }

    async fn record_stage(&self, header: &RunRecord, stage: &StageRecord) -> Result<(), RecordError> {
        record::check_segment("run id", &header.id)?;
        record::check_segment("stage name", &stage.name)?;
        // Its own key per stage: parallel stages never replace each other's
        // object, and a retry of the same stage replaces its own.
        let key = Self::stage_key(&self.root(&header.pipeline), &header.id, &stage.name);
        self.put_record(&key, &RunRecord::stage_object(header, stage))
            .await
    }

    async fn load(&self, pipeline: &str, id: &str) -> Result<Option<RunRecord>, RecordError> {
        let root = self.root(pipeline);
        let pipeline = root.as_str();
        let level = self.runs_level(pipeline).await?;
        let key = level.runs.iter().find(|(_, i)| i == id).map(|(k, _)| k.as_str());
        self.assemble(pipeline, id, key, level.staged.contains(id)).await
    }

    async fn scan(&self, pipeline: &str, limit: usize) -> Result<RunListing, RecordError> {
        if limit == 0 {
            return Ok(RunListing::default());
        }
        let root = self.root(pipeline);
        let pipeline = root.as_str();
        let level = self.runs_level(pipeline).await?;
        let finalized: std::collections::HashSet<&str> =
            level.runs.iter().map(|(_, id)| id.as_str()).collect();
        // The newest `limit` run objects, and every run that has stage
        // objects only (still running, or its finalize never ran): run
        // objects past the first `limit` are older than those, so the newest
        // `limit` runs are among these.
        let mut wanted: Vec<(Option<&str>, &str)> = level
            .runs
            .iter()
            .take(limit)
            .map(|(key, id)| (Some(key.as_str()), id.as_str()))
            .collect();
        wanted.extend(
            level
                .staged
                .iter()
                .filter(|id| !finalized.contains(id.as_str()))
                .map(|id| (None, id.as_str())),
        );
        let staged = &level.staged;
        let loads: Vec<_> = wanted
            .into_iter()
            .map(|(key, id)| {
                Box::pin(async move { (id, self.assemble(pipeline, id, key, staged.contains(id)).await) })
            })
            .collect();
        let loaded: Vec<_> = futures::stream::iter(loads).buffered(8).collect().await;
        let loaded = loaded.into_iter().map(|(id, run)| (id.to_owned(), run));
        Ok(RunListing::collect(loaded, limit))
    }

    async fn put_log_chunk(
        &self,
        pipeline: &str,
        id: &str,
        stage: &str,
        index: u64,
        text: &[u8],
    ) -> Result<(), RecordError> {
        let key = self.checked_log_key(pipeline, id, stage, index)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(text.to_vec()))
            .content_type("text/plain; charset=utf-8")
            .send()
            .await
            .map_err(|e| {
                RecordError::backend(
                    format!("writing {}", self.url(&key)),
                    AwsError::new("S3", "PutObject", e),
                )
            })?;
        Ok(())
    }

    async fn remove_log_chunk(
        &self,
        pipeline: &str,
        id: &str,
        stage: &str,
        index: u64,
    ) -> Result<(), RecordError> {
        let key = self.checked_log_key(pipeline, id, stage, index)?;
        // Deleting a key that is not there succeeds in S3.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| {
                RecordError::backend(
                    format!("removing {}", self.url(&key)),
                    AwsError::new("S3", "DeleteObject", e),
                )
            })?;
        Ok(())
    }

    async fn log_chunks(&self, pipeline: &str, id: &str) -> Result<Vec<LogChunk>, RecordError> {
        record::check_segment("run id", id)?;
        let prefix = Self::logs_prefix(&self.root(pipeline), id);
        let listed = self.list(&prefix, Depth::All).await?;
        let mut chunks = Vec::new();
        for (key, bytes) in &listed.objects {
            let Some((stage, index)) = key
                .strip_prefix(&prefix)
                .and_then(|k| k.strip_suffix(".log"))
                .and_then(|k| k.split_once('/'))
            else {
                continue;
            };
            let Ok(index) = index.parse::<u64>() else {
                continue;
            };
            chunks.push(LogChunk {
                stage: stage.to_owned(),
                index,
                bytes: *bytes,
            });
        }
        chunks.sort_by(|a, b| (&a.stage, a.index).cmp(&(&b.stage, b.index)));
        Ok(chunks)
    }

    async fn log_chunk(
        &self,
        pipeline: &str,
        id: &str,
        stage: &str,
        index: u64,
    ) -> Result<Vec<u8>, RecordError> {
        let key = self.checked_log_key(pipeline, id, stage, index)?;
        get_whole(&self.client, &self.bucket, &key, "reading", record_missing).await
    }
}

/// How deep a listing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// Every object under the prefix.
    All,
    /// The objects directly under it, and its folders (`/` as delimiter).
    OneLevel,
}

/// What one listing found.
#[derive(Debug, Default)]
struct Listed {
    /// Key and size of each object.
    objects: Vec<(String, u64)>,
    /// The folders one level down (with their trailing `/`).
    folders: Vec<String>,
}

/// Stage logs in pieces, for [`RunRecorder`]'s log methods.
impl S3RunRecorder {
    /// Checks the run id and stage name that make a log key; the key under
    /// this recorder's root (a pull-request run's logs stay under `pr/`).
    fn checked_log_key(
        &self,
        pipeline: &str,
        id: &str,
        stage: &str,
        index: u64,
    ) -> Result<String, RecordError> {
        record::check_segment("run id", id)?;
        record::check_segment("stage name", stage)?;
        Ok(Self::log_key(&self.root(pipeline), id, stage, index))
    }
}

/// One level of a pipeline's runs folder ([`S3RunRecorder::runs_level`]).
#[derive(Debug, Default)]
struct RunsLevel {
    /// Run objects: key and run id, newest first.
    runs: Vec<(String, String)>,
    /// Ids of runs with a folder of stage objects.
    staged: std::collections::BTreeSet<String>,
}

/// A `--store` value that is not `s3://BUCKET`.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{url}` is not an S3 store: expected `s3://BUCKET` (a bucket name of 3-63 lowercase letters, \
     digits, dots and dashes, without a key)"
)]
pub struct StoreUrlError {
    /// What was given.
    pub url: String,
}

/// The bucket of a `--store s3://BUCKET` value (a trailing `/` is allowed).
pub fn parse_store_url(url: &str) -> Result<String, StoreUrlError> {
    let error = || StoreUrlError { url: url.to_owned() };
    let bucket = url.strip_prefix("s3://").ok_or_else(error)?;
    let bucket = bucket.strip_suffix('/').unwrap_or(bucket);
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.as_bytes()[0].is_ascii_alphanumeric()
        && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
    if valid {
        Ok(bucket.to_owned())
    } else {
        Err(error())
    }
}

/// `key=value&...` with both sides percent-encoded, as S3's `Tagging` wants.
fn tag_set(tags: &[(&str, &str)]) -> String {
    tags.iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

/// What a `GetObject` that failed means: the object (or bucket) is
/// missing, the call failed, or its body broke off.
enum GetFailed {
    Missing(String),
    Call(String, AwsError),
    Body(String, aws_sdk_s3::primitives::ByteStreamError),
}

fn store_missing(failed: GetFailed) -> StoreError {
    match failed {
        GetFailed::Missing(what) => StoreError::NotFound { what },
        GetFailed::Call(context, e) => StoreError::backend(context, e),
        GetFailed::Body(context, e) => StoreError::backend(context, e),
    }
}

fn record_missing(failed: GetFailed) -> RecordError {
    match failed {
        GetFailed::Missing(what) => RecordError::NotFound { what },
        GetFailed::Call(context, e) => RecordError::backend(context, e),
        GetFailed::Body(context, e) => RecordError::backend(context, e),
    }
}

/// How messages name object `key` of `bucket`.
fn s3_url(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

/// The whole of object `key` (small ones: records, metadata, log pieces),
/// read while `doing`; what failed as `into` makes the port's error.
async fn get_whole<E>(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    doing: &str,
    into: fn(GetFailed) -> E,
) -> Result<Vec<u8>, E> {
    let url = s3_url(bucket, key);
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| not_found_or(e, url.clone(), doing, into))?;
    match out.body.collect().await {
        Ok(body) => Ok(body.to_vec()),
        Err(e) => Err(into(GetFailed::Body(format!("{doing} {url}"), e))),
    }
}

/// `NotFound` for a missing key (or bucket), the call's error for anything
/// else, as the port's error `into` makes.
fn not_found_or<E>(
    error: aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::get_object::GetObjectError>,
    what: String,
    doing: &str,
    into: fn(GetFailed) -> E,
) -> E {
    let missing = error.as_service_error().is_some_and(|e| e.is_no_such_key());
    into(if missing {
        GetFailed::Missing(what)
    } else {
        GetFailed::Call(format!("{doing} {what}"), AwsError::new("S3", "GetObject", error))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aphex_stages::record::Status;

    fn run(id: &str, started_at: &str) -> RunRecord {
        RunRecord {
            id: id.into(),
            pipeline: "shop".into(),
            commit: "abc".into(),
            branch: None,
            started_at: started_at.into(),
            ended_at: None,
            status: Status::Running,
            stages: Vec::new(),
            url: None,
        }
    }

    #[test]
    fn pull_request_stores_keep_to_the_prefix_their_role_may_write() {
        let config = SdkConfig::builder().build();
        let prefix = format!("shop/{}/", aphex_template::cloudformation::PULL_REQUEST_PREFIX);
        let store = S3ArtifactStore::new(&config, "b").for_pull_requests();
        assert!(S3ArtifactStore::archive_key(&store.root("shop"), "abc").starts_with(&prefix));
        let runs = S3RunRecorder::new(&config, "b").for_pull_requests();
        let root = runs.root("shop");
        assert!(S3RunRecorder::run_key_under(&root, &run("r1", "2026-01-01T00:00:00Z")).starts_with(&prefix));
        assert!(S3RunRecorder::stage_key(&root, "r1", "build").starts_with(&prefix));
        // Deploy runs keep the layout they always had.
        assert_eq!(S3ArtifactStore::new(&config, "b").root("shop"), "shop");
    }

    #[test]
    fn run_keys_sort_newest_first() {
        let older = S3RunRecorder::run_key(&run("r1", "2026-01-01T00:00:00Z"));
        let newer = S3RunRecorder::run_key(&run("r2", "2026-01-01T00:00:00.001Z"));
        assert!(newer < older, "{newer} should sort before {older}");
        assert!(older.starts_with("shop/runs/") && older.ends_with("_r1.json"));
    }

    #[test]
    fn only_run_object_keys_name_runs() {
        let prefix = S3RunRecorder::runs_prefix("shop");
        let key = S3RunRecorder::run_key(&run("wf-a_b", "2026-01-01T00:00:00Z"));
        assert_eq!(S3RunRecorder::run_id_of(&prefix, &key).as_deref(), Some("wf-a_b"));
        let stage = S3RunRecorder::stage_key("shop", "wf-a", "synth-dev");
        assert_eq!(stage, "shop/runs/wf-a/stages/synth-dev.json");
        for not_a_run in [
            stage.as_str(),
            "shop/runs/wf-a.json",
            "shop/runs/12_wf-a.json",
            "shop/runs/8234567890123_.json",
            "other/runs/8234567890123_wf-a.json",
        ] {
            assert_eq!(S3RunRecorder::run_id_of(&prefix, not_a_run), None, "{not_a_run}");
        }
    }

    fn rfc3339(millis: i64) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).unwrap();
        t.format(&time::format_description::well_known::Rfc3339).unwrap()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        // Property: of two runs, the one that started later (to the millisecond)
        // has the smaller key, so S3's lexicographic listing is newest first.
        #[test]
        fn later_runs_sort_first(a in 0i64..8_000_000_000_000, b in 0i64..8_000_000_000_000) {
            let (ka, kb) = (S3RunRecorder::run_key(&run("ra", &rfc3339(a))), S3RunRecorder::run_key(&run("rb", &rfc3339(b))));
            if a > b {
                proptest::prop_assert!(ka < kb, "{} < {}", ka, kb);
            } else if a < b {
                proptest::prop_assert!(kb < ka, "{} < {}", kb, ka);
            }
        }
    }

    #[test]
    fn store_urls_name_a_bucket() {
        assert_eq!(parse_store_url("s3://my-artifacts").unwrap(), "my-artifacts");
        assert_eq!(parse_store_url("s3://my.artifacts/").unwrap(), "my.artifacts");
        for bad in [
            "my-artifacts",
            "s3://",
            "s3://ab",
            "s3://Bucket",
            "s3://bucket/key",
            "s3://-bucket",
        ] {
            let err = parse_store_url(bad).expect_err(bad);
            assert!(err.to_string().contains("s3://BUCKET"), "{err}");
        }
    }

    #[test]
    fn tags_are_percent_encoded() {
        assert_eq!(
            tag_set(&[("commit-sha", "ab12"), ("timestamp", "2026-01-01T00:00:00+01:00")]),
            "commit-sha=ab12&timestamp=2026-01-01T00%3A00%3A00%2B01%3A00"
        );
    }
}
