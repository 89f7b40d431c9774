//! Every object identifier the project reads or writes, in one place: messages and
//! comparisons use these constants, never a literal.
//!
//! The constants are `der`'s (RustCrypto) `ObjectIdentifier`, which the CA tools write with;
//! [`is`] compares them with an OID parsed by x509-parser, which the readers use (both hold
//! the same BER content bytes).

pub use der::asn1::ObjectIdentifier;

macro_rules! oids {
    ($($(#[$doc:meta])* $name:ident = $value:literal;)*) => {
        $($(#[$doc])* pub const $name: ObjectIdentifier = ObjectIdentifier::new_unwrap($value);)*
    };
}

oids! {
    /// `ecdsa-with-SHA256` (RFC 5758): the only signature algorithm of STI certificates.
    ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";
    /// `ecdsa-with-SHA384` (RFC 5758): not allowed in STI certificates (a test fixture uses it).
    ECDSA_WITH_SHA384 = "1.2.840.10045.4.3.3";
    /// `id-ecPublicKey` (RFC 5480).
    EC_PUBLIC_KEY = "1.2.840.10045.2.1";
    /// `secp256r1` (P-256, RFC 5480).
    SECP256R1 = "1.2.840.10045.3.1.7";
    /// The SHAKEN certificate policy, CP v1.3 (ATIS-1000080).
    SHAKEN_CP_1_3 = "2.16.840.1.114569.1.1.3";
    /// The SHAKEN certificate policy, CP v1.1 (older; accepted with a warning).
    SHAKEN_CP_1_1 = "2.16.840.1.114569.1.1.1";
    /// `id-pe-TNAuthList` (RFC 8226).
    TN_AUTH_LIST = "1.3.6.1.5.5.7.1.26";
    /// `id-kp-serverAuth` (repository TLS certificates).
    SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
    /// `id-kp-clientAuth` (SBC TLS client certificates).
    CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
    /// `id-at-countryName`.
    COUNTRY = "2.5.4.6";
    /// `id-at-organizationName`.
    ORGANIZATION = "2.5.4.10";
    /// `id-at-organizationalUnitName`.
    ORGANIZATIONAL_UNIT = "2.5.4.11";
    /// `id-at-commonName`.
    COMMON_NAME = "2.5.4.3";
    /// `id-at-serialNumber`.
    SERIAL_NUMBER = "2.5.4.5";
    /// `id-ce-subjectKeyIdentifier`.
    SUBJECT_KEY_IDENTIFIER = "2.5.29.14";
    /// `id-ce-keyUsage`.
    KEY_USAGE = "2.5.29.15";
    /// `id-ce-subjectAltName`.
    SUBJECT_ALT_NAME = "2.5.29.17";
    /// `id-ce-basicConstraints`.
    BASIC_CONSTRAINTS = "2.5.29.19";
    /// `id-ce-cRLNumber`.
    CRL_NUMBER = "2.5.29.20";
    /// `id-ce-cRLReasons`.
    CRL_REASON = "2.5.29.21";
    /// `id-ce-cRLDistributionPoints`.
    CRL_DISTRIBUTION_POINTS = "2.5.29.31";
    /// `id-ce-certificatePolicies`.
    CERTIFICATE_POLICIES = "2.5.29.32";
    /// `id-ce-authorityKeyIdentifier`.
    AUTHORITY_KEY_IDENTIFIER = "2.5.29.35";
    /// `id-ce-extKeyUsage`.
    EXTENDED_KEY_USAGE = "2.5.29.37";
    /// PKCS#9 `extensionRequest` (the CSR attribute carrying the requested extensions).
    EXTENSION_REQUEST = "1.2.840.113549.1.9.14";
}

/// The extensions an STI certificate may carry (ATIS-1000080 §6.4.1); any other is an error.
pub const STI_EXTENSIONS: [ObjectIdentifier; 7] = [
    SUBJECT_KEY_IDENTIFIER,
    AUTHORITY_KEY_IDENTIFIER,
    BASIC_CONSTRAINTS,
    KEY_USAGE,
    TN_AUTH_LIST,
    CRL_DISTRIBUTION_POINTS,
    CERTIFICATE_POLICIES,
];

/// Whether an OID parsed by x509-parser is `oid`.
pub fn is(found: &x509_parser::oid_registry::Oid<'_>, oid: &ObjectIdentifier) -> bool {
    found.as_bytes() == oid.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_oids_compare_with_the_constants() {
        let parsed = x509_parser::oid_registry::Oid::from(&[1, 3, 6, 1, 5, 5, 7, 1, 26])
            .unwrap_or_else(|_| unreachable!());
        assert!(is(&parsed, &TN_AUTH_LIST));
        assert!(!is(&parsed, &SHAKEN_CP_1_3));
        assert_eq!(TN_AUTH_LIST.to_string(), "1.3.6.1.5.5.7.1.26");
    }
}
