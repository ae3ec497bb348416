//! Tidy checks that keep the architecture honest: pure crates stay pure
//! (in their dependencies and in what their sources use), dependencies
//! point one way, test fakes stay behind the `test-util` feature, the
//! binaries' command modules stay thin, aphex-stages's public modules are
//! the documented ones, and every source file says what it owns.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// `cargo metadata` of the workspace, for the host platform.
fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The host platform only: other platforms' crates are never downloaded, and
    // a test must not reach the network.
    let host = host_triple(&cargo);
    let out = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            &host,
        ])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// Normal (non-dev, non-build) dependency closure of every workspace package, from `cargo metadata`.
fn dependency_closures() -> BTreeMap<String, BTreeSet<String>> {
    let meta = metadata();
    let name_of: BTreeMap<String, String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut direct: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let id = node["id"].as_str().unwrap().to_owned();
        let deps = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| d["pkg"].as_str().unwrap().to_owned())
            .collect();
        direct.insert(id, deps);
    }
    let members: Vec<String> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    members
        .iter()
        .map(|m| {
            let mut seen = BTreeSet::new();
            let mut stack = vec![m.clone()];
            while let Some(id) = stack.pop() {
                for d in direct.get(&id).into_iter().flatten() {
                    if seen.insert(d.clone()) {
                        stack.push(d.clone());
                    }
                }
            }
            (
                name_of[m].clone(),
                seen.into_iter().map(|id| name_of[&id].clone()).collect(),
            )
        })
        .collect()
}

#[test]
fn pure_crates_have_no_async_or_io_dependencies() {
    let closures = dependency_closures();
    for pure in ["aphex-config", "aphex-template"] {
        let deps = &closures[pure];
        let bad: Vec<&String> = deps
            .iter()
            .filter(|d| {
                d.as_str() == "tokio" || is_aws_sdk(d) || d.starts_with("kube") || d.as_str() == "reqwest"
            })
            .collect();
        assert!(
            bad.is_empty(),
            "{pure} must stay pure (no IO or async crates) but depends on {bad:?}"
        );
    }
}

#[test]
fn dependencies_point_one_way() {
    let closures = dependency_closures();
    let forbidden: &[(&str, &[&str])] = &[
        (
            "aphex-config",
            &[
                "aphex-template",
                "aphex-stages",
                "aphex-aws",
                "aphex-k8s",
                "aphex-adapters",
            ],
        ),
        (
            "aphex-template",
            &["aphex-stages", "aphex-aws", "aphex-k8s", "aphex-adapters"],
        ),
        ("aphex-stages", &["aphex-aws", "aphex-k8s", "aphex-adapters"]),
        ("aphex-aws", &["aphex-k8s", "aphex-adapters"]),
        ("aphex-k8s", &["aphex-aws", "aphex-adapters"]),
    ];
    for (krate, not) in forbidden {
        for n in *not {
            assert!(!closures[*krate].contains(*n), "{krate} must not depend on {n}");
        }
    }
    // xtask (developer automation, never shipped) benchmarks deploys
    // through aphex-testkit's fault proxy, and aphex-tests is a test crate
    // whose shared helpers (tests/src) use it; nothing else may.
    for (krate, deps) in closures
        .iter()
        .filter(|(k, _)| !["xtask", "aphex-tests"].contains(&k.as_str()))
    {
        assert!(
            !deps.contains("aphex-testkit"),
            "{krate} depends on aphex-testkit outside [dev-dependencies]: it is for tests only"
        );
    }
    let bad: Vec<&String> = closures["aphex-stages"]
        .iter()
        .filter(|d| is_aws_sdk(d) || d.starts_with("kube"))
        .collect();
    assert!(
        bad.is_empty(),
        "aphex-stages must not depend on AWS or kube crates: {bad:?}"
    );
}

