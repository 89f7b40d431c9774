//! The lab's marketing pieces (issue 16): the firms, the regulator's signed list, and the files
//! of the opt-out service.
//!
//! The lab's policy administrator plays the regulator: its key `pa/pa.key` signs the list and
//! its certificate `pa/pa.pem` (a self-signed P-256 certificate) is the regulator certificate
//! the signers and the verifier are configured with. [`publish_list`] writes the list's source
//! `lists/list.json` and the signed list `lists/current.jws`.
//!
//! The list holds three firms ([`WHITE_LISTED`], [`SMALL_QUOTA`], [`BLACKLISTED`]) whose
//! numbers are in the originating carrier's registry, verified and active, so only the list
//! tells them apart from other subscribers, and the numbers blacklisted on their own. Its
//! version is the time it was made, so a lab started again in the same folder publishes a
//! newer list.
//!
//! [`optout_files`] makes the opt-out service's folder `optout/` afresh (the opt-outs of an
//! earlier run are gone): its SQLite store, a random link key (`link.key`, hex) and a random
//! feed bearer token (`feed.token`), both written 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand_core::CryptoRngCore;
use serde_json::{json, Value};

use crate::error::{create_dir, read, LabError};
use crate::numbers::{Numbers, Subscriber};

/// A firm of the lab's list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirmSpec {
    /// Its id (a unified social credit code).
    pub id: &'static str,
    /// The vetted display name the calls show (`rcd.nam`).
    pub name: &'static str,
    /// `white-listed` or `blacklisted`.
    pub status: &'static str,
    /// Signed calls allowed per hour.
    pub hourly_quota: u64,
    /// The call reasons it may state (`crn`).
    pub reasons: &'static [&'static str],
}

/// The white-listed firm: a quota far above what a lab run places.
pub const WHITE_LISTED: FirmSpec = FirmSpec {
    id: "91310000MA1FL1234X",
    name: "Sunrise Insurance",
    status: "white-listed",
    hourly_quota: 5000,
    reasons: &["Policy renewal", "Appointment reminder"],
};

/// The second white-listed firm, whose small quota the quota case uses up.
pub const SMALL_QUOTA: FirmSpec = FirmSpec {
    id: "91310000MA1FL5678Y",
    name: "Brightway Surveys",
    status: "white-listed",
    hourly_quota: 2,
    reasons: &["Customer survey"],
};

/// The blacklisted firm.
pub const BLACKLISTED: FirmSpec = FirmSpec {
    id: "91440300MA5DB9999Z",
    name: "Nightcall Marketing",
    status: "blacklisted",
    hourly_quota: 1000,
    reasons: &["Special offer"],
};

/// A reason no firm of the lab may state.
pub const UNLISTED_REASON: &str = "Debt collection";

/// Seconds the lab's list is valid.
const LIST_SECONDS: u64 = 30 * 86_400;

/// The lab's list document as JSON (what `lists/list.json` holds) for `numbers`, issued at
/// `now`: version `now`, valid 30 days.
pub fn list_json(numbers: &Numbers, now: u64) -> Value {
    let tns = |list: &[Subscriber]| list.iter().map(|s| s.tn.to_owned()).collect::<Vec<_>>();
    let firm = |spec: &FirmSpec, numbers: Vec<String>| {
        json!({"id": spec.id, "name": spec.name, "status": spec.status, "numbers": numbers,
               "hourly_quota": spec.hourly_quota, "reasons": spec.reasons})
    };
    json!({
        "version": now,
        "issued_at": now.saturating_sub(60),
        "expires_at": now.saturating_add(LIST_SECONDS),
        "firms": [
            firm(&WHITE_LISTED, tns(numbers.marketing)),
            firm(&SMALL_QUOTA, tns(numbers.small_quota)),
            firm(&BLACKLISTED, vec![numbers.blacklisted_range.to_owned()]),
        ],
        "blacklisted_numbers": tns(numbers.blacklisted_alone),
    })
}

/// Where the published list is.
#[derive(Clone, Debug)]
pub struct ListFiles {
    /// The signed list (`lists/current.jws`).
    pub jws: PathBuf,
    /// Its source (`lists/list.json`).
    pub source: PathBuf,
    /// The regulator certificate consumers verify it with (`pa/pa.pem`).
    pub regulator_cert: PathBuf,
}

