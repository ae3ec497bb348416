//! Building the real Kubernetes API server of the tests, once per set of
//! inputs: `tools/kube-api/main.go` (our own small main around the upstream
//! `k8s.io/apiextensions-apiserver`) compiled with Go from Debian sid's
//! packages, plus sid's etcd.
//!
//! What it owns: a private apt configuration in the cache (its own sources
//! list naming the `sid` suite of the mirror this machine's apt uses, its own
//! lists, archives and an empty dpkg status, so nothing is installed or
//! changed system-wide), downloading the packages, unpacking them with
//! `dpkg-deb -x`, an offline GOPATH-mode build, the versions used (printed,
//! and compared with those recorded in `tools/kube-api/debian-sid.versions`,
//! because sid moves), and the cache folder `build-<hash of the inputs>`
//! holding the two binaries. Every failure names its step.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// What is asked of apt; their dependencies come along.
const PACKAGES: &[&str] = &[
    // the server's Go sources (pulls in apiserver, client-go, apimachinery, ...)
    "golang-k8s-apiextensions-apiserver-dev",
    // Go itself: bookworm's 1.19 is too old for these sources
    "golang-go",
    "etcd-server",
];

/// The version the server reports (`/version`), matching the sources' 0.36
/// line, so that clients see a sane version.
const REPORTED_VERSION: (&str, &str, &str) = ("v1.36.4", "1", "36");

/// Bump to rebuild every cache when the recipe below changes in a way the
/// other inputs do not show.
const RECIPE: &str = "1";

/// The two programs the tests run.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub server: PathBuf,
    pub etcd: PathBuf,
}

fn tools_dir() -> PathBuf {
    crate::root().join("tools/kube-api")
}

/// The binaries, built first when this set of inputs has not been built in
/// `cache` yet. A file lock keeps two xtask processes from building at once.
pub fn ensure(cache: &Path) -> Result<Binaries> {
    let main_go = tools_dir().join("main.go");
    let source = fs::read(&main_go).with_context(|| format!("reading {}", main_go.display()))?;
    let mut hasher = Sha256::new();
    hasher.update(&source);
    hasher.update(PACKAGES.join(" "));
    hasher.update(RECIPE);
    let key = hex::encode(&hasher.finalize()[..8]);
    let build = cache.join(format!("build-{key}"));
    let binaries = Binaries {
        server: build.join("bin/aphex-kube-api"),
        etcd: build.join("bin/etcd"),
    };
    let done = build.join(".aphex-complete");
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let lock_path = cache.join("build.lock");
    let lock = fs::File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    if done.exists() {
        return Ok(binaries);
    }
    eprintln!(
        "xtask: building the Kubernetes API server of the tests in {} (once; about 3 minutes and 350 MB of downloads)",
        build.display()
    );
    if build.exists() {
        fs::remove_dir_all(&build).with_context(|| format!("removing the incomplete {}", build.display()))?;
    }
    fs::create_dir_all(build.join("bin")).with_context(|| format!("creating {}", build.display()))?;
    let apt = Apt::new(&cache.join("apt"))?;
    let versions = apt
        .download()
        .context("step 1 of 3, downloading Debian sid's packages")?;
    let changes = report_versions(&versions);
    let root = cache.join("unpacked");
    build_binaries(&apt, &versions, &root, &build, &binaries).with_context(|| match &changes {
        None => "building the Kubernetes API server of the tests (tools/kube-api/debian-sid.versions \
                 records no versions that worked)"
            .to_owned(),
        Some(c) if c.is_empty() => "building the Kubernetes API server of the tests with the package \
                                    versions recorded to work in tools/kube-api/debian-sid.versions"
            .to_owned(),
        Some(c) => format!(
            "building the Kubernetes API server of the tests; these packages differ from the versions \
             recorded to work in tools/kube-api/debian-sid.versions (sid moved):\n{}",
            c.join("\n")
        ),
    })?;
    fs::write(build.join("versions.txt"), versions_file(&versions))
        .with_context(|| format!("writing {}", build.join("versions.txt").display()))?;
    fs::write(&done, "").with_context(|| format!("writing {}", done.display()))?;
    eprintln!("xtask: Kubernetes API server built in {}", build.display());
    Ok(binaries)
}

