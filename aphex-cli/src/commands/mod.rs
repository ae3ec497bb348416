//! One module per subcommand.

pub mod init;
pub mod schema;
pub mod validate;