/// The library crates and binaries, whose sources ship.
const SHIPPED: [&str; 8] = [
    "aphex-config",
    "aphex-template",
    "aphex-stages",
    "aphex-aws",
    "aphex-k8s",
    "aphex-adapters",
    "aphex-cli",
    "aphex-runner",
];

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let root = workspace_root();
    let mut missing = Vec::new();
    for krate in SHIPPED.into_iter().chain(["xtask", "tests", "testkit"]) {
        for entry in walk(&root.join(krate)) {
            let text = std::fs::read_to_string(&entry).unwrap();
            if !text.trim_start().starts_with("//!") {
                missing.push(entry.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "these files must open with a `//!` doc saying what they own: {missing:#?}"
    );
}

/// `aphex-config` and `aphex-template` are pure: they start no thread and no
/// process, and touch no file but the one `aphex_config::read_file` is
/// given (the loader's one entry point that reads). Their sources are read
/// as Rust tokens, so comments and strings never count.
#[test]
fn pure_crates_start_no_threads_or_processes_and_read_only_the_given_file() {
    let root = workspace_root();
    let mut found = Vec::new();
    for krate in ["aphex-config", "aphex-template"] {
        for file in walk(&root.join(krate).join("src")) {
            let name = file.strip_prefix(&root).unwrap().display().to_string();
            let text = std::fs::read_to_string(&file).unwrap();
            let tokens: proc_macro2::TokenStream = text
                .parse()
                .unwrap_or_else(|e| panic!("{name} does not lex as Rust: {e:?}"));
            for (module, line, function) in std_modules_used(tokens, None) {
                found.push((name.clone(), line, module, function));
            }
        }
    }
    let (entry, bad): (Vec<_>, Vec<_>) = found.into_iter().partition(|(file, _, module, function)| {
        file == "aphex-config/src/lib.rs" && module == "fs" && function.as_deref() == Some("read_file")
    });
    assert!(
        bad.is_empty(),
        "pure crates must not use std::thread, std::process or std::fs (only aphex_config::read_file \
         reads a file); found (file, line, module, function): {bad:#?}"
    );
    assert!(
        !entry.is_empty(),
        "the scan finds read_file's std::fs in aphex-config/src/lib.rs; if it moved, update this test"
    );
}

/// Test fakes are built only for tests: every fake module of a shipped
/// crate is `#[cfg(feature = "test-util")]`, no crate turns a `test-util`
/// feature on outside its `[dev-dependencies]`, and what only aphex-k8s's
/// fake API server uses is an optional dependency of that feature.
#[test]
fn test_fakes_are_built_only_for_tests() {
    let root = workspace_root();
    let (mut gated, mut ungated) = (Vec::new(), Vec::new());
    for krate in SHIPPED {
        for file in walk(&root.join(krate).join("src")) {
            let name = file.strip_prefix(&root).unwrap().display().to_string();
            for (module, line, is_gated) in fake_modules(lex(&file, &name)) {
                let place = format!("{name}:{line}: mod {module}");
                if is_gated {
                    gated.push(place)
                } else {
                    ungated.push(place)
                }
            }
        }
    }
    assert!(
        ungated.is_empty(),
        "test fakes must be built only with the crate's `test-util` feature: put \
         #[cfg(feature = \"test-util\")] on {ungated:#?}"
    );
    for lib in ["aphex-k8s/src/lib.rs", "aphex-stages/src/lib.rs"] {
        assert!(
            gated.iter().any(|g| g.starts_with(lib)),
            "the scan finds the `mod fake` of {lib} (found {gated:?}); if it moved, update this test"
        );
    }

    let meta = metadata();
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let mut enabled = Vec::new();
    let mut fake_only_deps = BTreeMap::new();
    for package in meta["packages"].as_array().unwrap() {
        if !members.contains(package["id"].as_str().unwrap()) {
            continue;
        }
        let krate = package["name"].as_str().unwrap();
        for dep in package["dependencies"].as_array().unwrap() {
            let normal = dep["kind"].is_null();
            let dep_name = dep["name"].as_str().unwrap();
            if normal
                && dep["features"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f == "test-util")
            {
                enabled.push(format!("{krate} -> {dep_name}"));
            }
            if krate == "aphex-k8s" && normal && ["tower", "hyper", "hyper-util"].contains(&dep_name) {
                fake_only_deps.insert(dep_name.to_owned(), dep["optional"].as_bool().unwrap());
            }
        }
    }
    assert!(
        enabled.is_empty(),
        "`test-util` is for tests: turn it on in [dev-dependencies] only, not in {enabled:?}"
    );
    assert_eq!(
        fake_only_deps.keys().map(String::as_str).collect::<Vec<_>>(),
        ["hyper", "hyper-util", "tower"],
        "aphex-k8s's normal dependencies name its fake's"
    );
    let required: Vec<&String> = fake_only_deps
        .iter()
        .filter(|(_, optional)| !**optional)
        .map(|(d, _)| d)
        .collect();
    assert!(
        required.is_empty(),
        "aphex-k8s needs {required:?} only for its fake API server: make them optional under `test-util`"
    );
}

/// The most lines of logic (not comments, docs, blank lines or unit tests)
/// one command module of a binary may hold: a command parses, calls a
/// library, formats. 400 is about what the largest CLI command holds today.
const COMMAND_MODULE_LINES: usize = 400;

/// The binaries stay thin: no command module of `aphex`
/// (`aphex-cli/src/commands/`) or of `aphex-runner` holds more than
/// [`COMMAND_MODULE_LINES`] lines of logic.
#[test]
fn command_modules_stay_thin() {
    let root = workspace_root();
    let mut sizes = BTreeMap::new();
    for dir in ["aphex-cli/src/commands", "aphex-runner/src"] {
        for file in walk(&root.join(dir)) {
            let name = file.strip_prefix(&root).unwrap().display().to_string();
            sizes.insert(name.clone(), logic_lines(lex(&file, &name)).len());
        }
    }
    assert!(
        sizes.contains_key("aphex-cli/src/commands/run.rs") && sizes.contains_key("aphex-runner/src/main.rs"),
        "the scan reads the command modules; if they moved, update this test: {sizes:?}"
    );
    let over: Vec<(&String, &usize)> = sizes.iter().filter(|(_, n)| **n > COMMAND_MODULE_LINES).collect();
    assert!(
        over.is_empty(),
        "command modules hold at most {COMMAND_MODULE_LINES} lines of logic (move the logic into a \
         library crate): {over:?}"
    );
}

/// aphex-stages's public modules are a reviewed decision: the `pub mod`s
/// reachable from its `lib.rs` (a `pub mod` inside a public module counts,
/// `stages::deploy`; one inside a private module does not) are exactly the
/// list docs/architecture.md keeps under "Public modules" in the
/// aphex-stages section. A new public module changes both, in one review.
#[test]
fn stages_public_modules_are_the_documented_ones() {
    let root = workspace_root();
    let src = root.join("aphex-stages/src");
    let mut in_code = BTreeSet::new();
    let mut parents = vec![(String::new(), src.join("lib.rs"))];
    while let Some((path, file)) = parents.pop() {
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        for module in public_modules(lex(&file, &name)) {
            let full = if path.is_empty() {
                module.clone()
            } else {
                format!("{path}::{module}")
            };
            // A module's file: `<dir>/<module>.rs` or `<dir>/<module>/mod.rs`,
            // where `<dir>` is the parent's directory (`src/` for lib.rs,
            // `src/<parent path>/` otherwise).
            let dir = src.join(path.replace("::", "/"));
            let file = [dir.join(format!("{module}.rs")), dir.join(&module).join("mod.rs")]
                .into_iter()
                .find(|f| f.exists());
            if let Some(file) = file {
                parents.push((full.clone(), file));
            }
            in_code.insert(full);
        }
    }
    assert!(
        in_code.contains("ports") && in_code.contains("stages::deploy"),
        "the scan reads aphex-stages's modules; if they moved, update this test: {in_code:?}"
    );

    let architecture = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let documented = documented_public_modules(&architecture);
    assert!(
        !documented.is_empty(),
        "docs/architecture.md's aphex-stages section lists its public modules after a paragraph \
         starting \"Public modules\", one item per module (\"- `ports`: ...\")"
    );
    let undocumented: Vec<&String> = in_code.difference(&documented).collect();
    let gone: Vec<&String> = documented.difference(&in_code).collect();
    assert!(
        undocumented.is_empty() && gone.is_empty(),
        "aphex-stages's public modules must be the ones docs/architecture.md lists. Public but not \
         listed: {undocumented:?} (make it private or `pub(crate)`, or document why an embedder or \
         another crate needs it); listed but not public: {gone:?} (update the list)"
    );
}

/// The modules a file's top level declares `pub` (not `pub(crate)` or
/// private), by name.
fn public_modules(tokens: proc_macro2::TokenStream) -> Vec<String> {
    use proc_macro2::TokenTree;
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut found = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if matches!(token, TokenTree::Ident(id) if id == "pub")
            && matches!(tokens.get(i + 1), Some(TokenTree::Ident(id)) if id == "mod")
            && let Some(TokenTree::Ident(name)) = tokens.get(i + 2)
        {
            found.push(name.to_string());
        }
    }
    found
}

/// The module paths docs/architecture.md lists for aphex-stages: in the
/// section headed aphex-stages, the list after the paragraph starting
/// "Public modules", up to its end (a blank line); each item's first
/// backquoted word is a module path (`ports`, and nested items for
/// `stages::deploy`).
fn documented_public_modules(architecture: &str) -> BTreeSet<String> {
    let section = architecture
        .split("\n### ")
        .find(|s| s.starts_with("`aphex-stages`"))
        .unwrap_or_default();
    section
        .lines()
        .skip_while(|l| !l.starts_with("Public modules"))
        .skip_while(|l| !l.starts_with("- "))
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.trim_start().strip_prefix("- `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

/// `file`'s tokens; `name` is how a failure names it.
fn lex(file: &Path, name: &str) -> proc_macro2::TokenStream {
    let text = std::fs::read_to_string(file).unwrap();
    text.parse()
        .unwrap_or_else(|e| panic!("{name} does not lex as Rust: {e:?}"))
}

/// The attribute group after `#` (or `#!`) at `i`, and the index after it.
fn attribute_at(tokens: &[proc_macro2::TokenTree], i: usize) -> Option<(&proc_macro2::Group, usize)> {
    use proc_macro2::{Delimiter, TokenTree};
    if !matches!(&tokens[i], TokenTree::Punct(p) if p.as_char() == '#') {
        return None;
    }
    let at = if matches!(tokens.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == '!') {
        i + 2
    } else {
        i + 1
    };
    match tokens.get(at) {
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Bracket => Some((g, at + 1)),
        _ => None,
    }
}

/// An attribute's text without white space (`cfg(feature="test-util")`).
fn attribute_text(group: &proc_macro2::Group) -> String {
    group.stream().to_string().split_whitespace().collect()
}

/// The modules in `tokens` whose name says they are test fakes (`fake*`,
/// `mock*`), with their line and whether `#[cfg(feature = "test-util")]`
/// is among their attributes.
fn fake_modules(tokens: proc_macro2::TokenStream) -> Vec<(String, usize, bool)> {
    use proc_macro2::TokenTree;
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut found = Vec::new();
    // The attributes seen since the last item ended.
    let mut attributes: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if let Some((group, next)) = attribute_at(&tokens, i) {
            attributes.push(attribute_text(group));
            i = next;
            continue;
        }
        match &tokens[i] {
            TokenTree::Ident(id) if id == "mod" => {
                if let Some(TokenTree::Ident(name)) = tokens.get(i + 1) {
                    let name = name.to_string();
                    if name.starts_with("fake") || name.starts_with("mock") {
                        let gated = attributes.iter().any(|a| a == "cfg(feature=\"test-util\")");
                        found.push((name, tokens[i].span().start().line, gated));
                    }
                }
                attributes.clear();
            }
            // Visibility is part of the item the attributes belong to.
            TokenTree::Ident(id) if id == "pub" || id == "crate" => {}
            TokenTree::Group(group) if group.delimiter() == proc_macro2::Delimiter::Parenthesis => {}
            TokenTree::Group(group) => {
                found.extend(fake_modules(group.stream()));
                attributes.clear();
            }
            _ => attributes.clear(),
        }
        i += 1;
    }
    found
}

/// The lines that hold code in `tokens`: not comments or docs (doc
/// comments lex as `#[doc]` attributes), and not unit tests (an item under
/// `#[cfg(test)]`).
fn logic_lines(tokens: proc_macro2::TokenStream) -> BTreeSet<usize> {
    use proc_macro2::TokenTree;
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut lines = BTreeSet::new();
    let mut i = 0;
    while i < tokens.len() {
        if let Some((group, next)) = attribute_at(&tokens, i) {
            let text = attribute_text(group);
            i = next;
            if text == "cfg(test)" {
                // Skip the item: up to its body or its `;`.
                while let Some(t) = tokens.get(i) {
                    i += 1;
                    match t {
                        TokenTree::Group(g) if g.delimiter() == proc_macro2::Delimiter::Brace => break,
                        TokenTree::Punct(p) if p.as_char() == ';' => break,
                        _ => {}
                    }
                }
            } else if !text.starts_with("doc") {
                lines.insert(group.span_open().start().line);
                lines.extend(logic_lines(group.stream()));
            }
            continue;
        }
        match &tokens[i] {
            TokenTree::Group(group) => {
                lines.insert(group.span_open().start().line);
                lines.insert(group.span_close().start().line);
                lines.extend(logic_lines(group.stream()));
            }
            other => {
                lines.insert(other.span().start().line);
            }
        }
        i += 1;
    }
    lines
}

/// Where `tokens` name `std::thread`, `std::process` or `std::fs` (also in
/// `use std::{..}` groups): the module, its line, and the function whose
/// body holds it (`function` is the enclosing one).
fn std_modules_used(
    tokens: proc_macro2::TokenStream,
    function: Option<&str>,
) -> Vec<(String, usize, Option<String>)> {
    use proc_macro2::{Delimiter, TokenTree};
    const WATCHED: [&str; 3] = ["thread", "process", "fs"];
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let ident = |i: usize| match tokens.get(i) {
        Some(TokenTree::Ident(id)) => Some(id.to_string()),
        _ => None,
    };
    let punct = |i: usize, c: char| matches!(tokens.get(i), Some(TokenTree::Punct(p)) if p.as_char() == c);
    let mut found = Vec::new();
    // The `fn` whose body (its next brace group) comes next.
    let mut pending_fn: Option<String> = None;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Ident(id) if id == "fn" => pending_fn = ident(i + 1),
            TokenTree::Punct(p) if p.as_char() == ';' => pending_fn = None,
            TokenTree::Ident(id) if id == "std" && punct(i + 1, ':') && punct(i + 2, ':') => {
                match tokens.get(i + 3) {
                    Some(TokenTree::Ident(module)) if WATCHED.contains(&module.to_string().as_str()) => {
                        found.push((
                            module.to_string(),
                            module.span().start().line,
                            function.map(str::to_owned),
                        ));
                    }
                    // `std::{fs, io::Read}`: the head of each item of the group.
                    Some(TokenTree::Group(group)) if group.delimiter() == Delimiter::Brace => {
                        let mut head = true;
                        for t in group.stream() {
                            match &t {
                                TokenTree::Ident(module)
                                    if head && WATCHED.contains(&module.to_string().as_str()) =>
                                {
                                    found.push((
                                        module.to_string(),
                                        module.span().start().line,
                                        function.map(str::to_owned),
                                    ));
                                }
                                TokenTree::Punct(p) if p.as_char() == ',' => {
                                    head = true;
                                    continue;
                                }
                                _ => {}
                            }
                            head = false;
                        }
                    }
                    _ => {}
                }
            }
            TokenTree::Group(group) => {
                let body = if group.delimiter() == Delimiter::Brace {
                    pending_fn.take()
                } else {
                    None
                };
                found.extend(std_modules_used(group.stream(), body.as_deref().or(function)));
            }
            _ => {}
        }
    }
    found
}

