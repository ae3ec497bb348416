//! "Did you mean" suggestions for misspelt field names, stack names and
//! regions (strsim).

/// The candidate closest to `input`, when one is close enough to be a likely typo.
pub fn did_you_mean<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let wanted = norm(input);
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        // `depends_on`, `DependsOn` and `dependson` all mean `dependsOn`.
        let score = if norm(c) == wanted {
            2.0
        } else {
            strsim::jaro_winkler(&wanted, &norm(c))
        };
        if score >= 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggests_close_names_only() {
        let fields = ["name", "region", "account", "dependsOn", "roleArn"];
        assert_eq!(did_you_mean("regoin", fields), Some("region"));
        assert_eq!(did_you_mean("depends_on", fields), Some("dependsOn"));
        assert_eq!(did_you_mean("RoleARN", fields), Some("roleArn"));
        assert_eq!(did_you_mean("acount", fields), Some("account"));
        assert_eq!(did_you_mean("zzzzzz", fields), None);
    }
}
