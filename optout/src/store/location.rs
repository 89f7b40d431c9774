//! Where the store lives: an SQLite file (the default) or a PostgreSQL database named by a
//! `postgres://` (or `postgresql://`) URL, as the configuration's `db` and `--db` give it.
//! The URL's password is never shown ([`PgUrl`]).

use std::path::{Path, PathBuf};

use rest::pg::PgUrl;

/// A store's place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// An SQLite file (created on first use).
    File(PathBuf),
    /// A PostgreSQL database.
    Postgres(PgUrl),
}

impl StoreLocation {
    /// A `postgres://` or `postgresql://` URL is a PostgreSQL database; anything else a file.
    pub fn parse(text: &str) -> Self {
        if PgUrl::is_url(text) {
            Self::Postgres(PgUrl::new(text))
        } else {
            Self::File(PathBuf::from(text))
        }
    }

    /// The file, taken from `base` when relative (a URL is left as it is).
    pub fn resolved_from(self, base: &Path) -> Self {
        match self {
            Self::File(path) if path.is_relative() => Self::File(base.join(path)),
            other => other,
        }
    }
}

impl std::str::FromStr for StoreLocation {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(text))
    }
}

/// The file's path, or the URL without its password.
impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => write!(f, "{url}"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for StoreLocation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Self::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_files_are_told_apart_and_the_password_is_not_shown() {
        assert_eq!(
            StoreLocation::parse("optout.db").resolved_from(Path::new("/etc/shaken")),
            StoreLocation::File("/etc/shaken/optout.db".into())
        );
        assert_eq!(
            StoreLocation::parse("/var/optout.db").resolved_from(Path::new("/etc/shaken")),
            StoreLocation::File("/var/optout.db".into())
        );
        for text in [
            "postgres://shaken:s3cr3t@db.example/optout",
            "postgresql://shaken@db.example/optout?password=s3cr3t",
        ] {
            let location = StoreLocation::parse(text).resolved_from(Path::new("/x"));
            assert!(matches!(location, StoreLocation::Postgres(_)), "{text}");
            let shown = location.to_string();
            assert_eq!(shown, "postgres://shaken@db.example:5432/optout");
            assert!(!format!("{location:?}").contains("s3cr3t"));
        }
    }
}
