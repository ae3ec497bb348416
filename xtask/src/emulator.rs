//! The local AWS emulator (LocalStack core, no Docker) that `cargo xtask test`
//! and `cargo xtask demo` start on 127.0.0.1 and always stop again.
//!
//! What it owns: finding a Python >= 3.12, the cached virtualenv built from
//! `tools/aws-emulator/requirements-localstack.txt` (pinned exactly), one
//! state directory per emulator run, a free port, the bounded wait for health,
//! and stopping: on drop (success, error or panic), and on Ctrl-C or even
//! SIGKILL of xtask through the watchdog in `tools/aws-emulator/run_localstack.py`.
//!
//! Settings (environment variables, all optional):
//! - `APHEX_EMULATOR_CACHE`: cache folder (default `$XDG_CACHE_HOME/aphex/emulator`
//!   or `$HOME/.cache/aphex/emulator`), holding the venv and run states;
//! - `APHEX_EMULATOR_PYTHON`: the Python to build the venv with;
//! - `APHEX_EMULATOR_START_TIMEOUT`: seconds to wait for health (default 180).

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// The emulator's region and credentials: any credentials work, `test` acts
/// in account 000000000000.
const ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
];

/// Services the tests and the demo use; fewer services start faster.
const SERVICES: &str = "s3,cloudformation,sts,cloudwatch,ssm,iam,sqs,sns";

/// How many times a start is retried when the free port was taken meanwhile.
const PORT_ATTEMPTS: u32 = 3;

/// A running emulator; stopped when dropped.
#[derive(Debug)]
pub struct Emulator {
    child: Option<Child>,
    port: u16,
    state: PathBuf,
    venv_python: PathBuf,
    /// Kept after a failed start so its log can be read (swept on a later start).
    keep_state: bool,
}

impl Emulator {
    /// Starts an emulator and waits until it is healthy.
    pub fn start() -> Result<Emulator> {
        let mut emulator = Emulator::spawn()?;
        emulator.wait_healthy()?;
        Ok(emulator)
    }

    /// Starts an emulator without waiting for it (see [`Emulator::wait_healthy`]),
    /// so that a build can run while it boots.
    pub fn spawn() -> Result<Emulator> {
        let cache = cache_dir()?;
        let venv_python = ensure_venv(&cache)?;
        sweep_stale_states(&cache.join("runs"));
        let port = free_port()?;
        let state = cache.join("runs").join(format!("{}-{port}", std::process::id()));
        let child = launch(&venv_python, &state, port)?;
        Ok(Emulator {
            child: Some(child),
            port,
            state,
            venv_python,
            keep_state: false,
        })
    }

    /// Waits (bounded) until the emulator answers its health check.
    pub fn wait_healthy(&mut self) -> Result<()> {
        let timeout = start_timeout()?;
        let mut attempts = 1;
        let mut deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("child present until drop");
            if let Some(status) = child.try_wait().context("checking the emulator process")? {
                let log = log_tail(&self.state);
                let port_taken = log.to_ascii_lowercase().contains("address already in use");
                if port_taken && attempts < PORT_ATTEMPTS {
                    // Another process took the port between our probe and the bind.
                    attempts += 1;
                    self.port = free_port()?;
                    self.child = Some(launch(&self.venv_python, &self.state, self.port)?);
                    deadline = Instant::now() + timeout;
                    continue;
                }
                self.keep_state = true;
                bail!(
                    "the local AWS emulator exited during start-up ({status}); its log is {}:\n{log}",
                    self.state.join("server.log").display()
                );
            }
            // Checked after the exit status: a port taken by another emulator
            // must not pass for ours.
            if health_ok(self.port) {
                eprintln!("xtask: AWS emulator ready at {}", self.endpoint());
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.keep_state = true;
                bail!(
                    "the local AWS emulator did not become healthy within {} s \
                     (set APHEX_EMULATOR_START_TIMEOUT to wait longer); its log is {}:\n{}",
                    timeout.as_secs(),
                    self.state.join("server.log").display(),
                    log_tail(&self.state)
                );
            }
            // Polling for readiness, not timing a test.
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The AWS CLI installed in the emulator's venv (its requirements pin
    /// `awscli`): what the demo prepares accounts with, without building the SDK.
    pub fn aws_cli(&self) -> PathBuf {
        self.venv_python.with_file_name("aws")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The variables that point a process at this emulator: the tests'
    /// `APHEX_TEST_AWS_ENDPOINT`, the SDK's `AWS_ENDPOINT_URL`, region and
    /// credentials.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("APHEX_TEST_AWS_ENDPOINT".into(), self.endpoint()),
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
        ];
        env.extend(ENV.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        env
    }

    /// Stops the emulator: SIGTERM for a clean shutdown, SIGKILL after 15 s.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if !self.keep_state {
            let _ = fs::remove_dir_all(&self.state);
        }
        eprintln!("xtask: AWS emulator on port {} stopped", self.port);
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The cache folder holding the venv and the run states.
fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("APHEX_EMULATOR_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("aphex/emulator"));
    }
    match std::env::var_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".cache/aphex/emulator")),
        None => bail!(
            "neither HOME nor APHEX_EMULATOR_CACHE is set: set APHEX_EMULATOR_CACHE to a folder for the emulator's venv"
        ),
    }
}

