//! End-to-end tests across the Aphex crates live in `tests/tests/`; this
//! library holds their shared helpers.
