//! Build artifacts: packaged by the build stage, stored in the directory
//! store under the run, restored by the same run's deploy stage bit for
//! bit, with their tags; another run's build of the same commit never
//! changes them; a corrupted or hostile archive is refused.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use aphex_stages::artifact::ARCHIVE_NAME;
use aphex_stages::stages::{build, deploy};
use proptest::prelude::*;
use support::*;

fn files_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(root).unwrap().display().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn with_artifacts(h: &mut Harness, paths: &[&str]) {
    h.ctx.config.build.artifacts = Some(paths.iter().map(|p| (*p).to_owned()).collect());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    // Property: artifact round trip. Whatever files the build leaves under
    // the configured paths come back bit-identical in a fresh checkout, and
    // the stored metadata carries the commit SHA, timestamp, size and SHA-256.
    #[test]
    fn artifact_round_trip(
        files in proptest::collection::btree_map(
            "(dist|dist/sub|out)/[a-z]{1,8}(\\.[a-z]{1,3})?",
            proptest::collection::vec(any::<u8>(), 0..4096),
            1..12,
        ),
    ) {
        let mut h = harness(MINIMAL);
        // A file path may also be a directory prefix of another: keep the files only.
        let files: BTreeMap<String, Vec<u8>> = files
            .iter()
            .filter(|(p, _)| !files.keys().any(|q| q.starts_with(&format!("{p}/"))))
            .map(|(p, b)| (p.clone(), b.clone()))
            .collect();
        for (p, bytes) in &files {
            let path = h.checkout().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let roots: Vec<&str> = ["dist", "out"]
            .into_iter()
            .filter(|r| h.checkout().join(r).exists())
            .collect();
        with_artifacts(&mut h, &roots);
        let rt = rt();
        let outcome = rt.block_on(build::run(&h.ctx)).unwrap();

        let archive = h.dir.path().join("fetched").join(ARCHIVE_NAME);
        let meta = rt
            .block_on(h.ctx.ports.artifacts.get(&h.ctx.run.pipeline, &h.ctx.run.id, &archive))
            .unwrap();
        prop_assert_eq!(&meta.commit_sha, SHA);
        prop_assert_eq!(&meta.run_id, "run-1");
        prop_assert_eq!(meta.unpacked_bytes, files.values().map(|b| b.len() as u64).sum::<u64>());
        prop_assert_eq!(&meta.pipeline, "aphex");
        prop_assert!(time::OffsetDateTime::parse(
            &meta.timestamp,
            &time::format_description::well_known::Rfc3339
        ).is_ok());
        let (size, sha) = aphex_stages::artifact::sha256_file(&archive).unwrap();
        prop_assert_eq!(meta.size, size);
        prop_assert_eq!(&meta.sha256, &sha);
        prop_assert_eq!(outcome.artifact_bytes, Some(size));
        prop_assert_eq!(meta.paths, roots.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>());

        // Restore into a fresh checkout, as a deploy pod would.
        let mut fresh = h.ctx.clone();
        fresh.checkout = h.dir.path().join("fresh");
        std::fs::create_dir_all(&fresh.checkout).unwrap();
        rt.block_on(deploy::restore_artifacts(&fresh, "deploy-dev")).unwrap();
        prop_assert_eq!(files_under(&fresh.checkout), files);
    }
}

#[test]
fn corrupted_artifact_is_refused() {
    let mut h = harness(MINIMAL);
    std::fs::create_dir_all(h.checkout().join("dist")).unwrap();
    std::fs::write(h.checkout().join("dist/app.js"), "console.log(1)").unwrap();
    with_artifacts(&mut h, &["dist"]);
    let rt = rt();
    rt.block_on(build::run(&h.ctx)).unwrap();
    let stored = h.state().join("artifacts/aphex/run-1").join(ARCHIVE_NAME);
    let mut bytes = std::fs::read(&stored).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&stored, bytes).unwrap();

    let mut fresh = h.ctx.clone();
    fresh.checkout = h.dir.path().join("fresh");
    std::fs::create_dir_all(&fresh.checkout).unwrap();
    let err = rt
        .block_on(deploy::restore_artifacts(&fresh, "deploy-dev"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("refusing the stored artifacts"), "{err}");
    assert!(err.contains("is corrupt: expected SHA-256"), "{err}");
    assert!(!fresh.checkout.join("dist").exists(), "nothing unpacked");
}

#[test]
fn no_artifacts_configured_and_no_directory_is_a_notice() {
    let h = harness(MINIMAL);
    let outcome = rt().block_on(build::run(&h.ctx)).unwrap();
    assert_eq!(outcome.artifact_bytes, None);
    assert!(
        h.log()
            .contains("no build.artifacts configured and no artifacts/ directory: nothing to package"),
        "{}",
        h.log()
    );
    // And deploy goes on without them.
    rt().block_on(deploy::restore_artifacts(&h.ctx, "deploy-dev"))
        .unwrap();
    assert!(h.log().contains("no build artifacts to restore"), "{}", h.log());
}

#[test]
fn default_artifacts_directory_is_packaged_when_present() {
    let h = harness(MINIMAL);
    std::fs::create_dir_all(h.checkout().join("artifacts")).unwrap();
    std::fs::write(h.checkout().join("artifacts/lambda.zip"), [1u8, 2, 3]).unwrap();
    let outcome = rt().block_on(build::run(&h.ctx)).unwrap();
    assert!(outcome.artifact_bytes.is_some());
    assert!(h.state().join("artifacts/aphex/run-1/metadata.json").exists());
}

#[test]
fn configured_path_missing_after_build_is_an_error() {
    let mut h = harness(MINIMAL);
    with_artifacts(&mut h, &["dist"]);
    let err = rt().block_on(build::run(&h.ctx)).unwrap_err().to_string();
    assert!(err.contains("`dist` does not exist after the build"), "{err}");
}

/// A fresh checkout restored by `h`'s run, as a deploy pod would.
fn restore_fresh(h: &Harness) -> Result<std::path::PathBuf, String> {
    let mut fresh = h.ctx.clone();
    fresh.checkout = h
        .dir
        .path()
        .join(format!("fresh-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&fresh.checkout).unwrap();
    rt().block_on(deploy::restore_artifacts(&fresh, "deploy-dev"))
        .map_err(|e| e.to_string())?;
    Ok(fresh.checkout)
}

#[test]
fn another_runs_build_of_the_same_commit_never_changes_what_this_run_restores() {
    let mut h = harness(MINIMAL);
    with_artifacts(&mut h, &["dist"]);
    std::fs::create_dir_all(h.checkout().join("dist")).unwrap();
    std::fs::write(h.checkout().join("dist/app.js"), "built by run one").unwrap();
    rt().block_on(build::run(&h.ctx)).unwrap();

    // Another run (a retry, a pull-request check) builds the same commit.
    let mut other = h.ctx.clone();
    other.run.id = "run-2".to_owned();
    std::fs::write(h.checkout().join("dist/app.js"), "built by run two").unwrap();
    rt().block_on(build::run(&other)).unwrap();

    let restored = restore_fresh(&h).unwrap();
    assert_eq!(
        std::fs::read_to_string(restored.join("dist/app.js")).unwrap(),
        "built by run one"
    );

    // Neither half of one build pairs with the other's: run two's archive
    // beside run one's metadata fails the checksum, and run two's metadata
    // in run one's place names the wrong run.
    let store = h.state().join("artifacts/aphex");
    let (one, two) = (store.join("run-1"), store.join("run-2"));
    std::fs::copy(two.join(ARCHIVE_NAME), one.join(ARCHIVE_NAME)).unwrap();
    let err = restore_fresh(&h).unwrap_err();
    assert!(err.contains("is corrupt: expected SHA-256"), "{err}");
    std::fs::copy(two.join("metadata.json"), one.join("metadata.json")).unwrap();
    let err = restore_fresh(&h).unwrap_err();
    assert!(err.contains("names run run-2"), "{err}");
}

#[test]
fn a_symlinked_artifact_root_is_packed_only_inside_the_checkout() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "not the commit's").unwrap();
    let mut h = harness(MINIMAL);
    with_artifacts(&mut h, &["dist"]);
    std::os::unix::fs::symlink(outside.path(), h.checkout().join("dist")).unwrap();
    let err = rt().block_on(build::run(&h.ctx)).unwrap_err().to_string();
    assert!(err.contains("`dist` is a symbolic link to"), "{err}");
    assert!(err.contains("outside the checkout"), "{err}");

    // A link to a folder inside the checkout is packed as that folder.
    std::fs::remove_file(h.checkout().join("dist")).unwrap();
    std::fs::create_dir_all(h.checkout().join("build/out")).unwrap();
    std::fs::write(h.checkout().join("build/out/app.js"), "x").unwrap();
    std::os::unix::fs::symlink("build/out", h.checkout().join("dist")).unwrap();
    rt().block_on(build::run(&h.ctx)).unwrap();
    let restored = restore_fresh(&h).unwrap();
    assert!(std::fs::symlink_metadata(restored.join("dist")).unwrap().is_dir());
    assert_eq!(
        std::fs::read_to_string(restored.join("dist/app.js")).unwrap(),
        "x"
    );

    // A link in the tree may point inside the checkout, never out of it.
    std::fs::remove_file(h.checkout().join("dist")).unwrap();
    std::fs::create_dir_all(h.checkout().join("dist")).unwrap();
    std::os::unix::fs::symlink("../build/out/app.js", h.checkout().join("dist/app.js")).unwrap();
    rt().block_on(build::run(&h.ctx)).unwrap();
    let restored = restore_fresh(&h).unwrap();
    assert_eq!(
        std::fs::read_link(restored.join("dist/app.js")).unwrap(),
        Path::new("../build/out/app.js")
    );
    std::os::unix::fs::symlink("/etc/passwd", h.checkout().join("dist/passwd")).unwrap();
    let err = rt().block_on(build::run(&h.ctx)).unwrap_err().to_string();
    assert!(
        err.contains("`dist/passwd` is a symbolic link to `/etc/passwd`"),
        "{err}"
    );
}

/// One entry of a hand-made archive: what a tampered or hostile build
/// could store, written byte by byte (the tar writer refuses most of it).
enum Entry<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Link(&'a str, &'a str),
    Special(&'a str, tar::EntryType),
}

/// Writes `entries` as a tar + zstd archive at `path`.
fn hostile_archive(path: &Path, entries: &[Entry<'_>]) {
    let file = std::fs::File::create(path).unwrap();
    let mut tar = tar::Builder::new(zstd::Encoder::new(file, 3).unwrap().auto_finish());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, data): (&str, &[u8]) = match e {
            Entry::File(name, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                (name, data)
            }
            Entry::Dir(name) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                (name, b"")
            }
            Entry::Link(name, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_link_name(target).unwrap();
                h.set_mode(0o777);
                (name, b"")
            }
            Entry::Special(name, kind) => {
                h.set_entry_type(*kind);
                if *kind == tar::EntryType::Link {
                    h.set_link_name("aphex-config.yaml").unwrap();
                }
                h.set_mode(0o644);
                (name, b"")
            }
        };
        h.set_size(data.len() as u64);
        // The name goes in raw: `set_path` would refuse `..` and absolute paths.
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name = [0; 100];
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        tar.append(&h, data).unwrap();
    }
    tar.into_inner().unwrap();
}

