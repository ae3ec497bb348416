//! Fuzz target: the configuration loader on arbitrary bytes. It must never
//! panic, overflow its stack or run away with memory; any input either
//! loads or yields placed diagnostics (which must render without panicking).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(diags) = aphex_config::load_bytes("fuzz.yaml", data) {
        assert!(!diags.is_empty());
        let _ = aphex_config::render(&diags, &String::from_utf8_lossy(data));
    }
});