fn tools_dir() -> PathBuf {
    crate::root().join("tools/aws-emulator")
}

fn start_timeout() -> Result<Duration> {
    match std::env::var("APHEX_EMULATOR_START_TIMEOUT") {
        Ok(s) => {
            let secs: u64 = s
                .parse()
                .with_context(|| format!("APHEX_EMULATOR_START_TIMEOUT={s:?} is not a number of seconds"))?;
            Ok(Duration::from_secs(secs))
        }
        Err(_) => Ok(Duration::from_secs(180)),
    }
}

/// Returns the venv's python, building the venv first when the pinned
/// requirements changed (the venv's name is their hash). A file lock keeps two
/// xtask processes from building it at once.
fn ensure_venv(cache: &Path) -> Result<PathBuf> {
    let requirements = tools_dir().join("requirements-localstack.txt");
    let pins = fs::read(&requirements).with_context(|| format!("reading {}", requirements.display()))?;
    let hash = hex::encode(&Sha256::digest(&pins)[..8]);
    let venv = cache.join(format!("venv-{hash}"));
    let python = venv.join("bin/python");
    let done = venv.join(".aphex-complete");
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let lock_path = cache.join("venv.lock");
    let lock = fs::File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    if done.exists() {
        return Ok(python);
    }
    let base = find_python()?;
    eprintln!(
        "xtask: building the emulator's venv in {} with {} (once; a few minutes)",
        venv.display(),
        base.display()
    );
    if venv.exists() {
        fs::remove_dir_all(&venv).with_context(|| format!("removing the incomplete {}", venv.display()))?;
    }
    run(
        Command::new(&base).arg("-m").arg("venv").arg(&venv),
        "creating the emulator's venv",
    )?;
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        "installing LocalStack into the emulator's venv (needs access to PyPI)",
    )?;
    fs::write(&done, &pins).with_context(|| format!("writing {}", done.display()))?;
    Ok(python)
}

/// A Python >= 3.12 (LocalStack core does not run on 3.11): the override,
/// then pyenv's newest 3.13/3.12, then `python3.13`, `python3.12`, `python3` on PATH.
fn find_python() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("APHEX_EMULATOR_PYTHON") {
        let p = PathBuf::from(p);
        if python_ok(&p) {
            return Ok(p);
        }
        bail!(
            "APHEX_EMULATOR_PYTHON={} is not a working Python >= 3.12",
            p.display()
        );
    }
    let mut candidates = Vec::new();
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    if let Some(versions) = pyenv.map(|p| p.join("versions"))
        && let Ok(entries) = fs::read_dir(versions)
    {
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("3.13") || name.starts_with("3.12")
            })
            .map(|e| e.path().join("bin/python"))
            .collect();
        found.sort();
        candidates.extend(found.into_iter().rev());
    }
    candidates.extend(["python3.13", "python3.12", "python3"].map(PathBuf::from));
    candidates.into_iter().find(|c| python_ok(c)).ok_or_else(|| {
        anyhow::anyhow!(
            "no Python >= 3.12 found, and the local AWS emulator (LocalStack core) needs one. \
             Install Python 3.12 or 3.13 with its venv module (e.g. `pyenv install 3.12`, or \
             `apt-get install python3.12 python3.12-venv`), or set APHEX_EMULATOR_PYTHON to one"
        )
    })
}

