//! The test stage of one environment: the build artifacts restored (as in
//! deploy), then the test commands in order, with the
//! stack outputs in their environment (`APHEX_OUTPUTS_JSON`, the path of the
//! outputs document, and `APHEX_OUTPUT_<STACK>_<KEY>` per output that fits),
//! stopping at the first failure.

use std::path::Path;

use super::deploy::{Outputs, read_outputs};
use super::{StageError, StageOutcome, env_vars, environment, run_commands};
use crate::context::StageContext;

/// `APHEX_OUTPUT_<STACK>_<KEY>`: upper-cased, every non-alphanumeric as `_`.
pub(crate) fn output_var(stack: &str, key: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("APHEX_OUTPUT_{}_{}", clean(stack), clean(key))
}

/// The longest output value given a variable of its own. Linux refuses to
/// start a program when one environment string exceeds 128 KiB, or when
/// all of them together fill its argument space (2 MiB at most).
pub(crate) const MAX_OUTPUT_VAR_BYTES: usize = 32 * 1024;
/// The most all output variables together may hold.
pub(crate) const MAX_OUTPUT_VARS_BYTES: usize = 256 * 1024;

/// The variables the outputs become, and the outputs left out because
/// they are too large for the environment (`Stack.Key`, in the document
/// only).
pub(crate) fn output_vars(outputs_file: &Path, outputs: &Outputs) -> (Vec<(String, String)>, Vec<String>) {
    let mut vars = vec![(
        "APHEX_OUTPUTS_JSON".to_owned(),
        outputs_file.display().to_string(),
    )];
    let mut left_out = Vec::new();
    let mut total = 0;
    for (stack, values) in outputs {
        for (key, value) in values {
            let name = output_var(stack, key);
            let size = name.len() + value.len() + 2;
            if value.len() > MAX_OUTPUT_VAR_BYTES || total + size > MAX_OUTPUT_VARS_BYTES {
                left_out.push(format!("{stack}.{key}"));
            } else {
                total += size;
                vars.push((name, value.clone()));
            }
        }
    }
    (vars, left_out)
}

/// Runs the test stage of `env_name` with the outputs document at `outputs_file`.
pub async fn run(
    ctx: &StageContext,
    env_name: &str,
    outputs_file: &Path,
) -> Result<StageOutcome, StageError> {
    let stage = format!("test-{env_name}");
    if let Some(noop) = super::removed_environment(ctx, &stage, env_name) {
        return Ok(noop);
    }
    let env = environment(ctx, env_name)?;
    let i = ctx
        .config
        .environments
        .iter()
        .position(|e| e.name == env.name)
        .unwrap_or_default();
    // A test pod starts from a fresh checkout too: tests often need what the
    // build produced (compiled test code, bundles).
    super::deploy::restore_artifacts(ctx, &stage).await?;
    let outputs = read_outputs(outputs_file)?;
    let mut vars = env_vars(ctx, env);
    let (output_vars, left_out) = output_vars(outputs_file, &outputs);
    vars.extend(output_vars);
    let n: usize = outputs.values().map(|v| v.len()).sum();
    ctx.info(
        &stage,
        format!(
            "{n} stack outputs in the environment (APHEX_OUTPUTS_JSON={})",
            outputs_file.display()
        ),
    );
    if !left_out.is_empty() {
        ctx.info(
            &stage,
            format!(
                "too large for a variable of their own (over {} KiB, or {} KiB in all), read from $APHEX_OUTPUTS_JSON only: {}",
                MAX_OUTPUT_VAR_BYTES / 1024,
                MAX_OUTPUT_VARS_BYTES / 1024,
                left_out.join(", ")
            ),
        );
    }
    run_commands(
        ctx,
        &stage,
        &format!("environments[{i}].tests.commands"),
        "test",
        env.test_commands(),
        &vars,
    )
    .await?;
    Ok(StageOutcome::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_too_large_for_the_environment_stay_in_the_document() {
        let mut outputs = Outputs::new();
        let stack = outputs.entry("App".to_owned()).or_default();
        stack.insert("Small".to_owned(), "x".to_owned());
        stack.insert("Big".to_owned(), "y".repeat(MAX_OUTPUT_VAR_BYTES + 1));
        for i in 0..20 {
            stack.insert(format!("Mid{i:02}"), "z".repeat(MAX_OUTPUT_VAR_BYTES / 2));
        }
        let (vars, left_out) = output_vars(Path::new("/o.json"), &outputs);
        assert_eq!(vars[0], ("APHEX_OUTPUTS_JSON".to_owned(), "/o.json".to_owned()));
        assert!(
            vars.iter()
                .any(|(k, v)| k == "APHEX_OUTPUT_APP_SMALL" && v == "x")
        );
        assert!(left_out.contains(&"App.Big".to_owned()), "{left_out:?}");
        let total: usize = vars[1..].iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        assert!(total <= MAX_OUTPUT_VARS_BYTES, "{total}");
        assert_eq!(vars.len() - 1 + left_out.len(), 22);
    }

    #[test]
    fn output_variable_names() {
        assert_eq!(output_var("AppStack", "ApiUrl"), "APHEX_OUTPUT_APPSTACK_APIURL");
        assert_eq!(
            output_var("my-stack.v2", "bucket/name"),
            "APHEX_OUTPUT_MY_STACK_V2_BUCKET_NAME"
        );
    }
}
