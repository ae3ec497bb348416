//! The real Kubernetes API server of the tests: the upstream CRD API server
//! (`k8s.io/apiextensions-apiserver`, built by `kube_api_build`) on etcd,
//! which `cargo xtask test` and `cargo xtask kube-api` start on 127.0.0.1
//! and always stop again. It serves custom resources only (no core API).
//!
//! What it owns: one run folder per start (etcd's data, a CA, the server's
//! and a client certificate with `O=system:masters`, the kubeconfig, the
//! logs), free ports, the bounded waits (etcd healthy, the server ready, the
//! Argo CRDs established and in discovery), and stopping: on drop (success,
//! error or panic); the server also stops by itself when xtask is gone
//! (its parent watchdog), and the next start stops an etcd whose xtask died.
//!
//! Settings (environment variables, all optional):
//! - `APHEX_KUBE_API_CACHE`: cache folder (default `$XDG_CACHE_HOME/aphex/kube-api`
//!   or `$HOME/.cache/aphex/kube-api`), holding the build and run folders;
//! - `APHEX_KUBE_API_MIRROR`: the Debian mirror to download sid from
//!   (default: the one this machine's apt uses);
//! - `APHEX_KUBE_API_START_TIMEOUT`: seconds to wait for each start-up step
//!   (default 60).

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::kube_api_build::{self, Binaries};

/// The variable the tests find the server's kubeconfig in.
pub const KUBECONFIG_VAR: &str = "APHEX_TEST_KUBECONFIG";

/// The CRDs loaded into every server, from `../shared/reference/crds/`.
const CRDS: &[&str] = &["argoproj.io_workflowtemplates.json", "argoproj.io_workflows.json"];

/// How many times a start is retried when a free port was taken meanwhile.
const PORT_ATTEMPTS: u32 = 3;

/// A running etcd and API server; both stopped when dropped.
#[derive(Debug)]
pub struct KubeApi {
    etcd: Option<Child>,
    server: Option<Child>,
    port: u16,
    run: PathBuf,
    /// When etcd was started, for the time to ready.
    started: Instant,
    /// Kept after a failed start so its logs can be read (swept on a later start).
    keep_run: bool,
}

impl KubeApi {
    /// Builds (once) and starts a server, and waits until it serves the
    /// Argo CRDs.
    pub fn start() -> Result<KubeApi> {
        let mut api = KubeApi::spawn()?;
        api.wait_ready()?;
        Ok(api)
    }

