//! YAML emission for rendered manifests, through serde-saphyr's serializer,
//! with settings chosen for Kubernetes tooling: plain or quoted scalars only
//! (no folded block scalars, which some tools re-wrap), two-space indent.

use serde_json::Value;

/// Errors turning a manifest into YAML.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// The serializer refused the value.
    #[error("cannot write manifest as YAML")]
    Serialize(#[source] serde_saphyr::ser::Error),
}

fn options() -> serde_saphyr::SerializerOptions {
    let mut o = serde_saphyr::SerializerOptions::default();
    o.prefer_block_scalars = false;
    o
}

/// One YAML document (no leading `---`).
pub fn to_yaml(value: &Value) -> Result<String, YamlError> {
    serde_saphyr::to_string_with_options(value, options()).map_err(YamlError::Serialize)
}

/// Several documents separated by `---`.
pub fn to_yaml_documents(values: &[&Value]) -> Result<String, YamlError> {
    // Written into one string: a string per document, copied in, grew and
    // copied the largest (the WorkflowTemplate) twice.
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        serde_saphyr::to_fmt_writer_with_options(&mut out, v, options()).map_err(YamlError::Serialize)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_that_look_like_other_types_stay_strings() {
        let v = json!({"a": "1.0", "b": "0000000000000000000000000000000000000000", "c": "{{x}}",
                       "d": "true", "e": "", "f": "a: b", "g": 3, "h": "x".repeat(200)});
        let y = to_yaml(&v).unwrap();
        let back: Value = serde_saphyr::from_str(&y).unwrap();
        assert_eq!(back, v, "{y}");
    }
}
