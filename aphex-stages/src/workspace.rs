//! The workspace: the exact commit of the application repository, checked
//! out with the `git` CLI into a fresh directory. Only that commit is
//! fetched when the remote allows it; otherwise every branch and tag is
//! fetched and the commit looked up. [`check_on_branch`] then tells whether
//! the commit is one of a branch's.
//!
//! Every value reaches git as a positional argument after `--` (or
//! `--end-of-options` where `--` would start pathspecs), and a repository,
//! ref or SHA starting with `-` is refused before git runs: git must never
//! read one as an option (`--upload-pack=<command>` runs the command).

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
    /// A repository, branch or SHA that git could read as an option.
    #[error(
        "{what} `{value}` starts with `-`, which git would read as an option: give a repository URL or path, a branch name or a commit SHA"
    )]
    LooksLikeOption {
        /// What it is (`repository`, `branch`, ...).
        what: &'static str,
        /// What was given.
        value: String,
    },
    /// The commit is not reachable from the branch it must belong to.
    #[error(
        "commit {sha} is not on branch {branch} of {repo}: only commits of the branch this pipeline deploys \
         are deployed (pull requests run validate-pr); merge it into {branch} first"
    )]
    NotOnBranch {
        /// The commit.
        sha: String,
        /// The branch.
        branch: String,
        /// The repository.
        repo: String,
    },
    /// Not a name git allows for a branch.
    #[error("`{0}` is not a valid branch name (see `git check-ref-format`): check pipeline.github.branch")]
    BadBranch(String),
    /// The branch could not be fetched.
    #[error("cannot fetch branch {branch} of {repo} to check the commit is on it: {stderr}")]
    BranchFetch {
        /// The branch.
        branch: String,
        /// The repository.
        repo: String,
        /// What git printed.
        stderr: String,
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

/// Refuses a value git could read as an option (one starting with `-`).
pub fn check_not_option(what: &'static str, value: &str) -> Result<(), CheckoutError> {
    if value.starts_with('-') {
        Err(CheckoutError::LooksLikeOption {
            what,
            value: value.to_owned(),
        })
    } else {
        Ok(())
    }
}

/// What git fetches from for `repo`: a local path goes through file://,
/// where shallow fetches work; anything else as given.
fn fetch_source(repo: &str) -> String {
    match Path::new(repo).canonicalize() {
        Ok(p) if p.is_dir() => format!("file://{}", p.display()),
        _ => repo.to_owned(),
    }
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
    check_not_option("repository", repo)?;
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
    let source = fetch_source(repo);
    git(dest, &["init", "-q"]).await?;
    let shallow = git(
        dest,
        &["fetch", "-q", "--no-tags", "--depth", "1", "--", &source, &sha],
    )
    .await;
    if shallow.is_err() {
        // The remote refuses to serve an unadvertised commit: fetch every
        // branch and tag, then look for it.
        git(
            dest,
            &[
                "fetch",
                "-q",
                "--",
                &source,
                "+refs/heads/*:refs/remotes/origin/*",
                "+refs/tags/*:refs/tags/*",
            ],
        )
        .await?;
    }
    if git(
        dest,
        &["cat-file", "-e", "--end-of-options", &format!("{sha}^{{commit}}")],
    )
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
            "--end-of-options",
            &sha,
            "--",
        ],
    )
    .await?;
    Ok(())
}

/// Checks that commit `sha`, checked out in `dir` by [`checkout`] from
/// `repo`, is reachable from the head of `branch` there: fetches the
/// branch (only the commits after `sha` when it is on it, since the
/// checkout's shallow history stops at `sha`) and asks git.
pub async fn check_on_branch(dir: &Path, repo: &str, branch: &str, sha: &str) -> Result<(), CheckoutError> {
    check_not_option("repository", repo)?;
    check_not_option("branch", branch)?;
    check_sha(sha)?;
    let sha = sha.to_ascii_lowercase();
    // git's own rules: no `:`, `*`, `..` or anything else that would change
    // what the refspec below means.
    let full = format!("refs/heads/{branch}");
    if git(dir, &["check-ref-format", &full]).await.is_err() {
        return Err(CheckoutError::BadBranch(branch.to_owned()));
    }
    let tracking = "refs/aphex/deploy-branch";
    let refspec = format!("+{full}:{tracking}");
    let source = fetch_source(repo);
    if let Err(e) = git(dir, &["fetch", "-q", "--no-tags", "--", &source, &refspec]).await {
        let stderr = match e {
            CheckoutError::Git { stderr, .. } => stderr,
            other => return Err(other),
        };
        return Err(CheckoutError::BranchFetch {
            branch: branch.to_owned(),
            repo: repo.to_owned(),
            stderr,
        });
    }
    let args = ["merge-base", "--is-ancestor", "--end-of-options", &sha, tracking];
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .await
        .map_err(CheckoutError::Spawn)?;
    // Exit status 1 is git's "no"; anything else is a failure of its own.
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(CheckoutError::NotOnBranch {
            sha,
            branch: branch.to_owned(),
            repo: repo.to_owned(),
        }),
        _ => Err(CheckoutError::Git {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        }),
    }
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
    fn refuses_what_git_would_read_as_an_option() {
        assert!(check_not_option("repository", "--upload-pack=touch /tmp/x").is_err());
        assert!(check_not_option("branch", "-b").is_err());
        assert!(check_not_option("repository", "https://github.com/o/r.git").is_ok());
        assert!(check_not_option("branch", "feature/-x").is_ok());
    }

    #[test]
    fn refuses_short_and_non_hex_shas() {
        assert!(check_sha("abc123").is_err());
        assert!(check_sha(&"g".repeat(40)).is_err());
        assert!(check_sha(&"a".repeat(41)).is_err());
        assert!(check_sha(&"aB".repeat(20)).is_ok());
    }
}
