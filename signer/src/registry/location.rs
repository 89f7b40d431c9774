//! Where a registry lives: an SQLite file (the default) or a PostgreSQL database named by a
//! `postgres://` (or `postgresql://`) URL ([`rest::pg::DbLocation`], shared with the opt-out
//! service's store). A URL's password is never shown: [`PgUrl`]'s `Display` and `Debug` print
//! only the user, hosts, ports and database.

pub use rest::pg::PgUrl;

/// A registry's place, as `--db` and `registry_db` give it.
pub type RegistryLocation = rest::pg::DbLocation;

#[cfg(test)]
mod tests {
    use super::*;

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
