//! The podman that `cargo xtask image --check` runs: Debian's packages
//! (installed when missing, as root), rootful, with a configuration and an
//! image store of its own in the cache folder, so nothing the check makes
//! (a stand-in base image, debug-build images, layers) mixes with the images a
//! release build uses. The Dockerfile's `debian:<suite>-slim` base is made
//! there from Debian's packages with debootstrap when missing: no registry is
//! needed.
//!
//! Settings (environment variables, all optional):
//! - `APHEX_IMAGES_CACHE`: cache folder (default `$XDG_CACHE_HOME/aphex/images`
//!   or `$HOME/.cache/aphex/images`), holding the store and the base's root
//!   file system as a tar file;
//! - `APHEX_DEBIAN_MIRROR`: the Debian mirror debootstrap reads (default: the
//!   first `.../debian` in this machine's apt sources, else `http://deb.debian.org/debian`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The packages the check runs on, with a file each installs. runc, not
/// crun: crun fails in sandboxes with hybrid cgroups; netavark is podman's
/// network backend (the check itself uses only the host's network).
const PACKAGES: [(&str, &str); 3] = [
    ("podman", "/usr/bin/podman"),
    ("runc", "/usr/sbin/runc"),
    ("netavark", "/usr/lib/podman/netavark"),
];
const DEBOOTSTRAP: (&str, &str) = ("debootstrap", "/usr/sbin/debootstrap");

/// Where the stand-in base image's provenance is written.
const STAND_IN_LABEL: &str = "dev.aphex.stand-in";

/// Run-time state of the check's store (a tmpfs, cleared at boot, as podman expects).
const RUN_DIR: &str = "/run/aphex-images";

/// The check's podman.
#[derive(Debug)]
pub struct Podman {
    cache: PathBuf,
    /// Held while this check runs: two checks at once (two clones on one
    /// machine) would retag and prune each other's images.
    _lock: fs::File,
}

