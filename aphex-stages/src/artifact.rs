//! Build artifact packaging: the configured paths of a checkout in one
//! tar + zstd archive, its SHA-256, and the way back (restoring into a
//! checkout). Storage is the `ArtifactStore` port's business.
//!
//! Both ways are guarded, because the archive crosses from one pod to
//! another through storage:
//!
//! - **Packing** takes only what is inside the checkout: a configured path
//!   that is (or goes through) a symbolic link out of it is refused, and so
//!   is a link in the tree that points out of it. The repository itself, its
//!   `.git` and the pipeline's configuration are never artifacts.
//! - **Restoring** ([`unpack`]) writes only what the build declared: every
//!   entry must lie under one of the paths the build recorded, never on the
//!   configuration or in `.git`; only files, directories and symbolic links
//!   pointing inside the checkout are restored (no devices, FIFOs or hard
//!   links), with normalised permissions (`0644`, `0755` when executable;
//!   never setuid or setgid); nothing is written through a symbolic link;
//!   and the archive may unpack to no more bytes and entries than the build
//!   recorded (and never more than [`MAX_UNPACKED_BYTES`] and
//!   [`MAX_ENTRIES`]). The archive is read as a stream throughout.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};
use walkdir::WalkDir;

use crate::ports::ArtifactMetadata;

/// File name of the archive, in stores and on disk.
pub const ARCHIVE_NAME: &str = "artifacts.tar.zst";

/// The most bytes any archive may unpack to, whatever its build recorded.
pub const MAX_UNPACKED_BYTES: u64 = 16 * 1024 * 1024 * 1024;

/// The most entries any archive may hold, whatever its build recorded.
pub const MAX_ENTRIES: u64 = 1_000_000;

/// Tar bytes an entry may take beyond its content: its header, a GNU long
/// name or link record (a path of up to 4 KiB), and padding.
const ENTRY_OVERHEAD: u64 = 8 * 1024;

/// A packaging or restoring problem.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A configured path is absolute, climbs out of the repository, or is the repository itself.
    #[error(
        "build.artifacts entry `{0}` must be a relative path to a folder or file inside the repository (not the repository itself)"
    )]
    OutsideRepo(String),
    /// A configured path names something that is never an artifact.
    #[error(
        "build.artifacts entry `{path}` is {what}, which is never packaged: name the build's output folders (e.g. dist)"
    )]
    Protected {
        /// The configured path.
        path: String,
        /// What it names (`the pipeline's configuration`, `git's data`).
        what: &'static str,
    },
    /// A configured path does not exist after the build.
    #[error(
        "build.artifacts entry `{0}` does not exist after the build: create it in a build command, or remove it from build.artifacts"
    )]
    Missing(String),
    /// A symbolic link in the artifacts points out of the checkout.
    #[error(
        "`{path}` is a symbolic link to `{target}`, outside the checkout: packing it would ship (or point at) files the commit does not hold; copy what the build needs into the artifact folder instead"
    )]
    LinkOutside {
        /// The link, relative to the checkout.
        path: String,
        /// Where it points.
        target: String,
    },
    /// An archive entry that restoring refuses.
    #[error("refusing archive entry `{entry}`: {why}; rebuild the commit to store its artifacts again")]
    Refused {
        /// The entry's path in the archive.
        entry: String,
        /// Why it is refused.
        #[source]
        why: EntryRefusal,
    },
    /// The archive unpacks to more than allowed.
    #[error(
        "refusing the archive: it unpacks to more than {limit} {what}, the most its build recorded (or the absolute limit); rebuild the commit to store its artifacts again"
    )]
    TooLarge {
        /// The limit.
        limit: u64,
        /// `bytes` or `entries`.
        what: &'static str,
    },
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

