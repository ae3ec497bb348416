//! `cargo xtask npm`: installs the quick start's npm packages (`aws-cdk-lib`,
//! `constructs`, the `aws-cdk` CLI) with `npm ci`, only when
//! `node_modules` is missing or older than `package-lock.json`. The test CDK
//! apps in `tests/cdk-apps/` share this one install through `NODE_PATH`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// The example whose `package.json` pins the CDK for everything in the repo.
pub const QUICKSTART: &str = "examples/quickstart";

/// Written into `node_modules` after a successful install: the SHA-256 of the
/// `package-lock.json` it was installed from.
const STAMP: &str = ".aphex-package-lock.sha256";

/// Environment for every `npm`/`cdk` process: no telemetry, no version check,
/// no update notices (nothing that needs the network beyond the registry).
pub const CDK_ENV: &[(&str, &str)] = &[
    ("CDK_DISABLE_CLI_TELEMETRY", "true"),
    ("CDK_DISABLE_VERSION_CHECK", "1"),
    ("NO_UPDATE_NOTIFIER", "1"),
    ("npm_config_update_notifier", "false"),
    ("npm_config_fund", "false"),
    ("npm_config_audit", "false"),
];

/// `cargo xtask npm`.
pub fn run() -> Result<()> {
    let node_modules = ensure(&crate::root())?;
    eprintln!("xtask: NODE_PATH={}", node_modules.display());
    Ok(())
}

/// Makes sure the quick start's `node_modules` matches its lock file and
/// returns its path (what `NODE_PATH` should hold for `tests/cdk-apps`).
pub fn ensure(root: &Path) -> Result<PathBuf> {
    let dir = root.join(QUICKSTART);
    let node_modules = dir.join("node_modules");
    let lock = dir.join("package-lock.json");
    let want = lock_hash(&lock)?;
    let stamp = node_modules.join(STAMP);
    let have = std::fs::read_to_string(&stamp).ok();
    if have.as_deref().map(str::trim) == Some(want.as_str()) {
        eprintln!("xtask: {QUICKSTART}/node_modules is up to date");
        return Ok(node_modules);
    }
    let why = if node_modules.is_dir() {
        "not known to match package-lock.json"
    } else {
        "missing"
    };
    eprintln!("xtask: {QUICKSTART}/node_modules is {why}: npm ci");
    // --prefer-offline: the npm cache is enough once it has seen these
    // versions, so a second machine-local install needs no network.
    let status = Command::new("npm")
        .args(["ci", "--prefer-offline", "--no-audit", "--no-fund"])
        .envs(CDK_ENV.iter().copied())
        .current_dir(&dir)
        .status()
        .context("running npm: install Node.js 20 or later (with npm) and retry")?;
    if !status.success() {
        bail!("npm ci in {} failed ({status})", dir.display());
    }
    std::fs::write(&stamp, format!("{want}\n")).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(node_modules)
}

/// Environment for running a CDK app that uses the shared install.
pub fn node_env(root: &Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = CDK_ENV
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let node_modules = root.join(QUICKSTART).join("node_modules");
    env.push(("NODE_PATH".into(), node_modules.display().to_string()));
    env
}

fn lock_hash(lock: &Path) -> Result<String> {
    let bytes = std::fs::read(lock).with_context(|| format!("reading {}", lock.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}
