//! One invalid configuration per validation rule, as data: each case edits a
//! valid base configuration and names the diagnostic it must produce (field
//! path, line, column, message). Checked through [`check`].

use aphex_config::{Diagnostic, load_bytes, load_str};

/// A valid configuration every case starts from.
const BASE: &str = r#"version: "1.0"
build:
  commands: ["npm ci"]
environments:
  - name: dev
    region: us-east-1
    account: "123456789012"
    stacks:
      - { name: Network, path: lib/network.ts }
      - { name: App, path: lib/app.ts, dependsOn: [Network] }
"#;

/// One rule's case: replace `from` by `to` in [`BASE`] and expect `want`
/// (path, line, column, message) among exactly `count` diagnostics.
struct Case {
    rule: &'static str,
    from: &'static str,
    to: String,
    want: (&'static str, usize, usize, String),
    count: usize,
}

fn case(
    rule: &'static str,
    from: &'static str,
    to: impl Into<String>,
    want: (&'static str, usize, usize, &str),
) -> Case {
    Case {
        rule,
        from,
        to: to.into(),
        want: (want.0, want.1, want.2, want.3.to_owned()),
        count: 1,
    }
}

fn check(c: &Case) {
    assert!(BASE.contains(c.from), "{}: `from` not in BASE", c.rule);
    let src = BASE.replacen(c.from, &c.to, 1);
    let diags = load_str("aphex-config.yaml", &src).expect_err(c.rule);
    let (path, line, column, message) = &c.want;
    let found = diags
        .iter()
        .any(|d| d.path == *path && d.line == *line && d.column == *column && d.message == *message);
    assert!(
        found && diags.len() == c.count,
        "rule `{}`: wanted {} diagnostic(s) incl. {path} {line}:{column} {message:?}\ngot: {diags:#?}",
        c.rule,
        c.count
    );
    for d in &diags {
        assert!(
            d.help.is_some(),
            "rule `{}`: every diagnostic says how to fix it: {d:?}",
            c.rule
        );
        assert_eq!(d.file, "aphex-config.yaml");
    }
}

const ENVS: &str = r#"environments:
  - name: dev
    region: us-east-1
    account: "123456789012"
    stacks:
      - { name: Network, path: lib/network.ts }
      - { name: App, path: lib/app.ts, dependsOn: [Network] }
"#;
const STACKS: &str = r#"    stacks:
      - { name: Network, path: lib/network.ts }
      - { name: App, path: lib/app.ts, dependsOn: [Network] }
"#;
const AKIA: &str = "AKIAIOSFODNN7EXAMPLE";
const GHP: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

fn cases() -> Vec<Case> {
    let long = "a".repeat(56);
    vec![
        case(
            "version is 1.0",
            r#"version: "1.0""#,
            r#"version: "2.0""#,
            ("version", 1, 10, "unsupported configuration version `2.0`"),
        ),
        case(
            "version is a string",
            r#"version: "1.0""#,
            "version: 1.0",
            ("version", 1, 10, "`version` is a YAML number, not a string"),
        ),
        case(
            "version is required",
            "version: \"1.0\"\n",
            "",
            ("version", 1, 1, "missing field `version` in the document"),
        ),
        case(
            "build commands not empty",
            r#"commands: ["npm ci"]"#,
            "commands: []",
            ("build.commands", 3, 13, "`build.commands` is empty"),
        ),
        case(
            "build commands not blank",
            r#"commands: ["npm ci"]"#,
            r#"commands: [" "]"#,
            ("build.commands[0]", 3, 14, "`build.commands[0]` is blank"),
        ),
        case(
            "at least one environment",
            ENVS,
            "environments: []\n",
            ("environments", 4, 15, "`environments` is empty"),
        ),
        case(
            "environment name is a DNS label",
            "name: dev",
            "name: Dev_1",
            (
                "environments[0].name",
                5,
                11,
                "environment name `Dev_1` is not a lowercase DNS label",
            ),
        ),
        case(
            "environment name fits Argo task names",
            "name: dev",
            format!("name: {long}"),
            (
                "environments[0].name",
                5,
                11,
                &format!("environment name `{long}` is 56 characters long; the limit is 55"),
            ),
        ),
        case(
            "environment names unique",
            STACKS,
            format!(
                "{STACKS}  - {{ name: dev, region: us-west-2, account: \"123456789012\", stacks: [{{ name: A, path: a.ts }}] }}\n"
            ),
            ("environments[1].name", 11, 13, "duplicate environment name `dev`"),
        ),
        case(
            "account is a string",
            r#"account: "123456789012""#,
            "account: 123456789012",
            (
                "environments[0].account",
                7,
                14,
                "`account` is a YAML number; account IDs must be strings",
            ),
        ),
        case(
            "account is 12 digits",
            r#"account: "123456789012""#,
            r#"account: "12345""#,
            (
                "environments[0].account",
                7,
                14,
                "account ID `12345` is not 12 digits",
            ),
        ),
        case(
            "region is an AWS region",
            "region: us-east-1",
            "region: us-est-1",
            ("environments[0].region", 6, 13, "`us-est-1` is not an AWS region"),
        ),
        case(
            "at least one stack",
            STACKS,
            "    stacks: []\n",
            ("environments[0].stacks", 8, 13, "environment `dev` has no stacks"),
        ),
        case(
            "stack names unique",
            STACKS,
            format!("{STACKS}      - {{ name: App, path: lib/app2.ts }}\n"),
            (
                "environments[0].stacks[2].name",
                11,
                17,
                "duplicate stack name `App` in environment `dev`",
            ),
        ),
        case(
            "stack path not blank",
            "path: lib/network.ts",
            "path: \" \"",
            (
                "environments[0].stacks[0].path",
                9,
                32,
                "`environments[0].stacks[0].path` is blank",
            ),
        ),
        case(
            "dependsOn names a stack",
            "dependsOn: [Network]",
            "dependsOn: [Netwrok]",
            (
                "environments[0].stacks[1].dependsOn[0]",
                10,
                52,
                "stack `App` depends on `Netwrok`, which is not a stack of environment `dev`",
            ),
        ),
        case(
            "no dependency cycle",
            "path: lib/network.ts }",
            "path: lib/network.ts, dependsOn: [App] }",
            (
                "environments[0].stacks[0].dependsOn",
                9,
                59,
                "dependency cycle: Network -> App -> Network",
            ),
        ),
        case(
            "unknown field",
            "region: us-east-1",
            "region: us-east-1\n    synht: cdk synth",
            ("environments[0].synht", 7, 5, "unknown field `synht`"),
        ),
        case(
            "required field",
            "    account: \"123456789012\"\n",
            "",
            (
                "environments[0].account",
                5,
                5,
                "missing field `account` in `environments[0]`",
            ),
        ),
        case(
            "field type",
            "region: us-east-1",
            "region: us-east-1\n    concurrency: two",
            (
                "environments[0].concurrency",
                7,
                18,
                "`concurrency` must be a whole number, found a string",
            ),
        ),
        case(
            "approval kind",
            "region: us-east-1",
            "region: us-east-1\n    approval: auto",
            (
                "environments[0].approval",
                7,
                15,
                "`approval` has a value that is not allowed",
            ),
        ),
        case(
            "concurrency at least 1",
            "region: us-east-1",
            "region: us-east-1\n    concurrency: 0",
            (
                "environments[0].concurrency",
                7,
                18,
                "`concurrency` must be at least 1, found 0",
            ),
        ),
        case(
            "role ARN",
            "region: us-east-1",
            "region: us-east-1\n    roleArn: deployer",
            (
                "environments[0].roleArn",
                7,
                14,
                "`roleArn` is not an IAM role ARN",
            ),
        ),
        case(
            "test commands not empty",
            STACKS,
            format!("{STACKS}    tests: {{ commands: [] }}\n"),
            (
                "environments[0].tests.commands",
                11,
                24,
                "`environments[0].tests.commands` is empty",
            ),
        ),
        case(
            "hooks not blank",
            "region: us-east-1",
            "region: us-east-1\n    hooks: { pre: [\"\"] }",
            (
                "environments[0].hooks.pre[0]",
                7,
                20,
                "`environments[0].hooks.pre[0]` is blank",
            ),
        ),
        case(
            "pipeline name is a DNS label",
            "build:",
            "pipeline: { name: My_App }\nbuild:",
            (
                "pipeline.name",
                2,
                19,
                "pipeline name `My_App` is not a lowercase DNS label",
            ),
        ),
        case(
            "pipeline name is short",
            "build:",
            format!("pipeline: {{ name: {} }}\nbuild:", "p".repeat(41)),
            (
                "pipeline.name",
                2,
                19,
                &format!(
                    "pipeline name `{}` is 41 characters long; the limit is 40",
                    "p".repeat(41)
                ),
            ),
        ),
        case(
            "namespace is a DNS label",
            "build:",
            "pipeline: { namespace: Argo }\nbuild:",
            (
                "pipeline.namespace",
                2,
                24,
                "namespace `Argo` is not a lowercase DNS label",
            ),
        ),
        case(
            "secret names are Kubernetes names",
            "build:",
            "pipeline: { github: { owner: o, repo: r, tokenSecret: Token } }\nbuild:",
            (
                "pipeline.github.tokenSecret",
                2,
                55,
                "`tokenSecret` is not a valid Kubernetes Secret name",
            ),
        ),
        case(
            "github owner",
            "build:",
            "pipeline: { github: { owner: \"my org\", repo: r } }\nbuild:",
            (
                "pipeline.github.owner",
                2,
                30,
                "`github.owner` is not a GitHub user or organization name",
            ),
        ),
        case(
            "webhook URL",
            "build:",
            "pipeline: { github: { owner: o, repo: r, webhookUrl: hooks.example.com } }\nbuild:",
            (
                "pipeline.github.webhookUrl",
                2,
                54,
                "`github.webhookUrl` is not an https:// URL",
            ),
        ),
        case(
            "github server URL is not an option",
            "build:",
            "pipeline: { github: { owner: o, repo: r, url: \"--upload-pack=touch /tmp/x\" } }\nbuild:",
            (
                "pipeline.github.url",
                2,
                47,
                "`github.url` is not the https:// URL of a GitHub server",
            ),
        ),
        case(
            "github server URL is https without credentials",
            "build:",
            "pipeline: { github: { owner: o, repo: r, url: \"http://ghe.example.com\" } }\nbuild:",
            (
                "pipeline.github.url",
                2,
                47,
                "`github.url` is not the https:// URL of a GitHub server",
            ),
        ),
        case(
            "github API URL is https",
            "build:",
            "pipeline: { github: { owner: o, repo: r, apiUrl: \"http://ghe.example.com/api/v3\" } }\nbuild:",
            (
                "pipeline.github.apiUrl",
                2,
                50,
                "`github.apiUrl` is not the https:// URL of a GitHub API",
            ),
        ),
        case(
            "github API URL is no option",
            "build:",
            "pipeline: { github: { owner: o, repo: r, apiUrl: \"--upload-pack=x\" } }\nbuild:",
            (
                "pipeline.github.apiUrl",
                2,
                50,
                "`github.apiUrl` is not the https:// URL of a GitHub API",
            ),
        ),
        case(
            "ignored senders are GitHub logins",
            "build:",
            "pipeline: { github: { owner: o, repo: r, ignoreSenders: [ok-bot, \"a b\"] } }\nbuild:",
            (
                "pipeline.github.ignoreSenders[1]",
                2,
                66,
                "`a b` is not a GitHub login",
            ),
        ),
        case(
            "ignored senders hold no regular expression",
            "build:",
            "pipeline: { github: { owner: o, repo: r, ignoreSenders: [\".*\"] } }\nbuild:",
            (
                "pipeline.github.ignoreSenders[0]",
                2,
                58,
                "`.*` is not a GitHub login",
            ),
        ),
        case(
            "argo URL is a plain http(s) address",
            "build:",
            "pipeline: { argoUrl: \"https://argo.example.com/?a=<!channel>\" }\nbuild:",
            (
                "pipeline.argoUrl",
                2,
                22,
                "`argoUrl` is not the http(s) URL of the Argo UI",
            ),
        ),
        case(
            "commit statuses need a repository",
            "build:",
            "pipeline: { notifications: { githubStatus: true } }\nbuild:",
            (
                "pipeline.notifications.githubStatus",
                2,
                44,
                "`githubStatus` is true, but there is no `pipeline.github` to post commit statuses to",
            ),
        ),
        case(
            "bucket name",
            "build:",
            "pipeline: { artifacts: { bucket: My_Bucket } }\nbuild:",
            (
                "pipeline.artifacts.bucket",
                2,
                34,
                "`artifacts.bucket` is not a valid S3 bucket name",
            ),
        ),
        case(
            "retention at least a day",
            "build:",
            "pipeline: { artifacts: { retentionDays: 0 } }\nbuild:",
            (
                "pipeline.artifacts.retentionDays",
                2,
                41,
                "`retentionDays` must be at least 1, found 0",
            ),
        ),
        case(
            "self-update policy",
            "build:",
            "pipeline: { selfUpdate: { onFailure: ignore } }\nbuild:",
            (
                "pipeline.selfUpdate.onFailure",
                2,
                38,
                "`onFailure` has a value that is not allowed",
            ),
        ),
        case(
            "image reference",
            "build:",
            "pipeline: { images: { builder: \"my image\" } }\nbuild:",
            (
                "pipeline.images.builder",
                2,
                32,
                "`images.builder` is not an image reference: invalid reference format",
            ),
        ),
        case(
            "plain http webhook URL",
            "build:",
            "pipeline: { github: { owner: o, repo: r, webhookUrl: \"http://h.example.com/x\" } }\nbuild:",
            (
                "pipeline.github.webhookUrl",
                2,
                54,
                "`github.webhookUrl` is not an https:// URL",
            ),
        ),
        case(
            "git branch name",
            "build:",
            "pipeline: { github: { owner: o, repo: r, branch: \"a..b\" } }\nbuild:",
            (
                "pipeline.github.branch",
                2,
                50,
                "`github.branch` is not a valid git branch name: the name cannot contain repeated dots",
            ),
        ),
        case(
            "branch read as an option",
            "build:",
            "pipeline: { github: { owner: o, repo: r, branch: \"--upload-pack=x\" } }\nbuild:",
            (
                "pipeline.github.branch",
                2,
                50,
                "`github.branch` is not a valid git branch name: it starts with `-`",
            ),
        ),
        case(
            "Argo expression in a rendered value",
            "build:",
            "pipeline: { cluster: { name: \"c{{workflow.name}}\" } }\nbuild:",
            (
                "pipeline.cluster.name",
                2,
                30,
                "`pipeline.cluster.name` contains `{{`, which Argo would evaluate as an expression",
            ),
        ),
        case(
            "resource quantity",
            "build:",
            "pipeline: { resources: { memory: 2GB } }\nbuild:",
            (
                "pipeline.resources.memory",
                2,
                34,
                "`resources.memory` `2GB` is not a Kubernetes quantity",
            ),
        ),
        case(
            "AWS access key",
            "path: lib/network.ts",
            format!("path: lib/{AKIA}.ts"),
            (
                "environments[0].stacks[0].path",
                9,
                32,
                "`environments[0].stacks[0].path` contains an AWS access key ID",
            ),
        ),
        case(
            "GitHub token",
            r#"["npm ci"]"#,
            format!("[\"curl -H 'Authorization: token {GHP}'\"]"),
            (
                "build.commands[0]",
                3,
                14,
                "`build.commands[0]` contains a GitHub token",
            ),
        ),
        case(
            "private key",
            r#"["npm ci"]"#,
            "[\"echo '-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXk\\n-----END OPENSSH PRIVATE KEY-----' > k\"]",
            (
                "build.commands[0]",
                3,
                14,
                "`build.commands[0]` contains a private key",
            ),
        ),
        case(
            "password argument",
            r#"["npm ci"]"#,
            r#"["psql --password=hunter2"]"#,
            (
                "build.commands[0]",
                3,
                14,
                "`build.commands[0]` contains a password",
            ),
        ),
        case(
            "credential in a comment",
            "  - name: dev",
            format!("  # token {GHP}\n  - name: dev"),
            (
                "",
                5,
                11,
                "line 5 contains a GitHub token (outside any value, e.g. in a comment)",
            ),
        ),
        Case {
            count: 2,
            ..case(
                "password field",
                "region: us-east-1",
                "region: us-east-1\n    password: hunter2",
                (
                    "environments[0].password",
                    7,
                    15,
                    "`environments[0].password` contains a password",
                ),
            )
        },
        Case {
            count: 2,
            ..case(
                "secret access key",
                "region: us-east-1",
                "region: us-east-1\n    awsSecretAccessKey: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                (
                    "environments[0].awsSecretAccessKey",
                    7,
                    25,
                    "`environments[0].awsSecretAccessKey` contains an AWS secret access key",
                ),
            )
        },
        case(
            "YAML syntax",
            "region: us-east-1",
            "region: [us-east-1",
            (
                "",
                7,
                12,
                "invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence that starts on line 6)",
            ),
        ),
        case(
            "duplicate keys",
            "region: us-east-1",
            "region: us-east-1\n    region: us-east-2",
            ("", 7, 5, "invalid YAML: duplicate key `region` (first on line 6)"),
        ),
        case(
            "risk gates: statefulTypes not empty",
            "region: us-east-1",
            "region: us-east-1\n    riskGates: { statefulTypes: [] }",
            (
                "environments[0].riskGates.statefulTypes",
                7,
                33,
                "`statefulTypes` is empty, so no replacement would ever be gated",
            ),
        ),
        case(
            "risk gates: timeout is a duration",
            "region: us-east-1",
            "region: us-east-1\n    riskGates: { timeout: 1d }",
            (
                "environments[0].riskGates.timeout",
                7,
                27,
                "`timeout` is not in the expected form",
            ),
        ),
        case(
            "risk gates: timeout within the run's 24 hours",
            "region: us-east-1",
            "region: us-east-1\n    riskGates: { timeout: 25h }",
            (
                "environments[0].riskGates.timeout",
                7,
                27,
                "`timeout` is longer than the 24 hours a run may last, so the run would end before the gate does",
            ),
        ),
        case(
            "risk gates: a check is allow, approve or deny",
            "region: us-east-1",
            "region: us-east-1\n    riskGates: { iam: ask }",
            (
                "environments[0].riskGates.iam",
                7,
                23,
                "`iam` has a value that is not allowed",
            ),
        ),
    ]
}

#[test]
fn each_rule_reports_its_problem_at_its_place() {
    let cases = cases();
    assert!(cases.len() >= 40);
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            std::panic::catch_unwind(|| check(c))
                .err()
                .map(|_| c.rule.to_owned())
        })
        .collect();
    assert!(failed.is_empty(), "failed rules: {failed:?}");
}

