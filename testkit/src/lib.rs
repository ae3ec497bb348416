//! `aphex-testkit` holds helpers that several crates' tests share, so each
//! suite does not carry its own copy: `git` in a throwaway identity,
//! hand-written cloud assemblies ([`assembly`]), run records
//! ([`records`]), and the fault-injecting proxy in front of the AWS
//! emulator ([`fault_proxy`]). It is a dev-dependency everywhere except
//! `xtask`, whose benchmarks run through the proxy, and the `tests` crate
//! (itself tests only); no shipped crate depends on it.

pub mod assembly;
pub mod fault_proxy;
pub mod kube_api;
pub mod records;
pub mod sensor;

use std::path::Path;
use std::process::Command;

/// Runs `git args` in `dir` with a throwaway identity and no signing, and
/// returns its trimmed stdout; panics with git's stderr when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub mod secrets;