    /// Builds (once) and starts etcd and the server without waiting for them
    /// (see [`KubeApi::wait_ready`]), so that a build can run meanwhile.
    pub fn spawn() -> Result<KubeApi> {
        let cache = cache_dir()?;
        let binaries = kube_api_build::ensure(&cache)?;
        let runs = cache.join("runs");
        sweep_stale_runs(&runs, &binaries);
        let mut attempt = 1;
        loop {
            match launch(&binaries, &runs) {
                Ok(api) => return Ok(api),
                Err(e) if attempt < PORT_ATTEMPTS && format!("{e:#}").contains("address already in use") => {
                    // Another process took a port between our probe and the bind.
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits (bounded) until the server is ready, then loads the Argo CRDs
    /// and waits until discovery serves them.
    pub fn wait_ready(&mut self) -> Result<()> {
        let timeout = start_timeout()?;
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a tokio runtime")?
            .block_on(self.ready(timeout));
        if result.is_err() {
            self.keep_run = true;
        }
        result
    }

    async fn ready(&mut self, timeout: Duration) -> Result<()> {
        let kubeconfig = Kubeconfig::read_from(self.kubeconfig())
            .with_context(|| format!("reading {}", self.kubeconfig().display()))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .context("reading the test kubeconfig")?;
        let client = kube::Client::try_from(config).context("making a client for the API server")?;
        let deadline = Instant::now() + timeout;
        // `/readyz` alone never passes: there is no core API for the
        // informers to sync with.
        loop {
            self.check_alive()?;
            let request = http::Request::get("/readyz?exclude=informer-sync").body(Vec::new())?;
            let last = match client.request_text(request).await {
                Ok(_) => break,
                Err(e) => e.to_string(),
            };
            self.check_deadline(deadline, &format!("become ready (last answer: {last})"))?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for file in CRDS {
            let path = crds_dir().join(file);
            let text = fs::read_to_string(&path).with_context(|| {
                format!(
                    "reading the Argo CRD {} (CI provides ../shared/reference next to the repository)",
                    path.display()
                )
            })?;
            let crd: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            let name = crd["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            crds.patch(&name, &PatchParams::apply("aphex-xtask"), &Patch::Apply(&crd))
                .await
                .with_context(|| format!("creating the CRD {name} from {}", path.display()))?;
        }
        // Established first, then (about a second later) in discovery.
        loop {
            self.check_alive()?;
            let served = client
                .list_api_group_resources("argoproj.io/v1alpha1")
                .await
                .map(|list| {
                    ["Workflow", "WorkflowTemplate"]
                        .iter()
                        .all(|kind| list.resources.iter().any(|r| r.kind == *kind))
                })
                .unwrap_or(false);
            if served {
                break;
            }
            self.check_deadline(deadline, "serve the Argo CRDs in discovery")?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "xtask: Kubernetes API server ready at https://127.0.0.1:{}, serving the Argo CRDs {:.1} s after its \
             start (kubeconfig {})",
            self.port,
            self.started.elapsed().as_secs_f64(),
            self.kubeconfig().display()
        );
        Ok(())
    }

    fn check_alive(&mut self) -> Result<()> {
        for (name, child, log) in [
            ("etcd", &mut self.etcd, "etcd.log"),
            ("the API server", &mut self.server, "server.log"),
        ] {
            let child = child.as_mut().expect("children present until drop");
            if let Some(status) = child.try_wait().with_context(|| format!("checking {name}"))? {
                bail!(
                    "{name} of the tests' Kubernetes API server exited ({status}); the end of {}:\n{}",
                    self.run.join(log).display(),
                    log_tail(&self.run.join(log))
                );
            }
        }
        Ok(())
    }

    fn check_deadline(&self, deadline: Instant, what: &str) -> Result<()> {
        if Instant::now() >= deadline {
            bail!(
                "the tests' Kubernetes API server did not {what} within {} s (set APHEX_KUBE_API_START_TIMEOUT \
                 to wait longer); the end of {}:\n{}",
                start_timeout()?.as_secs(),
                self.run.join("server.log").display(),
                log_tail(&self.run.join("server.log"))
            );
        }
        Ok(())
    }

    /// The kubeconfig of this server (user `O=system:masters`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.run.join("kubeconfig")
    }

    /// The variables that point the tests at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![(KUBECONFIG_VAR.to_owned(), self.kubeconfig().display().to_string())]
    }

    /// Stops the server, then etcd: SIGTERM, SIGKILL after 10 s.
    fn stop(&mut self) {
        for child in [self.server.take(), self.etcd.take()].into_iter().flatten() {
            stop_child(child);
        }
        if !self.keep_run {
            let _ = fs::remove_dir_all(&self.run);
        }
        eprintln!("xtask: Kubernetes API server on port {} stopped", self.port);
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stop_child(mut child: Child) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The cache folder holding the build and the run folders.
fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("APHEX_KUBE_API_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("aphex/kube-api"));
    }
    match std::env::var_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".cache/aphex/kube-api")),
        None => bail!(
            "neither HOME nor APHEX_KUBE_API_CACHE is set: set APHEX_KUBE_API_CACHE to a folder for the \
             Kubernetes API server's build"
        ),
    }
}

/// `../shared/reference/crds` next to the repository.
fn crds_dir() -> PathBuf {
    crate::root().join("../shared/reference/crds")
}

fn start_timeout() -> Result<Duration> {
    match std::env::var("APHEX_KUBE_API_START_TIMEOUT") {
        Ok(s) => {
            let secs: u64 = s
                .parse()
                .with_context(|| format!("APHEX_KUBE_API_START_TIMEOUT={s:?} is not a number of seconds"))?;
            Ok(Duration::from_secs(secs))
        }
        Err(_) => Ok(Duration::from_secs(60)),
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// Starts etcd, waits until it is healthy (about a second), then starts
/// the server on it.
fn launch(binaries: &Binaries, runs: &Path) -> Result<KubeApi> {
    let (etcd_port, peer_port, port) = (free_port()?, free_port()?, free_port()?);
    let run = runs.join(format!("{}-{port}", std::process::id()));
    fs::create_dir_all(&run).with_context(|| format!("creating {}", run.display()))?;
    let mut api = KubeApi {
        etcd: None,
        server: None,
        port,
        run: run.clone(),
        started: Instant::now(),
        keep_run: true,
    };
    write_credentials(&run, port)?;
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let etcd = Command::new(&binaries.etcd)
        .arg("--name=aphex-test")
        .arg(format!("--data-dir={}", run.join("etcd").display()))
        .arg(format!("--listen-client-urls={etcd_url}"))
        .arg(format!("--advertise-client-urls={etcd_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=aphex-test={peer_url}"))
        // Test data: durability across a machine crash does not matter.
        .arg("--unsafe-no-fsync")
        .arg("--log-level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file(&run, "etcd.log")?)
        .spawn()
        .context("starting etcd")?;
    fs::write(run.join("etcd.pid"), etcd.id().to_string()).context("writing etcd.pid")?;
    api.etcd = Some(etcd);
    let deadline = Instant::now() + start_timeout()?;
    while !http_ok(etcd_port, "/health") {
        let child = api.etcd.as_mut().expect("just started");
        if let Some(status) = child.try_wait().context("checking etcd")? {
            bail!(
                "etcd of the tests' Kubernetes API server exited during start-up ({status}); the end of {}:\n{}",
                run.join("etcd.log").display(),
                log_tail(&run.join("etcd.log"))
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "etcd did not become healthy on {etcd_url}; the end of {}:\n{}",
                run.join("etcd.log").display(),
                log_tail(&run.join("etcd.log"))
            );
        }
        // Polling for readiness, not timing a test.
        std::thread::sleep(Duration::from_millis(50));
    }
    let nowhere = run.join("nowhere.kubeconfig").display().to_string();
    let server = Command::new(&binaries.server)
        .arg(format!("--etcd-servers={etcd_url}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--secure-port={port}"))
        .arg(format!("--tls-cert-file={}", run.join("server.crt").display()))
        .arg(format!(
            "--tls-private-key-file={}",
            run.join("server.key").display()
        ))
        .arg(format!("--client-ca-file={}", run.join("ca.crt").display()))
        // There is no core API to delegate authentication and
        // authorization to: client certificates of `system:masters` are
        // all the server accepts, and that group is always allowed.
        .arg("--authentication-skip-lookup")
        .arg(format!("--authentication-kubeconfig={nowhere}"))
        .arg(format!("--authorization-kubeconfig={nowhere}"))
        .arg(format!("--kubeconfig={nowhere}"))
        .arg(
            "--disable-admission-plugins=NamespaceLifecycle,MutatingAdmissionPolicy,MutatingAdmissionWebhook,\
             ValidatingAdmissionPolicy,ValidatingAdmissionWebhook",
        )
        .arg("--enable-priority-and-fairness=false")
        .env("APHEX_KUBE_API_PARENT_PID", std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(log_file(&run, "server.log")?)
        .stderr(log_file(&run, "server.log")?)
        .spawn()
        .context("starting the Kubernetes API server")?;
    api.server = Some(server);
    api.keep_run = false;
    Ok(api)
}

fn log_file(run: &Path, name: &str) -> Result<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run.join(name))
        .with_context(|| format!("opening {}", run.join(name).display()))
}

/// A CA, the server's certificate (127.0.0.1, localhost) and a client
/// certificate in `system:masters`, all X.509 v3 (rustls refuses v1), and
/// the kubeconfigs: the tests' and one whose server never answers.
fn write_credentials(run: &Path, port: u16) -> Result<()> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
        ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    };
    let name = |cn: &str, org: Option<&str>| {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        if let Some(o) = org {
            dn.push(DnType::OrganizationName, o);
        }
        dn
    };
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = name("aphex test CA", None);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;

    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    server.distinguished_name = name("aphex-kube-api", None);
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &ca)?;

    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client.distinguished_name = name("aphex-test", Some("system:masters"));
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate()?;
    let client_cert = client.signed_by(&client_key, &ca)?;

    let files = [
        ("ca.crt", ca.pem()),
        ("server.crt", server_cert.pem()),
        ("server.key", server_key.serialize_pem()),
        ("client.crt", client_cert.pem()),
        ("client.key", client_key.serialize_pem()),
        (
            "kubeconfig",
            kubeconfig(
                &format!("https://127.0.0.1:{port}"),
                serde_json::json!({"certificate-authority": run.join("ca.crt")}),
                serde_json::json!({
                    "client-certificate": run.join("client.crt"),
                    "client-key": run.join("client.key"),
                }),
            ),
        ),
        (
            "nowhere.kubeconfig",
            // Port 1: nothing answers, and nothing is asked of it.
            kubeconfig(
                "https://127.0.0.1:1",
                serde_json::json!({"insecure-skip-tls-verify": true}),
                serde_json::json!({}),
            ),
        ),
    ];
    for (file, text) in files {
        fs::write(run.join(file), text).with_context(|| format!("writing {}", run.join(file).display()))?;
    }
    Ok(())
}

/// A kubeconfig of one cluster, user and context, `aphex-test` (JSON is
/// YAML too).
fn kubeconfig(server: &str, cluster: serde_json::Value, user: serde_json::Value) -> String {
    let mut cluster = cluster;
    cluster["server"] = server.into();
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "aphex-test", "cluster": cluster}],
        "users": [{"name": "aphex-test", "user": user}],
        "contexts": [{"name": "aphex-test", "context": {"cluster": "aphex-test", "user": "aphex-test"}}],
        "current-context": "aphex-test",
    });
    serde_json::to_string_pretty(&config).expect("a JSON value always serializes")
}