#[test]
fn secrets_are_never_echoed() {
    for c in cases().iter().filter(|c| c.want.3.contains(" contains ")) {
        let src = BASE.replacen(c.from, &c.to, 1);
        let diags = load_str("aphex-config.yaml", &src).unwrap_err();
        let text = format!(
            "{}{}",
            aphex_config::render(&diags, &src),
            aphex_config::to_json(&diags)
        );
        for secret in [
            AKIA,
            GHP,
            "hunter2",
            "b3BlbnNzaC1rZXk",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ] {
            assert!(
                !text.contains(secret),
                "rule `{}` echoed a secret:\n{text}",
                c.rule
            );
        }
    }
}

#[test]
fn quote_it_keeps_the_digits_as_written() {
    for (written, suggested) in [("012345678901", "012345678901"), ("123456789012", "123456789012")] {
        let src = BASE.replacen("\"123456789012\"", written, 1);
        let diags = load_str("f", &src).unwrap_err();
        assert_eq!(
            diags[0].help.as_deref(),
            Some(format!("quote it: `account: \"{suggested}\"` (quotes keep leading zeros)").as_str())
        );
    }
}

#[test]
fn every_problem_in_one_run() {
    let src = BASE
        .replacen("version: \"1.0\"", "version: \"2\"", 1)
        .replacen("region: us-east-1", "regoin: us-east-1", 1)
        .replacen("\"123456789012\"", "123456789012", 1)
        .replacen("[Network]", "[Nope]", 1);
    let diags = load_str("f.yaml", &src).unwrap_err();
    let paths: Vec<&str> = diags.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "version",
            "environments[0].region",
            "environments[0].regoin",
            "environments[0].account",
            "environments[0].stacks[1].dependsOn[0]"
        ]
    );
}

