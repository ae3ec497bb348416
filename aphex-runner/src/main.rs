//! `aphex-runner`: runs one pipeline stage inside a workflow pod, wiring the
//! stages of `aphex-stages` to the AWS adapters. Holds no stage logic itself.

fn main() {
    eprintln!("aphex-runner: no stages are wired yet");
    std::process::exit(2);
}