/// True when `GET path` on 127.0.0.1:`port` answers 200 (plain HTTP).
fn http_ok(port: u16, path: &str) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    head[..read].starts_with(b"HTTP/1.1 200") || head[..read].starts_with(b"HTTP/1.0 200")
}

/// Removes the run folders of xtask processes that are gone, stopping an
/// etcd of theirs still running (the server stops by itself then).
fn sweep_stale_runs(runs: &Path, binaries: &Binaries) {
    let Ok(entries) = fs::read_dir(runs) else { return };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = name.split('-').next() else {
            continue;
        };
        if Path::new("/proc").join(owner).exists() {
            continue;
        }
        let etcd_pid = fs::read_to_string(entry.path().join("etcd.pid")).unwrap_or_default();
        let etcd_pid = etcd_pid.trim();
        // Only if that process still is our etcd (pids are reused).
        let exe = fs::read_link(Path::new("/proc").join(etcd_pid).join("exe")).ok();
        if !etcd_pid.is_empty() && exe.as_deref() == Some(binaries.etcd.as_path()) {
            let _ = Command::new("kill")
                .args(["-TERM", etcd_pid])
                .stderr(Stdio::null())
                .status();
        }
        let _ = fs::remove_dir_all(entry.path());
    }
}

/// The last lines of a log, for error messages.
fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// `cargo xtask kube-api`: starts a server, prints how to point a shell at
/// it, and keeps it running until Ctrl-C or SIGTERM.
pub fn serve() -> Result<()> {
    let mut api = KubeApi::start()?;
    let stopped = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a tokio runtime")?
        .block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            // Before saying how to stop it: a signal that came earlier
            // would end xtask without stopping etcd.
            let mut term = signal(SignalKind::terminate())?;
            let mut int = signal(SignalKind::interrupt())?;
            println!("# the tests' Kubernetes API server is running; in another shell:");
            for (k, v) in api.env() {
                println!("export {k}={v}");
            }
            println!(
                "# kubectl works too: kubectl --kubeconfig {}",
                api.kubeconfig().display()
            );
            println!("# Ctrl-C stops it");
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = term.recv() => return Ok::<_, std::io::Error>(None),
                    _ = int.recv() => return Ok(None),
                    _ = tick.tick() => {
                        if let Err(e) = api.check_alive() {
                            return Ok(Some(e));
                        }
                    }
                }
            }
        })
        .context("waiting for a signal")?;
    match stopped {
        None => Ok(()),
        Some(e) => {
            api.keep_run = true;
            Err(e)
        }
    }
}
