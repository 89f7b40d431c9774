//! The detection settings: the config's top-level `home_country`, `allow_file`, `lists`,
//! `lateness_seconds`, `international_gateway_spcs`, `international_ingress`, and one
//! `[detectors.NAME]` table per detector. Every key has a default (the issue's thresholds);
//! unknown keys are refused by name.
//!
//! Thresholds are "more than": a threshold of 60 raises an alert at the 61st call. A window of
//! `W` seconds holds the events whose times `τ` satisfy `f - W < τ <= f` for some event
//! time `f` (so 60 calls at 12:00:00 and one at 12:59:59 are 61 in one hour-window).

use std::path::PathBuf;

use serde::Deserialize;

use super::DetectorId;

/// The detection part of the monitor's TOML config.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DetectionConfig {
    /// The home country code (E.164 digits), e.g. `"86"`. Without it `out-of-area` is off.
    #[serde(default)]
    pub home_country: Option<String>,
    /// A file of allow-listed numbers, one a line (see [`super::allow::read_allow_file`]).
    #[serde(default)]
    pub allow_file: Option<PathBuf>,
    /// The regulator's signed list (the same `[lists]` table the signer and verifier use):
    /// white-listed firms' numbers are held to their firm's `hourly_quota` instead of
    /// `high-frequency` and `fan-out`. The engine never fetches: the service runs the list's
    /// reloader and hands the current list to [`super::Engine::set_list`].
    #[serde(default)]
    pub lists: Option<lists::ListsConfig>,
    /// How far out of event-time order an event may arrive, in seconds (default 60). An event
    /// older than the newest event time seen minus this is `late`: stored, not counted.
    #[serde(default = "default_lateness")]
    pub lateness_seconds: u64,
    /// SPCs of international gateways: calls they sign count as international ingress for
    /// `out-of-area` (default none).
    #[serde(default)]
    pub international_gateway_spcs: Vec<String>,
    /// `ingress` values meaning the call entered from abroad (default `["international"]`).
    #[serde(default = "default_international_ingress")]
    pub international_ingress: Vec<String>,
    /// The detectors' tables.
    #[serde(default)]
    pub detectors: Detectors,
}

fn default_lateness() -> u64 {
    60
}

fn default_international_ingress() -> Vec<String> {
    vec!["international".into()]
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            home_country: None,
            allow_file: None,
            lists: None,
            lateness_seconds: default_lateness(),
            international_gateway_spcs: Vec::new(),
            international_ingress: default_international_ingress(),
            detectors: Detectors::default(),
        }
    }
}

/// What is wrong with a detection config.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// TOML syntax, an unknown key or a value of the wrong type.
    #[error("detection config: {0}")]
    Toml(String),
    /// `home_country` is not 1 to 3 digits starting with 1-9.
    #[error("home_country must be a country code of 1 to 3 digits, not {0:?}")]
    HomeCountry(String),
    /// A window of zero seconds.
    #[error("[detectors.{detector}] {key} must be at least 1 second")]
    ZeroWindow {
        /// The detector's table.
        detector: &'static str,
        /// The key.
        key: &'static str,
    },
    /// A share above 100 %.
    #[error("[detectors.spoofing-source] share_percent must be 0 to 100, not {0}")]
    Share(u64),
}

