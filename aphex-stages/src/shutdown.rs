//! What a stop signal does to a run: the one place that turns SIGTERM (a
//! pod evicted, a workflow stopped: Kubernetes sends it and, after the
//! pod's grace period, SIGKILL) and SIGINT (Ctrl-C) into the run's
//! [`Cancel`], and that bounds how long the process may take to wind down.
//!
//! Once cancelled, no new stage, stack or command starts, running commands
//! get SIGTERM (SIGKILL 5 s later), and a deploy stops watching the
//! CloudFormation operation in flight without cancelling it: the stage is
//! recorded as interrupted, naming the stacks in flight and their
//! operation, and the next run waits for that operation to end.

use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::process::Cancel;

/// How long after the first stop signal the process exits at the latest,
/// whatever it is still doing (writing the record on a slow network). It
/// stays well inside Kubernetes' default grace period of 30 s
/// (`terminationGracePeriodSeconds`), so the record is written by us, never
/// cut off by SIGKILL. Winding down normally takes the 5 s a running
/// command is given to stop, plus one record write.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(20);

/// Watches SIGTERM and SIGINT for the rest of the process (on the current
/// tokio runtime). The first one raises `cancel` and says so through
/// `say`; the process exits with `exit_code` at a second one, or
/// [`SHUTDOWN_BOUND`] after the first if it has not exited by then.
pub fn cancel_on_signals(cancel: Cancel, exit_code: i32, say: fn(&str)) {
    let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(e), _) | (_, Err(e)) => {
            say(&format!(
                "warning: cannot watch stop signals ({e}): a SIGTERM or Ctrl-C stops aphex at once, without recording the run"
            ));
            return;
        }
    };
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        say(&format!(
            "{first} received: stopping (no new stage, stack or command starts; a CloudFormation operation in flight goes on by itself and the next run waits for it); exiting within {} s, at once on a second signal",
            SHUTDOWN_BOUND.as_secs()
        ));
        cancel.cancel();
        tokio::select! {
            _ = term.recv() => say("second stop signal: exiting now"),
            _ = int.recv() => say("second stop signal: exiting now"),
            () = tokio::time::sleep(SHUTDOWN_BOUND) => say(&format!(
                "still winding down {} s after {first}: exiting now",
                SHUTDOWN_BOUND.as_secs()
            )),
        }
        std::process::exit(exit_code);
    });
}