/// Restores a hand-made archive of `entries`, recorded with `paths`, the
/// content bytes and entry count they really hold (or `limits` instead),
/// into a fresh app folder holding `aphex-config.yaml`.
fn restore_hostile(
    entries: &[Entry<'_>],
    paths: &[&str],
    limits: Option<(u64, u64)>,
) -> (
    tempfile::TempDir,
    Result<aphex_stages::artifact::Unpacked, String>,
) {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join(ARCHIVE_NAME);
    hostile_archive(&archive, entries);
    let dest = dir.path().join("app");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("aphex-config.yaml"), "the config").unwrap();
    let bytes: u64 = entries
        .iter()
        .map(|e| match e {
            Entry::File(_, d, _) => d.len() as u64,
            _ => 0,
        })
        .sum();
    let (unpacked_bytes, count) = limits.unwrap_or((bytes, entries.len() as u64));
    let meta = aphex_stages::ports::ArtifactMetadata {
        pipeline: "aphex".into(),
        run_id: "run-1".into(),
        commit_sha: SHA.into(),
        timestamp: "2026-01-01T00:00:00Z".into(),
        size: 0,
        sha256: String::new(),
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        unpacked_bytes,
        entries: count,
    };
    let result = aphex_stages::artifact::unpack(&archive, &dest, &meta, Path::new("aphex-config.yaml"))
        .map_err(|e| e.to_string());
    (dir, result)
}

