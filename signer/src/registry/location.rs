//! Where a registry lives: an SQLite file (the default) or a PostgreSQL database named by a
//! `postgres://` (or `postgresql://`) URL. A URL's password is never shown: [`PgUrl`]'s
//! `Display` and `Debug` print only the user, hosts, ports and database.

use std::path::{Path, PathBuf};

pub use rest::pg::PgUrl;

/// A registry's place, as `--db` and `registry_db` give it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryLocation {
    /// An SQLite file (created on first use).
    File(PathBuf),
    /// A PostgreSQL database.
    Postgres(PgUrl),
}

impl RegistryLocation {
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

impl std::str::FromStr for RegistryLocation {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(text))
    }
}

/// The file's path, or the URL with its password hidden.
impl std::fmt::Display for RegistryLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => write!(f, "{url}"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for RegistryLocation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Self::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_files_are_told_apart() {
        assert_eq!(
            RegistryLocation::parse("registry.sqlite"),
            RegistryLocation::File("registry.sqlite".into())
        );
        assert!(matches!(
            RegistryLocation::parse("postgresql://h/db"),
            RegistryLocation::Postgres(_)
        ));
        assert_eq!(
            RegistryLocation::parse("r.sqlite").resolved_from(Path::new("/etc/shaken")),
            RegistryLocation::File("/etc/shaken/r.sqlite".into())
        );
        let url = RegistryLocation::parse("postgres://u:p@h/db");
        assert_eq!(url.clone().resolved_from(Path::new("/x")), url);
    }

    #[test]
    fn the_password_is_never_shown() {
        // PgUrl's own cases are tested in rest::pg; here: what the signer builds from one.
        for text in [
            "postgres://shaken:s3cr3t@db.example:5432/reg?sslmode=disable",
            "postgres://shaken@db.example/reg?password=s3cr3t&sslmode=disable",
            "postgres://shaken:s3?c/r3t@h:6000/reg",
        ] {
            let url = PgUrl::new(text);
            assert!(!RegistryLocation::Postgres(url.clone())
                .to_string()
                .contains("s3"));
            let error = crate::error::SignerError::pg(&url, std::io::Error::other("refused"));
            assert!(!error.to_string().contains("s3"), "{error}");
        }
    }
}