/// An AWS SDK crate (aws-lc-rs, a crypto library rustls uses, is not one).
fn is_aws_sdk(name: &str) -> bool {
    name.starts_with("aws-") && !name.starts_with("aws-lc")
}

fn host_triple(cargo: &str) -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| {
        Path::new(cargo)
            .with_file_name("rustc")
            .to_string_lossy()
            .into_owned()
    });
    let rustc = if Path::new(&rustc).exists() {
        rustc
    } else {
        "rustc".to_owned()
    };
    let out = Command::new(rustc).arg("-vV").output().expect("rustc -vV runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if !["target", "node_modules", "fixtures", "snapshots", "cdk.out"].contains(&name.as_str()) {
                out.extend(walk(&p));
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
    out
}

/// Library crates return typed errors (`thiserror` enums carrying their
/// sources), never `Result<_, String>`: a string cannot be matched on, and
/// loses the error underneath. Sources are read as Rust tokens, so a
/// signature over several lines counts and comments never do; `#[cfg(test)]`
/// modules and the crates' `tests/` folders are left out (testkit is not a
/// library).
#[test]
fn library_crates_return_no_string_errors() {
    let root = workspace_root();
    let mut found = Vec::new();
    for krate in [
        "aphex-config",
        "aphex-template",
        "aphex-stages",
        "aphex-aws",
        "aphex-k8s",
        "aphex-adapters",
    ] {
        for file in walk(&root.join(krate).join("src")) {
            let name = file.strip_prefix(&root).unwrap().display().to_string();
            let text = std::fs::read_to_string(&file).unwrap();
            let tokens: proc_macro2::TokenStream = text
                .parse()
                .unwrap_or_else(|e| panic!("{name} does not lex as Rust: {e:?}"));
            let lines = string_error_results(tokens);
            found.extend(lines.into_iter().map(|line| format!("{name}:{line}")));
        }
    }
    assert!(
        found.is_empty(),
        "library crates return thiserror enums with their sources, not Result<_, String>; found: {found:#?}"
    );
}