/// Why restoring refuses an archive entry.
#[derive(Debug, thiserror::Error)]
pub enum EntryRefusal {
    /// Its path is absolute or has too many `..`.
    #[error("its path is absolute or climbs out of the checkout")]
    Outside,
    /// Its build did not declare its path.
    #[error("it is not under the artifact paths its build declared ({declared})")]
    Undeclared {
        /// The declared paths, joined with `, `.
        declared: String,
    },
    /// It would overwrite something never restored.
    #[error("it would overwrite {0}")]
    Protected(&'static str),
    /// A symbolic link with no target.
    #[error("a symbolic link without a target")]
    LinkWithoutTarget,
    /// A symbolic link pointing out of the checkout.
    #[error("it is a symbolic link to `{}`, outside the checkout", .0.display())]
    LinkOutside(PathBuf),
    /// An entry that is not a file, folder or symbolic link.
    #[error("it is a {0} entry; only files, directories and symbolic links are restored")]
    Kind(&'static str),
    /// A folder on its way is a symbolic link.
    #[error("`{}` on its way is a symbolic link", .0.display())]
    LinkOnTheWay(PathBuf),
    /// A folder on its way is something else.
    #[error("`{}` on its way is not a folder", .0.display())]
    NotAFolder(PathBuf),
    /// A folder on its way could not be made.
    #[error("creating `{}`: {source}", .path.display())]
    Create {
        /// The folder, relative to the checkout.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A folder on its way could not be checked.
    #[error("checking `{}`: {source}", .path.display())]
    Check {
        /// The folder, relative to the checkout.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ArtifactError {
    let context = context.into();
    move |source| ArtifactError::Io { context, source }
}

/// What was written by [`pack`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// Archive bytes.
    pub size: u64,
    /// Hex SHA-256 of the archive.
    pub sha256: String,
    /// Bytes of file content in it (what restoring writes).
    pub unpacked_bytes: u64,
    /// Entries in it (files, directories, links).
    pub entries: u64,
}

/// What [`unpack`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unpacked {
    /// Bytes of file content.
    pub bytes: u64,
    /// Entries.
    pub entries: u64,
}

/// Packs `paths` (relative to `root`, the app's folder; files or
/// directories) into a tar + zstd archive at `out`. `config_file` (relative
/// to `root`) is never packed. Entries are added in sorted order, so the
/// listing is stable.
pub fn pack(root: &Path, paths: &[String], config_file: &Path, out: &Path) -> Result<Packed, ArtifactError> {
    let real_root = root
        .canonicalize()
        .map_err(io(format!("resolving {}", root.display())))?;
    let config_file = normalized(config_file).unwrap_or_default();
    for p in paths {
        let rel = normalized(Path::new(p)).ok_or_else(|| ArtifactError::OutsideRepo(p.clone()))?;
        if let Some(what) = protected(&rel, &config_file) {
            return Err(ArtifactError::Protected {
                path: p.clone(),
                what,
            });
        }
        let path = root.join(&rel);
        if std::fs::symlink_metadata(&path).is_err() {
            return Err(ArtifactError::Missing(p.clone()));
        }
        // The configured path itself may be (or go through) a link inside the
        // checkout; never out of it.
        let real = path
            .canonicalize()
            .map_err(|_| ArtifactError::Missing(p.clone()))?;
        if !real.starts_with(&real_root) {
            return Err(ArtifactError::LinkOutside {
                path: p.clone(),
                target: real.display().to_string(),
            });
        }
    }
    let file = File::create(out).map_err(io(format!("creating {}", out.display())))?;
    let encoder = zstd::Encoder::new(BufWriter::new(file), 3).map_err(io("starting zstd"))?;
    let mut tar = tar::Builder::new(encoder);
    tar.follow_symlinks(false);
    let (mut unpacked_bytes, mut entries) = (0u64, 0u64);
    for p in paths {
        // Walks from the configured path as named: a link to a folder inside
        // the checkout (checked above) is followed there, and only there.
        for entry in WalkDir::new(root.join(p)).follow_links(false).sort_by_file_name() {
            let entry = entry.map_err(|e| ArtifactError::Io {
                context: format!("walking {p}"),
                source: e.into(),
            })?;
            let rel = entry
                .path()
                .strip_prefix(root)
                .expect("walked paths are under the root");
            if let Some(what) = protected(rel, &config_file) {
                return Err(ArtifactError::Protected {
                    path: rel.display().to_string(),
                    what,
                });
            }
            let kind = entry.file_type();
            let adding = io(format!("adding {}", rel.display()));
            if entry.depth() == 0 && entry.path_is_symlink() {
                // The configured path itself is a link (inside the checkout):
                // packed as what it names, so restoring makes a real folder.
                let named =
                    std::fs::metadata(entry.path()).map_err(io(format!("reading {}", rel.display())))?;
                if named.is_dir() {
                    let mut header = tar::Header::new_gnu();
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    tar.append_data(&mut header, rel, std::io::empty())
                        .map_err(adding)?;
                } else {
                    let mut file =
                        File::open(entry.path()).map_err(io(format!("reading {}", rel.display())))?;
                    unpacked_bytes += file
                        .metadata()
                        .map_err(io(format!("reading {}", rel.display())))?
                        .len();
                    tar.append_file(rel, &mut file).map_err(adding)?;
                }
                entries += 1;
                continue;
            }
            if kind.is_symlink() {
                let target = std::fs::read_link(entry.path())
                    .map_err(io(format!("reading the link {}", rel.display())))?;
                if link_escapes(rel, &target) {
                    return Err(ArtifactError::LinkOutside {
                        path: rel.display().to_string(),
                        target: target.display().to_string(),
                    });
                }
            } else if kind.is_file() {
                unpacked_bytes += entry
                    .metadata()
                    .map_err(|e| ArtifactError::Io {
                        context: format!("reading {}", rel.display()),
                        source: e.into(),
                    })?
                    .len();
            }
            tar.append_path_with_name(entry.path(), rel).map_err(adding)?;
            entries += 1;
        }
    }
    let encoder = tar.into_inner().map_err(io("finishing the tar archive"))?;
    let mut writer = encoder.finish().map_err(io("finishing zstd"))?;
    std::io::Write::flush(&mut writer).map_err(io("flushing the archive"))?;
    drop(writer);
    let (size, sha256) = sha256_file(out)?;
    Ok(Packed {
        size,
        sha256,
        unpacked_bytes,
        entries,
    })
}

/// Restores an archive written by [`pack`] into `dest` (the app's folder),
/// as its `metadata` recorded it (see the module docs for what is refused).
/// `config_file` (relative to `dest`) is never written. An archive refused
/// half-way leaves what it wrote so far: the checkout is the stage's own
/// scratch, and the stage fails.
pub fn unpack(
    archive: &Path,
    dest: &Path,
    metadata: &ArtifactMetadata,
    config_file: &Path,
) -> Result<Unpacked, ArtifactError> {
    let byte_limit = metadata.unpacked_bytes.min(MAX_UNPACKED_BYTES);
    let entry_limit = metadata.entries.min(MAX_ENTRIES);
    let declared: Vec<PathBuf> = metadata
        .paths
        .iter()
        .filter_map(|p| normalized(Path::new(p)))
        .collect();
    let config_file = normalized(config_file).unwrap_or_default();
    let file = File::open(archive).map_err(io(format!("opening {}", archive.display())))?;
    let decoder = zstd::Decoder::new(BufReader::new(file)).map_err(io("starting zstd"))?;
    // The tar stream itself is bounded too: names and padding of at most
    // the recorded entries, around at most the recorded content.
    let stream_limit = byte_limit + (entry_limit + 2) * ENTRY_OVERHEAD;
    let mut tar = tar::Archive::new(Bounded {
        inner: decoder,
        left: stream_limit,
    });
    let unpacking = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::FileTooLarge {
            ArtifactError::TooLarge {
                limit: byte_limit,
                what: "bytes",
            }
        } else {
            ArtifactError::Io {
                context: format!("unpacking {} into {}", archive.display(), dest.display()),
                source: e,
            }
        }
    };
    let mut done = Unpacked { bytes: 0, entries: 0 };
    // Folders under `dest` known to be real directories (not links).
    let mut real_dirs: HashSet<PathBuf> = HashSet::new();
    for entry in tar.entries().map_err(unpacking)? {
        let mut entry = entry.map_err(unpacking)?;
        done.entries += 1;
        if done.entries > entry_limit {
            return Err(ArtifactError::TooLarge {
                limit: entry_limit,
                what: "entries",
            });
        }
        let raw = entry.path().map_err(unpacking)?.into_owned();
        let shown = raw.display().to_string();
        let refuse = |why: EntryRefusal| ArtifactError::Refused {
            entry: shown.clone(),
            why,
        };
        let rel = normalized(&raw).ok_or_else(|| refuse(EntryRefusal::Outside))?;
        if !declared.iter().any(|d| rel.starts_with(d)) {
            return Err(refuse(EntryRefusal::Undeclared {
                declared: metadata.paths.join(", "),
            }));
        }
        if let Some(what) = protected(&rel, &config_file) {
            return Err(refuse(EntryRefusal::Protected(what)));
        }
        let kind = entry.header().entry_type();
        let size = entry.size();
        if kind.is_file() {
            done.bytes += size;
            if done.bytes > byte_limit {
                return Err(ArtifactError::TooLarge {
                    limit: byte_limit,
                    what: "bytes",
                });
            }
        }
        let target = dest.join(&rel);
        check_no_links(dest, &rel, &mut real_dirs).map_err(refuse)?;
        if kind.is_dir() {
            make_dir(&target).map_err(io(format!("creating {}", target.display())))?;
            real_dirs.insert(rel);
        } else if kind.is_file() {
            let mode = entry.header().mode().map_err(unpacking)?;
            let executable = mode & 0o111 != 0;
            let mtime = entry.header().mtime().ok();
            let file = write_file(&target, &mut entry, executable).map_err(unpacking)?;
            if let Some(mtime) = mtime {
                // Builds that compare times (make) see the build's times.
                let _ = file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime));
            }
        } else if kind.is_symlink() {
            let link = entry
                .link_name()
                .map_err(unpacking)?
                .ok_or_else(|| refuse(EntryRefusal::LinkWithoutTarget))?
                .into_owned();
            if link_escapes(&rel, &link) {
                return Err(refuse(EntryRefusal::LinkOutside(link)));
            }
            remove_existing(&target).map_err(io(format!("replacing {}", target.display())))?;
            std::os::unix::fs::symlink(&link, &target)
                .map_err(io(format!("linking {}", target.display())))?;
        } else {
            return Err(refuse(EntryRefusal::Kind(kind_name(kind))));
        }
    }
    Ok(done)
}