fn python_ok(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            "import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| what.to_owned())?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Removes the state folders of emulators whose xtask is gone (killed before
/// its drop could run); the watchdog has stopped those emulators already.
fn sweep_stale_states(runs: &Path) {
    let Ok(entries) = fs::read_dir(runs) else { return };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next() else {
            continue;
        };
        let alive = Command::new("kill")
            .args(["-0", pid])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !alive {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

fn launch(python: &Path, state: &Path, port: u16) -> Result<Child> {
    for dir in ["tmp", "vol", "home"] {
        fs::create_dir_all(state.join(dir))
            .with_context(|| format!("creating {}", state.join(dir).display()))?;
    }
    let log = fs::File::create(state.join("server.log")).context("creating the emulator's log")?;
    let listen = format!("127.0.0.1:{port}");
    Command::new(python)
        .arg(tools_dir().join("run_localstack.py"))
        .current_dir(state)
        .env("TMPDIR", state.join("tmp"))
        .env("LOCALSTACK_VOLUME_DIR", state.join("vol"))
        .env("HOME", state.join("home"))
        .env("GATEWAY_LISTEN", &listen)
        .env("LOCALSTACK_HOST", &listen)
        // The default server binds 0.0.0.0 whatever GATEWAY_LISTEN says.
        .env("GATEWAY_SERVER", "hypercorn")
        // No DNS server on port 53.
        .env("DNS_ADDRESS", "0")
        .env("DISABLE_EVENTS", "1")
        .env("SKIP_SSL_CERT_DOWNLOAD", "1")
        .env("PERSISTENCE", "0")
        .env("SERVICES", SERVICES)
        .env("APHEX_EMULATOR_PARENT_PID", std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the local AWS emulator")
}

/// True when `GET /_localstack/health` answers 200.
fn health_ok(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /_localstack/health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    let head = String::from_utf8_lossy(&head[..read]);
    head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200")
}

/// The last lines of the emulator's log, for error messages.
fn log_tail(state: &Path) -> String {
    let log = fs::read_to_string(state.join("server.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// `cargo xtask emulator`: starts an emulator, prints how to point a shell at
/// it, and keeps it running until Ctrl-C (the watchdog stops it then).
pub fn serve() -> Result<()> {
    let mut emulator = Emulator::start()?;
    println!("# the local AWS emulator is running; in another shell:");
    for (k, v) in emulator.env() {
        println!("export {k}={v}");
    }
    println!("# Ctrl-C stops it");
    let child = emulator.child.as_mut().expect("child present until drop");
    let status = child.wait().context("waiting for the emulator")?;
    emulator.keep_state = true;
    bail!(
        "the emulator exited ({status}); see {}",
        emulator.state.join("server.log").display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot HTTP server on 127.0.0.1 answering `status_line`.
    fn server(status_line: &'static str) -> u16 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 512];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(format!("{status_line}\r\ncontent-length: 2\r\n\r\n{{}}").as_bytes());
        });
        port
    }

    #[test]
    fn health_needs_a_200() {
        assert!(health_ok(server("HTTP/1.1 200 OK")));
        assert!(!health_ok(server("HTTP/1.1 503 Service Unavailable")));
        assert!(
            !health_ok(free_port().unwrap()),
            "nothing listening is not healthy"
        );
    }

    #[test]
    fn stale_states_of_dead_processes_are_swept() {
        let runs = tempfile::tempdir().unwrap();
        let alive = runs.path().join(format!("{}-1234", std::process::id()));
        // Far above any pid_max: no such process.
        let dead = runs.path().join("999999999-1234");
        fs::create_dir_all(&alive).unwrap();
        fs::create_dir_all(&dead).unwrap();
        sweep_stale_states(runs.path());
        assert!(alive.exists(), "a live xtask keeps its state");
        assert!(!dead.exists(), "a dead one's state is removed");
    }
}
