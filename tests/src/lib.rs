//! End-to-end tests across the Aphex crates live in `tests/tests/`; this
//! library holds their shared helpers.
pub mod bootstrap;
pub mod cluster;
pub mod e2e;
pub mod stacks;

use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::{Region, SdkConfig};
use aws_credential_types::Credentials;

/// The variable `cargo xtask test` sets to the local AWS emulator's endpoint.
pub const ENDPOINT_VAR: &str = "APHEX_TEST_AWS_ENDPOINT";

/// The region every emulator test uses.
pub const REGION: &str = "us-east-1";

/// The account the emulator's default credentials act in.
pub const DEFAULT_ACCOUNT: &str = "000000000000";

/// The local AWS emulator started by `cargo xtask test`.
#[derive(Debug, Clone)]
pub struct Emulator {
    endpoint: String,
}

/// The emulator of this test run. Panics, never skips, when there is none:
/// a test that needs AWS must not pass by doing nothing.
pub fn emulator() -> Emulator {
    match std::env::var(ENDPOINT_VAR) {
        Ok(endpoint) if !endpoint.is_empty() => {
            assert_reachable(&endpoint);
            Emulator { endpoint }
        }
        _ => panic!(
            "{ENDPOINT_VAR} is not set: these tests need the local AWS emulator: run `cargo xtask test` \
             (or `cargo xtask emulator` in another shell and export what it prints; see docs/testing.md)"
        ),
    }
}

/// Fails fast, and clearly, when the endpoint is set but nothing listens
/// there (an emulator stopped since its exports were pasted), instead of
/// every SDK call retrying into a connection error.
fn assert_reachable(endpoint: &str) {
    use std::net::ToSocketAddrs;
    let authority = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    let reachable = authority.to_socket_addrs().is_ok_and(|mut addrs| {
        addrs.any(|a| std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(2)).is_ok())
    });
    assert!(
        reachable,
        "{ENDPOINT_VAR}={endpoint}, but nothing answers there: the local AWS emulator is not running; \
         run `cargo xtask test`, or restart `cargo xtask emulator` and export what it prints"
    );
}

impl Emulator {
    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An SDK configuration for the emulator, acting in [`DEFAULT_ACCOUNT`]
    /// in [`REGION`], with Aphex's retry policy.
    pub async fn aws_config(&self) -> SdkConfig {
        self.aws_config_with(Credentials::new("test", "test", None, None, "aphex-tests"))
            .await
    }

    /// An SDK configuration acting directly in `account` (the emulator takes
    /// a 12-digit access key ID as the account ID).
    pub async fn aws_config_in(&self, account: &str) -> SdkConfig {
        self.aws_config_with(Credentials::new(account, "test", None, None, "aphex-tests"))
            .await
    }

    /// An SDK configuration for the emulator with the given credentials.
    pub async fn aws_config_with(&self, credentials: Credentials) -> SdkConfig {
        aphex_aws::client::loader()
            .endpoint_url(&self.endpoint)
            .region(Region::new(REGION))
            .credentials_provider(credentials)
            .load()
            .await
    }

    /// The variables pointing a child process (`aphex`, `aphex-runner`) at
    /// the emulator through the standard AWS environment.
    pub fn child_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", REGION.into()),
        ]
    }
}

/// A name no other test (in this run or an earlier one) uses: the emulator's
/// S3 storage is shared, so buckets, prefixes and stacks need their own.
/// Lowercase letters, digits and dashes: valid for buckets and stacks.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!(
        "{prefix}-{}-{:x}-{}",
        std::process::id(),
        nanos % 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A new S3 bucket of one test's own, named from `prefix` (see [`unique_name`]).
pub async fn new_bucket(config: &SdkConfig, prefix: &str) -> String {
    let name = unique_name(prefix);
    aphex_aws::client::s3(config)
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("create bucket");
    name
}

/// `len` bytes that do not compress and differ between seeds.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            // xorshift64*: cheap, and enough to make every part distinct.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545F4914F6CDD4D) >> 56) as u8
        })
        .collect()
}

/// The metadata of archive `bytes` of `pipeline` at `commit`.
pub fn artifact_metadata(
    bytes: &[u8],
    pipeline: &str,
    run_id: &str,
    commit: &str,
) -> aphex_stages::ports::ArtifactMetadata {
    aphex_stages::ports::ArtifactMetadata {
        pipeline: pipeline.into(),
        run_id: run_id.into(),
        commit_sha: commit.into(),
        timestamp: "2026-11-22T01:02:03Z".into(),
        size: bytes.len() as u64,
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)),
        paths: vec!["dist".into()],
        unpacked_bytes: bytes.len() as u64,
        entries: 1,
    }
}
