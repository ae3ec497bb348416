//! Build artifact packaging: the configured paths of a checkout in one
//! tar + zstd archive, its SHA-256, and the way back (unpacking into a
//! checkout). Storage is the `ArtifactStore` port's business.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Component, Path};

use sha2::{Digest, Sha256};
use walkdir::WalkDir;

/// File name of the archive, in stores and on disk.
pub const ARCHIVE_NAME: &str = "artifacts.tar.zst";

/// A packaging problem.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A configured path is absolute or climbs out of the repository.
    #[error("build.artifacts entry `{0}` must be a relative path inside the repository")]
    OutsideRepo(String),
    /// A configured path does not exist after the build.
    #[error(
        "build.artifacts entry `{0}` does not exist after the build: create it in a build command, or remove it from build.artifacts"
    )]
    Missing(String),
    /// Reading or writing failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ArtifactError {
    let context = context.into();
    move |source| ArtifactError::Io { context, source }
}

/// Size and checksum of a written archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// Bytes.
    pub size: u64,
    /// Hex SHA-256.
    pub sha256: String,
}

/// Packs `paths` (relative to `root`; files or directories) into a tar + zstd
/// archive at `out`. Entries are added in sorted order, so the listing is stable.
pub fn pack(root: &Path, paths: &[String], out: &Path) -> Result<Packed, ArtifactError> {
    for p in paths {
        check_relative(p)?;
        if !root.join(p).exists() {
            return Err(ArtifactError::Missing(p.clone()));
        }
    }
    let file = File::create(out).map_err(io(format!("creating {}", out.display())))?;
    let encoder = zstd::Encoder::new(BufWriter::new(file), 3).map_err(io("starting zstd"))?;
    let mut tar = tar::Builder::new(encoder);
    tar.follow_symlinks(false);
    for p in paths {
        for entry in WalkDir::new(root.join(p)).sort_by_file_name() {
            let entry = entry.map_err(|e| ArtifactError::Io {
                context: format!("walking {p}"),
                source: e.into(),
            })?;
            let rel = entry
                .path()
                .strip_prefix(root)
                .expect("walked paths are under the root");
            tar.append_path_with_name(entry.path(), rel)
                .map_err(io(format!("adding {}", rel.display())))?;
        }
    }
    let encoder = tar.into_inner().map_err(io("finishing the tar archive"))?;
    let mut writer = encoder.finish().map_err(io("finishing zstd"))?;
    std::io::Write::flush(&mut writer).map_err(io("flushing the archive"))?;
    drop(writer);
    let (size, sha256) = sha256_file(out)?;
    Ok(Packed { size, sha256 })
}

/// Unpacks an archive written by [`pack`] into `dest` (entries that would
/// land outside `dest` are refused by the tar reader).
pub fn unpack(archive: &Path, dest: &Path) -> Result<(), ArtifactError> {
    let file = File::open(archive).map_err(io(format!("opening {}", archive.display())))?;
    let decoder = zstd::Decoder::new(BufReader::new(file)).map_err(io("starting zstd"))?;
    let mut tar = tar::Archive::new(decoder);
    tar.set_preserve_permissions(true);
    tar.set_overwrite(true);
    tar.unpack(dest).map_err(io(format!(
        "unpacking {} into {}",
        archive.display(),
        dest.display()
    )))
}

/// Size and hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<(u64, String), ArtifactError> {
    let mut file = File::open(path).map_err(io(format!("opening {}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(io(format!("reading {}", path.display())))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

fn check_relative(p: &str) -> Result<(), ArtifactError> {
    let path = Path::new(p);
    let ok = !p.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if ok {
        Ok(())
    } else {
        Err(ArtifactError::OutsideRepo(p.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_outside_the_repository() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.tar.zst");
        for bad in ["/etc", "../x", "a/../../b", ""] {
            assert!(matches!(
                pack(dir.path(), &[bad.to_owned()], &out),
                Err(ArtifactError::OutsideRepo(_))
            ));
        }
    }

    #[test]
    fn missing_path_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = pack(dir.path(), &["dist".to_owned()], &dir.path().join("a")).unwrap_err();
        assert!(err.to_string().contains("`dist` does not exist"));
    }
}
