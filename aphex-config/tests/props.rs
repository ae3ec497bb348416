//! Property tests of the loader: generated valid configurations load (and
//! load ∘ serialize is the identity), one invalid field is reported at its
//! path, injected credentials are rejected and never echoed, and arbitrary
//! bytes never panic.

use aphex_config::model::*;
use aphex_config::{KNOWN_REGIONS, load_bytes, load_str};
use proptest::prelude::*;

fn cfg() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    }
}

fn label() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,12}[a-z0-9]"
}

fn stacks() -> impl Strategy<Value = Vec<Stack>> {
    (1usize..6)
        .prop_flat_map(|n| {
            (
                proptest::collection::vec("[A-Za-z][A-Za-z0-9]{0,15}", n),
                proptest::collection::vec("lib/[a-z-]{1,12}\\.ts", n),
                proptest::collection::vec(proptest::collection::vec(any::<prop::sample::Index>(), 0..3), n),
            )
        })
        .prop_map(|(names, paths, deps)| {
            // Unique names (the index is the last character); dependencies
            // only on earlier stacks, so the graph is acyclic.
            let names: Vec<String> = names.iter().enumerate().map(|(i, n)| format!("{n}{i}")).collect();
            names
                .iter()
                .zip(paths)
                .zip(deps)
                .enumerate()
                .map(|(i, ((name, path), deps))| {
                    let mut depends_on: Vec<String> = if i == 0 {
                        Vec::new()
                    } else {
                        deps.iter().map(|d| names[d.index(i)].clone()).collect()
                    };
                    depends_on.sort();
                    depends_on.dedup();
                    Stack {
                        name: name.clone(),
                        path,
                        depends_on,
                    }
                })
                .collect()
        })
}

fn environment() -> impl Strategy<Value = Environment> {
    (
        label(),
        prop::sample::select(KNOWN_REGIONS),
        "[0-9]{12}",
        stacks(),
        proptest::option::of(1u32..8),
        any::<bool>(),
        proptest::option::of(proptest::collection::vec("npm run [a-z:]{1,10}", 1..3)),
    )
        .prop_map(
            |(name, region, account, stacks, concurrency, manual, tests)| Environment {
                name,
                region: region.to_owned(),
                account,
                role_arn: None,
                approval: manual.then_some(Approval::Manual),
                concurrency,
                required_context: Vec::new(),
                synth: None,
                hooks: None,
                stacks,
                tests: tests.map(|commands| Tests { commands }),
                risk_gates: None,
            },
        )
}

fn config() -> impl Strategy<Value = Config> {
    (
        proptest::option::of(label()),
        proptest::collection::vec("[a-z]{2,6} [a-z ]{1,12}[a-z]", 1..4),
        proptest::collection::vec(environment(), 1..5),
    )
        .prop_map(|(name, commands, mut environments)| {
            for (i, e) in environments.iter_mut().enumerate() {
                e.name = format!("{}{i}", e.name);
            }
            Config {
                version: CONFIG_VERSION.to_owned(),
                pipeline: name.map(|n| PipelineSettings {
                    name: Some(n),
                    ..PipelineSettings::default()
                }),
                build: Build {
                    commands,
                    artifacts: None,
                },
                environments,
            }
        })
}

fn yaml(c: &Config) -> String {
    serde_saphyr::to_string(c).expect("configs serialize")
}

