//! Schemas: validation of written values by key pattern.

#[cfg(feature = "garde")]
mod garde_report;
mod issue;
mod pattern;
mod registry;

#[cfg(feature = "garde")]
pub(crate) use garde_report::report_to_issues;
pub use issue::Issue;
pub use pattern::{Pattern, PatternPart};
pub(crate) use registry::SchemaRegistry;
