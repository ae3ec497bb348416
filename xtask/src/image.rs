//! `cargo xtask image`: builds the two pod images of `images/Dockerfile`
//! (targets `builder` and `deployer`) around the release `aphex-runner`,
//! tagged `<version>-<commit>` plus `latest` (or each `--tag`), under the
//! names the config's defaults give (`images.builder`, `images.deployer`) or
//! under `--registry`. With `--check`, proves instead that the images work
//! (`image_check.rs`). docs/images.md is the user's page.
//!
//! What it owns: the options, the image names and tags, the build context
//! (the runner binary alone), and one `build` per target for both engines.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The Dockerfile's targets, in build order: each is also the last path
/// segment of its image name.
pub const TARGETS: [&str; 2] = ["deployer", "builder"];

/// The Dockerfile, relative to the workspace root.
pub const DOCKERFILE: &str = "images/Dockerfile";

/// Options of `cargo xtask image`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A tag given to both images besides `<version>-<commit>` (repeatable;
    /// default `latest`).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Where the images are named, e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com/aphex`
    /// (default: the registry of the config's default images).
    #[arg(long, value_name = "REGISTRY/PATH")]
    registry: Option<String>,
    /// The container engine (default: podman when installed, else docker).
    #[arg(long, value_enum)]
    engine: Option<EngineKind>,
    /// Instead of building release images, build them from the test build
    /// with podman and check that they work (docs/images.md).
    #[arg(long)]
    check: bool,
}

/// A container engine's command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    Docker,
    Podman,
}

impl EngineKind {
    pub fn program(self) -> &'static str {
        match self {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
        }
    }
}

/// `cargo xtask image`.
pub fn run(args: Args) -> Result<()> {
    if args.check {
        if args.engine == Some(EngineKind::Docker) {
            bail!(
                "--check runs podman in a store of its own (it installs podman when missing); \
                 drop --engine docker, which applies to release builds"
            );
        }
        if args.registry.is_some() || !args.tags.is_empty() {
            bail!("--check names its images itself: drop --registry and --tag");
        }
        return crate::image_check::run();
    }
    let engine = match args.engine {
        Some(e) => e,
        None => detect_engine()?,
    };
    for tag in &args.tags {
        check_tag(tag)?;
    }
    let root = crate::root();
    let commit = Commit::of(&root)?;
    let extra = if args.tags.is_empty() {
        vec!["latest".to_owned()]
    } else {
        args.tags.clone()
    };
    let tags = tags(env!("CARGO_PKG_VERSION"), &commit, &extra);
    crate::cargo(&["build", "--release", "--package", "aphex-runner"])?;
    let runner = runner_path(&root, "release");
    let mut built = Vec::new();
    for target in TARGETS {
        let repository = repository(args.registry.as_deref(), target)?;
        let refs: Vec<String> = tags.iter().map(|t| format!("{repository}:{t}")).collect();
        build(
            &mut Command::new(engine.program()),
            &Build {
                root: &root,
                runner: &runner,
                target,
                refs: &refs,
                commit: &commit,
                extra: &[],
            },
        )?;
        built.extend(refs);
    }
    println!();
    println!("Built with {}:", engine.program());
    for r in &built {
        println!("  {r}");
    }
    if commit.dirty {
        println!("note: the working tree has uncommitted changes (the tag says `-dirty`)");
    }
    println!(
        "Push them with `{} push IMAGE`, and name them in aphex-config.yaml under \
         pipeline.images (docs/images.md).",
        engine.program()
    );
    Ok(())
}

/// podman when installed, else docker.
fn detect_engine() -> Result<EngineKind> {
    for kind in [EngineKind::Podman, EngineKind::Docker] {
        if which::which(kind.program()).is_ok() {
            return Ok(kind);
        }
    }
    bail!("neither podman nor docker is on PATH: install one (`apt-get install podman`), or pass --engine")
}

/// The commit the images are built from.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The full SHA.
    pub sha: String,
    /// Git's abbreviation of it.
    pub short: String,
    /// Tracked files differ from the commit.
    pub dirty: bool,
}

impl Commit {
    pub fn of(root: &Path) -> Result<Commit> {
        let sha = git_output(root, &["rev-parse", "HEAD"])?;
        let short = git_output(root, &["rev-parse", "--short", "HEAD"])?;
        let dirty = !git_output(root, &["status", "--porcelain", "--untracked-files=no"])?.is_empty();
        Ok(Commit { sha, short, dirty })
    }
}

