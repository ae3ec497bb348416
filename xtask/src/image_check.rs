//! `cargo xtask image --check`: proves that the two images work, on this
//! machine and with no registry. Builds them with the check's podman
//! (`podman.rs`) around the test build's `aphex-runner`, then, inside
//! containers on the host's network: each tool's version, the image's user,
//! entrypoint and writable folders, the CDK CLI from the quick start's
//! mounted `node_modules`, and the quick start's dev leg stage by stage as
//! the WorkflowTemplate's pods run it (validate in the deployer, build in the
//! builder, deploy to the local AWS emulator in the deployer, test in the
//! builder, finalize), handing state over through a mounted `--state-dir`
//! (artifacts, and the run record that carries deploy's outputs to test).
//! It ends by reading the run record the finalize stage wrote.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::emulator::Emulator;
use crate::image::{Build, Commit, TARGETS};
use crate::podman::Podman;

/// The check's images: `localhost/aphex-check/<target>:check`, in the
/// check's own store only.
fn image(target: &str) -> String {
    format!("localhost/aphex-check/{target}:check")
}

/// The numeric user the Dockerfile gives both images.
const USER: &str = "10001";

/// Where things are mounted inside the containers.
const REPO: &str = "/srv/aphex/repo.git";
const STATE: &str = "/srv/aphex/state";
const NODE_MODULES: &str = "/opt/quickstart/node_modules";
const HOST_CA: &str = "/run/host-ca.crt";
const NPM_CACHE: &str = "/home/aphex/.npm";
const GITCONFIG: &str = "/srv/aphex/gitconfig";

/// The host's CA bundle: a proxy that intercepts TLS here signs with a CA
/// only this bundle has, so containers that make HTTPS calls mount it.
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The quick start's environment the check deploys.
const ENV: &str = "dev";

/// `cargo xtask image --check` on its own: its own emulator and runner build.
pub fn run() -> Result<()> {
    let started = Instant::now();
    let root = crate::root();
    let podman = Podman::setup()?;
    // Boots while the images build; stopped when dropped.
    let mut emulator = Emulator::spawn().context("starting the local AWS emulator")?;
    crate::npm::ensure(&root)?;
    crate::cargo(&["build", "--package", "aphex-runner"])?;
    build_images(&podman, &root, &crate::image::runner_path(&root, "debug"))?;
    emulator
        .wait_healthy()
        .context("starting the local AWS emulator")?;
    check_images(&podman, &root, &emulator)?;
    eprintln!("xtask: image check passed in {} s", started.elapsed().as_secs());
    Ok(())
}

/// The check inside `cargo xtask test`: the tests' emulator, npm install and
/// runner (built by `cargo test --workspace --no-run`).
pub fn in_test(emulator: &Emulator) -> Result<()> {
    let started = Instant::now();
    let root = crate::root();
    let podman = Podman::setup()?;
    build_images(&podman, &root, &crate::image::runner_path(&root, "debug"))?;
    check_images(&podman, &root, emulator)?;
    eprintln!("xtask: image check passed in {} s", started.elapsed().as_secs());
    Ok(())
}

/// Makes the base when missing, builds both targets, drops earlier checks' layers.
fn build_images(podman: &Podman, root: &Path, runner: &Path) -> Result<()> {
    let dockerfile = root.join(crate::image::DOCKERFILE);
    let text =
        std::fs::read_to_string(&dockerfile).with_context(|| format!("reading {}", dockerfile.display()))?;
    let from = base_image(&text).with_context(|| format!("{} has no `FROM` line", dockerfile.display()))?;
    podman.ensure_base(from)?;
    let commit = Commit::of(root)?;
    let mut extra = vec!["--network".to_owned(), "host".to_owned()];
    if Path::new(HOST_CA_BUNDLE).is_file() {
        extra.extend([
            "--volume".to_owned(),
            format!("{HOST_CA_BUNDLE}:{HOST_CA}:ro"),
            "--build-arg".to_owned(),
            format!("NODE_EXTRA_CA_CERTS={HOST_CA}"),
        ]);
    }
    for target in TARGETS {
        crate::image::build(
            &mut podman.command(),
            &Build {
                root,
                runner,
                target,
                refs: &[image(target)],
                commit: &commit,
                extra: &extra,
            },
        )?;
    }
    podman.prune()
}

