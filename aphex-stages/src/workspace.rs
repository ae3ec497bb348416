//! The workspace: the exact commit of the application repository, checked
//! out with the `git` CLI into a fresh directory. Only that commit is
//! fetched when the remote allows it; otherwise every branch and tag is
//! fetched and the commit looked up.

use std::path::{Path, PathBuf};

use tokio::process::Command;

/// A checkout problem.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// The SHA is not 40 hexadecimal characters.
    #[error(
        "`{sha}` is not a full commit SHA: give all 40 hexadecimal characters (`git rev-parse <ref>` prints it)"
    )]
    BadSha {
        /// What was given.
        sha: String,
    },
    /// The commit is not in the repository.
    #[error(
        "commit {sha} is not in {repo}: push it, or check the SHA (`git log --format=%H` lists the commits)"
    )]
    UnknownCommit {
        /// The commit.
        sha: String,
        /// The repository.
        repo: String,
    },
    /// The destination exists and is not empty.
    #[error("checkout directory {} already exists and is not empty", .0.display())]
    NotFresh(PathBuf),
    /// A git command failed.
    #[error("`git {args}` failed: {stderr}")]
    Git {
        /// Its arguments.
        args: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// git could not be run at all.
    #[error("could not run git (is it installed and on PATH?): {0}")]
    Spawn(#[source] std::io::Error),
}

/// Checks that `sha` is a full 40-hex commit SHA.
pub fn check_sha(sha: &str) -> Result<(), CheckoutError> {
    if sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(CheckoutError::BadSha { sha: sha.to_owned() })
    }
}

/// Checks out commit `sha` of `repo` (a URL or a local path) into `dest`,
/// which must not exist or be empty. The result is a detached HEAD at `sha`.
pub async fn checkout(repo: &str, sha: &str, dest: &Path) -> Result<(), CheckoutError> {
    check_sha(sha)?;
    let sha = sha.to_ascii_lowercase();
    if dest.exists()
        && std::fs::read_dir(dest)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(CheckoutError::NotFresh(dest.to_owned()));
    }
    std::fs::create_dir_all(dest).map_err(CheckoutError::Spawn)?;
    // A local path is fetched through file://, where shallow fetches work.
    let source = match Path::new(repo).canonicalize() {
        Ok(p) if p.is_dir() => format!("file://{}", p.display()),
        _ => repo.to_owned(),
    };
    git(dest, &["init", "-q"]).await?;
    let shallow = git(dest, &["fetch", "-q", "--no-tags", "--depth", "1", &source, &sha]).await;
    if shallow.is_err() {
        // The remote refuses to serve an unadvertised commit: fetch every
        // branch and tag, then look for it.
        git(
            dest,
            &[
                "fetch",
                "-q",
                &source,
                "+refs/heads/*:refs/remotes/origin/*",
                "+refs/tags/*:refs/tags/*",
            ],
        )
        .await?;
    }
    if git(dest, &["cat-file", "-e", &format!("{sha}^{{commit}}")])
        .await
        .is_err()
    {
        return Err(CheckoutError::UnknownCommit {
            sha,
            repo: repo.to_owned(),
        });
    }
    git(
        dest,
        &[
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "-q",
            "--detach",
            &sha,
        ],
    )
    .await?;
    Ok(())
}

/// The commit `HEAD` points at in the repository at `dir`.
pub async fn head_commit(dir: &Path) -> Result<String, CheckoutError> {
    git(dir, &["rev-parse", "HEAD"]).await
}

/// The branch checked out in `dir`, when on one.
pub async fn current_branch(dir: &Path) -> Option<String> {
    git(dir, &["symbolic-ref", "--short", "-q", "HEAD"]).await.ok()
}

/// The top-level directory of the repository containing `dir`.
pub async fn toplevel(dir: &Path) -> Result<PathBuf, CheckoutError> {
    git(dir, &["rev-parse", "--show-toplevel"])
        .await
        .map(PathBuf::from)
}

async fn git(dir: &Path, args: &[&str]) -> Result<String, CheckoutError> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .await
        .map_err(CheckoutError::Spawn)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(CheckoutError::Git {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_short_and_non_hex_shas() {
        assert!(check_sha("abc123").is_err());
        assert!(check_sha(&"g".repeat(40)).is_err());
        assert!(check_sha(&"a".repeat(41)).is_err());
        assert!(check_sha(&"aB".repeat(20)).is_ok());
    }
}
