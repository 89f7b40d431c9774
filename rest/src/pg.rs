//! Connecting to PostgreSQL, shared by every store that can live there (the signer's
//! registry, the opt-out service's store): [`PgUrl`], a URL whose `Display` and `Debug` never
//! show its password, and [`client_config`], the client settings that notice a dead server or
//! network within seconds.
//!
//! The client is the synchronous `postgres` crate: [`connect`] and every call on the client
//! it returns must not run on an async task (the client drives its own small runtime); call
//! them from a thread of their own or `tokio::task::spawn_blocking`.

use std::time::Duration;

use postgres::{Client, NoTls};

/// How long a connection attempt may take when the URL sets no `connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Unacknowledged data older than this closes the connection (`tcp_user_timeout`), when the
/// URL sets none.
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// The environment variable a password is taken from when the URL has none (as libpq's
/// `PGPASSWORD`): a password there is not visible in `ps` as one in a `--db` argument is.
pub const PASSWORD_ENV: &str = "PGPASSWORD";

/// A PostgreSQL connection URL (`postgres://USER:PASSWORD@HOST:PORT/DATABASE?OPTIONS`).
///
/// Its `Display` and `Debug` never show the password: they are built from what the
/// `postgres` client itself parses out of the URL (user, hosts, ports, database), so a
/// password given as `?password=...`, or holding an unencoded `/`, `?` or `@`, is hidden too.
/// A URL the client cannot parse is shown as `postgres://(unparsable URL)`.
/// [`PgUrl::secret`] gives the whole URL, for the connection only.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    text: String,
    shown: String,
}

impl PgUrl {
    /// Whether `text` is a PostgreSQL URL.
    pub fn is_url(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// The URL `text` (its shown form computed once, here).
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            shown: shown_form(text),
        }
    }

    /// The whole URL, password included: to connect with, never to print.
    pub fn secret(&self) -> &str {
        &self.text
    }

    /// The URL without its password: `postgres://USER@HOST:PORT[,HOST:PORT...]/DATABASE`.
    pub fn redacted(&self) -> String {
        self.shown.clone()
    }
}

/// What [`PgUrl`] shows of `text`: only the user, hosts, ports and database the client
/// parses from it. A host holding `@` (what an unencoded `@` in a password leaves there) is
/// shown as `***`.
fn shown_form(text: &str) -> String {
    let Ok(config) = text.parse::<postgres::Config>() else {
        return "postgres://(unparsable URL)".into();
    };
    let mut out = String::from("postgres://");
    if let Some(user) = config.get_user() {
        out.push_str(user);
        out.push('@');
    }
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let name = match host {
                postgres::config::Host::Tcp(name) if name.contains('@') => "***".to_owned(),
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            // One port applies to every host; otherwise one per host.
            match ports.get(index).or(if ports.len() == 1 {
                ports.first()
            } else {
                None
            }) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
        .collect();
    out.push_str(&hosts.join(","));
    if let Some(db) = config.get_dbname() {
        out.push('/');
        out.push_str(db);
    }
    out
}

impl std::fmt::Display for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgUrl({})", self.shown)
    }
}

/// The client's settings for `url`: its own, plus `password` when the URL has none, plus
/// [`CONNECT_TIMEOUT`] when the URL sets no `connect_timeout`, and TCP keepalives and
/// `tcp_user_timeout` so that a dead server or network is noticed within seconds.
pub fn client_config(
    url: &PgUrl,
    password: Option<&str>,
) -> Result<postgres::Config, postgres::Error> {
    let mut config: postgres::Config = url.secret().parse()?;
    if config.get_password().is_none() {
        if let Some(password) = password.filter(|p| !p.is_empty()) {
            config.password(password);
        }
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(5));
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(Duration::from_secs(2));
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(3);
    }
    Ok(config)
}

/// How long a connection attempt to `url` may take: the URL's `connect_timeout`, or
/// [`CONNECT_TIMEOUT`].
pub fn connect_timeout(url: &PgUrl) -> Duration {
    client_config(url, None)
        .ok()
        .and_then(|config| config.get_connect_timeout().copied())
        .unwrap_or(CONNECT_TIMEOUT)
}

/// Connects to `url` (no TLS), the password taken from [`PASSWORD_ENV`] when the URL has
/// none ([`client_config`]). Must not be called from an async task.
pub fn connect(url: &PgUrl) -> Result<Client, postgres::Error> {
    let password = std::env::var(PASSWORD_ENV).ok();
    client_config(url, password.as_deref())?.connect(NoTls)
}

/// An error's message followed by those of its causes (each once): what the `postgres`
/// client's `Display` alone leaves out (it says "db error", the cause says which). Never
/// holds the password: the client's errors do not quote the URL.
pub fn error_detail(error: &dyn std::error::Error) -> String {
    let mut detail = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        source = cause.source();
    }
    detail
}

/// Where a store lives, as a `--db` flag or a `db`/`registry_db` setting gives it: an SQLite
/// file (the default) or a PostgreSQL database named by a `postgres://` (or `postgresql://`)
/// URL. Shown (`Display`, `Debug`) without the URL's password. The signer's registry and the
/// opt-out service's store name it after themselves (`RegistryLocation`, `StoreLocation`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbLocation {
    /// An SQLite file (created on first use).
    File(std::path::PathBuf),
    /// A PostgreSQL database.
    Postgres(PgUrl),
}