/// The image of the Dockerfile's first `FROM`.
fn base_image(dockerfile: &str) -> Option<&str> {
    dockerfile.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        words
            .next()
            .filter(|w| w.eq_ignore_ascii_case("FROM"))
            .and(words.find(|w| !w.starts_with("--")))
    })
}

/// Everything that runs inside the containers.
fn check_images(podman: &Podman, root: &Path, emulator: &Emulator) -> Result<()> {
    let node_modules = root.join(crate::npm::QUICKSTART).join("node_modules");
    let cdk_version = cdk_version(root)?;
    let probe = Probe {
        podman,
        node_modules: &node_modules,
    };
    for target in TARGETS {
        probe.contract(target)?;
    }
    probe.versions(&cdk_version)?;
    Leg::prepare(podman, root, emulator, &node_modules)?.run()
}

/// The aws-cdk CLI version the quick start pins.
fn cdk_version(root: &Path) -> Result<String> {
    let path = root.join(crate::npm::QUICKSTART).join("package.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let package: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    package["devDependencies"]["aws-cdk"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{} pins no aws-cdk", path.display()))
}

/// One-shot containers whose output is checked.
struct Probe<'a> {
    podman: &'a Podman,
    node_modules: &'a Path,
}

impl Probe<'_> {
    /// What the pods rely on: the numeric user (runAsNonRoot), the runner
    /// as entrypoint, a writable home and `/tmp/aphex` folders.
    fn contract(&self, target: &str) -> Result<()> {
        let image = image(target);
        let config = self.podman.output(
            &[
                "image".into(),
                "inspect".into(),
                "--format".into(),
                "{{.Config.User}} {{json .Config.Entrypoint}}".into(),
                image.clone(),
            ],
            &format!("inspecting {image}"),
        )?;
        let want = format!("{USER} [\"aphex-runner\"]");
        if config != want {
            bail!("{image}: user and entrypoint are `{config}`, not `{want}`");
        }
        // A constant script: nothing from outside reaches the shell.
        let script = "id -u; test -w \"$HOME\" && test -w /tmp/aphex/work && test -w /tmp/aphex/outputs && echo writable";
        let out = self.output(target, &["--entrypoint", "sh"], &["-c", script])?;
        if out != format!("{USER}\nwritable") {
            bail!("{image}: `id -u` and the writable folders printed {out:?}");
        }
        println!("  {target}: user {USER}, entrypoint aphex-runner, HOME and /tmp/aphex writable");
        Ok(())
    }

    /// Each tool's version, in the images whose stages use it.
    fn versions(&self, cdk: &str) -> Result<()> {
        let mount = format!("{}:{NODE_MODULES}:ro", self.node_modules.display());
        let cdk_bin = format!("{NODE_MODULES}/.bin/cdk");
        let runner = format!("aphex-runner {}", env!("CARGO_PKG_VERSION"));
        let mut checks: Vec<(&str, Vec<&str>, &str, Expect)> = Vec::new();
        for target in TARGETS {
            checks.push((target, vec![], "--version", Expect::Exactly(runner.clone())));
            checks.push((target, vec!["--entrypoint", "node"], "--version", Expect::Node20));
            checks.push((
                target,
                vec!["--entrypoint", "npm"],
                "--version",
                Expect::Something,
            ));
            checks.push((
                target,
                vec!["--entrypoint", "git"],
                "--version",
                Expect::StartsWith("git version ".into()),
            ));
        }
        for tool in ["python3", "make", "gcc"] {
            checks.push((
                "builder",
                vec!["--entrypoint", tool],
                "--version",
                Expect::Something,
            ));
        }
        checks.push(("builder", vec!["--entrypoint", "zip"], "-v", Expect::Something));
        // The CLI the quick start pins, run from its mounted packages (a
        // bare `npx cdk` would download one).
        checks.push((
            "deployer",
            vec!["--volume", &mount, "--entrypoint", &cdk_bin],
            "--version",
            Expect::StartsWith(format!("{cdk} ")),
        ));
        for (target, flags, arg, expect) in checks {
            let out = self.output(target, &flags, &[arg])?;
            let command = format!("{} {arg}", flags.last().unwrap_or(&"aphex-runner"));
            if !expect.holds(&out) {
                bail!(
                    "{}: `{command}` printed {out:?}, expected {expect:?}",
                    image(target)
                );
            }
            // zip -v opens with its copyright.
            let first = out
                .lines()
                .find(|l| !l.trim().is_empty() && !l.starts_with("Copyright"))
                .unwrap_or_default();
            println!("  {target}: {command}: {first}");
        }
        Ok(())
    }

    /// `podman run --rm` of `target`'s image; its standard output.
    fn output(&self, target: &str, flags: &[&str], args: &[&str]) -> Result<String> {
        let mut all: Vec<String> = vec!["run".into(), "--rm".into(), "--network".into(), "host".into()];
        all.extend(
            crate::npm::CDK_ENV
                .iter()
                .flat_map(|(k, v)| ["--env".to_owned(), format!("{k}={v}")]),
        );
        all.extend(flags.iter().map(|s| (*s).to_owned()));
        all.push(image(target));
        all.extend(args.iter().map(|s| (*s).to_owned()));
        self.podman
            .output(&all, &format!("running {} in {}", args.join(" "), image(target)))
    }
}

