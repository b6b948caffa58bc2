//! lima's native core: streaming readers for dump files, record parsers, the
//! LIMA answer filters and the HTML to Markdown conversion. Pure Rust; the
//! PyO3 binding is the `python` module, compiled only with the `python`
//! feature.

pub mod bzip2block;
pub mod bzip2par;
pub mod comments;
pub mod error;
pub mod filters;
pub mod html;
pub mod input;
pub mod jsonfields;
pub mod lines;
pub mod posts;
pub mod pushshift;
pub mod scan;
pub mod table;
pub mod tidy;
pub mod users;

#[cfg(feature = "python")]
mod python;

pub use error::{CoreError, Result};
