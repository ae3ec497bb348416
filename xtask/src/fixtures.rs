//! `cargo xtask fixtures [--check]`: regenerates the cloud assembly fixtures
//! in `aphex-stages/tests/fixtures/` by a real `cdk synth` of the quick start
//! and of the `assets` variant of `tests/cdk-apps`, keeping only what the
//! reader reads (manifests, asset manifests, templates, asset sources).
//! `--check` synthesizes into a temporary directory and fails when the
//! committed fixtures differ.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::npm;

/// Where the fixtures live, relative to the workspace root.
const FIXTURES: &str = "aphex-stages/tests/fixtures";

/// The account and region every fixture is synthesized for.
const ACCOUNT: &str = "000000000000";
const REGION: &str = "us-east-1";

/// One fixture: a name and how to synthesize it.
struct Fixture {
    name: &'static str,
    /// The app's directory, relative to the workspace root.
    dir: &'static str,
    /// `--app` for the CLI; `None` uses the app's `cdk.json`.
    app: Option<&'static str>,
}

const ALL: &[Fixture] = &[
    Fixture {
        name: "quickstart",
        dir: npm::QUICKSTART,
        app: None,
    },
    Fixture {
        name: "assets",
        dir: "tests/cdk-apps",
        app: Some("node app.js assets"),
    },
];

/// `cargo xtask fixtures [--check]`.
pub fn run(check: bool) -> Result<()> {
    let root = crate::root();
    npm::ensure(&root)?;
    let scratch = std::env::temp_dir().join(format!("aphex-fixtures-{}", std::process::id()));
    let result = ALL
        .iter()
        .try_for_each(|fixture| one(&root, &scratch, fixture, check));
    // Best effort: a leftover scratch directory in the temp folder is harmless.
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn one(root: &Path, scratch: &Path, fixture: &Fixture, check: bool) -> Result<()> {
    let out = scratch.join(fixture.name);
    synth(root, fixture, &out)?;
    prune(&out)?;
    let committed = root.join(FIXTURES).join(fixture.name);
    if check {
        let want = files(&out)?;
        let have = files(&committed).unwrap_or_default();
        if want != have {
            let mut differing: Vec<&String> = want
                .iter()
                .filter(|(path, bytes)| have.get(*path) != Some(*bytes))
                .map(|(path, _)| path)
                .collect();
            differing.extend(have.keys().filter(|path| !want.contains_key(*path)));
            bail!(
                "{} is stale ({} differ, e.g. {}): run `cargo xtask fixtures`",
                committed.display(),
                differing.len(),
                differing.first().map_or("?", |p| p.as_str())
            );
        }
        eprintln!("xtask: {FIXTURES}/{} is up to date", fixture.name);
        return Ok(());
    }
    if committed.exists() {
        std::fs::remove_dir_all(&committed).with_context(|| format!("removing {}", committed.display()))?;
    }
    copy_dir(&out, &committed)?;
    eprintln!("xtask: wrote {FIXTURES}/{}", fixture.name);
    Ok(())
}

/// Runs the project's own `cdk` CLI. The CLI replaces `CDK_DEFAULT_ACCOUNT`
/// and `CDK_DEFAULT_REGION` with those of its AWS configuration, so the
/// child gets no credentials or profile and its region is pinned: the
/// fixtures come out the same on every machine.
fn synth(root: &Path, fixture: &Fixture, out: &Path) -> Result<()> {
    let cdk = root.join(npm::QUICKSTART).join("node_modules/.bin/cdk");
    let mut cmd = Command::new(&cdk);
    cmd.arg("synth");
    if let Some(app) = fixture.app {
        cmd.args(["--app", app]);
    }
    cmd.args(["--no-notices", "--quiet", "--output"])
        .arg(out)
        .current_dir(root.join(fixture.dir))
        .envs(npm::node_env(root))
        .env("CDK_DEFAULT_ACCOUNT", ACCOUNT)
        .env("CDK_DEFAULT_REGION", REGION)
        .env("AWS_REGION", REGION)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", out.with_extension("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            out.with_extension("no-aws-credentials"),
        );
    for var in [
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "CDK_OUTDIR",
        "APHEX_TEST_STACK_PREFIX",
    ] {
        cmd.env_remove(var);
    }
    eprintln!("xtask: cdk synth {} ({})", fixture.name, fixture.dir);
    let status = cmd
        .status()
        .with_context(|| format!("running {} (run `cargo xtask npm`)", cdk.display()))?;
    if !status.success() {
        bail!("cdk synth of {} failed ({status})", fixture.dir);
    }
    Ok(())
}

/// Keeps what the reader reads: `manifest.json`, `*.assets.json`,
/// `*.template.json`, `asset.*` sources, nested `assembly-*` directories,
/// and of each `*.metadata.json` the annotations (see [`annotations_only`]).
fn prune(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type()?.is_dir();
        let keep = name == "manifest.json"
            || name.ends_with(".assets.json")
            || name.ends_with(".template.json")
            || name.starts_with("asset.")
            || (is_dir && name.starts_with("assembly-"));
        if is_dir && name.starts_with("assembly-") {
            prune(&path)?;
        } else if name.ends_with(".metadata.json") {
            annotations_only(&path)?;
        } else if !keep {
            if is_dir {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            }
            .with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// Rewrites a stack's metadata file to its annotations (errors, warnings,
/// notes) without their traces: the rest (logical ids, tags, creation
/// stacks with this machine's paths) is not read, and the paths would make
/// the fixtures differ between machines.
fn annotations_only(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let all: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).with_context(|| format!("{} is not a JSON object", path.display()))?;
    let mut kept = serde_json::Map::new();
    for (construct, entries) in all {
        let annotations: Vec<serde_json::Value> = entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| {
                matches!(
                    e["type"].as_str(),
                    Some("aws:cdk:error" | "aws:cdk:warning" | "aws:cdk:info")
                )
            })
            .map(|e| serde_json::json!({ "type": e["type"], "data": e["data"] }))
            .collect();
        if !annotations.is_empty() {
            kept.insert(construct, annotations.into());
        }
    }
    let text = serde_json::to_string_pretty(&kept)? + "\n";
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Every file under `dir`, by path relative to it.
fn files(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    fn walk(base: &Path, dir: &Path, into: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                walk(base, &path, into)?;
            } else {
                let rel = path.strip_prefix(base)?.to_string_lossy().replace('\\', "/");
                let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                into.insert(rel, bytes);
            }
        }
        Ok(())
    }
    let mut into = BTreeMap::new();
    walk(dir, dir, &mut into)?;
    Ok(into)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    for (rel, bytes) in files(from)? {
        let dest: PathBuf = to.join(&rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&dest, bytes).with_context(|| format!("writing {}", dest.display()))?;
    }
    Ok(())
}
