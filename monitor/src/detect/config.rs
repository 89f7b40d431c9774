//! The detection settings: the config's top-level `home_country`, `allow_file`, `lists`,
//! `lateness_seconds`, and one `[detectors.NAME]` table per detector.
//!
//! CONTRACT (skeleton): the detectors branch fills in every key and its default.

use std::path::PathBuf;

use serde::Deserialize;

/// The detection part of the monitor's TOML config.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct DetectionConfig {
    /// The home country code (E.164 digits), e.g. `"86"`.
    pub home_country: Option<String>,
    /// A file of allow-listed numbers, one a line.
    pub allow_file: Option<PathBuf>,
    /// The regulator's signed list (a `[lists]`-style table), for firms' quotas.
    pub lists: Option<toml::Value>,
}
