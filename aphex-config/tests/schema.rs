//! The committed `aphex-config.schema.json` is exactly what the model
//! derives (regenerate with `cargo xtask schema`), and it documents every field.

use serde_json::Value;

#[test]
fn committed_schema_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../aphex-config.schema.json");
    let committed = std::fs::read_to_string(path).expect("aphex-config.schema.json is committed");
    assert!(
        committed == aphex_config::schema_text(),
        "aphex-config.schema.json is stale: run `cargo xtask schema` and commit the result"
    );
}

#[test]
fn every_field_is_described() {
    let schema = aphex_config::schema();
    let mut objects = vec![("root".to_owned(), &schema)];
    for (name, def) in schema["$defs"].as_object().unwrap() {
        objects.push((name.clone(), def));
    }
    for (name, obj) in objects {
        for (field, s) in obj["properties"].as_object().into_iter().flatten() {
            assert!(
                s.get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| !d.is_empty()),
                "{name}.{field} has no description (add a doc comment in model.rs)"
            );
        }
    }
}

#[test]
fn optional_fields_do_not_accept_null() {
    let text = aphex_config::schema_text();
    assert!(!text.contains("\"null\""), "the schema mentions null");
}