impl Podman {
    /// Installs podman when missing and writes the check's configuration.
    pub fn setup() -> Result<Podman> {
        if !is_root()? {
            bail!(
                "the image check runs podman as root, in a store of its own, and installs it when \
                 missing: run it as root (CI does)"
            );
        }
        ensure_packages(&PACKAGES)?;
        let cache = cache_dir()?;
        fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
        let lock_path = cache.join("check.lock");
        let lock =
            fs::File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            eprintln!("xtask: waiting for another image check on this machine to end");
            lock.lock()
                .with_context(|| format!("locking {}", lock_path.display()))?;
        }
        let podman = Podman { cache, _lock: lock };
        podman.write_config()?;
        Ok(podman)
    }

    /// The cache folder.
    pub fn cache(&self) -> &Path {
        &self.cache
    }

    /// A `podman` command with the check's configuration and store.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", self.cache.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.cache.join("storage.conf"))
            .stdin(Stdio::null());
        cmd
    }

    /// The three settings this sandbox needs (docs/images.md) and the store's
    /// folders. Rewritten every time: they are the code's, not the user's.
    fn write_config(&self) -> Result<()> {
        let containers = format!(
            "# Written by `cargo xtask image --check` (xtask/src/podman.rs) at every run.\n\
             [containers]\n\
             # The sandboxes this runs in may not raise resource limits.\n\
             default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\n\
             [engine]\n\
             # crun fails with hybrid cgroups; runc with cgroupfs works everywhere.\n\
             runtime = \"runc\"\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n\
             tmp_dir = \"{RUN_DIR}/libpod\"\n"
        );
        let storage = format!(
            "# Written by `cargo xtask image --check` (xtask/src/podman.rs) at every run.\n\
             [storage]\n\
             driver = \"overlay\"\n\
             graphroot = {:?}\n\
             runroot = \"{RUN_DIR}/storage\"\n",
            self.cache.join("storage").display().to_string()
        );
        for (name, text) in [("containers.conf", containers), ("storage.conf", storage)] {
            let path = self.cache.join(name);
            fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// Runs `podman ARGS`, its output on the terminal.
    pub fn run(&self, args: &[String], what: &str) -> Result<()> {
        let status = self.command().args(args).status().context("running podman")?;
        if !status.success() {
            bail!("{what} failed ({status}); podman's output is above");
        }
        Ok(())
    }

    /// Runs `podman ARGS` and returns its standard output.
    pub fn output(&self, args: &[String], what: &str) -> Result<String> {
        let out = self
            .command()
            .args(args)
            .stderr(Stdio::inherit())
            .output()
            .context("running podman")?;
        if !out.status.success() {
            bail!(
                "{what} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Makes `from` (the Dockerfile's `debian:<suite>-slim`) in the store when
    /// missing: a minimal Debian made by debootstrap (cached as a tar file),
    /// imported under the official name so that `FROM` resolves unchanged. A
    /// stand-in, labelled as one: not the official image.
    pub fn ensure_base(&self, from: &str) -> Result<()> {
        let suite = debian_suite(from)?;
        let name = format!("docker.io/library/debian:{suite}-slim");
        let exists = self
            .command()
            .args(["image", "exists", &name])
            .status()
            .context("running podman")?;
        if exists.success() {
            return Ok(());
        }
        let tar = self.cache.join(format!("debian-{suite}-minbase.tar"));
        if !tar.is_file() {
            self.debootstrap(suite, &tar)?;
        }
        eprintln!(
            "xtask: importing {} as {name} (a stand-in for the official image)",
            tar.display()
        );
        self.run(
            &[
                "import".into(),
                "--change".into(),
                "CMD [\"bash\"]".into(),
                "--change".into(),
                format!("LABEL {STAND_IN_LABEL}=debootstrap-minbase-{suite}"),
                tar.display().to_string(),
                name.clone(),
            ],
            &format!("importing the stand-in base {name}"),
        )
    }

    /// `debootstrap --variant=minbase SUITE` into a folder, trimmed of apt's
    /// lists and caches and of documentation, packed into `tar`.
    fn debootstrap(&self, suite: &str, tar: &Path) -> Result<()> {
        ensure_packages(&[DEBOOTSTRAP])?;
        let mirror = mirror()?;
        let rootfs = self.cache.join(format!("rootfs-{suite}.partial"));
        if rootfs.exists() {
            fs::remove_dir_all(&rootfs)
                .with_context(|| format!("removing the unfinished {}", rootfs.display()))?;
        }
        eprintln!(
            "xtask: making debian:{suite}-slim from Debian's packages: debootstrap --variant=minbase {suite} from {mirror} (once; about a minute)"
        );
        let status = Command::new(DEBOOTSTRAP.1)
            .args(["--variant=minbase", suite])
            .arg(&rootfs)
            .arg(&mirror)
            .stdin(Stdio::null())
            .status()
            .context("running debootstrap")?;
        if !status.success() {
            bail!(
                "debootstrap of {suite} from {mirror} failed ({status}); set APHEX_DEBIAN_MIRROR to a \
                 reachable Debian mirror. Its log is {}",
                rootfs.join("debootstrap/debootstrap.log").display()
            );
        }
        for dir in [
            "var/lib/apt/lists",
            "var/cache/apt",
            "usr/share/doc",
            "usr/share/man",
            "usr/share/info",
        ] {
            let dir = rootfs.join(dir);
            if dir.is_dir() {
                fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
                fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            }
        }
        let partial = tar.with_extension("tar.partial");
        let status = Command::new("tar")
            .args(["--numeric-owner", "--xattrs", "-C"])
            .arg(&rootfs)
            .arg("-cf")
            .arg(&partial)
            .arg(".")
            .status()
            .context("running tar")?;
        if !status.success() {
            bail!("packing {} failed ({status})", rootfs.display());
        }
        fs::rename(&partial, tar).with_context(|| format!("writing {}", tar.display()))?;
        fs::remove_dir_all(&rootfs).with_context(|| format!("removing {}", rootfs.display()))?;
        Ok(())
    }

    /// Removes containers left by an interrupted check, and images no tag
    /// leads to any more: the layers of earlier checks' runner binaries
    /// (about 100 MB each). Layers still in use stay cached.
    pub fn prune(&self) -> Result<()> {
        self.output(
            &["container".into(), "prune".into(), "--force".into()],
            "removing containers of interrupted checks",
        )?;
        self.output(
            &["image".into(), "prune".into(), "--force".into()],
            "removing earlier checks' image layers",
        )
        .map(drop)
    }
}

/// `debian:<suite>-slim` → `<suite>`; the check can stand in for nothing else.
pub fn debian_suite(from: &str) -> Result<&str> {
    let tag = from
        .strip_prefix("docker.io/library/debian:")
        .or_else(|| from.strip_prefix("library/debian:"))
        .or_else(|| from.strip_prefix("debian:"));
    match tag.and_then(|t| t.strip_suffix("-slim")) {
        Some(suite) if !suite.is_empty() && suite.bytes().all(|b| b.is_ascii_lowercase()) => Ok(suite),
        _ => bail!(
            "the check makes its base image from Debian's packages, so the Dockerfile must start \
             FROM debian:<suite>-slim, not {from}"
        ),
    }
}

/// Whether this process runs as root.
fn is_root() -> Result<bool> {
    let status = fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .context("no effective Uid in /proc/self/status")?;
    Ok(uid == "0")
}

/// Installs the packages whose file is missing, with apt-get.
fn ensure_packages(packages: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, file)| !Path::new(file).exists())
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if which::which("apt-get").is_err() {
        bail!(
            "the image check needs Debian's packages {} and apt-get is not here: install them \
             (and run as root)",
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {} (Debian's packages)", missing.join(" "));
    let apt = |args: &[&str]| -> Result<()> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!(
                "`apt-get {}` failed ({status}): the image check needs the packages {}",
                args.join(" "),
                missing.join(" ")
            );
        }
        Ok(())
    };
    apt(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(&missing);
    apt(&install)
}

fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("APHEX_IMAGES_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("aphex/images"));
    }
    match std::env::var_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".cache/aphex/images")),
        None => bail!(
            "neither HOME nor APHEX_IMAGES_CACHE is set: set APHEX_IMAGES_CACHE to a folder for the check's images"
        ),
    }
}

