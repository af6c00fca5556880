//! Connector settings: the config types live in `squall-catalog`, which validation reads
//! too; the connectors build from them.

pub use squall_catalog::backoff::BackoffConfig;
pub use squall_catalog::ConfigError;