/// A reader that fails, rather than ends, once `left` bytes are read: a
/// truncated archive would only be a confusing tar error.
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // One byte more than allowed means the archive is larger.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::from(std::io::ErrorKind::FileTooLarge)),
            };
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// `path` without `.` components, when it is relative, stays inside (no
/// `..`) and names something (not the root itself).
fn normalized(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// What `rel` would touch that is never an artifact, if anything.
fn protected(rel: &Path, config_file: &Path) -> Option<&'static str> {
    if !config_file.as_os_str().is_empty() && rel == config_file {
        Some("the pipeline's configuration")
    } else if rel.components().any(|c| c.as_os_str() == ".git") {
        Some("git's data")
    } else {
        None
    }
}

/// Whether a link at `rel` (relative to the checkout) pointing at `target`
/// leads out of the checkout: absolute, or climbing above its root.
fn link_escapes(rel: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return true;
    }
    let mut depth: usize = rel.parent().map_or(0, |p| p.components().count());
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return true,
            },
            Component::RootDir | Component::Prefix(_) => return true,
        }
    }
    false
}

/// Refuses writing `rel` under `dest` when a folder on its way is a
/// symbolic link (or not a folder): restoring never writes through a link.
fn check_no_links(dest: &Path, rel: &Path, real_dirs: &mut HashSet<PathBuf>) -> Result<(), EntryRefusal> {
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    let mut at = PathBuf::new();
    for c in parent.components() {
        at.push(c);
        if real_dirs.contains(&at) {
            continue;
        }
        match std::fs::symlink_metadata(dest.join(&at)) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(EntryRefusal::LinkOnTheWay(at));
            }
            Ok(m) if !m.is_dir() => return Err(EntryRefusal::NotAFolder(at)),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                make_dir(&dest.join(&at)).map_err(|source| EntryRefusal::Create {
                    path: at.clone(),
                    source,
                })?;
            }
            Err(source) => return Err(EntryRefusal::Check { path: at, source }),
        }
        real_dirs.insert(at.clone());
    }
    Ok(())
}