/// (what, the archive's entries, the declared paths, the recorded (bytes,
/// entries) when not the archive's own, what the refusal says)
type Hostile = (
    &'static str,
    Vec<Entry<'static>>,
    Vec<&'static str>,
    Option<(u64, u64)>,
    &'static str,
);

#[test]
fn hostile_archives_are_refused() {
    use tar::EntryType;
    let cases: Vec<Hostile> = vec![
        (
            "an entry climbing out",
            vec![Entry::File("dist/../../evil", b"x", 0o644)],
            vec!["dist"],
            None,
            "absolute or climbs out",
        ),
        (
            "an absolute entry",
            vec![Entry::File("/tmp/aphex-evil", b"x", 0o644)],
            vec!["dist"],
            None,
            "absolute or climbs out",
        ),
        (
            "the configuration, undeclared",
            vec![Entry::File("aphex-config.yaml", b"pwned", 0o644)],
            vec!["dist"],
            None,
            "not under the artifact paths its build declared (dist)",
        ),
        (
            "the configuration, declared",
            vec![Entry::File("aphex-config.yaml", b"pwned", 0o644)],
            vec!["aphex-config.yaml"],
            None,
            "would overwrite the pipeline's configuration",
        ),
        (
            "git's data",
            vec![Entry::File(".git/hooks/post-checkout", b"pwned", 0o755)],
            vec![".git"],
            None,
            "would overwrite git's data",
        ),
        (
            "an undeclared path",
            vec![Entry::File("src/index.js", b"x", 0o644)],
            vec!["dist"],
            None,
            "not under the artifact paths",
        ),
        (
            "a FIFO",
            vec![Entry::Special("dist/pipe", EntryType::Fifo)],
            vec!["dist"],
            None,
            "a FIFO entry",
        ),
        (
            "a character device",
            vec![Entry::Special("dist/null", EntryType::Char)],
            vec!["dist"],
            None,
            "a character device entry",
        ),
        (
            "a block device",
            vec![Entry::Special("dist/sda", EntryType::Block)],
            vec!["dist"],
            None,
            "a block device entry",
        ),
        (
            "a hard link",
            vec![Entry::Special("dist/config", EntryType::Link)],
            vec!["dist"],
            None,
            "a hard link entry",
        ),
        (
            "a link out of the checkout",
            vec![Entry::Link("dist/etc", "/etc")],
            vec!["dist"],
            None,
            "symbolic link to `/etc`, outside the checkout",
        ),
        (
            "a link climbing out",
            vec![Entry::Link("dist/up", "../../..")],
            vec!["dist"],
            None,
            "outside the checkout",
        ),
        (
            "a write through a link",
            vec![
                Entry::Link("dist/app", ".."),
                Entry::File("dist/app/aphex-config.yaml", b"pwned", 0o644),
            ],
            vec!["dist"],
            None,
            "`dist/app` on its way is a symbolic link",
        ),
        (
            "more bytes than recorded",
            vec![Entry::File("dist/big", &[7u8; 4096], 0o644)],
            vec!["dist"],
            Some((100, 1)),
            "unpacks to more than 100 bytes",
        ),
        (
            "more entries than recorded",
            vec![
                Entry::Dir("dist"),
                Entry::File("dist/a", b"", 0o644),
                Entry::File("dist/b", b"", 0o644),
            ],
            vec!["dist"],
            Some((0, 2)),
            "unpacks to more than 2 entries",
        ),
    ];
    for (what, entries, paths, limits, expected) in cases {
        let (dir, result) = restore_hostile(&entries, &paths, limits);
        let err = result.expect_err(what);
        assert!(err.contains(expected), "{what}: {err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("app/aphex-config.yaml")).unwrap(),
            "the config",
            "{what}"
        );
        assert!(!Path::new("/tmp/aphex-evil").exists(), "{what}");
    }
}

#[test]
fn permissions_are_normalised_on_restore() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, result) = restore_hostile(
        &[
            Entry::Dir("dist"),
            Entry::File("dist/setuid", b"#!/bin/sh\n", 0o4755),
            Entry::File("dist/setgid", b"x", 0o2644),
            Entry::File("dist/open", b"x", 0o777),
            Entry::File("dist/private", b"x", 0o600),
        ],
        &["dist"],
        None,
    );
    result.unwrap();
    let mode = |name: &str| {
        std::fs::metadata(dir.path().join("app/dist").join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    // Executable or not is kept; setuid, setgid and others' write never are.
    for (name, executable) in [
        ("setuid", true),
        ("setgid", false),
        ("open", true),
        ("private", false),
    ] {
        let m = mode(name);
        assert_eq!(m & 0o6000, 0, "{name}: {m:o}");
        assert_eq!(m & 0o002, 0, "{name}: {m:o}");
        assert_eq!(m & 0o100 != 0, executable, "{name}: {m:o}");
    }
}