fn build_binaries(
    apt: &Apt,
    versions: &BTreeMap<String, String>,
    root: &Path,
    build: &Path,
    binaries: &Binaries,
) -> Result<()> {
    // Kept for the next build of the same versions (an edit of main.go):
    // unpacking takes half a minute, and deleting its 100,000 files takes
    // minutes on a disk mounted with `discard`.
    let marker = root.join(".aphex-versions");
    let wanted = versions_file(versions);
    if fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
        if root.exists() {
            fs::remove_dir_all(root).with_context(|| format!("removing the outdated {}", root.display()))?;
        }
        apt.unpack(versions, root)
            .context("step 2 of 3, unpacking the packages with dpkg-deb")?;
        fs::write(&marker, wanted).with_context(|| format!("writing {}", marker.display()))?;
    }
    go_build(root, build, &binaries.server)
        .context("step 3 of 3, building tools/kube-api/main.go with go")?;
    fs::copy(root.join("usr/bin/etcd"), &binaries.etcd)
        .context("step 3 of 3, copying etcd from the etcd-server package")?;
    // sid's etcd is linked against glibc: make sure this machine's runs it.
    let out = Command::new(&binaries.etcd)
        .arg("--version")
        .output()
        .context("step 3 of 3, running etcd --version")?;
    if !out.status.success() {
        bail!(
            "step 3 of 3: sid's etcd does not run on this machine ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// apt with a configuration of its own under `dir`.
struct Apt {
    dir: PathBuf,
    arch: String,
}

impl Apt {
    fn new(dir: &Path) -> Result<Apt> {
        for sub in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let keyring = Path::new("/usr/share/keyrings/debian-archive-keyring.gpg");
        if !keyring.exists() {
            bail!(
                "{} is missing: install the debian-archive-keyring package (apt's signatures of Debian's mirror are checked with it)",
                keyring.display()
            );
        }
        let mirror = mirror()?;
        fs::write(
            dir.join("sources.list"),
            format!("deb [signed-by={}] {mirror} sid main\n", keyring.display()),
        )
        .context("writing the private apt sources list")?;
        // Empty: apt resolves the whole dependency closure from sid, the
        // same on every machine, and installs nothing.
        fs::write(dir.join("status"), "").context("writing the private dpkg status")?;
        let arch = output(
            Command::new("dpkg").arg("--print-architecture"),
            "dpkg --print-architecture",
        )?;
        Ok(Apt {
            dir: dir.to_owned(),
            arch,
        })
    }

    fn apt_get(&self) -> Command {
        let d = |p: &str| self.dir.join(p).display().to_string();
        let mut cmd = Command::new("apt-get");
        for (key, value) in [
            ("Dir::Etc::SourceList", d("sources.list")),
            ("Dir::Etc::SourceParts", "/dev/null".to_owned()),
            ("Dir::Etc::Preferences", "/dev/null".to_owned()),
            ("Dir::Etc::PreferencesParts", "/dev/null".to_owned()),
            ("Dir::State::Lists", d("lists")),
            ("Dir::State::status", d("status")),
            ("Dir::Cache", d("cache")),
            ("APT::Architecture", self.arch.clone()),
            ("APT::Architectures", self.arch.clone()),
            ("Acquire::Languages", "none".to_owned()),
            (
                "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled",
                "false".to_owned(),
            ),
            (
                "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled",
                "false".to_owned(),
            ),
            (
                "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled",
                "false".to_owned(),
            ),
        ] {
            cmd.arg("-o").arg(format!("{key}={value}"));
        }
        // As root, apt downloads as the `_apt` user, who cannot write into
        // a root-owned cache folder.
        if fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
            cmd.args(["-o", "APT::Sandbox::User=root"]);
        }
        cmd.args(["-q", "-y"]);
        cmd
    }

    /// Downloads the packages and their dependencies; their versions by name.
    fn download(&self) -> Result<BTreeMap<String, String>> {
        run_logged(
            self.apt_get().arg("update"),
            &self.dir.join("update.log"),
            "apt-get update (of the private sources list)",
        )?;
        let plan = output(
            self.apt_get()
                .args(["install", "--simulate", "--no-install-recommends"])
                .args(PACKAGES),
            "apt-get install --simulate",
        )?;
        let versions = simulated_versions(&plan);
        if versions.is_empty() {
            bail!("apt-get install --simulate planned no package:\n{plan}");
        }
        run_logged(
            self.apt_get()
                .args(["install", "--download-only", "--no-install-recommends"])
                .args(PACKAGES),
            &self.dir.join("download.log"),
            "apt-get install --download-only",
        )?;
        // Drops the .debs sid no longer carries, so the cache does not grow.
        let _ = self.apt_get().arg("autoclean").stdout(Stdio::null()).status();
        Ok(versions)
    }

    /// Unpacks every downloaded package of `versions` into `root`.
    fn unpack(&self, versions: &BTreeMap<String, String>, root: &Path) -> Result<()> {
        fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let archives = self.dir.join("cache/archives");
        let debs: Vec<PathBuf> = fs::read_dir(&archives)
            .with_context(|| format!("reading {}", archives.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        for (name, version) in versions {
            // apt names a .deb `<name>_<version with ':' as %3a>_<arch>.deb`.
            let prefix = format!("{name}_{}_", version.replace(':', "%3a"));
            let Some(deb) = debs.iter().find(|p| {
                p.file_name()
                    .is_some_and(|f| f.to_string_lossy().starts_with(&prefix))
            }) else {
                bail!("{name} {version} was not downloaded into {}", archives.display());
            };
            run(
                Command::new("dpkg-deb").arg("-x").arg(deb).arg(root),
                &format!("dpkg-deb -x {}", deb.display()),
            )?;
        }
        Ok(())
    }
}

/// The Debian mirror this machine's apt uses (the first source whose path
/// ends in `/debian`), `APHEX_KUBE_API_MIRROR`, or Debian's CDN.
fn mirror() -> Result<String> {
    if let Ok(m) = std::env::var("APHEX_KUBE_API_MIRROR") {
        return Ok(m);
    }
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    let found = files
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .find_map(|text| mirror_in(&text));
    Ok(found.unwrap_or_else(|| "http://deb.debian.org/debian".to_owned()))
}

/// The first Debian archive URI in a sources file, one-line or deb822 style.
fn mirror_in(sources: &str) -> Option<String> {
    sources
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words.first() {
                Some(&"URIs:") => words[1..].to_vec(),
                Some(&"deb") => words[1..]
                    .iter()
                    .copied()
                    .skip_while(|w| w.starts_with('['))
                    .skip_while(|w| w.ends_with(']') && !w.contains("://"))
                    .take(1)
                    .collect(),
                _ => Vec::new(),
            }
        })
        .map(|uri| uri.trim_end_matches('/').to_owned())
        .find(|uri| uri.contains("://") && uri.ends_with("/debian"))
}

/// `name -> version` from `apt-get install --simulate`'s `Inst` lines
/// (`Inst golang-go (2:1.27~1 Debian:unstable [amd64])`).
fn simulated_versions(plan: &str) -> BTreeMap<String, String> {
    plan.lines()
        .filter_map(|l| l.strip_prefix("Inst "))
        .filter_map(|l| {
            let (name, rest) = l.split_once(" (")?;
            let version = rest.split_whitespace().next()?;
            Some((name.to_owned(), version.to_owned()))
        })
        .collect()
}

fn versions_file(versions: &BTreeMap<String, String>) -> String {
    let mut text = String::from(
        "# Debian sid packages the Kubernetes API server of the tests was last built with\n\
         # (see xtask/src/kube_api_build.rs); `name version` per line.\n",
    );
    for (name, version) in versions {
        text.push_str(&format!("{name} {version}\n"));
    }
    text
}

/// Prints the versions of the packages asked for, and how the whole set
/// differs from the recorded one; returns those differences, one per line
/// (`None` when nothing is recorded).
fn report_versions(versions: &BTreeMap<String, String>) -> Option<Vec<String>> {
    let asked: Vec<String> = PACKAGES
        .iter()
        .map(|p| format!("{p} {}", versions.get(*p).map_or("?", String::as_str)))
        .collect();
    eprintln!(
        "xtask: from Debian sid: {} ({} packages in all)",
        asked.join(", "),
        versions.len()
    );
    let recorded_path = tools_dir().join("debian-sid.versions");
    let recorded: BTreeMap<String, String> = fs::read_to_string(&recorded_path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    if recorded.is_empty() {
        eprintln!("xtask: {} records no versions yet", recorded_path.display());
        return None;
    }
    let changes = version_changes(&recorded, versions);
    if !changes.is_empty() {
        // The whole list goes into the error if the build fails.
        const SHOWN: usize = 20;
        let more = changes.len().saturating_sub(SHOWN);
        eprintln!(
            "xtask: {} packages differ from {} (the versions last recorded to work):\n{}{}",
            changes.len(),
            recorded_path.display(),
            changes[..changes.len().min(SHOWN)].join("\n"),
            if more > 0 {
                format!("\n  ... and {more} more")
            } else {
                String::new()
            }
        );
    }
    Some(changes)
}

fn version_changes(recorded: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Vec<String> {
    let mut changes = Vec::new();
    for (name, version) in now {
        match recorded.get(name) {
            None => changes.push(format!("  + {name} {version}")),
            Some(old) if old != version => changes.push(format!("  ~ {name} {old} -> {version}")),
            Some(_) => {}
        }
    }
    for (name, old) in recorded {
        if !now.contains_key(name) {
            changes.push(format!("  - {name} {old}"));
        }
    }
    changes
}

/// `go build` of main.go in GOPATH mode, offline, with the unpacked Go and
/// the unpacked sources (`/usr/share/gocode`).
///
/// Go's build cache lives beside the builds (`<cache>/gocache`, trimmed by
/// Go itself), so that an interrupted build resumes and an edit of main.go
/// recompiles main.go alone.
fn go_build(root: &Path, build: &Path, out: &Path) -> Result<()> {
    let goroot = fs::read_dir(root.join("usr/lib"))
        .context("reading the unpacked usr/lib")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("go-"))
                && p.join("bin/go").exists()
        })
        .max()
        .context("no Go toolchain (usr/lib/go-*/bin/go) among the unpacked packages")?;
    let (version, major, minor) = REPORTED_VERSION;
    let ldflags = format!(
        "-s -w -X k8s.io/component-base/version.gitVersion={version} \
         -X k8s.io/component-base/version.gitMajor={major} \
         -X k8s.io/component-base/version.gitMinor={minor}"
    );
    let log = build.join("go-build.log");
    run_logged(
        Command::new(goroot.join("bin/go"))
            .arg("build")
            .arg("-trimpath")
            .arg("-ldflags")
            .arg(&ldflags)
            .arg("-o")
            .arg(out)
            .arg(tools_dir().join("main.go"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", build)
            .env("GOROOT", &goroot)
            .env("GOPATH", root.join("usr/share/gocode"))
            .env(
                "GOCACHE",
                build
                    .parent()
                    .expect("a build folder is in the cache")
                    .join("gocache"),
            )
            .env("GO111MODULE", "off")
            .env("GOPROXY", "off")
            .env("GOTOOLCHAIN", "local")
            .env("GOTELEMETRY", "off")
            .env("GOFLAGS", "")
            .env("CGO_ENABLED", "0"),
        &log,
        "go build",
    )
}

/// Runs `cmd` with its output in `log`; on failure, the error shows the
/// log's end and where it is.
fn run_logged(cmd: &mut Command, log: &Path, what: &str) -> Result<()> {
    let file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("starting {what}"))?;
    if !status.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        bail!(
            "{what} failed ({status}); the end of {}:\n{}",
            log.display(),
            lines[lines.len().saturating_sub(40)..].join("\n")
        );
    }
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The trimmed stdout of `cmd`.
fn output(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_is_read_from_one_line_and_deb822_sources() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "deb http://deb.debian.org/debian bookworm main\n",
                Some("http://deb.debian.org/debian"),
            ),
            (
                "deb [signed-by=/k.gpg arch=amd64] http://mirror.example/debian/ bookworm main\n",
                Some("http://mirror.example/debian"),
            ),
            (
                "Types: deb\nURIs: http://deb.debian.org/debian-security\n\nTypes: deb\nURIs: https://m.example/debian\n",
                Some("https://m.example/debian"),
            ),
            ("# deb http://deb.debian.org/debian sid main\n", None),
            ("deb https://deb.nodesource.com/node_20.x nodistro main\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(mirror_in(text).as_deref(), *want, "{text}");
        }
    }

    #[test]
    fn versions_come_from_the_simulated_install() {
        let plan = "NOTE: This is only a simulation!\n\
                    Inst golang-go (2:1.27~1 Debian:unstable [amd64])\n\
                    Inst etcd-server (3.5.30-2 Debian:unstable [amd64])\n\
                    Conf golang-go (2:1.27~1 Debian:unstable [amd64])\n";
        let v = simulated_versions(plan);
        assert_eq!(v.len(), 2);
        assert_eq!(v["golang-go"], "2:1.27~1");
        assert_eq!(v["etcd-server"], "3.5.30-2");
    }

    #[test]
    fn changes_from_the_recorded_versions_are_listed() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect()
        };
        let recorded = map(&[("a", "1"), ("b", "1"), ("gone", "1")]);
        let now = map(&[("a", "1"), ("b", "2"), ("new", "1")]);
        assert_eq!(
            version_changes(&recorded, &now),
            ["  ~ b 1 -> 2", "  + new 1", "  - gone 1"]
        );
        assert!(version_changes(&now, &now).is_empty());
    }
}