/// A directory `0755` (less the umask), unless it already is one.
fn make_dir(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => std::fs::remove_file(path)?,
        Err(_) => {}
    }
    std::fs::DirBuilder::new().mode(0o755).create(path)
}

/// Removes a file or link at `path`, if any (never a directory's content).
fn remove_existing(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "a folder is in the way",
        )),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `from` as a new file at `path`: `0755` when `executable`, else
/// `0644` (less the umask), replacing a file or link already there.
fn write_file(path: &Path, from: &mut dyn Read, executable: bool) -> std::io::Result<File> {
    remove_existing(path)?;
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o755 } else { 0o644 })
        .open(path)?;
    std::io::copy(from, &mut file)?;
    Ok(file)
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "FIFO",
        _ => "special",
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_outside_the_repository() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.tar.zst");
        for bad in ["/etc", "../x", "a/../../b", "", ".", "./"] {
            assert!(
                matches!(
                    pack(
                        dir.path(),
                        &[bad.to_owned()],
                        Path::new("aphex-config.yaml"),
                        &out
                    ),
                    Err(ArtifactError::OutsideRepo(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn never_packs_the_configuration_or_git() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.tar.zst");
        for bad in ["aphex-config.yaml", "./aphex-config.yaml", ".git", ".git/config"] {
            let err = pack(
                dir.path(),
                &[bad.to_owned()],
                Path::new("aphex-config.yaml"),
                &out,
            )
            .unwrap_err();
            assert!(matches!(err, ArtifactError::Protected { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn missing_path_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = pack(
            dir.path(),
            &["dist".to_owned()],
            Path::new("aphex-config.yaml"),
            &dir.path().join("a"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`dist` does not exist"));
    }

    #[test]
    fn links_that_escape() {
        let escapes = |rel: &str, target: &str| link_escapes(Path::new(rel), Path::new(target));
        assert!(escapes("dist/x", "/etc/passwd"));
        assert!(escapes("dist/x", "../../y"));
        assert!(escapes("x", "../y"));
        assert!(!escapes("dist/x", "../src/y"));
        assert!(!escapes("dist/a/x", "../../b"));
        assert!(!escapes("dist/x", "./y"));
    }
}
