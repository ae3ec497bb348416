//! One module per subcommand.

pub mod init;
pub mod plan;
pub mod render;
pub mod schema;
pub mod validate;
pub mod webhook;
