//! Tidy checks that keep the architecture honest: pure crates stay pure
//! (in their dependencies and in what their sources use), dependencies
//! point one way, and every source file says what it owns.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// Normal (non-dev, non-build) dependency closure of every workspace package, from `cargo metadata`.
fn dependency_closures() -> BTreeMap<String, BTreeSet<String>> {
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
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
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
    // through aphex-testkit's fault proxy; nothing else may use it.
    for (krate, deps) in closures.iter().filter(|(k, _)| k.as_str() != "xtask") {
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

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let root = workspace_root();
    let mut missing = Vec::new();
    for krate in [
        "aphex-config",
        "aphex-template",
        "aphex-stages",
        "aphex-aws",
        "aphex-k8s",
        "aphex-adapters",
        "aphex-cli",
        "aphex-runner",
        "xtask",
        "tests",
        "testkit",
    ] {
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
/// library). `PENDING` lists files another change is rewriting; each entry
/// goes once that change is in.
#[test]
fn library_crates_return_no_string_errors() {
    const PENDING: [&str; 2] = [
        // Typed by the deploy scheduler's change (issue 17).
        "aphex-stages/src/stages/deploy.rs",
        "aphex-aws/src/sts.rs",
    ];
    let root = workspace_root();
    let mut found = Vec::new();
    let mut pending_seen = Vec::new();
    for krate in [
        "aphex-config",
        "aphex-template",
        "aphex-stages",
        "aphex-aws",
        "aphex-k8s",
    ] {
        for file in walk(&root.join(krate).join("src")) {
            let name = file.strip_prefix(&root).unwrap().display().to_string();
            let text = std::fs::read_to_string(&file).unwrap();
            let tokens: proc_macro2::TokenStream = text
                .parse()
                .unwrap_or_else(|e| panic!("{name} does not lex as Rust: {e:?}"));
            let lines = string_error_results(tokens);
            if PENDING.contains(&name.as_str()) {
                pending_seen.push(name);
                continue;
            }
            found.extend(lines.into_iter().map(|line| format!("{name}:{line}")));
        }
    }
    assert!(
        found.is_empty(),
        "library crates return thiserror enums with their sources, not Result<_, String>; found: {found:#?}"
    );
    assert_eq!(
        pending_seen.len(),
        PENDING.len(),
        "a file in PENDING is gone: remove it from the list"
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
