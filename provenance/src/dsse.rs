//! DSSE (Dead Simple Signing Envelope) v1 with ed25519 signatures.

use crate::error::{Error, Result};
use crate::jcs;
use crate::keys::key_id;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Payload type of in-toto statements.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    /// Base64 (standard) of the canonical statement bytes.
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    pub keyid: String,
    pub sig: String,
}

/// DSSE pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// Sign canonical payload bytes.
    pub fn sign(payload: &[u8], key: &SigningKey) -> Envelope {
        let sig = key.sign(&pae(PAYLOAD_TYPE, payload));
        Envelope {
            payload: B64.encode(payload),
            payload_type: PAYLOAD_TYPE.into(),
            signatures: vec![EnvelopeSignature {
                keyid: key_id(&key.verifying_key()),
                sig: B64.encode(sig.to_bytes()),
            }],
        }
    }

    /// The envelope as its canonical JSON line (no newline).
    pub fn to_line(&self) -> Vec<u8> {
        // An envelope holds only strings: canonicalisation cannot fail.
        jcs::to_vec(self).expect("envelope canonicalises")
    }

    pub fn payload_bytes(&self) -> Result<Vec<u8>> {
        B64.decode(&self.payload)
            .map_err(|e| Error::Envelope(format!("payload is not base64: {e}")))
    }

    /// The first signature and the bytes it signs, for batch verification.
    pub fn signed_parts(&self) -> Result<(Vec<u8>, Signature, String)> {
        if self.payload_type != PAYLOAD_TYPE {
            return Err(Error::Envelope(format!(
                "payloadType {:?} is not {PAYLOAD_TYPE}",
                self.payload_type
            )));
        }
        let s = self
            .signatures
            .first()
            .ok_or_else(|| Error::Envelope("no signature".into()))?;
        let raw = B64
            .decode(&s.sig)
            .map_err(|e| Error::Envelope(format!("signature is not base64: {e}")))?;
        let sig = Signature::from_slice(&raw)
            .map_err(|e| Error::Envelope(format!("signature is malformed: {e}")))?;
        Ok((
            pae(&self.payload_type, &self.payload_bytes()?),
            sig,
            s.keyid.clone(),
        ))
    }

    /// Verify that one of the signatures is by `key`.
    pub fn verify(&self, key: &VerifyingKey) -> Result<()> {
        let want = key_id(key);
        let msg = pae(&self.payload_type, &self.payload_bytes()?);
        if self.payload_type != PAYLOAD_TYPE {
            return Err(Error::Envelope(format!(
                "payloadType {:?} is not {PAYLOAD_TYPE}",
                self.payload_type
            )));
        }
        if let Some(s) = self.signatures.iter().find(|s| s.keyid == want) {
            let raw = B64
                .decode(&s.sig)
                .map_err(|e| Error::Envelope(format!("signature is not base64: {e}")))?;
            let sig = Signature::from_slice(&raw)
                .map_err(|e| Error::Envelope(format!("signature is malformed: {e}")))?;
            if key.verify(&msg, &sig).is_ok() {
                return Ok(());
            }
            return Err(Error::Envelope(format!(
                "signature by key {} does not verify",
                &want[..16]
            )));
        }
        Err(Error::Envelope(format!(
            "no signature by key {}",
            &want[..16]
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn sign_verify_and_forgery() {
        let k = SigningKey::from_bytes(&[7u8; 32]);
        let other = SigningKey::from_bytes(&[8u8; 32]);
        let env = Envelope::sign(br#"{"a":1}"#, &k);
        env.verify(&k.verifying_key()).unwrap();
        assert!(env.verify(&other.verifying_key()).is_err());
        let mut forged = env.clone();
        forged.payload = B64.encode(br#"{"a":2}"#);
        assert!(forged.verify(&k.verifying_key()).is_err());
    }
}
