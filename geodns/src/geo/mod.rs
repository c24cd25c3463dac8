//! Geo services: the edges behind a name and the policy that picks among them.

pub mod alias;
mod scope;
mod selection;
mod service;

pub use scope::{ScopeFinder, ScopeKey};
pub use selection::{Family, Reason, Selection, effective_km, select};
pub use service::{Edge, Rule, Service};
