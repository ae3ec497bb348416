//! The example CDK apps synthesize, with the real `aws-cdk-lib`, into
//! assemblies the reader accepts and that match their configs: the quick
//! start for each of its environments (with the synth command its config
//! names), and each variant of `tests/cdk-apps`. Needs the quick start's npm
//! packages (`cargo xtask npm`; `cargo xtask test` installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

use aphex_stages::assembly::{self, CloudAssembly};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

fn node_modules() -> PathBuf {
    let dir = repo().join("examples/quickstart/node_modules");
    assert!(
        dir.join("aws-cdk-lib/package.json").is_file(),
        "{} has no aws-cdk-lib: run `cargo xtask npm` (or `cargo xtask test`, which does)",
        dir.display()
    );
    dir
}

/// Runs `command` in `dir` the way the deploy stage runs a synth command and
/// reads the assembly it wrote (which lives as long as the returned directory).
fn synth(dir: &Path, command: &str, account: &str, region: &str) -> (tempfile::TempDir, CloudAssembly) {
    let out = tempfile::tempdir().expect("tempdir");
    let output = Command::new("bash")
        .args(["-c", command])
        .current_dir(dir)
        .env("NODE_PATH", node_modules())
        .env("CDK_DEFAULT_ACCOUNT", account)
        .env("CDK_DEFAULT_REGION", region)
        .env("CDK_OUTDIR", out.path())
        .env("CDK_DISABLE_CLI_TELEMETRY", "true")
        .env("CDK_DISABLE_VERSION_CHECK", "1")
        .output()
        .expect("running bash");
    assert!(
        output.status.success(),
        "`{command}` in {} failed: {}\n{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let asm = assembly::read(out.path()).unwrap_or_else(|e| panic!("reading what `{command}` wrote: {e}"));
    (out, asm)
}

#[test]
fn the_quick_start_synthesizes_each_environment_into_its_own_account() {
    let dir = repo().join("examples/quickstart");
    let config = aphex_config::load_file(&dir.join("aphex-config.yaml")).expect("quick start config");
    assert_eq!(config.environments.len(), 2);
    let accounts: Vec<&str> = config.environments.iter().map(|e| e.account.as_str()).collect();
    assert_eq!(accounts, ["000000000000", "111111111111"]);
    for env in &config.environments {
        let (_out, asm) = synth(&dir, env.synth(), &env.account, &env.region);
        for stack in &env.stacks {
            assert!(
                dir.join(&stack.path).is_file(),
                "{}: path {}",
                env.name,
                stack.path
            );
            let artifact = asm
                .find_stack(&stack.name)
                .unwrap_or_else(|| panic!("{}: {} not in {:?}", env.name, stack.name, asm.stack_summary()));
            assert_eq!(artifact.environment.account, env.account, "{}", stack.name);
            assert_eq!(artifact.environment.region, env.region, "{}", stack.name);
            let template = std::fs::read_to_string(&artifact.template_file).expect("template");
            assert!(template.contains("\"Outputs\""), "{} has outputs", stack.name);
        }
        // The cross-stack reference is in the assembly; the config-only
        // dependsOn is not.
        let deps = |name: &str| asm.find_stack(name).expect(name).dependencies.clone();
        assert_eq!(deps("QuickstartApp"), ["QuickstartShared"]);
        assert!(deps("QuickstartAudit").is_empty());
        let audit = env.stack("QuickstartAudit").expect("QuickstartAudit configured");
        assert_eq!(audit.depends_on, ["QuickstartApp"]);
    }
}

#[test]
fn the_test_app_variants_have_the_stacks_their_configs_name() {
    let dir = repo().join("tests/cdk-apps");
    for variant in ["failing", "large", "parallel"] {
        let config = aphex_config::load_file(&dir.join(format!("configs/{variant}.yaml")))
            .unwrap_or_else(|e| panic!("configs/{variant}.yaml: {e:?}"));
        let env = &config.environments[0];
        // The prefix changes CloudFormation names only, never artifact ids.
        let command = format!("{} --prefix t9-", env.synth());
        let (_out, asm) = synth(&dir, &command, &env.account, &env.region);
        let ids: Vec<&str> = asm.stacks.iter().map(|s| s.id.as_str()).collect();
        let configured: Vec<&str> = env.stacks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(ids, configured, "{variant}");
        for stack in &asm.stacks {
            assert_eq!(stack.stack_name, format!("t9-{}", stack.id));
            assert!(
                stack.dependencies.is_empty(),
                "{variant}: {} is independent",
                stack.id
            );
        }
        let sizes: Vec<u64> = asm
            .stacks
            .iter()
            .map(|s| std::fs::metadata(&s.template_file).expect("template").len())
            .collect();
        match variant {
            "large" => assert!(sizes[0] > 51_200, "LargeTemplate is {} bytes", sizes[0]),
            _ => assert!(sizes.iter().all(|n| *n < 51_200), "{variant}: {sizes:?}"),
        }
        if variant == "failing" {
            let broken = std::fs::read_to_string(&asm.find_stack("Broken").unwrap().template_file).unwrap();
            assert!(broken.contains("\"Type\": \"Bogus\""), "{broken}");
        }
    }
}