impl DetectionConfig {
    /// Reads a detection config from TOML text (a whole file holding only these keys).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values serde cannot: the country code, windows, the share.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(cc) = &self.home_country {
            let ok = (1..=3).contains(&cc.len())
                && cc.bytes().all(|b| b.is_ascii_digit())
                && !cc.starts_with('0');
            if !ok {
                return Err(ConfigError::HomeCountry(cc.clone()));
            }
        }
        let d = &self.detectors;
        let windows: [(&'static str, &'static str, u64); 8] = [
            (
                "high-frequency",
                "hour_window_seconds",
                d.high_frequency.hour_window_seconds,
            ),
            (
                "high-frequency",
                "minute_window_seconds",
                d.high_frequency.minute_window_seconds,
            ),
            ("fan-out", "window_seconds", d.fan_out.window_seconds),
            ("repeat", "window_seconds", d.repeat.window_seconds),
            ("complaints", "window_seconds", d.complaints.window_seconds),
            (
                "out-of-area",
                "window_seconds",
                d.out_of_area.window_seconds,
            ),
            (
                "spoofing-source",
                "window_seconds",
                d.spoofing_source.window_seconds,
            ),
            ("firm-quota", "window_seconds", d.firm_quota.window_seconds),
        ];
        for (detector, key, value) in windows {
            if value == 0 {
                return Err(ConfigError::ZeroWindow { detector, key });
            }
        }
        if d.spoofing_source.share_percent > 100 {
            return Err(ConfigError::Share(d.spoofing_source.share_percent));
        }
        Ok(())
    }

    /// A detector's (longest) window, seconds: the quiet window its alerts close after.
    pub fn window(&self, detector: DetectorId) -> u64 {
        let d = &self.detectors;
        match detector {
            DetectorId::HighFrequency => d
                .high_frequency
                .hour_window_seconds
                .max(d.high_frequency.minute_window_seconds),
            DetectorId::FanOut => d.fan_out.window_seconds,
            DetectorId::Repeat => d.repeat.window_seconds,
            DetectorId::Complaints => d.complaints.window_seconds,
            DetectorId::OutOfArea => d.out_of_area.window_seconds,
            DetectorId::SpoofingSource => d.spoofing_source.window_seconds,
            DetectorId::FirmQuota => d.firm_quota.window_seconds,
        }
    }

    /// Whether a detector is on.
    pub fn enabled(&self, detector: DetectorId) -> bool {
        let d = &self.detectors;
        match detector {
            DetectorId::HighFrequency => d.high_frequency.enabled,
            DetectorId::FanOut => d.fan_out.enabled,
            DetectorId::Repeat => d.repeat.enabled,
            DetectorId::Complaints => d.complaints.enabled,
            DetectorId::OutOfArea => d.out_of_area.enabled && self.home_country.is_some(),
            DetectorId::SpoofingSource => d.spoofing_source.enabled,
            DetectorId::FirmQuota => d.firm_quota.enabled,
        }
    }
}

/// The `[detectors.NAME]` tables.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Detectors {
    /// `[detectors.high-frequency]`.
    #[serde(default, rename = "high-frequency")]
    pub high_frequency: HighFrequency,
    /// `[detectors.fan-out]`.
    #[serde(default, rename = "fan-out")]
    pub fan_out: FanOut,
    /// `[detectors.repeat]`.
    #[serde(default)]
    pub repeat: Repeat,
    /// `[detectors.complaints]`.
    #[serde(default)]
    pub complaints: Complaints,
    /// `[detectors.out-of-area]`.
    #[serde(default, rename = "out-of-area")]
    pub out_of_area: OutOfArea,
    /// `[detectors.spoofing-source]`.
    #[serde(default, rename = "spoofing-source")]
    pub spoofing_source: SpoofingSource,
    /// `[detectors.firm-quota]`: a white-listed firm's calls over its `hourly_quota`.
    #[serde(default, rename = "firm-quota")]
    pub firm_quota: FirmQuota,
}

/// `[detectors.high-frequency]`: a calling number places more than `hour_threshold` calls in
/// `hour_window_seconds`, or more than `minute_threshold` in `minute_window_seconds`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HighFrequency {
    /// On (default true).
    pub enabled: bool,
    /// Default 60.
    pub hour_threshold: u64,
    /// Default 3600.
    pub hour_window_seconds: u64,
    /// Default 10.
    pub minute_threshold: u64,
    /// Default 60.
    pub minute_window_seconds: u64,
}

impl Default for HighFrequency {
    fn default() -> Self {
        Self {
            enabled: true,
            hour_threshold: 60,
            hour_window_seconds: 3600,
            minute_threshold: 10,
            minute_window_seconds: 60,
        }
    }
}

/// Declares a detector table with one threshold over one window, and its defaults (so a
/// table may give only the keys it changes).
macro_rules! counted {
    ($(#[$doc:meta])* $name:ident, $threshold:expr, $window:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            /// On (default true).
            pub enabled: bool,
            /// Alert above this count.
            pub threshold: u64,
            /// The window, seconds.
            pub window_seconds: u64,
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    enabled: true,
                    threshold: $threshold,
                    window_seconds: $window,
                }
            }
        }

        impl From<&$name> for Counted {
            fn from(t: &$name) -> Self {
                Counted {
                    enabled: t.enabled,
                    threshold: t.threshold,
                    window_seconds: t.window_seconds,
                }
            }
        }
    };
}

