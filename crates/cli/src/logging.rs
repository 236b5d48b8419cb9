//! Logs go to stderr, pretty for people or JSON for machines. The filter
//! comes from `RUST_LOG` (default `info`, with sqlx's per-query logs off:
//! they would print bound values, which can be personal data).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub const DEFAULT_FILTER: &str = "info,sqlx=warn";

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}
