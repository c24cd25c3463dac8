//! The cache: what may be stored and for how long, and where it is kept.

pub mod directives;
pub mod entry;
pub mod key;
pub mod policy;
pub mod rules;
pub mod sealed;
pub mod store;
pub mod vary;

pub use directives::Directives;
pub use entry::StoredResponse;
pub use store::Store;
