//! Build artifacts: packaged by the build stage, stored in the directory
//! store, restored by the deploy stage bit for bit, with their tags; a
//! corrupted archive is refused.

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
            .block_on(h.ctx.ports.artifacts.get(&h.ctx.run.pipeline, SHA, &archive))
            .unwrap();
        prop_assert_eq!(&meta.commit_sha, SHA);
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
    let stored = h.state().join("artifacts/aphex").join(SHA).join(ARCHIVE_NAME);
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
    assert!(
        h.state()
            .join("artifacts/aphex")
            .join(SHA)
            .join("metadata.json")
            .exists()
    );
}

#[test]
fn configured_path_missing_after_build_is_an_error() {
    let mut h = harness(MINIMAL);
    with_artifacts(&mut h, &["dist"]);
    let err = rt().block_on(build::run(&h.ctx)).unwrap_err().to_string();
    assert!(err.contains("`dist` does not exist after the build"), "{err}");
}
