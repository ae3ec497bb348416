//! Publishing what a stack needs in S3 before it deploys: its file assets
//! (a file as is, a directory as a deterministic zip) through each
//! destination's publishing role, and its template when the assembly names a
//! template asset or the template is too large to send inline. Also the URL
//! forms CloudFormation reads templates from.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::path::Path;

use aphex_stages::assembly::{FileAsset, Packaging, resolve_placeholders};
use aws_sdk_s3::primitives::ByteStream;
use walkdir::WalkDir;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::StepError;
use super::session::{Role, Sessions};
use crate::client::CallError;

/// An S3 object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct S3Object {
    pub(crate) bucket: String,
    pub(crate) key: String,
}

impl S3Object {
    /// Parses `s3://bucket/key`.
    pub(crate) fn parse(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/')?;
        (!bucket.is_empty() && !key.is_empty()).then(|| Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    /// The HTTP(S) URL CloudFormation reads this object from: the emulator's
    /// own path-style URL when an endpoint is set, else the regional S3 URL.
    pub(crate) fn template_url(&self, region: &str, endpoint: Option<&str>) -> String {
        match endpoint {
            Some(endpoint) => format!("{}/{}/{}", endpoint.trim_end_matches('/'), self.bucket, self.key),
            None => {
                let domain = if region.starts_with("cn-") {
                    "amazonaws.com.cn"
                } else {
                    "amazonaws.com"
                };
                format!("https://s3.{region}.{domain}/{}/{}", self.bucket, self.key)
            }
        }
    }
}

/// Account, region and partition placeholders are filled with these.
pub(crate) struct Target<'a> {
    pub(crate) account: &'a str,
    pub(crate) region: &'a str,
    pub(crate) partition: &'a str,
}

impl Target<'_> {
    pub(crate) fn resolve(&self, text: &str) -> String {
        resolve_placeholders(text, self.account, self.region, self.partition)
    }
}

/// Publishes every destination of every asset; objects already present are
/// left alone (asset keys are content hashes). Returns what is in place.
pub(crate) async fn publish(
    assets: &[FileAsset],
    target: &Target<'_>,
    sessions: &Sessions,
) -> Result<HashSet<S3Object>, StepError> {
    let mut published = HashSet::new();
    for asset in assets {
        // Zipped once per asset, however many destinations it has.
        let mut zipped: Option<tempfile::NamedTempFile> = None;
        for destination in &asset.destinations {
            let object = S3Object {
                bucket: target.resolve(&destination.bucket_name),
                key: target.resolve(&destination.object_key),
            };
            let region = destination
                .region
                .as_deref()
                .map_or_else(|| target.region.to_owned(), |r| target.resolve(r));
            let role = destination.assume_role_arn.as_ref().map(|arn| Role {
                arn: target.resolve(arn),
                external_id: destination.assume_role_external_id.clone(),
            });
            let where_ = format!(
                "asset {} ({}) to s3://{}/{}",
                asset.id,
                asset.path.display(),
                object.bucket,
                object.key
            );
            let config = sessions
                .config(role.as_ref(), &region)
                .await
                .map_err(|e| publishing(&where_, e))?;
            let s3 = crate::client::s3(&config);
            if exists(&s3, &object).await.map_err(|e| publishing(&where_, e))? {
                tracing::debug!(
                    asset = asset.id,
                    bucket = object.bucket,
                    key = object.key,
                    "asset already published"
                );
                published.insert(object);
                continue;
            }
            let source = match asset.packaging {
                Packaging::File => asset.path.clone(),
                Packaging::Zip => {
                    if zipped.is_none() {
                        zipped = Some(
                            zip_to_temp(&asset.path)
                                .await
                                .map_err(|e| publishing(&where_, StepError::Zip(e)))?,
                        );
                    }
                    zipped
                        .as_ref()
                        .map(|f| f.path().to_path_buf())
                        .unwrap_or_default()
                }
            };
            upload(&s3, &object, &source, content_type(asset.packaging, &asset.path))
                .await
                .map_err(|e| StepError::Upload {
                    asset: where_.clone(),
                    source: Box::new(e),
                })?;
            tracing::info!(
                asset = asset.id,
                bucket = object.bucket,
                key = object.key,
                "asset published"
            );
            published.insert(object);
        }
    }
    Ok(published)
}

fn publishing(asset: &str, e: StepError) -> StepError {
    StepError::Publish {
        asset: asset.to_owned(),
        source: Box::new(e),
    }
}

/// Uploads a template (or any local file) to `object` with `config`'s credentials.
pub(crate) async fn upload_template(
    config: &aws_config::SdkConfig,
    object: &S3Object,
    body: &[u8],
) -> Result<(), StepError> {
    let s3 = crate::client::s3(config);
    s3.put_object()
        .bucket(&object.bucket)
        .key(&object.key)
        .content_type("application/json")
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|err| StepError::UploadTemplate {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            source: CallError::new("S3", "PutObject", err),
        })
}

async fn exists(s3: &aws_sdk_s3::Client, object: &S3Object) -> Result<bool, StepError> {
    match s3
        .head_object()
        .bucket(&object.bucket)
        .key(&object.key)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
        // Without s3:ListBucket, S3 answers 403 for a missing key: upload,
        // and let the upload say whether writing is allowed.
        Err(err) if err.raw_response().is_some_and(|r| r.status().as_u16() == 403) => Ok(false),
        Err(err) => Err(StepError::call_while(
            "checking whether it exists failed",
            CallError::new("S3", "HeadObject", err),
        )),
    }
}