#[test]
fn seed_example_and_every_partition_validate() {
    let seed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/seed/aphex-config.yaml"
    ))
    .unwrap();
    let config = load_str("seed", &seed).unwrap();
    assert_eq!(config.environments.len(), 3);
    for region in [
        "us-gov-west-1",
        "us-gov-east-1",
        "cn-north-1",
        "cn-northwest-1",
        "il-central-1",
        "eusc-de-east-1",
        "us-isob-east-1",
        "mx-central-1",
    ] {
        let src = BASE.replacen("us-east-1", region, 1);
        assert!(load_str("f", &src).is_ok(), "{region} is a region");
    }
}

#[test]
fn hostile_input_is_rejected_with_a_clear_error() {
    let alias_bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n";
    let deep_flow = "[".repeat(100_000);
    let deep_block: String = (0..200).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
    let huge = format!(
        "version: \"1.0\"\n#{}\n",
        "x".repeat(aphex_config::MAX_FILE_BYTES)
    );
    let inputs: Vec<(&str, Vec<u8>, &str)> = vec![
        ("alias bomb", alias_bomb.into(), "invalid YAML"),
        ("deep flow nesting", deep_flow.into(), "invalid YAML"),
        ("deep block nesting", deep_block.into(), "invalid YAML"),
        ("huge file", huge.into(), "larger than 2 MiB"),
        ("binary", vec![0x7f, b'E', b'L', b'F', 0, 1, 2], "NUL byte"),
        (
            "invalid UTF-8",
            b"version: \"1.0\"\nbuild: \xff\xfe\n".to_vec(),
            "not valid UTF-8",
        ),
        ("empty", Vec::new(), "the file is empty"),
        ("not a mapping", b"- 1\n- 2\n".to_vec(), "must be a mapping"),
    ];
    for (what, bytes, want) in inputs {
        // How fast this is belongs to `cargo xtask bench` (hostile inputs), not to a test.
        let diags: Vec<Diagnostic> = load_bytes("f", &bytes).expect_err(what);
        assert!(
            diags.iter().any(|d| d.message.contains(want)),
            "{what}: {diags:#?}"
        );
    }
}

