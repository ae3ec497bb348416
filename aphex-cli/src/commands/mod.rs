//! One module per subcommand.

pub mod bootstrap;
pub mod diff;
pub mod history;
pub mod init;
pub mod plan;
pub mod render;
pub mod run;
pub mod schema;
pub mod validate;
pub mod webhook;
