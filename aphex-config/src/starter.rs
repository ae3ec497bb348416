//! The commented starter configuration `aphex init` writes. Its first line
//! points editors (yaml-language-server) at the schema; a test keeps it valid.

use crate::schema::SCHEMA_URL;

const BODY: &str = r#"# Aphex pipeline configuration. Reference: docs/configuration.md
# Check it with `aphex validate`; every field below the required ones is optional.
version: "1.0"

# pipeline:                     # optional pipeline-wide settings
#   name: my-app                # DNS label prefixing every resource; default "aphex"
#   github:
#     owner: my-org
#     repo: my-app
#     branch: main              # pushes to this branch deploy; default main
#   images:
#     deployer: public.ecr.aws/aphex/deployer:latest

build:
  # Shell commands run in order from the repository root; the first failure stops the build.
  commands: ["npm ci", "npm run build"]
  # artifacts: ["cdk.out.build"] # paths packaged for later stages; default ["artifacts"]

# Environments deploy in list order.
environments:
  - name: dev                   # lowercase DNS label, at most 55 characters
    region: us-east-1
    account: "123456789012"     # your 12-digit AWS account ID, quoted
    stacks:                     # CDK stacks, in deploy order unless dependsOn says otherwise
      - { name: NetworkStack, path: lib/network-stack.ts }
      - { name: AppStack, path: lib/app-stack.ts, dependsOn: [NetworkStack] }
    tests:
      commands: ["npm run test:integration"]   # run after the deploy, with stack outputs in the environment

  - name: prod
    region: us-east-1
    account: "123456789012"
    approval: manual            # a person approves before prod deploys
    # roleArn: arn:aws:iam::123456789012:role/deployer   # default: the CDK bootstrap deploy role
    # concurrency: 2            # independent stacks deployed at once; default 1
    stacks:
      - { name: NetworkStack, path: lib/network-stack.ts }
      - { name: AppStack, path: lib/app-stack.ts, dependsOn: [NetworkStack] }
"#;

/// The starter `aphex-config.yaml`.
pub fn starter() -> String {
    format!("# yaml-language-server: $schema={SCHEMA_URL}\n{BODY}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn starter_points_at_the_schema_and_validates() {
        let text = super::starter();
        assert!(text.starts_with("# yaml-language-server: $schema=https://"));
        let config = crate::load_str("aphex-config.yaml", &text).unwrap();
        assert_eq!(config.environments.len(), 2);
        assert!(config.environments[1].needs_approval());
    }
}
