//! Whether a pushed run would only redeploy what every environment already
//! runs. Each environment runs what its newest deploy attempt in the run
//! records deployed, if that attempt succeeded; a push of that very commit
//! in every environment (a re-pushed head) is a **duplicate** and ends
//! early. Anything else deploys: a reset to an older commit (a rollback:
//! the environments run a newer one), a commit some environment has never
//! deployed, one whose last deploy somewhere failed, and every run a
//! person started (`aphex.dev/trigger` other than `push`).

use aphex_template::submit::Origin;

use crate::context::{RunKind, StageContext};
use crate::record::{EndReason, RunEnd, RunRecord, Status};

/// How many of the newest runs are read to find each environment's last
/// deploy; an environment not deployed among them is taken as never
/// deployed (so the run deploys).
pub(crate) const RECENT_RUNS: usize = 50;

/// The newest deploy attempt of one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LastDeploy<'a> {
    /// The run that made it.
    pub run: &'a str,
    /// The commit it deployed.
    pub commit: &'a str,
    /// Succeeded, failed or interrupted.
    pub status: Status,
}

/// The newest deploy attempt of `environment` among `runs` (newest first,
/// as [`crate::ports::RunRecorder::list`] returns them), other than in run
/// `current`: the first run whose `deploy-<environment>` stage started.
pub(crate) fn last_deploy<'a>(
    runs: &'a [RunRecord],
    environment: &str,
    current: &str,
) -> Option<LastDeploy<'a>> {
    let stage = format!("deploy-{environment}");
    runs.iter().filter(|r| r.id != current).find_map(|r| {
        r.stages
            .iter()
            .find(|s| {
                s.name == stage
                    && matches!(s.status, Status::Succeeded | Status::Failed | Status::Interrupted)
            })
            .map(|s| LastDeploy {
                run: &r.id,
                commit: &r.commit,
                status: s.status,
            })
    })
}

/// Why a run of `commit` is a duplicate (every one of `environments` last
/// deployed exactly `commit`, successfully), or `None` when it deploys.
pub(crate) fn duplicate(
    runs: &[RunRecord],
    environments: &[&str],
    commit: &str,
    current: &str,
) -> Option<String> {
    let mut deployed = Vec::with_capacity(environments.len());
    for env in environments {
        let last = last_deploy(runs, env, current)?;
        if last.commit != commit || last.status != Status::Succeeded {
            return None;
        }
        deployed.push(format!("{env} (run {})", last.run));
    }
    let short = commit.get(..12).unwrap_or(commit);
    Some(format!(
        "commit {short} is already deployed in every environment: {}; nothing to deploy. \
         To deploy it again, start the run by hand (a Workflow labelled aphex.dev/trigger: manual, as `aphex trigger` makes)",
        deployed.join(", ")
    ))
}