/// `git ARGS` in `root`; its standard output, trimmed.
pub fn git_output(root: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("running git")?;
    if !out.status.success() {
        bail!(
            "`git {}` in {} failed ({})",
            args.join(" "),
            root.display(),
            out.status
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The tags of one build: `<version>-<commit>[-dirty]` first, then `extra`.
pub fn tags(version: &str, commit: &Commit, extra: &[String]) -> Vec<String> {
    let dirty = if commit.dirty { "-dirty" } else { "" };
    let mut tags = vec![format!("{version}-{}{dirty}", commit.short)];
    for t in extra {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    tags
}

/// A tag as registries accept it: a letter, digit or `_`, then up to 127
/// letters, digits, `_`, `.` or `-`.
fn check_tag(tag: &str) -> Result<()> {
    let ok = tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        bail!(
            "--tag {tag:?} is not an image tag: use letters, digits, `_`, `.` and `-` (not first), at most 128"
        );
    }
    Ok(())
}

/// The repository (name without tag) of `target`'s image: `<registry>/<target>`,
/// or the config's default image without its tag.
pub fn repository(registry: Option<&str>, target: &str) -> Result<String> {
    if let Some(registry) = registry {
        let registry = registry.trim_end_matches('/');
        if registry.is_empty() || registry.contains(|c: char| c == '@' || c.is_whitespace()) {
            bail!("--registry {registry:?} is not a registry path like `registry.example.com/aphex`");
        }
        return Ok(format!("{registry}/{target}"));
    }
    let default = match target {
        "builder" => aphex_config::model::DEFAULT_BUILDER_IMAGE,
        "deployer" => aphex_config::model::DEFAULT_DEPLOYER_IMAGE,
        other => bail!("no image target {other:?} (the targets are builder and deployer)"),
    };
    // `host/path/name:tag`: the tag follows the last `:` after the last `/`.
    let (name, last) = default.rsplit_once('/').unwrap_or(("", default));
    let bare = last.split_once(':').map_or(last, |(n, _)| n);
    Ok(if name.is_empty() {
        bare.to_owned()
    } else {
        format!("{name}/{bare}")
    })
}

/// One image build.
pub struct Build<'a> {
    pub root: &'a Path,
    /// The `aphex-runner` binary to put in.
    pub runner: &'a Path,
    /// The Dockerfile target.
    pub target: &'a str,
    /// The names (with tags) it gets.
    pub refs: &'a [String],
    pub commit: &'a Commit,
    /// Engine options before the context (the check's sandbox settings).
    pub extra: &'a [String],
}

/// Builds one target of the Dockerfile with `engine` (a `docker` or `podman`
/// command, with any environment it needs), from a context holding only the
/// runner binary.
pub fn build(engine: &mut Command, build: &Build<'_>) -> Result<()> {
    if !build.runner.is_file() {
        bail!(
            "{} is missing: the cargo build before should have made it",
            build.runner.display()
        );
    }
    let context = tempfile::Builder::new()
        .prefix("aphex-image-")
        .tempdir()
        .context("creating a build context folder")?;
    // A copy keeps the mode bits (the Dockerfile does not set them).
    std::fs::copy(build.runner, context.path().join("aphex-runner"))
        .with_context(|| format!("copying {} into the build context", build.runner.display()))?;
    let dockerfile = build.root.join(DOCKERFILE);
    let version = env!("CARGO_PKG_VERSION");
    let mut args: Vec<String> = vec![
        "build".into(),
        "--file".into(),
        dockerfile.display().to_string(),
        "--target".into(),
        build.target.into(),
    ];
    for r in build.refs {
        args.extend(["--tag".into(), r.clone()]);
    }
    for label in [
        format!("org.opencontainers.image.title=aphex {}", build.target),
        format!("org.opencontainers.image.version={version}"),
        format!("org.opencontainers.image.revision={}", build.commit.sha),
        "org.opencontainers.image.licenses=Apache-2.0".to_owned(),
    ] {
        args.extend(["--label".into(), label]);
    }
    args.extend(build.extra.iter().cloned());
    args.push(context.path().display().to_string());
    let program = engine.get_program().to_string_lossy().into_owned();
    eprintln!(
        "xtask: {program} build --target {} ({})",
        build.target,
        build.refs.join(", ")
    );
    let status = engine
        .args(&args)
        .current_dir(build.root)
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!(
            "{program} build of the {} image failed ({status}); its output is above",
            build.target
        );
    }
    Ok(())
}

/// The runner built by `cargo build --release` or the test build.
pub fn runner_path(root: &Path, profile: &str) -> PathBuf {
    crate::demo::target_dir(root).join(profile).join("aphex-runner")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(dirty: bool) -> Commit {
        Commit {
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            short: "0123456".into(),
            dirty,
        }
    }

    #[test]
    fn tags_are_version_and_commit_then_the_extra_ones() {
        let cases: [(bool, &[&str], &[&str]); 4] = [
            (false, &["latest"], &["0.1.0-0123456", "latest"]),
            (true, &["latest"], &["0.1.0-0123456-dirty", "latest"]),
            (false, &["v1", "stable"], &["0.1.0-0123456", "v1", "stable"]),
            (false, &["0.1.0-0123456"], &["0.1.0-0123456"]),
        ];
        for (dirty, extra, want) in cases {
            let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(tags("0.1.0", &commit(dirty), &extra), want, "{dirty} {extra:?}");
        }
    }

    #[test]
    fn tags_are_checked() {
        for good in ["latest", "v1.2.3", "0.1.0-abc", "_x", &"a".repeat(128)] {
            assert!(check_tag(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", ".x", "a:b", "a/b", "a b", &"a".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_names_follow_the_config_defaults_or_the_registry() {
        let cases = [
            (None, "builder", "public.ecr.aws/aphex/builder"),
            (None, "deployer", "public.ecr.aws/aphex/deployer"),
            (
                Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com/aphex/"),
                "deployer",
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/aphex/deployer",
            ),
            (
                Some("localhost:5000/team"),
                "builder",
                "localhost:5000/team/builder",
            ),
        ];
        for (registry, target, want) in cases {
            assert_eq!(repository(registry, target).unwrap(), want);
        }
        for bad in ["", "/", "a b", "x@sha256"] {
            assert!(repository(Some(bad), "builder").is_err(), "{bad}");
        }
        assert!(repository(None, "runner").is_err());
    }
}