/// What a version command must print.
#[derive(Debug)]
enum Expect {
    Exactly(String),
    StartsWith(String),
    /// `vMAJOR.MINOR.PATCH` with MAJOR >= 20 (aws-cdk-lib's minimum).
    Node20,
    Something,
}

impl Expect {
    fn holds(&self, out: &str) -> bool {
        match self {
            Expect::Exactly(s) => out == s,
            Expect::StartsWith(s) => out.starts_with(s.as_str()),
            Expect::Node20 => node_is_20_or_newer(out),
            Expect::Something => !out.trim().is_empty(),
        }
    }
}

fn node_is_20_or_newer(version: &str) -> bool {
    version
        .strip_prefix('v')
        .and_then(|v| v.split('.').next())
        .and_then(|major| major.parse::<u32>().ok())
        .is_some_and(|major| major >= 20)
}

/// The quick start's dev leg, one container per stage.
struct Leg<'a> {
    podman: &'a Podman,
    scratch: tempfile::TempDir,
    common: Vec<String>,
    node_modules: &'a Path,
    run_id: String,
    pipeline: String,
}

impl<'a> Leg<'a> {
    /// A bare clone of this repository at HEAD to check out from, a state
    /// folder the containers' user may write, the emulator's account
    /// bootstrapped, and what every stage container gets.
    fn prepare(
        podman: &'a Podman,
        root: &Path,
        emulator: &Emulator,
        node_modules: &'a Path,
    ) -> Result<Leg<'a>> {
        let config_file = format!("{}/aphex-config.yaml", crate::npm::QUICKSTART);
        let config = aphex_config::load_file(&root.join(&config_file))
            .map_err(|d| anyhow::anyhow!("{config_file} is invalid: {d:?}"))?;
        let env = config
            .environments
            .iter()
            .find(|e| e.name == ENV)
            .with_context(|| format!("{config_file} has no environment `{ENV}`"))?;
        crate::demo::bootstrap(emulator, &env.account)?;
        let commit = Commit::of(root)?;
        if commit.dirty {
            eprintln!(
                "xtask: note: the stages run commit {}; uncommitted changes are not part of it",
                commit.short
            );
        }
        let branch = crate::image::git_output(root, &["branch", "--show-current"])?;
        let scratch = tempfile::Builder::new()
            .prefix("aphex-image-check-")
            .tempdir()
            .context("creating a scratch folder")?;
        let repo = scratch.path().join("repo.git");
        let status = std::process::Command::new("git")
            .args(["clone", "--bare", "--quiet"])
            .arg(root)
            .arg(&repo)
            .stdin(Stdio::null())
            .status()
            .context("running git")?;
        if !status.success() {
            bail!(
                "cloning {} into {} failed ({status})",
                root.display(),
                repo.display()
            );
        }
        // A deploy run's commit must be on the branch it names. On a
        // detached HEAD (a CI checkout of one commit) there is no branch to
        // name, so the clone gets one at that commit.
        let branch = if branch.is_empty() {
            let name = "xtask-image-check";
            let status = std::process::Command::new("git")
                .arg("--git-dir")
                .arg(&repo)
                .args(["branch", "--quiet", "--force", name, &commit.sha])
                .stdin(Stdio::null())
                .status()
                .context("running git")?;
            if !status.success() {
                bail!(
                    "making branch {name} at {} in {} failed ({status})",
                    commit.sha,
                    repo.display()
                );
            }
            name.to_owned()
        } else {
            branch
        };
        let gitconfig = scratch.path().join("gitconfig");
        std::fs::write(&gitconfig, format!("[safe]\n\tdirectory = {REPO}\n"))
            .with_context(|| format!("writing {}", gitconfig.display()))?;
        let uid = USER.parse().expect("a number");
        let state = scratch.path().join("state");
        let npm_cache = podman.cache().join("npm");
        for dir in [&state, &npm_cache] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            std::os::unix::fs::chown(dir, Some(uid), Some(uid))
                .with_context(|| format!("giving {} to the images' user {USER}", dir.display()))?;
        }
        let run_id = format!("image-check-{}", std::process::id());
        let mut env: Vec<(String, String)> = vec![
            ("APHEX_COMMIT_SHA".into(), commit.sha.clone()),
            ("APHEX_REPO_URL".into(), REPO.into()),
            ("APHEX_WORKFLOW_ID".into(), run_id.clone()),
            ("APHEX_CONFIG_FILE".into(), config_file),
            ("APHEX_STATE_DIR".into(), STATE.into()),
            // The clone belongs to root, not to the containers' user, and git
            // refuses others' repositories unless its global config says this
            // one is safe (`-c` or GIT_CONFIG_COUNT do not reach the
            // `upload-pack` of a local fetch).
            ("GIT_CONFIG_GLOBAL".into(), GITCONFIG.into()),
        ];
        env.push(("APHEX_BRANCH".into(), branch));
        env.extend(emulator.env().into_iter().filter(|(k, _)| k.starts_with("AWS_")));
        env.extend(
            crate::npm::CDK_ENV
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let mut common: Vec<String> = vec!["--network".into(), "host".into()];
        common.extend([
            "--volume".into(),
            format!("{}:{REPO}:ro", repo.display()),
            "--volume".into(),
            format!("{}:{GITCONFIG}:ro", gitconfig.display()),
            "--volume".into(),
            format!("{}:{STATE}", state.display()),
            "--volume".into(),
            format!("{}:{NPM_CACHE}", npm_cache.display()),
        ]);
        if Path::new(HOST_CA_BUNDLE).is_file() {
            common.extend(["--volume".into(), format!("{HOST_CA_BUNDLE}:{HOST_CA}:ro")]);
            env.push(("NODE_EXTRA_CA_CERTS".into(), HOST_CA.into()));
        }
        for (k, v) in env {
            common.extend(["--env".into(), format!("{k}={v}")]);
        }
        Ok(Leg {
            podman,
            scratch,
            common,
            node_modules,
            run_id,
            pipeline: config.pipeline_name().to_owned(),
        })
    }

    fn run(&self) -> Result<()> {
        self.stage("deployer", "validate", "", &[])?;
        // No shared node_modules: the quick start's deps.js runs `npm ci`,
        // over HTTPS, as in a real pod.
        self.stage("builder", "build", "", &[])?;
        self.deploy()?;
        // As in a pod: test reads the outputs deploy recorded in the run record.
        self.stage("builder", "test", ENV, &[])?;
        self.stage(
            "deployer",
            "finalize",
            "",
            &["--env".into(), "APHEX_WORKFLOW_STATUS=Succeeded".into()],
        )?;
        self.check_record()
    }

    /// The deploy, with the quick start's packages mounted (`NODE_PATH`).
    fn deploy(&self) -> Result<()> {
        let flags = [
            "--volume".into(),
            format!("{}:{NODE_MODULES}:ro", self.node_modules.display()),
            "--env".into(),
            format!("NODE_PATH={NODE_MODULES}"),
        ];
        self.stage("deployer", "deploy", ENV, &flags)
    }

    /// `aphex-runner STAGE --env=ENV` in `target`'s image, as the
    /// WorkflowTemplate's `stage` template runs it.
    fn stage(&self, target: &str, stage: &str, env: &str, flags: &[String]) -> Result<()> {
        let started = Instant::now();
        let mut args: Vec<String> = vec!["run".into(), "--rm".into()];
        args.extend(self.common.iter().cloned());
        args.extend(flags.iter().cloned());
        args.extend([image(target), stage.into(), format!("--env={env}")]);
        let name = if env.is_empty() {
            stage.to_owned()
        } else {
            format!("{stage}-{env}")
        };
        eprintln!("xtask: stage {name} in the {target} image");
        self.podman
            .run(&args, &format!("the {name} stage in the {target} image"))?;
        println!(
            "  {target}: stage {name} succeeded in {} s",
            started.elapsed().as_secs()
        );
        Ok(())
    }

    /// The run record finalize wrote: succeeded, with every stage of the leg.
    fn check_record(&self) -> Result<()> {
        let path = self
            .scratch
            .path()
            .join("state/runs")
            .join(&self.pipeline)
            .join(format!("{}.json", self.run_id));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the run record {}", path.display()))?;
        let record: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let stages: Vec<(&str, &str)> = record["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    s["name"].as_str().unwrap_or_default(),
                    s["status"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        let want: Vec<(String, &str)> = [
            "validate".to_owned(),
            "build".to_owned(),
            format!("deploy-{ENV}"),
            format!("test-{ENV}"),
        ]
        .into_iter()
        .map(|name| (name, "succeeded"))
        .collect();
        let have: Vec<(String, &str)> = stages.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect();
        if record["status"] != "succeeded" || have != want {
            bail!(
                "the run record {} says {} with stages {have:?}, not succeeded with {want:?}",
                path.display(),
                record["status"]
            );
        }
        println!("  the run record says succeeded: validate, build, deploy-{ENV}, test-{ENV}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_is_the_first_from() {
        let cases = [
            (
                "# c\nFROM debian:trixie-slim AS base\nFROM base AS b\n",
                Some("debian:trixie-slim"),
            ),
            (
                "from --platform=linux/amd64 debian:trixie-slim\n",
                Some("debian:trixie-slim"),
            ),
            ("RUN true\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(base_image(text), want, "{text}");
        }
    }

    #[test]
    fn node_must_be_20_or_newer() {
        for (version, ok) in [
            ("v20.19.2", true),
            ("v22.1.0", true),
            ("v18.20.4", false),
            ("20.1", false),
            ("", false),
        ] {
            assert_eq!(node_is_20_or_newer(version), ok, "{version}");
        }
    }
}