/// The lines of every `Result<.., String>` in `tokens` (the error type
/// `String`, `string::String` or `std::string::String`), outside
/// `#[cfg(test)]` items.
fn string_error_results(tokens: proc_macro2::TokenStream) -> Vec<usize> {
    use proc_macro2::{Spacing, TokenTree};
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let punct = |i: usize, c: char| matches!(tokens.get(i), Some(TokenTree::Punct(p)) if p.as_char() == c);
    let mut found = Vec::new();
    let mut skip_next_group = false;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            // `#[cfg(test)]`: the item's next brace group (a module's or a
            // function's body) is test code.
            TokenTree::Punct(p) if p.as_char() == '#' => {
                if let Some(TokenTree::Group(attr)) = tokens.get(i + 1) {
                    let text: String = attr.stream().to_string().split_whitespace().collect();
                    if text == "cfg(test)" {
                        skip_next_group = true;
                    }
                }
            }
            TokenTree::Ident(id) if id == "Result" && punct(i + 1, '<') => {
                // The generic arguments at depth one, split at commas; a
                // `>` right after a joint `-` is an arrow (`Fn() -> T`).
                let mut depth = 1;
                let mut args: Vec<String> = vec![String::new()];
                let mut j = i + 2;
                while let Some(t) = tokens.get(j) {
                    match t {
                        TokenTree::Punct(p) if p.as_char() == '<' => depth += 1,
                        TokenTree::Punct(p)
                            if p.as_char() == '>'
                                && !matches!(tokens.get(j - 1), Some(TokenTree::Punct(q))
                                    if q.as_char() == '-' && q.spacing() == Spacing::Joint) =>
                        {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        TokenTree::Punct(p) if p.as_char() == ',' && depth == 1 => {
                            args.push(String::new());
                            j += 1;
                            continue;
                        }
                        _ => {}
                    }
                    args.last_mut()
                        .expect("one argument at least")
                        .push_str(&t.to_string());
                    j += 1;
                }
                // A trailing comma leaves an empty last argument.
                let error = args.iter().rev().find(|a| !a.is_empty());
                if args.len() >= 2
                    && error.is_some_and(|e| {
                        ["String", "string::String", "std::string::String"].contains(&e.as_str())
                    })
                {
                    found.push(id.span().start().line);
                }
            }
            TokenTree::Group(group) => {
                if group.delimiter() == proc_macro2::Delimiter::Brace && std::mem::take(&mut skip_next_group)
                {
                    continue;
                }
                found.extend(string_error_results(group.stream()));
            }
            // `#[cfg(test)] use ...;` ends without a group.
            TokenTree::Punct(p) if p.as_char() == ';' => skip_next_group = false,
            _ => {}
        }
    }
    found
}

/// The scan itself: what counts and what does not.
#[test]
fn string_error_results_are_found_across_lines_and_outside_tests_only() {
    let source = r#"
        fn a() -> Result<(), String> { todo!() }
        fn b()
            -> Result<
                Vec<u8>,
                std::string::String,
            > { todo!() }
        fn c() -> Result<Box<dyn Fn() -> String>, Error> { todo!() }
        fn d() -> io::Result<String> { todo!() }
        fn e() -> Result<HashMap<String, String>, MyError> { todo!() }
        // fn f() -> Result<(), String>
        #[cfg(test)]
        mod tests { fn g() -> Result<(), String> { Ok(()) } }
    "#;
    let lines = string_error_results(source.parse().unwrap());
    assert_eq!(lines, vec![2, 4], "a and b, nothing else");
}
