//! The rules for config values that are written into rendered objects (the
//! WorkflowTemplate, EventSource, Sensor, RBAC and the pipeline stack):
//! everything under `pipeline:`. Argo substitutes `{{...}}` anywhere in a
//! workflow, so no such value may contain `{{`; the deploy branch must be a
//! name git itself accepts (it becomes `refs/heads/<branch>` in the Sensor
//! and a `git` argument in the runner); images must be image references;
//! the webhook URL must be `https://` (GitHub sends the secret-signed
//! payload there); resource quantities must be Kubernetes quantities.
//!
//! Commands (`build`, `synth`, `hooks`, `tests`) are not here: the runner
//! reads them from the commit and never renders them, so they stay free.

use std::sync::LazyLock;

use regex::Regex;

use crate::rules::Checker;
use crate::tree::{Node, Path, Value};

/// Kubernetes' resource quantity syntax (`500m`, `2Gi`, `1.5`, `1e3`).
static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$")
        .expect("valid quantity pattern")
});

/// Every rule on `pipeline` (at `path`). Runs after the other pipeline
/// rules, so a value they already refused is not reported twice.
pub(crate) fn check(c: &mut Checker<'_>, path: &Path, pipeline: &Node) {
    if let Some(g) = pipeline.get("github") {
        let gp = path.key("github");
        if let Some(n) = g.get("branch")
            && let Some(v) = n.as_str()
            && let Err(why) = branch(v)
        {
            c.push(
                &gp.key("branch"),
                n.pos,
                format!("`github.branch` is not a valid git branch name: {why}"),
                "write the branch name as `git check-ref-format --branch` accepts it, e.g. `main` or `release/1.x`"
                    .to_owned(),
            );
        }
        if let Some(n) = g.get("webhookUrl")
            && let Some(v) = n.as_str()
            && !is_https_url(v)
        {
            c.push(
                &gp.key("webhookUrl"),
                n.pos,
                "`github.webhookUrl` is not an https:// URL".to_owned(),
                "GitHub sends signed payloads there: write the full public https URL, e.g. https://hooks.example.com/my-app"
                    .to_owned(),
            );
        }
    }
    if let Some(i) = pipeline.get("images") {
        for key in ["builder", "deployer"] {
            if let Some(n) = i.get(key)
                && let Some(v) = n.as_str()
                && let Err(why) = image(v)
            {
                c.push(
                    &path.key("images").key(key),
                    n.pos,
                    format!("`images.{key}` is not an image reference: {why}"),
                    "write an image like public.ecr.aws/aphex/deployer:v1.2.3 or name@sha256:<64 hex digits>"
                        .to_owned(),
                );
            }
        }
    }
    if let Some(r) = pipeline.get("resources") {
        for key in ["cpu", "memory"] {
            if let Some(n) = r.get(key)
                && let Some(v) = n.as_str()
                && !QUANTITY.is_match(v)
            {
                c.push(
                    &path.key("resources").key(key),
                    n.pos,
                    format!("`resources.{key}` `{v}` is not a Kubernetes quantity"),
                    "write a quantity like `500m` or `2` (CPU) or `2Gi` (memory), quoted".to_owned(),
                );
            }
        }
    }
    no_template_markers(c, path, pipeline);
}

/// Every string under `node` that contains `{{` (and that no other rule has
/// already refused): Argo would evaluate it.
fn no_template_markers(c: &mut Checker<'_>, path: &Path, node: &Node) {
    match &node.value {
        Value::Str(s) if s.contains("{{") => {
            let at = path.to_string();
            if !c.out.iter().any(|d| d.path == at) {
                c.push(
                    path,
                    node.pos,
                    format!("`{at}` contains `{{{{`, which Argo would evaluate as an expression"),
                    "this value is written into the pipeline's manifests: remove the `{{`".to_owned(),
                );
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                no_template_markers(c, &path.index(i), item);
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                no_template_markers(c, &path.key(&k.name), v);
            }
        }
        _ => {}
    }
}

