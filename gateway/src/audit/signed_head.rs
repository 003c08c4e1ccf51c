//! The chain head, signed with the gateway's Ed25519 key and published outside the audit
//! directory.
//!
//! The chain shows edits, deletions and reordering; the local head file shows records cut
//! from the end, but someone who can write the directory can cut records *and* rewrite
//! that head, leaving a shorter log that verifies. A copy of the head the gateway signs and
//! writes elsewhere (a file path on another volume or host, and a header of every record
//! on the Kafka mirror) still names the records that were cut: `idgw audit verify
//! --expect-head` compares the log with it, and the gateway itself refuses to start on a
//! log shorter than its last published head.
//!
//! Keys are PKCS#8 PEM files, as `openssl genpkey -algorithm ed25519` or `idgw audit
//! keygen` writes them; the public half (SPKI PEM) is what an auditor needs.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::{Head, line_hash};

/// What the signature covers comes first, so a signature over anything else never matches.
const DOMAIN: &str = "idgw-audit-head/1";

/// Key and signature failures.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not an Ed25519 {what} in PEM ({detail})")]
    Key {
        path: String,
        what: &'static str,
        detail: String,
    },
    #[error("{0}: not a signed audit head ({1})")]
    Format(String, String),
    #[error(
        "the head is signed by key {found}, not by the key given ({expected}): it was not published by this gateway"
    )]
    OtherKey { expected: String, found: String },
    #[error("the head's signature does not verify: it was altered after the gateway signed it")]
    BadSignature,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HeadError + '_ {
    move |source| HeadError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A short, stable name for a public key: the first 16 hex digits of its SHA-256.
pub fn key_id(key: &VerifyingKey) -> String {
    line_hash(key.as_bytes())[..16].to_owned()
}

/// The chain head with the gateway's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    /// Records in the chain when it was signed.
    pub records: u64,
    /// SHA-256 (hex) of the last line then.
    pub last_hash: String,
    /// When it was signed.
    pub signed_at: DateTime<Utc>,
    /// [`key_id`] of the signing key.
    pub key_id: String,
    /// Ed25519 signature (base64) over [`SignedHead::message`].
    pub signature: String,
}

impl SignedHead {
    fn message(records: u64, last_hash: &str, signed_at: &DateTime<Utc>, key_id: &str) -> Vec<u8> {
        format!(
            "{DOMAIN}\n{records}\n{last_hash}\n{}\n{key_id}",
            signed_at.to_rfc3339_opts(SecondsFormat::Nanos, true)
        )
        .into_bytes()
    }

    /// Checks the signature with `key`.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), HeadError> {
        let expected = key_id(key);
        if self.key_id != expected {
            return Err(HeadError::OtherKey {
                expected,
                found: self.key_id.clone(),
            });
        }
        let bytes = B64.decode(&self.signature).map_err(|_| HeadError::BadSignature)?;
        let signature = Signature::from_slice(&bytes).map_err(|_| HeadError::BadSignature)?;
        key.verify(
            &Self::message(self.records, &self.last_hash, &self.signed_at, &self.key_id),
            &signature,
        )
        .map_err(|_| HeadError::BadSignature)
    }

    /// Reads a published head.
    pub fn read(path: &Path) -> Result<Self, HeadError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        serde_json::from_slice(&bytes).map_err(|e| HeadError::Format(path.display().to_string(), e.to_string()))
    }
}

/// The gateway's signing key and where it publishes the signed head.
pub struct HeadSigner {
    key: SigningKey,
    key_id: String,
    copy: Option<PathBuf>,
}

impl std::fmt::Debug for HeadSigner {
    // Never the key itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadSigner")
            .field("key_id", &self.key_id)
            .field("copy", &self.copy)
            .finish()
    }
}