/// Writes the lab's list for `numbers` as of `now` into `dir/lists/` and signs it with the
/// PA's key and certificate in `dir/pa/` (made by [`crate::pki::build`]).
pub fn publish_list(dir: &Path, numbers: &Numbers, now: u64) -> Result<ListFiles, LabError> {
    let folder = dir.join("lists");
    create_dir(&folder)?;
    let files = ListFiles {
        jws: folder.join("current.jws"),
        source: folder.join("list.json"),
        regulator_cert: dir.join("pa/pa.pem"),
    };
    let text = serde_json::to_string_pretty(&list_json(numbers, now))
        .map_err(|e| LabError::io(&files.source, &e.into()))?;
    let document = lists::ListDocument::parse(text.as_bytes(), lists::Format::Json)?;
    let key = ca_tools::keyfile::read_private_key(&dir.join("pa/pa.key"))?;
    let cert = lists::RegulatorCert::from_pem(&read(&files.regulator_cert)?)?;
    let mut jws = lists::jws::sign(&document, &key, &cert)?;
    jws.push('\n');
    crate::description::write_atomic(&files.source, text.as_bytes())?;
    crate::description::write_atomic(&files.jws, jws.as_bytes())?;
    Ok(files)
}

/// The opt-out service's files.
#[derive(Clone, Debug)]
pub struct OptOutFiles {
    /// Its SQLite store (`optout/optout.sqlite`).
    pub db: PathBuf,
    /// The link key, hex (`optout/link.key`, 0600): the verifier mints links with it.
    pub link_key: PathBuf,
    /// The feed's bearer token (`optout/feed.token`, 0600): the mirrors poll with it.
    pub feed_token: PathBuf,
}

/// Makes `dir/optout/` afresh (an earlier run's opt-outs removed) with a new link key and feed
/// token from `rng`.
pub fn optout_files(dir: &Path, rng: &mut impl CryptoRngCore) -> Result<OptOutFiles, LabError> {
    let folder = dir.join("optout");
    if folder.exists() {
        std::fs::remove_dir_all(&folder).map_err(|e| LabError::io(&folder, &e))?;
    }
    create_dir(&folder)?;
    let files = OptOutFiles {
        db: folder.join("optout.sqlite"),
        link_key: folder.join("link.key"),
        feed_token: folder.join("feed.token"),
    };
    write_secret(&files.link_key, &random_hex(rng))?;
    write_secret(&files.feed_token, &random_hex(rng))?;
    Ok(files)
}

/// 32 random bytes as 64 hex digits.
fn random_hex(rng: &mut impl CryptoRngCore) -> String {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a secret as one line to a new file readable by its owner only (0600).
fn write_secret(path: &Path, secret: &str) -> Result<(), LabError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| LabError::io(path, &e))?;
    file.write_all(secret.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(|e| LabError::io(path, &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numbers::{CHINA, NANP};

    /// The PA signs the list; it verifies with the PA's certificate, and each firm's numbers
    /// are listed as the lab says.
    #[test]
    fn the_pa_signs_a_list_that_verifies_with_its_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_790_000_000;
        crate::pki::build(
            dir.path(),
            &dir.path().join("publish"),
            "https://127.0.0.1:1",
            now,
            &mut rand_core::OsRng,
        )
        .unwrap();
        for numbers in [&NANP, &CHINA] {
            let files = publish_list(dir.path(), numbers, now).unwrap();
            let cert =
                lists::RegulatorCert::from_pem(&read(&files.regulator_cert).unwrap()).unwrap();
            let verified = lists::store::check(&read(&files.jws).unwrap(), &cert, now).unwrap();
            let index = lists::ListIndex::new(verified.document);
            let firm_of = |tn: &str| index.lookup(tn).firm.map(|f| f.id.clone());
            assert_eq!(
                firm_of(numbers.marketing(1)).as_deref(),
                Some(WHITE_LISTED.id)
            );
            assert_eq!(
                index
                    .lookup(numbers.marketing(0))
                    .white_listed_firm()
                    .map(|f| &f.name[..]),
                Some(WHITE_LISTED.name)
            );
            assert_eq!(
                firm_of(numbers.blacklisted(1)).as_deref(),
                Some(BLACKLISTED.id)
            );
            assert!(index.lookup(numbers.blacklisted(0)).barred());
            assert!(
                index
                    .lookup(numbers.blacklisted_alone[0].tn)
                    .blacklisted_number
            );
            assert!(firm_of(numbers.registered(0)).is_none());
            assert!(!index.lookup(numbers.registered(0)).barred());
            let source = read(&files.source).unwrap();
            assert!(lists::ListDocument::parse(&source, lists::Format::Json).is_ok());
        }
    }

    #[test]
    fn the_optout_folder_is_made_afresh_with_private_secrets() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = optout_files(dir.path(), &mut rand_core::OsRng).unwrap();
        std::fs::write(&first.db, b"old opt-outs").unwrap();
        let key = std::fs::read_to_string(&first.link_key).unwrap();
        let second = optout_files(dir.path(), &mut rand_core::OsRng).unwrap();
        assert!(!second.db.exists());
        assert_ne!(std::fs::read_to_string(&second.link_key).unwrap(), key);
        for file in [&second.link_key, &second.feed_token] {
            let mode = std::fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
        assert!(optout::LinkKey::from_file(&second.link_key).is_ok());
        assert_eq!(
            std::fs::read_to_string(&second.feed_token)
                .unwrap()
                .trim()
                .len(),
            64
        );
    }
}
