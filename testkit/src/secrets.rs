//! The secret shapes as test data: one line (or block) per shape of
//! `aphex_config::secrets`, with the secret in it that must never be shown,
//! and the lines that look close but hold none. The configuration check and
//! the log redaction are both tested against this one table, so the two can
//! never know different secrets.
//!
//! Token-shaped values are assembled at run time, so no scanner mistakes
//! this file for a leak.

/// One line holding one secret.
#[derive(Debug, Clone)]
pub struct SecretCase {
    /// The shape, for messages.
    pub shape: &'static str,
    /// The text as a command would hold or print it (a private key spans lines).
    pub text: String,
    /// The part that must never be shown.
    pub secret: String,
    /// What `aphex validate` calls it (`CredentialKind`'s wording).
    pub kind: &'static str,
}

fn case(shape: &'static str, kind: &'static str, secret: &str, text: impl Into<String>) -> SecretCase {
    let text = text.into();
    assert!(text.contains(secret), "{shape}: the text holds the secret");
    SecretCase {
        shape,
        text,
        secret: secret.to_owned(),
        kind,
    }
}

/// Every shape of the catalogue, each in a line as a build would write it.
pub fn cases() -> Vec<SecretCase> {
    let akia = ["AKIA", "IOSFODNN7EXAMPLE"].concat();
    let aws_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let session = [
        "IQoJb3JpZ2luX2",
        "VjEHYaCXVzLWVhc3QtMSJHMEUCIQDexampleSessionTokenBody0123456789",
    ]
    .concat();
    let labelled_session = "AQoDYXdzEJrexampleSessionToken0123456789";
    let ghp = ["gh", "p_", "0123456789abcdefghijABCDEFGHIJ012345"].concat();
    let pat = [
        "github",
        "_pat_",
        "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    ]
    .concat();
    let npm = ["np", "m_", "abcdefghijklmnopqrstuvwxyz0123456789"].concat();
    let npm_legacy = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
    let slack = ["xox", "b-", "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"].concat();
    let hook = ["T00000000/", "B00000000/", "XXXXXXXXXXXXXXXXXXXXXXXX"].concat();
    let jwt = [
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
        ".eyJzdWIiOiIxMjM0NTY3ODkwIn0",
        ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ]
    .concat();
    let key_body = "MIIEpAIBAAKCAQEA75xZexamplePrivateKeyBody0123456789";
    vec![
        case(
            "AWS access key ID",
            "an AWS access key ID",
            &akia,
            format!("aws configure set aws_access_key_id {akia}"),
        ),
        case(
            "AWS secret access key (variable)",
            "an AWS secret access key",
            aws_secret,
            format!("export AWS_SECRET_ACCESS_KEY={aws_secret}"),
        ),
        case(
            "AWS secret access key (credentials file)",
            "an AWS secret access key",
            aws_secret,
            format!("aws_secret_access_key = {aws_secret}"),
        ),
        case(
            "AWS secret access key (JSON)",
            "an AWS secret access key",
            aws_secret,
            format!("{{\"SecretAccessKey\": \"{aws_secret}\"}}"),
        ),
        case(
            "AWS session token (by its prefix)",
            "an AWS session token",
            &session,
            format!("using token {session} for the deploy"),
        ),
        case(
            "AWS session token (variable)",
            "an AWS session token",
            labelled_session,
            format!("AWS_SESSION_TOKEN={labelled_session} cdk deploy"),
        ),
        case(
            "GitHub token",
            "a GitHub token",
            &ghp,
            format!("curl -H 'Authorization: token {ghp}' https://api.github.com/user"),
        ),
        case(
            "GitHub fine-grained token",
            "a GitHub token",
            &pat,
            format!("gh auth login --with-token <<< {pat}"),
        ),
        case(
            "npm token",
            "an npm token",
            &npm,
            format!("echo {npm} | npm login"),
        ),
        case(
            "npm _authToken",
            "an npm token",
            npm_legacy,
            format!("npm config set //registry.npmjs.org/:_authToken={npm_legacy}"),
        ),
        case(
            "Slack token",
            "a Slack token",
            &slack,
            format!("slack-notify --token {slack}"),
        ),
        case(
            "Slack webhook URL",
            "a Slack webhook URL",
            &hook,
            format!("curl -X POST https://hooks.slack.com/services/{hook} -d @msg.json"),
        ),
        case(
            "JSON Web Token",
            "a JSON Web Token",
            &jwt,
            format!("curl -H 'Authorization: Bearer {jwt}' https://api.example.com"),
        ),
        case(
            "PEM private key",
            "a private key",
            key_body,
            format!("-----BEGIN RSA PRIVATE KEY-----\n{key_body}\n-----END RSA PRIVATE KEY-----"),
        ),
        case(
            "URL user-info",
            "a password",
            "s3cr3t-pass",
            "git clone https://deploy:s3cr3t-pass@git.example.com/app.git",
        ),
        case(
            "password= variable",
            "a password",
            "hunter2hunter",
            "PGPASSWORD=hunter2hunter psql -h db -c 'select 1'",
        ),
        case(
            "--password=VALUE",
            "a password",
            "hunter2hunter",
            "psql --password=hunter2hunter -h db",
        ),
        case(
            "--password VALUE",
            "a password",
            "hunter2hunter",
            "docker login --username ci --password hunter2hunter registry.example.com",
        ),
        case(
            "mysql -pVALUE",
            "a password",
            "hunter2hunter",
            "mysql -u root -phunter2hunter -e 'select 1'",
        ),
        case(
            "mysqldump -p'VALUE'",
            "a password",
            "hunter2hunter",
            "mysqldump -uroot -p'hunter2hunter' shop > dump.sql",
        ),
    ]
}

/// Lines that look close to a secret and hold none: each must pass the
/// configuration check and come out of redaction unchanged.
pub fn innocent() -> Vec<&'static str> {
    vec![
        "mkdir -p dist",
        "ssh -p 22 deploy@host.example.com uptime",
        "mysql -u root -p shop < schema.sql",
        "echo \"$REGISTRY_PASSWORD\" | docker login --username ci --password-stdin registry.example.com",
        "PGPASSWORD=$DB_PASSWORD psql -h db",
        "git checkout 0123456789abcdef0123456789abcdef01234567",
        "npm run build -- --prod",
        "curl -fsS https://example.com/health",
        "git log --author=someone -n 1",
        "aws sts get-caller-identity --query Arn",
        "cp -pr build/. dist/",
    ]
}
