//! Where a registry lives: an SQLite file (the default) or a PostgreSQL database named by a
//! `postgres://` (or `postgresql://`) URL. A URL's password is never shown: [`PgUrl`]'s
//! `Display` and `Debug` print it as `***`.

use std::path::{Path, PathBuf};

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
            Self::Postgres(PgUrl(text.to_owned()))
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

/// A PostgreSQL connection URL (`postgres://USER:PASSWORD@HOST:PORT/DATABASE?OPTIONS`).
/// Shown with its password replaced by `***`; [`PgUrl::secret`] gives the whole URL, for the
/// connection only.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl(String);

impl PgUrl {
    /// Whether `text` is a PostgreSQL URL.
    pub fn is_url(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// The whole URL, password included: to connect with, never to print.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// The URL with its password (if any) replaced by `***`.
    pub fn redacted(&self) -> String {
        let url = &self.0;
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
            return "***".into();
        };
        let rest = url.get(scheme_end..).unwrap_or("");
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = rest.get(..authority_end).unwrap_or("");
        // The userinfo ends at the last '@' of the authority (a password may hold '@').
        let Some(at) = authority.rfind('@') else {
            return url.clone();
        };
        let userinfo = authority.get(..at).unwrap_or("");
        let Some(colon) = userinfo.find(':') else {
            return url.clone();
        };
        format!(
            "{}{}:***{}",
            url.get(..scheme_end).unwrap_or(""),
            userinfo.get(..colon).unwrap_or(""),
            rest.get(at..).unwrap_or("")
        )
    }
}

impl std::fmt::Display for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgUrl({})", self.redacted())
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
        let url = PgUrl("postgres://shaken:s3cr@t:pw@db.example:5432/reg?sslmode=disable".into());
        assert_eq!(
            url.to_string(),
            "postgres://shaken:***@db.example:5432/reg?sslmode=disable"
        );
        assert!(!format!("{url:?}").contains("s3cr"));
        assert!(!RegistryLocation::Postgres(url.clone())
            .to_string()
            .contains("s3cr"));
        assert_eq!(url.secret().len(), 63);
        for plain in ["postgres://h/db", "postgres://u@h/db", "postgres://h:5432"] {
            assert_eq!(PgUrl(plain.into()).to_string(), plain);
        }
    }
}