impl HeadSigner {
    /// Loads the PKCS#8 PEM private key at `key_path`; the signed head is also written to
    /// `copy` when given.
    pub fn load(key_path: &Path, copy: Option<PathBuf>) -> Result<Self, HeadError> {
        let pem = std::fs::read_to_string(key_path).map_err(io(key_path))?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| HeadError::Key {
            path: key_path.display().to_string(),
            what: "private key (PKCS#8)",
            detail: e.to_string(),
        })?;
        Ok(Self::new(key, copy))
    }

    fn new(key: SigningKey, copy: Option<PathBuf>) -> Self {
        let key_id = key_id(&key.verifying_key());
        HeadSigner { key, key_id, copy }
    }

    /// The public half.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Where the signed head is written, if anywhere.
    pub fn copy_path(&self) -> Option<&Path> {
        self.copy.as_deref()
    }

    /// Signs `head` now.
    pub fn sign(&self, head: &Head) -> SignedHead {
        let signed_at = Utc::now();
        let signature = self.key.sign(&SignedHead::message(
            head.records,
            &head.last_hash,
            &signed_at,
            &self.key_id,
        ));
        SignedHead {
            records: head.records,
            last_hash: head.last_hash.clone(),
            signed_at,
            key_id: self.key_id.clone(),
            signature: B64.encode(signature.to_bytes()),
        }
    }

    /// Replaces the published copy with `signed` (written beside it, then renamed, so a
    /// reader never sees half a head; synced when `durable`).
    pub fn publish(&self, signed: &SignedHead, durable: bool) -> Result<(), HeadError> {
        let Some(path) = &self.copy else { return Ok(()) };
        let bytes = serde_json::to_vec_pretty(signed)
            .map_err(|e| HeadError::Format(path.display().to_string(), e.to_string()))?;
        // Readable by others: auditors (or a witness under another account) read the copy.
        super::replace_file(path, &bytes, durable, false).map_err(io(path))
    }

    /// The published copy, when there is one and it is this key's (a copy signed by
    /// another key is an error: it was not written by this gateway).
    pub fn published(&self) -> Result<Option<SignedHead>, HeadError> {
        let Some(path) = &self.copy else { return Ok(None) };
        match SignedHead::read(path) {
            Ok(h) => {
                h.verify(&self.public_key())?;
                Ok(Some(h))
            }
            Err(HeadError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Reads an SPKI PEM public key, or the public half of a PKCS#8 PEM private key.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, HeadError> {
    let pem = std::fs::read_to_string(path).map_err(io(path))?;
    VerifyingKey::from_public_key_pem(&pem)
        .or_else(|_| SigningKey::from_pkcs8_pem(&pem).map(|k| k.verifying_key()))
        .map_err(|e| HeadError::Key {
            path: path.display().to_string(),
            what: "public key (SPKI) or private key (PKCS#8)",
            detail: e.to_string(),
        })
}

/// A new key pair: the private key as PKCS#8 PEM and the public key as SPKI PEM.
pub fn generate() -> Result<(String, String), String> {
    let key = SigningKey::generate(&mut rsa::rand_core::OsRng);
    let private = key
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| e.to_string())?;
    let public = key
        .verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| e.to_string())?;
    Ok((private.to_string(), public))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(copy: Option<PathBuf>) -> HeadSigner {
        let (private, _) = generate().unwrap();
        HeadSigner::new(SigningKey::from_pkcs8_pem(&private).unwrap(), copy)
    }

    #[test]
    fn a_signed_head_verifies_only_as_signed_and_only_with_its_key() {
        let s = signer(None);
        let head = Head {
            records: 7,
            last_hash: "ab".repeat(32),
        };
        let signed = s.sign(&head);
        signed.verify(&s.public_key()).unwrap();
        let mut cut = signed.clone();
        cut.records = 5;
        assert!(matches!(cut.verify(&s.public_key()), Err(HeadError::BadSignature)));
        let other = signer(None);
        assert!(matches!(
            signed.verify(&other.public_key()),
            Err(HeadError::OtherKey { .. })
        ));
        // Claiming the right key id does not help a head signed by another key.
        let mut forged = other.sign(&Head {
            records: 5,
            last_hash: "cd".repeat(32),
        });
        forged.key_id = signed.key_id.clone();
        assert!(matches!(forged.verify(&s.public_key()), Err(HeadError::BadSignature)));
    }

    #[test]
    fn the_published_copy_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let s = signer(Some(d.path().join("head.json")));
        assert_eq!(s.published().unwrap(), None);
        let signed = s.sign(&Head {
            records: 3,
            last_hash: "ef".repeat(32),
        });
        s.publish(&signed, true).unwrap();
        assert_eq!(s.published().unwrap(), Some(signed));
        // A copy another key signed is not this gateway's.
        let other = signer(Some(d.path().join("head.json")));
        assert!(matches!(other.published(), Err(HeadError::OtherKey { .. })));
    }
}
