//! `aphex_config::quiet_parser_panics`: the panics the loader catches inside
//! libyaml-safer never reach the process's panic hook; every other panic
//! still does. One test in its own binary, because the hook is the
//! process's.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Panics the hook below has seen.
static SEEN: AtomicUsize = AtomicUsize::new(0);

#[test]
fn only_the_parser_panics_the_loader_catches_are_quiet() {
    std::panic::set_hook(Box::new(|_| {
        SEEN.fetch_add(1, Ordering::SeqCst);
    }));
    // libyaml-safer 0.3 panics on a tag followed by `,`.
    let choke = "version: \"1.0\"\nbuild:\n  commands: [!t, make]\n";
    let parsed = |text: &str| aphex_config::load_str("c.yaml", text).unwrap_err();

    // Without the wrapper the hook sees the parser's panic, so the check
    // below cannot pass by the parser no longer panicking.
    let loud = parsed(choke);
    assert_eq!(SEEN.load(Ordering::SeqCst), 1, "{loud:?}");

    aphex_config::quiet_parser_panics();
    aphex_config::quiet_parser_panics(); // a second call changes nothing
    let quiet = parsed(choke);
    assert_eq!(quiet, loud, "the same placed diagnostic either way");
    assert_eq!((quiet[0].line, quiet[0].column), (3, 14), "{quiet:?}");
    assert!(
        quiet[0]
            .message
            .starts_with("invalid YAML: the YAML parser cannot read what follows this point"),
        "{quiet:?}"
    );
    assert_eq!(SEEN.load(Ordering::SeqCst), 1, "the caught panic stayed quiet");

    // Any other panic, here on the same thread right after, still reaches the hook.
    let other = std::panic::catch_unwind(|| panic!("a bug of ours"));
    assert!(other.is_err());
    assert_eq!(SEEN.load(Ordering::SeqCst), 2, "other panics are not hidden");
    let _ = std::panic::take_hook();
}