/// The Debian mirror for debootstrap.
fn mirror() -> Result<String> {
    if let Ok(m) = std::env::var("APHEX_DEBIAN_MIRROR") {
        return Ok(m);
    }
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources"))
            .collect();
        more.sort();
        files.extend(more);
    }
    Ok(files
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .find_map(|text| debian_mirror_in(&text))
        .unwrap_or_else(|| "http://deb.debian.org/debian".to_owned()))
}

/// The first Debian archive (a URI whose path ends in `/debian`) in an apt
/// sources file, one-line (`deb [opts] URI suite ...`) or deb822 (`URIs: ...`).
pub fn debian_mirror_in(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .flat_map(|line| {
            let uris: Vec<&str> = if let Some(rest) = line.strip_prefix("URIs:") {
                rest.split_whitespace().collect()
            } else if let Some(rest) = line.strip_prefix("deb ") {
                // Options in brackets come before the URI.
                let rest = rest.trim_start();
                let rest = match rest.strip_prefix('[') {
                    Some(opts) => opts.split_once(']').map_or("", |(_, r)| r),
                    None => rest,
                };
                rest.split_whitespace().take(1).collect()
            } else {
                Vec::new()
            };
            uris
        })
        .find(|uri| uri.trim_end_matches('/').ends_with("/debian"))
        .map(|uri| uri.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_is_the_first_debian_archive_in_the_sources() {
        let cases = [
            (
                "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\n",
                Some("http://deb.debian.org/debian"),
            ),
            (
                "URIs: http://deb.debian.org/debian-security\nURIs: https://mirror.example/debian/\n",
                Some("https://mirror.example/debian"),
            ),
            (
                "# deb http://old.example/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n",
                Some("http://m.example/debian"),
            ),
            ("deb https://deb.nodesource.com/node_20.x nodistro main\n", None),
            ("deb-src http://deb.debian.org/debian bookworm main\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(debian_mirror_in(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn only_a_slim_debian_base_can_be_stood_in_for() {
        let cases = [
            ("debian:trixie-slim", Some("trixie")),
            ("docker.io/library/debian:bookworm-slim", Some("bookworm")),
            ("debian:trixie", None),
            ("ubuntu:24.04", None),
            ("debian:-slim", None),
            ("debian:trixie-slim@sha256:00", None),
        ];
        for (from, want) in cases {
            assert_eq!(debian_suite(from).ok(), want, "{from}");
        }
    }
}
