//! The `pathlight` commands an operator runs besides `serve`: importing event files,
//! generating traffic, scoring the anomaly rules.

pub mod generate;
pub mod import;
pub mod score;
