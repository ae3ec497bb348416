//! The test stage of one environment: the build artifacts restored (as in
//! deploy), then the test commands in order, with the
//! stack outputs in their environment (`APHEX_OUTPUTS_JSON`, the path of the
//! outputs document, and `APHEX_OUTPUT_<STACK>_<KEY>` per output), stopping
//! at the first failure.

use std::path::Path;

use super::deploy::{Outputs, read_outputs};
use super::{StageError, StageOutcome, env_vars, environment, run_commands};
use crate::context::StageContext;

/// `APHEX_OUTPUT_<STACK>_<KEY>`: upper-cased, every non-alphanumeric as `_`.
pub fn output_var(stack: &str, key: &str) -> String {
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

/// The variables the outputs become.
pub fn output_vars(outputs_file: &Path, outputs: &Outputs) -> Vec<(String, String)> {
    let mut vars = vec![(
        "APHEX_OUTPUTS_JSON".to_owned(),
        outputs_file.display().to_string(),
    )];
    for (stack, values) in outputs {
        for (key, value) in values {
            vars.push((output_var(stack, key), value.clone()));
        }
    }
    vars
}

/// Runs the test stage of `env_name` with the outputs document at `outputs_file`.
pub async fn run(
    ctx: &StageContext,
    env_name: &str,
    outputs_file: &Path,
) -> Result<StageOutcome, StageError> {
    let stage = format!("test-{env_name}");
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
    vars.extend(output_vars(outputs_file, &outputs));
    let n: usize = outputs.values().map(|v| v.len()).sum();
    ctx.info(
        &stage,
        format!(
            "{n} stack outputs in the environment (APHEX_OUTPUTS_JSON={})",
            outputs_file.display()
        ),
    );
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
    fn output_variable_names() {
        assert_eq!(output_var("AppStack", "ApiUrl"), "APHEX_OUTPUT_APPSTACK_APIURL");
        assert_eq!(
            output_var("my-stack.v2", "bucket/name"),
            "APHEX_OUTPUT_MY_STACK_V2_BUCKET_NAME"
        );
    }
}