counted!(
    /// `[detectors.fan-out]`: more than `threshold` (40) distinct called numbers in
    /// `window_seconds` (3600).
    FanOut, 40, 3600
);
counted!(
    /// `[detectors.repeat]`: more than `threshold` (5) calls to one number in `window_seconds`
    /// (3600).
    Repeat, 5, 3600
);
counted!(
    /// `[detectors.complaints]`: more than `threshold` (2) complaints in `window_seconds`
    /// (86400).
    Complaints, 2, 86_400
);
counted!(
    /// `[detectors.out-of-area]`: more than `threshold` (20) marked calls by one SPC in
    /// `window_seconds` (300).
    OutOfArea, 20, 300
);

/// The settings every one-threshold detector shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counted {
    /// On.
    pub enabled: bool,
    /// Alert above this count.
    pub threshold: u64,
    /// The window, seconds.
    pub window_seconds: u64,
}

/// `[detectors.spoofing-source]`: an SPC more than `share_percent` of whose calls were flagged
/// `spoofed`, over at least `min_calls` calls in `window_seconds`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SpoofingSource {
    /// On (default true).
    pub enabled: bool,
    /// Default 30.
    pub share_percent: u64,
    /// Default 50.
    pub min_calls: u64,
    /// Default 300.
    pub window_seconds: u64,
}

impl Default for SpoofingSource {
    fn default() -> Self {
        Self {
            enabled: true,
            share_percent: 30,
            min_calls: 50,
            window_seconds: 300,
        }
    }
}

/// `[detectors.firm-quota]`: a white-listed firm (the regulator's list) placing more calls
/// than its `hourly_quota` in `window_seconds` (default 3600).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FirmQuota {
    /// On (default true; without a list it has nothing to count).
    pub enabled: bool,
    /// Default 3600.
    pub window_seconds: u64,
}

impl Default for FirmQuota {
    fn default() -> Self {
        Self {
            enabled: true,
            window_seconds: 3600,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_issues() {
        let config = DetectionConfig::from_toml("").unwrap();
        assert_eq!(config, DetectionConfig::default());
        let d = &config.detectors;
        assert_eq!(
            (
                d.high_frequency.hour_threshold,
                d.high_frequency.minute_threshold
            ),
            (60, 10)
        );
        assert_eq!((d.fan_out.threshold, d.fan_out.window_seconds), (40, 3600));
        assert_eq!((d.repeat.threshold, d.repeat.window_seconds), (5, 3600));
        assert_eq!(
            (d.complaints.threshold, d.complaints.window_seconds),
            (2, 86_400)
        );
        assert_eq!(
            (d.out_of_area.threshold, d.out_of_area.window_seconds),
            (20, 300)
        );
        assert_eq!(d.spoofing_source.share_percent, 30);
        assert_eq!(config.lateness_seconds, 60);
        assert!(!config.enabled(DetectorId::OutOfArea), "no home country");
    }

    #[test]
    fn keys_are_read_and_unknown_ones_refused() {
        let config = DetectionConfig::from_toml(
            r#"
home_country = "86"
allow_file = "allow.txt"
lateness_seconds = 30
international_gateway_spcs = ["GW01"]
[detectors.repeat]
threshold = 3
window_seconds = 600
[detectors.fan-out]
enabled = false
[detectors.complaints]
threshold = 4
"#,
        )
        .unwrap();
        assert_eq!(config.detectors.repeat.threshold, 3);
        assert!(!config.enabled(DetectorId::FanOut));
        assert_eq!(config.detectors.complaints.window_seconds, 86_400);
        assert!(config.enabled(DetectorId::OutOfArea));
        assert_eq!(config.window(DetectorId::Repeat), 600);
        for bad in [
            "home_contry = \"86\"",
            "[detectors.repeat]\nthreshold = 3\nwindow = 2",
            "[detectors.nonsense]\nenabled = true",
        ] {
            let error = DetectionConfig::from_toml(bad).unwrap_err().to_string();
            assert!(error.contains("unknown"), "{bad}: {error}");
        }
        assert_eq!(
            DetectionConfig::from_toml("home_country = \"+86\""),
            Err(ConfigError::HomeCountry("+86".into()))
        );
        assert_eq!(
            DetectionConfig::from_toml("[detectors.repeat]\nthreshold = 3\nwindow_seconds = 0"),
            Err(ConfigError::ZeroWindow {
                detector: "repeat",
                key: "window_seconds"
            })
        );
    }
}
