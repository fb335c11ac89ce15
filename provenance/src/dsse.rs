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

/// What one DSSE signature covers.
#[derive(Debug, Clone)]
pub struct SignedParts {
    /// The PAE bytes the signature is over (they end with the payload).
    pub message: Vec<u8>,
    payload_start: usize,
    pub sig: Signature,
    pub keyid: String,
}

impl SignedParts {
    /// The decoded payload (the statement's bytes).
    pub fn payload(&self) -> &[u8] {
        &self.message[self.payload_start..]
    }
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
        // An envelope holds only strings in fixed members, so its JCS form is written
        // directly (members in UTF-16 order: payload < payloadType < signatures, keyid
        // < sig); `verify` does this once per ledger line.
        let sig_len: usize = self
            .signatures
            .iter()
            .map(|s| s.keyid.len() + s.sig.len() + 24)
            .sum();
        let mut out =
            Vec::with_capacity(self.payload.len() + self.payload_type.len() + sig_len + 48);
        out.extend_from_slice(b"{\"payload\":");
        jcs::write_string(&self.payload, &mut out);
        out.extend_from_slice(b",\"payloadType\":");
        jcs::write_string(&self.payload_type, &mut out);
        out.extend_from_slice(b",\"signatures\":[");
        for (i, s) in self.signatures.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"keyid\":");
            jcs::write_string(&s.keyid, &mut out);
            out.extend_from_slice(b",\"sig\":");
            jcs::write_string(&s.sig, &mut out);
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        out
    }

    pub fn payload_bytes(&self) -> Result<Vec<u8>> {
        B64.decode(&self.payload)
            .map_err(|e| Error::Envelope(format!("payload is not base64: {e}")))
    }

    /// The first signature and the bytes it signs, for batch verification. The
    /// payload is decoded once; [`SignedParts::payload`] gives it back.
    pub fn signed_parts(&self) -> Result<SignedParts> {
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
        let payload = self.payload_bytes()?;
        let message = pae(&self.payload_type, &payload);
        Ok(SignedParts {
            payload_start: message.len() - payload.len(),
            message,
            sig,
            keyid: s.keyid.clone(),
        })
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
        let parts = env.signed_parts().unwrap();
        assert_eq!(parts.payload(), br#"{"a":1}"#);
        assert_eq!(parts.message, pae(PAYLOAD_TYPE, br#"{"a":1}"#));
    }

    #[test]
    fn to_line_is_the_jcs_of_the_envelope() {
        let k = SigningKey::from_bytes(&[7u8; 32]);
        let mut env = Envelope::sign(br#"{"a":"\u0001"}"#, &k);
        env.payload_type = "odd \"type\"\n\u{1f}".into();
        env.signatures.push(EnvelopeSignature {
            keyid: "k2".into(),
            sig: "c2ln".into(),
        });
        assert_eq!(env.to_line(), jcs::to_vec(&env).unwrap());
        env.signatures.clear();
        assert_eq!(env.to_line(), jcs::to_vec(&env).unwrap());
    }
}
