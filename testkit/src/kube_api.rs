//! The real Kubernetes API server of the tests: the upstream CRD API server
//! with Argo's full Workflow and WorkflowTemplate CRDs, started by
//! `cargo xtask test` (or by hand with `cargo xtask kube-api`), which names
//! its kubeconfig in `APHEX_TEST_KUBECONFIG`. It serves custom resources
//! only: no namespaces, Secrets, ConfigMaps or RBAC (the in-process fake
//! `aphex_k8s::fake` stands in for those), and a namespace need not exist
//! to hold objects, so each test takes one of its own ([`KubeApi::namespace`]).

use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// The variable `cargo xtask test` sets to the server's kubeconfig.
pub const KUBECONFIG_VAR: &str = "APHEX_TEST_KUBECONFIG";

/// The server of this test run.
#[derive(Debug, Clone)]
pub struct KubeApi {
    kubeconfig: PathBuf,
    server: String,
}

/// The server of this test run. Panics, never skips, when there is none:
/// a test that needs it must not pass by doing nothing.
pub fn kube_api() -> KubeApi {
    let how = "run `cargo xtask test`, or `cargo xtask kube-api` in another shell and export what it prints \
               (docs/testing.md)";
    let kubeconfig = match std::env::var_os(KUBECONFIG_VAR) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => panic!("{KUBECONFIG_VAR} is not set: these tests need the real Kubernetes API server: {how}"),
    };
    let config = Kubeconfig::read_from(&kubeconfig).unwrap_or_else(|e| {
        panic!(
            "{KUBECONFIG_VAR}={}: cannot read it ({e}): the server it belonged to has stopped; {how}",
            kubeconfig.display()
        )
    });
    let server = config
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .unwrap_or_else(|| panic!("{} names no cluster server", kubeconfig.display()));
    let authority = server.trim_start_matches("https://").trim_end_matches('/');
    let reachable = authority.to_socket_addrs().is_ok_and(|mut addrs| {
        addrs.any(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
    });
    assert!(
        reachable,
        "{KUBECONFIG_VAR}={}, but nothing answers at {server}: the server has stopped; {how}",
        kubeconfig.display()
    );
    KubeApi { kubeconfig, server }
}

impl KubeApi {
    /// The kubeconfig (one context, a `system:masters` client certificate).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The client configuration, to adjust (a default namespace, another
    /// URL) before making a client.
    pub async fn config(&self) -> kube::Config {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("the kubeconfig was read before");
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("the test kubeconfig is valid")
    }

    /// A client whose default namespace is `namespace`.
    pub async fn client(&self, namespace: &str) -> kube::Client {
        let mut config = self.config().await;
        config.default_namespace = namespace.to_owned();
        kube::Client::try_from(config).expect("a client from the test kubeconfig")
    }

    /// What points a child process (`aphex`, `kubectl`) at the server.
    pub fn child_env(&self) -> Vec<(&'static str, String)> {
        vec![("KUBECONFIG", self.kubeconfig.display().to_string())]
    }

    /// A namespace no other test (in this run or an earlier one on the same
    /// server) uses, starting with `prefix` (a DNS label).
    pub fn namespace(&self, prefix: &str) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let name = format!(
            "{prefix}-{}-{:x}-{}",
            std::process::id(),
            nanos % 0xffff_ffff_ffff,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        assert!(
            name.len() <= 63,
            "namespace {name} is longer than a DNS label: use a shorter prefix"
        );
        name
    }
}
