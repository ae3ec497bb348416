//! Fuzz target: the configuration loader on arbitrary bytes. It must never
//! panic, overflow its stack or run away with memory; any input either
//! loads or yields placed diagnostics (which must render without panicking).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // libyaml-safer 0.3 panics on some inputs (a tag followed by `,`);
        // the loader catches those and reports a placed error. libFuzzer's
        // hook (installed before this runs) aborts on every panic, caught
        // or not, so the loader's own wrapper keeps those from reaching it.
        // Any other panic, ours included, still aborts as a crash.
        aphex_config::quiet_parser_panics();
    },
    |data: &[u8]| {
        if let Err(diags) = aphex_config::load_bytes("fuzz.yaml", data) {
            assert!(!diags.is_empty());
            let _ = aphex_config::render(&diags, &String::from_utf8_lossy(data));
        }
    }
);