/// Inputs shaped to make a careless validator quadratic or chatty: each is
/// rejected with bounded output and never echoes a credential. Their timing
/// is measured by `cargo xtask bench`, not asserted here.
#[test]
fn large_hostile_configs_stay_fast_and_bounded() {
    let head = "version: \"1.0\"\nbuild: {commands: [x]}\nenvironments:\n  - {name: dev, region: us-east-1, account: \"123456789012\", stacks: [\n";
    let chain: String = (0..20_000)
        .map(|i| format!("    {{name: s{i}, path: p, dependsOn: [s{}]}},\n", i.max(1) - 1))
        .collect();
    let missing: String = (0..20_000)
        .map(|i| format!("    {{name: s{i}, path: p, dependsOn: [nope{i}]}},\n"))
        .collect();
    let unknown_keys: String = (0..60_000).map(|i| format!("k{i}: 1\n")).collect();
    let numbers: String = (0..20_000)
        .map(|i| format!("  - {{name: e{i}, region: us-east-1, account: {i}, stacks: []}}\n"))
        .collect();
    let tokens: String = (0..20_000).map(|i| format!("  - AKIA{i:016}\n")).collect();
    let inputs = [
        ("long chain with a cycle", format!("{head}{chain}]}}\n")),
        ("many unknown dependsOn", format!("{head}{missing}]}}\n")),
        ("many unknown keys", unknown_keys),
        (
            "many numeric accounts",
            format!("version: \"1.0\"\nbuild: {{commands: [x]}}\nenvironments:\n{numbers}"),
        ),
        (
            "many credentials",
            format!("version: \"1.0\"\nenvironments: []\nbuild:\n commands:\n{tokens}"),
        ),
    ];
    for (what, src) in inputs {
        assert!(
            src.len() < aphex_config::MAX_FILE_BYTES,
            "{what} fits the size limit"
        );
        let diags = load_str("f", &src).expect_err(what);
        assert!(
            diags.len() <= aphex_config::MAX_DIAGNOSTICS + 1,
            "{what}: {} diagnostics",
            diags.len()
        );
        let shown = aphex_config::render(&diags, &src);
        assert!(!shown.contains("AKIA0000"), "{what} echoed a key");
    }
}

#[test]
fn environments_arriving_through_a_merge_get_every_rule() {
    // Environments are checked as the parser closes each one; those that
    // arrive through a `<<` merge are checked after parsing instead. Both
    // ways must report the same problems, each once.
    let direct = BASE
        .replacen("\"123456789012\"", "\"12345\"", 1)
        .replacen("[Network]", "[Nope]", 1)
        .replacen("name: dev", "name: Dev_1", 1);
    let (head, rest) = direct.split_once("environments:\n").unwrap();
    let indented: String = rest.lines().map(|l| format!("  {l}\n")).collect();
    let merged = format!("{head}<<:\n  environments:\n{indented}");
    let summary = |src: &str| {
        let mut d: Vec<(String, String)> = load_str("f.yaml", src)
            .unwrap_err()
            .into_iter()
            .map(|d| (d.path, d.message))
            .collect();
        d.sort();
        d
    };
    let (a, b) = (summary(&direct), summary(&merged));
    assert_eq!(a.len(), 3, "{a:#?}");
    assert_eq!(a, b);
}