async fn upload(
    s3: &aws_sdk_s3::Client,
    object: &S3Object,
    source: &Path,
    content_type: &str,
) -> Result<(), StepError> {
    let body = ByteStream::from_path(source)
        .await
        .map_err(|e| StepError::ReadAsset {
            path: source.to_path_buf(),
            source: e,
        })?;
    s3.put_object()
        .bucket(&object.bucket)
        .key(&object.key)
        .content_type(content_type)
        .body(body)
        .send()
        .await
        .map(|_| ())
        .map_err(|err| StepError::call_while("uploading failed", CallError::new("S3", "PutObject", err)))
}

fn content_type(packaging: Packaging, path: &Path) -> &'static str {
    match packaging {
        Packaging::Zip => "application/zip",
        Packaging::File if path.extension().is_some_and(|e| e == "json") => "application/json",
        Packaging::File => "application/octet-stream",
    }
}

async fn zip_to_temp(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut file = tempfile::NamedTempFile::new()?;
        deterministic_zip(&dir, file.as_file_mut())?;
        Ok(file)
    })
    .await
    .map_err(io::Error::other)?
}

/// Zips the files under `dir` so that the same tree always gives the same
/// bytes: entries sorted by path, `/` separators, the DOS epoch as every
/// timestamp, mode 0644 (0755 when any execute bit is set), no directory
/// entries. Symbolic links are followed, as the CDK does.
pub fn deterministic_zip<W: Write + Seek>(dir: &Path, out: W) -> io::Result<()> {
    let mut zip = ZipWriter::new(out);
    let base = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .large_file(false);
    for entry in WalkDir::new(dir).follow_links(true).sort_by_file_name() {
        let entry = entry.map_err(io::Error::other)?;
        if !entry.file_type().is_file() {
            continue;
        }
        let relative = entry.path().strip_prefix(dir).map_err(io::Error::other)?;
        let name = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let mut source = File::open(entry.path())?;
        let size = source.metadata()?.len();
        let options = base
            .unix_permissions(mode_of(&source)?)
            .large_file(size >= u64::from(u32::MAX));
        zip.start_file(name, options).map_err(io::Error::other)?;
        io::copy(&mut source, &mut zip)?;
    }
    zip.finish().map_err(io::Error::other)?;
    Ok(())
}

#[cfg(unix)]
fn mode_of(file: &File) -> io::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    let executable = file.metadata()?.permissions().mode() & 0o111 != 0;
    Ok(if executable { 0o755 } else { 0o644 })
}

#[cfg(not(unix))]
fn mode_of(_file: &File) -> io::Result<u32> {
    Ok(0o644)
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Read};

    use proptest::prelude::*;

    use super::*;

    fn zip_bytes(dir: &Path) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        deterministic_zip(dir, &mut out).unwrap();
        out.into_inner()
    }

    fn write_tree(dir: &Path, files: &[(String, Vec<u8>)]) {
        for (name, content) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
    }

    fn tree() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
        let name = prop::collection::vec("[a-z]{1,6}", 1..4).prop_map(|parts| parts.join("/"));
        prop::collection::btree_map(name, prop::collection::vec(any::<u8>(), 0..512), 1..8)
            // A name that is also another's directory cannot be both.
            .prop_filter("file/dir clash", |files| {
                files
                    .keys()
                    .all(|a| files.keys().all(|b| !b.starts_with(&format!("{a}/"))))
            })
            .prop_map(|files| files.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]

        // Property: zipping the same files twice, written in different
        // orders at different times, gives identical bytes, and the archive
        // holds exactly those files with their contents.
        #[test]
        fn zip_is_deterministic_and_complete(files in tree()) {
            let first = tempfile::tempdir().unwrap();
            let second = tempfile::tempdir().unwrap();
            write_tree(first.path(), &files);
            let reversed: Vec<_> = files.iter().rev().cloned().collect();
            write_tree(second.path(), &reversed);
            let a = zip_bytes(first.path());
            prop_assert_eq!(&a, &zip_bytes(second.path()));

            let mut archive = zip::ZipArchive::new(Cursor::new(a)).unwrap();
            prop_assert_eq!(archive.len(), files.len());
            let mut names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
            names.sort();
            for (i, (name, content)) in files.iter().enumerate() {
                let mut entry = archive.by_name(name).unwrap();
                let mut read = Vec::new();
                entry.read_to_end(&mut read).unwrap();
                prop_assert_eq!(&read, content, "entry {} ({})", i, name);
            }
            let in_order: Vec<String> = (0..archive.len()).map(|i| archive.by_index(i).unwrap().name().unwrap().into_owned()).collect();
            prop_assert_eq!(in_order, names);
        }
    }

    #[test]
    fn s3_urls_parse_and_render_in_each_form() {
        let object = S3Object::parse("s3://cdk-hnb659fds-assets-1-us-east-1/abc.json").unwrap();
        assert_eq!(object.bucket, "cdk-hnb659fds-assets-1-us-east-1");
        assert_eq!(object.key, "abc.json");
        assert_eq!(
            object.template_url("us-east-1", None),
            "https://s3.us-east-1.amazonaws.com/cdk-hnb659fds-assets-1-us-east-1/abc.json"
        );
        assert_eq!(
            object.template_url("cn-north-1", None),
            "https://s3.cn-north-1.amazonaws.com.cn/cdk-hnb659fds-assets-1-us-east-1/abc.json"
        );
        assert_eq!(
            object.template_url("us-east-1", Some("http://127.0.0.1:4599/")),
            "http://127.0.0.1:4599/cdk-hnb659fds-assets-1-us-east-1/abc.json"
        );
        assert_eq!(S3Object::parse("https://example/x"), None);
        assert_eq!(S3Object::parse("s3://bucket-only"), None);
    }
}