/// The duplicate check of a pushed deploy run, from the newest
/// [`RECENT_RUNS`] records. A store that cannot be read is a warning, and
/// the run deploys: redeploying is safe, skipping wrongly is not.
pub(crate) async fn check(ctx: &StageContext, stage: &str) -> Option<RunEnd> {
    if ctx.run.trigger != Origin::Push || ctx.run.kind != RunKind::Deploy {
        return None;
    }
    let runs = match ctx.ports.runs.list(&ctx.run.pipeline, RECENT_RUNS).await {
        Ok(runs) => runs,
        Err(e) => {
            ctx.warn(
                stage,
                format!(
                    "cannot read the run records to tell whether this push is a duplicate ({e}); deploying"
                ),
            );
            return None;
        }
    };
    let environments: Vec<&str> = ctx.config.environments.iter().map(|e| e.name.as_str()).collect();
    duplicate(&runs, &environments, &ctx.run.commit, &ctx.run.id).map(|message| RunEnd {
        reason: EndReason::Duplicate,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::StageRecord;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    /// Run `id` of `commit` whose stages are `(name, status)`.
    fn run(id: &str, commit: &str, stages: &[(&str, Status)]) -> RunRecord {
        RunRecord {
            id: id.to_owned(),
            pipeline: "shop".to_owned(),
            commit: commit.to_owned(),
            branch: Some("main".to_owned()),
            started_at: "2026-01-01T00:00:00Z".to_owned(),
            ended_at: None,
            status: Succeeded,
            stages: stages
                .iter()
                .map(|(name, status)| StageRecord {
                    name: (*name).to_owned(),
                    started_at: "2026-01-01T00:00:00Z".to_owned(),
                    ended_at: None,
                    status: *status,
                    error: None,
                    stacks: vec![],
                    artifact_bytes: None,
                    approved_by: None,
                    ends_run: None,
                    risks: Vec::new(),
                })
                .collect(),
            url: None,
        }
    }

    use Status::{Failed, Interrupted, Skipped, Succeeded};

    #[test]
    fn only_the_commit_every_environment_last_deployed_is_a_duplicate() {
        let both = [("deploy-dev", Succeeded), ("deploy-prod", Succeeded)];
        let envs = ["dev", "prod"];
        // (case, runs newest first, commit pushed, duplicate?)
        let cases: Vec<(&str, Vec<RunRecord>, &str, bool)> = vec![
            (
                "re-pushed head",
                vec![run("r2", B, &both), run("r1", A, &both)],
                B,
                true,
            ),
            (
                "rollback to an older commit",
                vec![run("r2", B, &both), run("r1", A, &both)],
                A,
                false,
            ),
            ("a new commit", vec![run("r1", A, &both)], B, false),
            ("never deployed", vec![], A, false),
            (
                "prod still runs the older commit (its approval was refused)",
                vec![
                    run("r2", B, &[("deploy-dev", Succeeded), ("deploy-prod", Skipped)]),
                    run("r1", A, &both),
                ],
                B,
                false,
            ),
            (
                "the last deploy to prod failed",
                vec![
                    run("r2", B, &[("deploy-dev", Succeeded), ("deploy-prod", Failed)]),
                    run("r1", B, &both),
                ],
                B,
                false,
            ),
            (
                "the last deploy to prod was interrupted",
                vec![
                    run(
                        "r2",
                        B,
                        &[("deploy-dev", Succeeded), ("deploy-prod", Interrupted)],
                    ),
                    run("r1", B, &both),
                ],
                B,
                false,
            ),
            (
                "environments deployed by different runs of the commit",
                vec![
                    run("r3", B, &[("deploy-prod", Succeeded)]),
                    run("r2", B, &[("deploy-dev", Succeeded)]),
                ],
                B,
                true,
            ),
            (
                "a later run that ended before deploying changes nothing",
                vec![
                    run("r3", B, &[("validate", Succeeded), ("deploy-dev", Skipped)]),
                    run("r2", B, &both),
                ],
                B,
                true,
            ),
            (
                "only the current run deployed it (a retried validate)",
                vec![run("current", B, &both), run("r1", A, &both)],
                B,
                false,
            ),
        ];
        for (case, runs, commit, want) in cases {
            let got = duplicate(&runs, &envs, commit, "current");
            assert_eq!(got.is_some(), want, "{case}: {got:?}");
        }
    }

    #[test]
    fn the_reason_names_each_environment_s_run_and_how_to_deploy_anyway() {
        let runs = vec![run(
            "shop-x1",
            A,
            &[("deploy-dev", Succeeded), ("deploy-prod", Succeeded)],
        )];
        let why = duplicate(&runs, &["dev", "prod"], A, "shop-x2").unwrap();
        assert!(
            why.starts_with("commit aaaaaaaaaaaa is already deployed in every environment: dev (run shop-x1), prod (run shop-x1)"),
            "{why}"
        );
        assert!(why.contains("aphex.dev/trigger: manual"), "{why}");
    }
}
