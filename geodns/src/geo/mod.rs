//! Geo services: the edges behind a name and the policy that picks among them.

pub mod alias;
mod answer_map;
mod selection;
mod service;

pub use answer_map::{AnswerMap, GeoMaps};
pub use selection::{Family, Reason, Selection, effective_km, select};
pub use service::{Edge, Rule, Service};