/// Why a name is not a branch name git accepts (`git check-ref-format
/// --branch`), or has a `{{`, which we also refuse. Each message completes
/// "is not a valid git branch name: ...".
#[derive(Debug, thiserror::Error)]
pub enum BranchError {
    /// git would read it as an option.
    #[error("it starts with `-`")]
    LeadingDash,
    /// git reads a lone `@` as HEAD.
    #[error("`@` is not a branch name (git reads it as HEAD)")]
    LoneAt,
    /// Argo would evaluate it as an expression.
    #[error("it contains `{{{{`, which Argo would evaluate")]
    TemplateMarker,
    /// A byte git refuses in reference names.
    #[error("it contains {byte:?}")]
    InvalidByte {
        /// The byte(s), as text.
        byte: String,
    },
    /// Any other rule of git's reference names. Not a `#[source]`: the
    /// message is git's own, reworded to read after "branch name: ".
    #[error("{}", reword(.0))]
    Git(gix_validate::reference::name::Error),
}

/// Why `name` is not a branch name git accepts (`git check-ref-format
/// --branch`), or a `{{`, which we also refuse.
pub fn branch(name: &str) -> Result<(), BranchError> {
    if name.starts_with('-') {
        return Err(BranchError::LeadingDash);
    }
    if name == "@" {
        return Err(BranchError::LoneAt);
    }
    if name.contains("{{") {
        return Err(BranchError::TemplateMarker);
    }
    let full = format!("refs/heads/{name}");
    gix_validate::reference::branch_name(full.as_str().into())
        .map(drop)
        .map_err(|e| match e {
            gix_validate::reference::name::Error::InvalidByte { byte } => BranchError::InvalidByte {
                byte: String::from_utf8_lossy(&byte).into_owned(),
            },
            other => BranchError::Git(other),
        })
}

fn reword(e: &gix_validate::reference::name::Error) -> String {
    lowercase_first(&e.to_string().replace("Reference name", "the name"))
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// Why a value is not an image reference (`[registry/]repository[:tag][@digest]`).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ImageError(#[from] oci_spec::distribution::ParseError);

/// Why `image` is not an image reference (`[registry/]repository[:tag][@digest]`).
pub fn image(image: &str) -> Result<(), ImageError> {
    oci_spec::distribution::Reference::try_from(image)
        .map(drop)
        .map_err(ImageError)
}

/// Whether `url` is an absolute `https://` URL with a host and no spaces or `{{`.
pub fn is_https_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !host.is_empty() && !url.contains("{{") && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_follow_git() {
        for ok in ["main", "release/1.x", "feature/a-b_c", "v1.2", "dev@x", "{one}"] {
            assert!(branch(ok).is_ok(), "{ok}: {:?}", branch(ok));
        }
        for bad in [
            "", "a..b", "a:b", "a~1", "a^", "a@{1}", "a\\b", "a b", "a\u{7}", "x{{y}}", "-x", "/a", "a/",
            "a//b", "a.lock", ".a", "a.", "a?", "a*", "a[b", "@", "HEAD",
        ] {
            assert!(branch(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn images_are_references() {
        for ok in [
            "public.ecr.aws/aphex/deployer:latest",
            "builder",
            "localhost:5000/a/b:1.0",
            "a/b@sha256:0123456789012345678901234567890123456789012345678901234567890123",
        ] {
            assert!(image(ok).is_ok(), "{ok}: {:?}", image(ok));
        }
        for bad in ["", "a/UPPER", "a b", "a:{{x}}", "-a", "a:", "a@sha256:12"] {
            assert!(image(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn webhook_urls_are_https() {
        assert!(is_https_url("https://hooks.example.com/a?b=c"));
        for bad in [
            "http://h/x",
            "https://",
            "https:///x",
            "https://h/{{x}}",
            "https://h/a b",
            "ftp://h",
        ] {
            assert!(!is_https_url(bad), "{bad}");
        }
    }

    #[test]
    fn quantities() {
        for ok in ["500m", "2", "2Gi", "1.5", "1e3", "512Mi", ".5"] {
            assert!(QUANTITY.is_match(ok), "{ok}");
        }
        for bad in ["", "2 Gi", "2GB", "-1", "{{x}}", "m"] {
            assert!(!QUANTITY.is_match(bad), "{bad}");
        }
    }
}