impl DbLocation {
    /// A `postgres://` or `postgresql://` URL is a PostgreSQL database; anything else a file.
    pub fn parse(text: &str) -> Self {
        if PgUrl::is_url(text) {
            Self::Postgres(PgUrl::new(text))
        } else {
            Self::File(std::path::PathBuf::from(text))
        }
    }

    /// The file, taken from `base` when relative (a URL is left as it is).
    pub fn resolved_from(self, base: &std::path::Path) -> Self {
        match self {
            Self::File(path) if path.is_relative() => Self::File(base.join(path)),
            other => other,
        }
    }
}

impl std::str::FromStr for DbLocation {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(text))
    }
}

/// The file's path, or the URL without its password.
impl std::fmt::Display for DbLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => write!(f, "{url}"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for DbLocation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Self::parse(&text))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown() {
        // Every way the client accepts a password: in the authority (with unencoded '/', '?'
        // or '@' in it too, which the client reads up to the first '@'), or as a parameter.
        for (text, shown) in [
            (
                "postgres://shaken:s3cr3t@db.example:5432/reg?sslmode=disable",
                "postgres://shaken@db.example:5432/reg",
            ),
            (
                "postgres://shaken@db.example/reg?password=s3cr3t&sslmode=disable",
                "postgres://shaken@db.example:5432/reg",
            ),
            (
                "postgres://db.example/reg?user=shaken&password=s3cr3t",
                "postgres://shaken@db.example:5432/reg",
            ),
            (
                "postgres://shaken:s3/cr3t@h/reg",
                "postgres://shaken@h:5432/reg",
            ),
            (
                "postgres://shaken:s3?cr3t@h/reg",
                "postgres://shaken@h:5432/reg",
            ),
            (
                "postgres://shaken:s3?c/r3t@h:6000/reg",
                "postgres://shaken@h:6000/reg",
            ),
            (
                "postgres://shaken:s3cr3t@x@h/reg",
                "postgres://shaken@***:5432/reg",
            ),
            (
                "postgresql://shaken:s3cr3t@h1:5433,h2:5434/reg",
                "postgres://shaken@h1:5433,h2:5434/reg",
            ),
            (
                "postgres://shaken:s3cr3t@h:notaport/reg",
                "postgres://(unparsable URL)",
            ),
        ] {
            let url = PgUrl::new(text);
            assert_eq!(url.to_string(), shown, "{text}");
            assert!(!format!("{url:?}").contains("s3"), "{text}");
            assert_eq!(url.secret(), text);
        }
        for plain in [
            "postgres://h:5432/db",
            "postgres://u@h:5432/db",
            "postgres://h:5432",
        ] {
            assert_eq!(PgUrl::new(plain).to_string(), plain);
        }
    }

    #[test]
    fn the_password_comes_from_the_url_or_else_from_outside_it() {
        let bare = PgUrl::new("postgres://shaken@h/reg");
        let config = client_config(&bare, Some("from-env")).unwrap();
        assert_eq!(config.get_password(), Some(&b"from-env"[..]));
        assert_eq!(client_config(&bare, None).unwrap().get_password(), None);
        assert_eq!(client_config(&bare, Some("")).unwrap().get_password(), None);
        let with = PgUrl::new("postgres://shaken:in-url@h/reg");
        let config = client_config(&with, Some("from-env")).unwrap();
        assert_eq!(config.get_password(), Some(&b"in-url"[..]));
    }

    #[test]
    fn the_urls_timeouts_win_and_dead_connections_are_noticed() {
        let config = client_config(&PgUrl::new("postgres://h/reg"), None).unwrap();
        assert_eq!(config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(config.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        assert!(config.get_keepalives());
        assert!(config.get_keepalives_retries().is_some());
        let url = PgUrl::new("postgres://h/reg?connect_timeout=2&tcp_user_timeout=3");
        let config = client_config(&url, None).unwrap();
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(2)));
        assert_eq!(config.get_tcp_user_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(connect_timeout(&url), Duration::from_secs(2));
    }

    #[test]
    fn locations_tell_urls_from_files_and_never_show_the_password() {
        use std::path::Path;
        assert_eq!(
            DbLocation::parse("registry.sqlite"),
            DbLocation::File("registry.sqlite".into())
        );
        assert_eq!(
            DbLocation::parse("r.sqlite").resolved_from(Path::new("/etc/shaken")),
            DbLocation::File("/etc/shaken/r.sqlite".into())
        );
        assert_eq!(
            DbLocation::parse("/var/optout.db").resolved_from(Path::new("/etc/shaken")),
            DbLocation::File("/var/optout.db".into())
        );
        for text in [
            "postgres://shaken:s3cr3t@db.example/optout",
            "postgresql://shaken@db.example/optout?password=s3cr3t",
        ] {
            let location = DbLocation::parse(text).resolved_from(Path::new("/x"));
            assert!(matches!(location, DbLocation::Postgres(_)), "{text}");
            assert_eq!(
                location.to_string(),
                "postgres://shaken@db.example:5432/optout"
            );
            assert!(!format!("{location:?}").contains("s3cr3t"));
        }
        let parsed: DbLocation = "postgres://u:p@h/db".parse().unwrap();
        assert_eq!(parsed.clone().resolved_from(Path::new("/x")), parsed);
    }
}