proptest! {
    #![proptest_config(cfg())]

    // Property: every generated valid configuration is accepted.
    #[test]
    fn valid_configs_are_accepted(c in config()) {
        let text = yaml(&c);
        let loaded = load_str("gen.yaml", &text);
        prop_assert!(loaded.is_ok(), "{text}\n{:#?}", loaded.err());
    }

    // Property: load ∘ serialize is the identity on valid configurations.
    #[test]
    fn load_after_serialize_is_identity(c in config()) {
        prop_assert_eq!(load_str("gen.yaml", &yaml(&c)).unwrap(), c);
    }

    // Property: making one field invalid makes the loader reject the file
    // with a diagnostic at exactly that field's path (and nowhere else).
    #[test]
    fn one_invalid_field_is_reported_at_its_path(c in config(), which in 0usize..7, pick in any::<prop::sample::Index>()) {
        let mut c = c;
        let e = pick.index(c.environments.len());
        let s = pick.index(c.environments[e].stacks.len());
        let path = match which {
            0 => { c.environments[e].name = format!("Bad_{}", c.environments[e].name); format!("environments[{e}].name") }
            1 => { c.environments[e].account = "12ab".into(); format!("environments[{e}].account") }
            2 => { c.environments[e].region = "moon-base-1".into(); format!("environments[{e}].region") }
            3 => { c.environments[e].concurrency = Some(0); format!("environments[{e}].concurrency") }
            4 => {
                let deps = &mut c.environments[e].stacks[s].depends_on;
                deps.push("NoSuchStack".into());
                format!("environments[{e}].stacks[{s}].dependsOn[{}]", deps.len() - 1)
            }
            5 => { c.version = "9.9".into(); "version".to_owned() }
            _ => { c.build.commands.clear(); "build.commands".to_owned() }
        };
        let text = yaml(&c);
        let diags = load_str("gen.yaml", &text).expect_err("invalid");
        prop_assert!(diags.iter().all(|d| d.path == path && d.line > 0), "{path}: {diags:#?}\n{text}");
        prop_assert!(!diags.is_empty());
    }

    // Property: a credential injected anywhere inside any string value is
    // rejected, and neither the diagnostics nor their rendering contain it.
    #[test]
    fn injected_credentials_are_rejected_and_never_echoed(
        c in config(),
        kind in 0usize..3,
        body in "[A-Z0-9]{16}",
        token in "[A-Za-z0-9]{36}",
        key in "[A-Za-z0-9+/]{48}",
        field in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
    ) {
        let (secret, needle) = match kind {
            0 => (format!("AKIA{body}"), format!("AKIA{body}")),
            1 => (format!("ghp_{token}"), format!("ghp_{token}")),
            _ => (format!("-----BEGIN RSA PRIVATE KEY-----\n{key}\n-----END RSA PRIVATE KEY-----"), key.clone()),
        };
        let mut c = c;
        let mut strings: Vec<&mut String> = Vec::new();
        strings.extend(c.build.commands.iter_mut());
        for e in &mut c.environments {
            strings.push(&mut e.name);
            for s in &mut e.stacks {
                strings.push(&mut s.name);
                strings.push(&mut s.path);
            }
        }
        let target = field.get_mut(&mut strings);
        let chars: Vec<char> = target.chars().collect();
        let cut = at.index(chars.len() + 1);
        let mut injected: String = chars[..cut].iter().collect();
        injected.push_str(&secret);
        injected.extend(&chars[cut..]);
        **target = injected;

        let text = yaml(&c);
        let diags = load_str("gen.yaml", &text).expect_err("a credential is an error");
        prop_assert!(diags.iter().any(|d| d.message.contains(" contains ")), "{diags:#?}");
        let shown = format!("{}{}", aphex_config::render(&diags, &text), aphex_config::to_json(&diags));
        prop_assert!(!shown.contains(&needle), "echoed:\n{shown}");
    }

    // Property: arbitrary bytes never panic the loader (they load or they
    // are reported).
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = load_bytes("fuzz", &bytes);
    }

    // Property: YAML-shaped noise (the punctuation the parser branches on)
    // never panics either, and every diagnostic it yields is placed.
    #[test]
    fn yaml_shaped_noise_never_panics(text in "[-a-z0-9 \\[\\]{}:,&*!|>'\"#%@?\n\t]{0,400}") {
        if let Err(diags) = load_str("noise", &text) {
            prop_assert!(!diags.is_empty());
        }
    }
}
