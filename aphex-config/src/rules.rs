//! The semantic rules of DESIGN §3, checked on the positioned tree so that
//! they run even where the schema already failed (every problem in one run).
//! Each rule is tolerant of missing or mistyped fields: the schema reports
//! those.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use regex::Regex;

use crate::Diagnostic;
use crate::graph::StackGraph;
use crate::model::{
    ACCOUNT_PATTERN, CONFIG_VERSION, DNS_LABEL_PATTERN, MAX_ENVIRONMENT_NAME, MAX_PIPELINE_NAME,
    REGION_PATTERN,
};
use crate::secrets;
use crate::suggest::did_you_mean;
use crate::tree::{Node, Path, Pos, Seg, Value};

/// Regions AWS has announced, used for "did you mean" (any identifier of the
/// right shape in a known partition is accepted, so new regions work before
/// this list learns them).
pub const KNOWN_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
    "us-gov-east-1",
    "us-gov-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "us-iso-east-1",
    "us-iso-west-1",
    "us-isob-east-1",
    "us-isof-south-1",
    "us-isof-east-1",
    "eu-isoe-west-1",
    "eusc-de-east-1",
];

// Each pattern compiles on first use: most files never need most of them,
// and compiling them all cost every `aphex` command about a millisecond.
struct Res {
    dns_label: LazyLock<Regex>,
    dns_subdomain: LazyLock<Regex>,
    account: LazyLock<Regex>,
    region: LazyLock<Regex>,
    role_arn: LazyLock<Regex>,
    bucket: LazyLock<Regex>,
    gh_owner: LazyLock<Regex>,
    gh_repo: LazyLock<Regex>,
    gh_server: LazyLock<Regex>,
    web_base: LazyLock<Regex>,
    gh_login: LazyLock<Regex>,
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid rule pattern")
}

