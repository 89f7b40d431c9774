//! Where the store lives: an SQLite file (the default) or a PostgreSQL database named by a
//! `postgres://` (or `postgresql://`) URL, as the configuration's `db` and `--db` give it
//! ([`rest::pg::DbLocation`], shared with the signer's registry; its tests are there). The
//! URL's password is never shown.

/// A store's place.
pub type StoreLocation = rest::pg::DbLocation;
