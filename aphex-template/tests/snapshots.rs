//! Every rendered object, pinned byte for byte: the seed example, a
//! multi-environment config using every optional field, and a cross-account
//! config. Review changes with `cargo insta review`.

mod common;

use aphex_template::{RenderOptions, plan_format, render};
use common::{CONFIGS, config};

#[test]
fn rendered_manifests() {
    for name in CONFIGS {
        let r = render(&config(name), &RenderOptions::default()).unwrap();
        let stem = name.trim_end_matches(".yaml");
        insta::assert_snapshot!(format!("{stem}.manifests"), r.manifests_yaml().unwrap());
        insta::assert_snapshot!(format!("{stem}.pipeline-stack"), r.pipeline_stack_json());
        insta::assert_snapshot!(format!("{stem}.plan"), plan_format::to_text(&r.plan));
    }
}

#[test]
fn rendering_is_deterministic() {
    for name in CONFIGS {
        let a = render(&config(name), &RenderOptions::default()).unwrap();
        let b = render(&config(name), &RenderOptions::default()).unwrap();
        assert_eq!(a.files().unwrap(), b.files().unwrap(), "{name}");
    }
}

#[test]
fn the_executor_role_arn_reaches_the_service_account() {
    let options = RenderOptions {
        executor_role_arn: Some("arn:aws:iam::123456789012:role/exec".into()),
        artifact_bucket: None,
    };
    let r = render(&config("seed.yaml"), &options).unwrap();
    let sa = r.get("ServiceAccount").unwrap();
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/exec"
    );
    assert!(r.get("ConfigMap").is_none());
}

#[test]
fn a_known_bucket_is_published_in_the_config_map_the_pods_read() {
    let options = RenderOptions {
        executor_role_arn: None,
        artifact_bucket: Some("aphex-artifacts-x".into()),
    };
    let r = render(&config("seed.yaml"), &options).unwrap();
    let cm = r.get("ConfigMap").unwrap();
    assert_eq!(cm["metadata"]["name"], "aphex-pipeline-stack");
    assert_eq!(cm["data"]["ArtifactBucketName"], "aphex-artifacts-x");
    let wt = serde_json::to_string(r.get("WorkflowTemplate").unwrap()).unwrap();
    assert!(wt.contains(r#""configMapKeyRef":{"name":"aphex-pipeline-stack","key":"ArtifactBucketName""#));
}

#[test]
fn yaml_round_trips_to_the_same_objects() {
    for name in CONFIGS {
        let r = render(&config(name), &RenderOptions::default()).unwrap();
        for (file, text) in r.files().unwrap() {
            let back: serde_json::Value = if file.ends_with(".json") {
                serde_json::from_str(&text).unwrap()
            } else {
                serde_saphyr::from_str(&text).unwrap()
            };
            let original = r
                .manifests
                .iter()
                .enumerate()
                .find(|(i, m)| m.file_name(*i) == file)
                .map(|(_, m)| m.value.clone())
                .unwrap_or_else(|| r.pipeline_stack.clone());
            assert_eq!(back, original, "{name}: {file}");
        }
    }
}