static RES: Res = Res {
    dns_label: LazyLock::new(|| re(DNS_LABEL_PATTERN)),
    dns_subdomain: LazyLock::new(|| re(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")),
    account: LazyLock::new(|| re(ACCOUNT_PATTERN)),
    region: LazyLock::new(|| re(REGION_PATTERN)),
    role_arn: LazyLock::new(|| {
        re(r"^arn:aws(-cn|-us-gov|-iso|-iso-[a-z]|-eusc)?:iam::[0-9]{12}:role/[\w+=,.@/-]+$")
    }),
    bucket: LazyLock::new(|| re(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")),
    gh_owner: LazyLock::new(|| re(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,38})$")),
    gh_repo: LazyLock::new(|| re(r"^[A-Za-z0-9._-]{1,100}$")),
    // A host (and port, and path prefix): every stage clones from it, so no
    // credentials, query, `{` or anything git could read as an option.
    gh_server: LazyLock::new(|| {
        re(r"^https://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[A-Za-z0-9._~-]+)*/?$")
    }),
    // The same shape over http or https (the Argo UI; a GitHub API behind
    // a loopback proxy): links go into Slack text and commit statuses, so
    // nothing Slack reads as markup (`<`, `>`, `|`) and no query.
    web_base: LazyLock::new(|| {
        re(r"^https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[A-Za-z0-9._~-]+)*/?$")
    }),
    // A GitHub login, or a GitHub App's bot (`dependabot[bot]`).
    gh_login: LazyLock::new(|| re(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}(\[bot\])?$")),
};

fn res() -> &'static Res {
    &RES
}

/// Collects diagnostics for one file.
pub(crate) struct Checker<'a> {
    file: &'a str,
    source: &'a str,
    pub(crate) out: Vec<Diagnostic>,
    /// Credential findings, kept apart: they never hide a schema error at the
    /// same path (an unknown `password:` field is reported as both).
    pub(crate) credentials: Vec<Diagnostic>,
    /// Secrets found in values (for de-duplicating the raw-text scan and
    /// scrubbing every message). Never printed.
    pub(crate) secrets: Vec<String>,
    /// Byte offset of each line's start, for positions and source tokens
    /// (made when first needed: only problems need it).
    line_starts: std::cell::OnceCell<Vec<usize>>,
    /// Whether values need the text search (see [`Checker::new`]).
    scan_values: bool,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(file: &'a str, source: &'a str) -> Self {
        Checker {
            file,
            source,
            out: Vec::new(),
            credentials: Vec::new(),
            secrets: Vec::new(),
            // Text patterns can only match a value if they match the text it
            // is written in (or the value was written with escapes); checking
            // once saves a search per value.
            scan_values: source.contains('\\') || secrets::any_in_text(source),
            line_starts: std::cell::OnceCell::new(),
        }
    }

    fn line_starts(&self) -> &[usize] {
        self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(self.source.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        })
    }

    pub(crate) fn push(&mut self, path: &Path, pos: Pos, message: String, help: impl Into<Option<String>>) {
        self.out.push(Diagnostic {
            path: path.to_string(),
            file: self.file.to_owned(),
            line: pos.line,
            column: pos.column,
            message,
            help: help.into(),
        });
    }

    /// The token starting at `pos` as written in the source (for "quote it" help).
    fn raw_token(&self, pos: Pos) -> Option<&'a str> {
        let starts = self.line_starts();
        let start = *starts.get(pos.line.checked_sub(1)?)?;
        let end = starts.get(pos.line).map_or(self.source.len(), |e| e - 1);
        let line = self.source.get(start..end)?;
        let start = line.char_indices().nth(pos.column.checked_sub(1)?)?.0;
        let rest = &line[start..];
        let end = rest.find([' ', '\t', ',', ']', '}', '#']).unwrap_or(rest.len());
        Some(&rest[..end]).filter(|t| !t.is_empty())
    }

    /// Every rule, on the whole document.
    pub(crate) fn check(&mut self, root: &Node) {
        let top = Path::root();
        self.version(root);
        if let Some(p) = root.get("pipeline") {
            self.pipeline(&top.key("pipeline"), p);
        }
        if let Some(b) = root.get("build") {
            let path = top.key("build");
            if let Some(c) = b.get("commands") {
                self.commands(&path.key("commands"), c, true);
            }
            if let Some(a) = b.get("artifacts") {
                self.commands(&path.key("artifacts"), a, false);
            }
        }
        if let Some(envs) = root.get("environments") {
            self.environments(&top.key("environments"), envs);
        }
        self.credentials(&mut Vec::new(), root, "");
        self.credentials_in_comments();
    }

    fn version(&mut self, root: &Node) {
        let Some(v) = root.get("version") else { return };
        let path = Path::root().key("version");
        match &v.value {
            Value::Str(s) if s == CONFIG_VERSION => {}
            Value::Str(s) => self.push(
                &path,
                v.pos,
                format!("unsupported configuration version `{s}`"),
                format!(
                    "this release reads version \"{CONFIG_VERSION}\"; write `version: \"{CONFIG_VERSION}\"`"
                ),
            ),
            Value::Int(_) | Value::Float(_) => self.push(
                &path,
                v.pos,
                "`version` is a YAML number, not a string".to_owned(),
                format!("quote it: `version: \"{CONFIG_VERSION}\"`"),
            ),
            _ => {}
        }
    }

    /// A list of commands (or paths): not empty when `required`, no blank entries.
    fn commands(&mut self, path: &Path, list: &Node, required: bool) {
        let Value::Seq(items) = &list.value else { return };
        if items.is_empty() {
            let (message, help) = if required {
                (
                    format!("`{path}` is empty"),
                    "add at least one command, e.g. [\"npm ci\", \"npm run build\"]".to_owned(),
                )
            } else {
                (
                    format!("`{path}` is empty"),
                    format!("list at least one path, or remove `{path}`"),
                )
            };
            self.push(path, list.pos, message, help);
        }
        for (i, item) in items.iter().enumerate() {
            if item.as_str().is_some_and(|s| s.trim().is_empty()) {
                self.push(
                    &path.index(i),
                    item.pos,
                    format!("`{}` is blank", path.index(i)),
                    "write a command here, or remove the entry".to_owned(),
                );
            }
        }
    }

    fn non_blank(&mut self, path: &Path, node: &Node) {
        if is_blank(node) {
            self.push(
                path,
                node.pos,
                format!("`{path}` is blank"),
                "give it a value, or remove the line".to_owned(),
            );
        }
    }

    fn pipeline(&mut self, path: &Path, p: &Node) {
        let r = res();
        if let Some(n) = p.get("name")
            && let Some(name) = n.as_str()
        {
            self.dns_label(
                &path.key("name"),
                n,
                name,
                MAX_PIPELINE_NAME,
                "pipeline name",
                "it prefixes every resource",
            );
        }
        for key in ["namespace", "eventsNamespace"] {
            if let Some(n) = p.get(key)
                && let Some(v) = n.as_str()
            {
                self.dns_label(
                    &path.key(key),
                    n,
                    v,
                    63,
                    "namespace",
                    "Kubernetes namespaces are DNS labels",
                );
            }
        }
        if let Some(n) = p.get("serviceAccount") {
            self.k8s_name(&path.key("serviceAccount"), n, "service account");
        }
        if let Some(g) = p.get("github") {
            let gp = path.key("github");
            for key in ["tokenSecret", "webhookSecret"] {
                if let Some(n) = g.get(key) {
                    self.k8s_name(&gp.key(key), n, "Kubernetes Secret name");
                }
            }
            if let Some(n) = g.get("url")
                && let Some(v) = n.as_str()
                && !r.gh_server.is_match(v)
            {
                self.push(
                    &gp.key("url"),
                    n.pos,
                    "`github.url` is not the https:// URL of a GitHub server".to_owned(),
                    "write the server's address only, e.g. https://github.example.com (no user, query or repository path)"
                        .to_owned(),
                );
            }
            if let Some(n) = g.get("owner")
                && let Some(v) = n.as_str()
                && !r.gh_owner.is_match(v)
            {
                self.push(
                    &gp.key("owner"),
                    n.pos,
                    "`github.owner` is not a GitHub user or organization name".to_owned(),
                    "use letters, digits and '-', at most 39 characters (the part after github.com/)"
                        .to_owned(),
                );
            }
            if let Some(n) = g.get("repo")
                && let Some(v) = n.as_str()
                && !r.gh_repo.is_match(v)
            {
                self.push(
                    &gp.key("repo"),
                    n.pos,
                    "`github.repo` is not a GitHub repository name".to_owned(),
                    "use letters, digits, '.', '_' and '-' (the name only, not the URL)".to_owned(),
                );
            }
            if let Some(n) = g.get("apiUrl")
                && let Some(v) = n.as_str()
                && !(r.gh_server.is_match(v) || (r.web_base.is_match(v) && is_loopback_http(v)))
            {
                // The API gets the token: never in clear over a network.
                self.push(
                    &gp.key("apiUrl"),
                    n.pos,
                    "`github.apiUrl` is not the https:// URL of a GitHub API".to_owned(),
                    "write the API's address only, e.g. https://github.example.com/api/v3 \
                     (http:// only to 127.0.0.1 or localhost)"
                        .to_owned(),
                );
            }
            for (i, n) in g
                .get("ignoreSenders")
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                if let Some(v) = n.as_str()
                    && !r.gh_login.is_match(v)
                {
                    self.push(
                        &gp.key("ignoreSenders").index(i),
                        n.pos,
                        format!("`{v}` is not a GitHub login"),
                        "write the login as GitHub shows it: letters, digits and '-', at most 39, \
                         or an app's bot such as `github-actions[bot]`"
                            .to_owned(),
                    );
                }
            }
        }
        if let Some(n) = p.get("argoUrl")
            && let Some(v) = n.as_str()
            && !r.web_base.is_match(v)
        {
            self.push(
                &path.key("argoUrl"),
                n.pos,
                "`argoUrl` is not the http(s) URL of the Argo UI".to_owned(),
                "write the UI's address only, e.g. https://argo.example.com (no query)".to_owned(),
            );
        }
        if let Some(n) = p.get("notifications").and_then(|n| n.get("githubStatus"))
            && matches!(n.value, Value::Bool(true))
            && p.get("github").is_none()
        {
            self.push(
                &path.key("notifications").key("githubStatus"),
                n.pos,
                "`githubStatus` is true, but there is no `pipeline.github` to post commit statuses to"
                    .to_owned(),
                "add `pipeline.github` (owner and repo), or remove `githubStatus`".to_owned(),
            );
        }
        if let Some(c) = p.get("cluster")
            && let Some(n) = c.get("name")
        {
            self.non_blank(&path.key("cluster").key("name"), n);
        }
        if let Some(n) = p.get("notifications").and_then(|n| n.get("slackWebhookSecret")) {
            self.k8s_name(
                &path.key("notifications").key("slackWebhookSecret"),
                n,
                "Kubernetes Secret name",
            );
        }
        if let Some(a) = p.get("artifacts") {
            let ap = path.key("artifacts");
            if let Some(n) = a.get("bucket")
                && let Some(v) = n.as_str()
                && (!r.bucket.is_match(v) || v.contains(".."))
            {
                self.push(
                    &ap.key("bucket"),
                    n.pos,
                    "`artifacts.bucket` is not a valid S3 bucket name".to_owned(),
                    "use 3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
                        .to_owned(),
                );
            }
            if let Some(n) = a.get("retentionDays") {
                self.at_least_one(
                    &ap.key("retentionDays"),
                    n,
                    "artifacts are kept for at least a day",
                );
            }
        }
        crate::manifest_values::check(self, path, p);
    }

    fn at_least_one(&mut self, path: &Path, n: &Node, why: &str) {
        if let Value::Int(i) = n.value
            && i < 1
        {
            self.push(
                path,
                n.pos,
                format!(
                    "`{}` must be at least 1, found {i}",
                    crate::schema::field_name(path)
                ),
                format!("{why}; set it to 1 or more"),
            );
        }
    }

    fn k8s_name(&mut self, path: &Path, n: &Node, what: &str) {
        let Some(v) = n.as_str() else { return };
        if v.len() > 253 || !res().dns_subdomain.is_match(v) {
            self.push(
                path,
                n.pos,
                format!("`{}` is not a valid {what}", crate::schema::field_name(path)),
                "Kubernetes names use lowercase letters, digits, '-' and '.', e.g. `github-token`".to_owned(),
            );
        }
    }

    fn dns_label(&mut self, path: &Path, n: &Node, name: &str, max: usize, what: &str, why: &str) {
        if !res().dns_label.is_match(name) {
            let suggestion = sanitize_label(name);
            let help = if suggestion.is_empty() {
                "use lowercase letters, digits and '-', starting and ending with a letter or digit".to_owned()
            } else {
                format!(
                    "use lowercase letters, digits and '-', starting and ending with a letter or digit, e.g. `{suggestion}`"
                )
            };
            self.push(
                path,
                n.pos,
                format!("{what} `{name}` is not a lowercase DNS label"),
                help,
            );
        } else if name.len() > max {
            self.push(
                path,
                n.pos,
                format!(
                    "{what} `{name}` is {} characters long; the limit is {max}",
                    name.len()
                ),
                format!("shorten it: {why}"),
            );
        }
    }

    fn environments(&mut self, path: &Path, envs: &Node) {
        let Value::Seq(items) = &envs.value else { return };
        if items.is_empty() {
            self.push(
                path,
                envs.pos,
                "`environments` is empty".to_owned(),
                "add at least one environment with name, region, account and stacks".to_owned(),
            );
        }
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        for (i, env) in items.iter().enumerate() {
            let ep = path.index(i);
            if let Some(n) = env.get("name")
                && let Some(name) = n.as_str()
            {
                self.dns_label(
                    &ep.key("name"),
                    n,
                    name,
                    MAX_ENVIRONMENT_NAME,
                    "environment name",
                    "task names like `approve-<name>` must fit in 63 characters",
                );
                if let Some(first) = seen.get(name) {
                    self.push(
                        &ep.key("name"),
                        n.pos,
                        format!("duplicate environment name `{name}`"),
                        format!(
                            "environment names must be unique; `{name}` is first used on line {}",
                            first.line
                        ),
                    );
                } else {
                    seen.insert(name, n.pos);
                }
            }
            self.environment(&ep, env);
        }
    }

    fn environment(&mut self, path: &Path, env: &Node) {
        let r = res();
        if let Some(n) = env.get("account") {
            let ap = path.key("account");
            match &n.value {
                Value::Int(_) | Value::Float(_) => {
                    // The digits as written (leading zeros included); failing
                    // that, the number padded back to 12 digits.
                    let raw = self
                        .raw_token(n.pos)
                        .filter(|t| t.bytes().all(|b| b.is_ascii_digit()));
                    let padded = match (raw, &n.value) {
                        (Some(t), _) => t.to_owned(),
                        (None, Value::Int(i)) if (0..1_000_000_000_000).contains(i) => format!("{i:012}"),
                        _ => "123456789012".to_owned(),
                    };
                    self.push(
                        &ap,
                        n.pos,
                        "`account` is a YAML number; account IDs must be strings".to_owned(),
                        format!("quote it: `account: \"{padded}\"` (quotes keep leading zeros)"),
                    );
                }
                Value::Str(s) if !r.account.is_match(s) => self.push(
                    &ap,
                    n.pos,
                    format!("account ID `{s}` is not 12 digits"),
                    "write the 12-digit AWS account ID, quoted, e.g. `account: \"123456789012\"`".to_owned(),
                ),
                _ => {}
            }
        }
        if let Some(n) = env.get("region")
            && let Some(region) = n.as_str()
            && !r.region.is_match(region)
        {
            let help = match did_you_mean(region, KNOWN_REGIONS.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => {
                    "use a region identifier like `us-east-1`, `eu-west-2`, `us-gov-west-1` or `cn-north-1`"
                        .to_owned()
                }
            };
            self.push(
                &path.key("region"),
                n.pos,
                format!("`{region}` is not an AWS region"),
                help,
            );
        }
        if let Some(n) = env.get("roleArn")
            && let Some(arn) = n.as_str()
            && !r.role_arn.is_match(arn)
        {
            self.push(
                &path.key("roleArn"),
                n.pos,
                "`roleArn` is not an IAM role ARN".to_owned(),
                "write it like arn:aws:iam::123456789012:role/deployer".to_owned(),
            );
        }
        if let Some(n) = env.get("concurrency") {
            self.at_least_one(
                &path.key("concurrency"),
                n,
                "at least one stack deploys at a time",
            );
        }
        if let Some(n) = env.get("synth") {
            self.non_blank(&path.key("synth"), n);
        }
        if let Some(list) = env.get("requiredContext") {
            for (i, item) in list.items().iter().enumerate() {
                self.non_blank(&path.key("requiredContext").index(i), item);
            }
        }
        if let Some(h) = env.get("hooks") {
            for key in ["pre", "post"] {
                if let Some(list) = h.get(key) {
                    for (i, item) in list.items().iter().enumerate() {
                        self.non_blank(&path.key("hooks").key(key).index(i), item);
                    }
                }
            }
        }
        if let Some(c) = env.get("tests").and_then(|t| t.get("commands")) {
            self.commands(&path.key("tests").key("commands"), c, true);
        }
        if let Some(types) = env.get("riskGates").and_then(|g| g.get("statefulTypes"))
            && let Value::Seq(items) = &types.value
            && items.is_empty()
        {
            self.push(
                &path.key("riskGates").key("statefulTypes"),
                types.pos,
                "`statefulTypes` is empty, so no replacement would ever be gated".to_owned(),
                "to gate no replacement, write `replacement: allow`; to change the list, name the types (docs/configuration.md lists the default ones)".to_owned(),
            );
        }
        if let Some(timeout) = env.get("riskGates").and_then(|g| g.get("timeout"))
            && let Some(seconds) = timeout.as_str().and_then(crate::model::duration_seconds)
            && seconds > crate::model::RUN_DEADLINE_SECONDS
        {
            self.push(
                &path.key("riskGates").key("timeout"),
                timeout.pos,
                "`timeout` is longer than the 24 hours a run may last, so the run would end before the gate does"
                    .to_owned(),
                "set at most `24h` (the workflow's deadline); a gate nobody decides in time fails the environment".to_owned(),
            );
        }
        if let Some(stacks) = env.get("stacks") {
            let env_name = env.get("name").and_then(Node::as_str).unwrap_or("?");
            self.stacks(&path.key("stacks"), stacks, env_name);
        }
    }

    fn stacks(&mut self, path: &Path, stacks: &Node, env_name: &str) {
        let Value::Seq(items) = &stacks.value else { return };
        if items.is_empty() {
            self.push(
                path,
                stacks.pos,
                format!("environment `{env_name}` has no stacks"),
                "add at least one stack, e.g. `- { name: AppStack, path: lib/app-stack.ts }`".to_owned(),
            );
            return;
        }
        let names: Vec<Option<&str>> = items
            .iter()
            .map(|s| s.get("name").and_then(Node::as_str))
            .collect();
        // Name -> index of the first stack with it. This runs for every
        // environment, so one map serves the duplicate check, the `dependsOn`
        // lookups and the cycle check.
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(items.len());
        for (i, s) in items.iter().enumerate() {
            for key in ["name", "path"] {
                if let Some(n) = s.get(key)
                    && is_blank(n)
                {
                    self.non_blank(&path.index(i).key(key), n);
                }
            }
            let (Some(name), Some(n)) = (names[i], s.get("name")) else {
                continue;
            };
            match first.get(name) {
                Some(&f) => {
                    let line = items[f].get("name").map_or(items[f].pos, |n| n.pos).line;
                    self.push(
                        &path.index(i).key("name"),
                        n.pos,
                        format!("duplicate stack name `{name}` in environment `{env_name}`"),
                        format!(
                            "stack names must be unique in an environment; `{name}` is first used on line {line}"
                        ),
                    );
                }
                None => {
                    first.insert(name, i);
                }
            }
        }
        // "Must deploy before" edges between first stacks of each name;
        // unknown names are reported here and take no part.
        let mut edges = Vec::new();
        for (i, s) in items.iter().enumerate() {
            let Some(deps) = s.get("dependsOn") else { continue };
            let to = names[i].and_then(|n| first.get(n).copied());
            for (j, d) in deps.items().iter().enumerate() {
                let Some(dep) = d.as_str() else { continue };
                if let Some(&from) = first.get(dep) {
                    edges.extend(to.map(|to| (from, to)));
                    continue;
                }
                let stack = names[i].unwrap_or("?");
                // Suggestions compare against every name; bounded so a
                // hostile file with many stacks stays fast.
                let suggestion = if names.len() <= 500 {
                    did_you_mean(dep, names.iter().flatten().copied())
                } else {
                    None
                };
                let help = match suggestion {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!(
                        "dependsOn names stacks of the same environment: {}",
                        names
                            .iter()
                            .flatten()
                            .take(10)
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                self.push(
                    &path.index(i).key("dependsOn").index(j),
                    d.pos,
                    format!(
                        "stack `{stack}` depends on `{dep}`, which is not a stack of environment `{env_name}`"
                    ),
                    help,
                );
            }
        }
        if !crate::graph::is_acyclic(items.len(), edges) {
            self.cycle(path, items, &names);
        }
    }

    /// Reports the cycle (the graph has one): the slower, exact search that
    /// names its stacks runs only then.
    fn cycle(&mut self, path: &Path, items: &[Node], names: &[Option<&str>]) {
        // Only well-formed, uniquely named stacks take part; the other rules
        // report the rest.
        let mut seen = HashSet::new();
        let unique: Vec<&str> = names
            .iter()
            .flatten()
            .copied()
            .filter(|n| seen.insert(*n))
            .collect();
        let mut graph = StackGraph::new(unique.iter().copied());
        for (i, s) in items.iter().enumerate() {
            let Some(name) = names[i] else { continue };
            for d in s.get("dependsOn").map(Node::items).unwrap_or_default() {
                if let Some(dep) = d.as_str() {
                    // Unknown names were reported above.
                    let _ = graph.add_dependency(name, dep);
                }
            }
        }
        if let Some(cycle) = graph.find_cycle() {
            let first = &cycle[0];
            let i = names.iter().position(|n| *n == Some(first.as_str())).unwrap_or(0);
            let at = path.index(i).key("dependsOn");
            let pos = items[i].get("dependsOn").map_or(items[i].pos, |n| n.pos);
            self.push(
                &at,
                pos,
                format!("dependency cycle: {}", cycle.join(" -> ")),
                "stacks cannot depend on each other in a circle; remove one of these dependsOn entries"
                    .to_owned(),
            );
        }
    }

    /// Every string value and key in the document. The path is a stack of
    /// borrowed steps (pushed and popped), turned into a [`Path`] only for a
    /// finding: this walk visits every node, so it must not allocate per node.
    fn credentials<'t>(&mut self, path: &mut Vec<Step<'t>>, node: &'t Node, key: &str) {
        match &node.value {
            Value::Str(s) => self.credential_in(path, node.pos, key, s),
            Value::Int(i) if secrets::is_password_key(key) => {
                self.credential_in(path, node.pos, key, &i.to_string())
            }
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(Step::Index(i));
                    self.credentials(path, item, key);
                    path.pop();
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    path.push(Step::Key(&k.name));
                    self.credential_in(path, k.pos, "", &k.name);
                    self.credentials(path, v, &k.name);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    fn credential_in(&mut self, steps: &[Step<'_>], pos: Pos, key: &str, text: &str) {
        let findings = if self.scan_values {
            secrets::find_in_field(key, text)
        } else {
            secrets::find_by_key(key, text, false)
        };
        if findings.is_empty() {
            return;
        }
        let path = &Path(
            steps
                .iter()
                .map(|s| match s {
                    Step::Key(k) => Seg::Key((*k).to_owned()),
                    Step::Index(i) => Seg::Index(*i),
                })
                .collect(),
        );
        for f in findings {
            self.secrets.push(text[f.range].to_owned());
            let field = if path.0.is_empty() {
                "the document".to_owned()
            } else {
                format!("`{path}`")
            };
            self.push(
                path,
                pos,
                format!("{field} contains {}", f.kind),
                "never commit credentials: remove it, rotate it, and let the pipeline get credentials from its \
                 role or a Kubernetes Secret"
                    .to_owned(),
            );
            self.credentials.extend(self.out.pop());
        }
    }

    /// Token-shaped secrets in the raw text that no value holds: comments.
    fn credentials_in_comments(&mut self) {
        // The same secret as a value holds, compared without the indentation
        // and escapes that YAML adds around multi-line text.
        let bare = |s: &str| s.replace("\\n", "").replace(char::is_whitespace, "");
        let held: HashSet<String> = self.secrets.iter().map(|s| bare(s)).collect();
        let mut found = Vec::new();
        for f in secrets::find_tokens(self.source) {
            let secret = &self.source[f.range.clone()];
            let raw = bare(secret);
            // Exact match first; the containment scan only on small files.
            let dup = held.contains(&raw)
                || (held.len() <= 100
                    && held
                        .iter()
                        .any(|s| !s.is_empty() && (s.contains(&raw) || raw.contains(s.as_str()))));
            if !dup {
                found.push((f, secret.to_owned()));
            }
        }
        for (f, secret) in found {
            let line = self.line_starts().partition_point(|s| *s <= f.range.start);
            let start = self.line_starts()[line - 1];
            let column = self.source[start..f.range.start].chars().count() + 1;
            self.secrets.push(secret);
            self.push(
                &Path::root(),
                Pos { line, column },
                format!(
                    "line {line} contains {} (outside any value, e.g. in a comment)",
                    f.kind
                ),
                "never commit credentials, not even in comments: remove it and rotate it".to_owned(),
            );
            self.credentials.extend(self.out.pop());
        }
    }
}

/// One step of a borrowed path (see [`Checker::credentials`]).
#[derive(Clone, Copy)]
enum Step<'t> {
    Key(&'t str),
    Index(usize),
}

/// A string of only whitespace (an empty value is a mistake, not a default).
/// Whether an `http://` URL names this machine (`127.0.0.1` or
/// `localhost`): the only place a token may travel unencrypted.
fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    host == "localhost" || host == "127.0.0.1"
}

fn is_blank(node: &Node) -> bool {
    node.as_str().is_some_and(|s| s.trim().is_empty())
}

/// `name` made into a DNS label, when something is left of it.
fn sanitize_label(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.trim_matches('-')
        .chars()
        .take(MAX_ENVIRONMENT_NAME)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}
