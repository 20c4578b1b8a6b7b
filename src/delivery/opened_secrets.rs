//! Endpoints' signing secrets, opened once and kept while the process runs.
//!
//! Every attempt is signed with its endpoint's live secrets, which are stored sealed.
//! Opening them (base64, then XChaCha20-Poly1305) for every request was a twelfth of the
//! senders' CPU in a burst to one endpoint. The sealed text names what it opens to: a
//! rotated or new secret is a new text, and a secret sealed again under a new payload key
//! is one too, so what is kept is never stale, only sometimes missing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::ids::EndpointId;
use crate::store::model::EndpointRecord;
use crate::store::sealing::{OpenError, Sealer};

/// Past this many endpoints the cache starts again empty (a bound, not an eviction
/// policy: a deployment sending to more endpoints than this pays for an open now and then).
const MAX_ENDPOINTS: usize = 4096;

/// Per endpoint, the secrets opened for it: (sealed text, clear text).
type Opened = Vec<(String, Arc<str>)>;

/// Secrets in clear, by endpoint and sealed text.
#[derive(Default)]
pub(super) struct OpenedSecrets {
    kept: Mutex<HashMap<EndpointId, Opened>>,
}

impl OpenedSecrets {
    /// `endpoint`'s secrets that sign at `now`, in clear, each opened with `sealer` the
    /// first time it is asked for.
    pub(super) fn live(
        &self,
        sealer: &Sealer,
        endpoint: &EndpointRecord,
        now: i64,
    ) -> Result<Vec<Arc<str>>, OpenError> {
        let mut kept = self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if kept.len() >= MAX_ENDPOINTS && !kept.contains_key(&endpoint.id) {
            kept.clear();
        }
        let opened = kept.entry(endpoint.id).or_default();
        let mut live = Vec::with_capacity(2);
        for sealed in endpoint.live_sealed_secrets(now) {
            let text = sealed.as_sealed_text();
            let plain = match opened.iter().find(|(kept, _)| kept == text) {
                Some((_, plain)) => Arc::clone(plain),
                None => {
                    let plain: Arc<str> = sealed.open(sealer, endpoint.app, endpoint.id)?.into();
                    // What no longer signs is dropped with the first secret that does.
                    opened.retain(|(kept, _)| endpoint.secrets.iter().any(|s| s.secret.as_sealed_text() == kept));
                    opened.push((text.to_string(), Arc::clone(&plain)));
                    plain
                }
            };
            live.push(plain);
        }
        Ok(live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AppId;
    use crate::mode::Mode;
    use crate::store::model::{Owner, SigningSecret};

    fn endpoint(sealer: &Sealer, secrets: &[(&str, Option<i64>)]) -> EndpointRecord {
        let owner = Owner { app: AppId(1), mode: Mode::Test };
        let mut endpoint = EndpointRecord::for_test(owner, "http://127.0.0.1:9/", "*");
        endpoint.id = EndpointId(2);
        let row = (endpoint.app, endpoint.id);
        endpoint.secrets =
            secrets.iter().map(|(plain, until)| SigningSecret::new(sealer, row, plain, *until)).collect();
        endpoint
    }

    #[test]
    fn answers_what_opening_answers_as_secrets_rotate() {
        let sealer = Sealer::new(&[7; 32]);
        let cache = OpenedSecrets::default();
        let one = endpoint(&sealer, &[("whsec_one", None)]);
        let texts = |v: Vec<Arc<str>>| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(texts(cache.live(&sealer, &one, 10).unwrap()), ["whsec_one"]);
        assert_eq!(texts(cache.live(&sealer, &one, 10).unwrap()), ["whsec_one"]);
        // Rotated: the old one signs until 20 beside the new one, then only the new one.
        let mut rotated = endpoint(&sealer, &[("whsec_two", None)]);
        rotated.secrets.push(SigningSecret { expires_at: Some(20), ..one.secrets[0].clone() });
        assert_eq!(texts(cache.live(&sealer, &rotated, 10).unwrap()), ["whsec_two", "whsec_one"]);
        assert_eq!(texts(cache.live(&sealer, &rotated, 20).unwrap()), ["whsec_two"]);
        assert_eq!(
            cache.live(&sealer, &rotated, 10).unwrap(),
            rotated.live_secrets(&sealer, 10).unwrap().into_iter().map(Arc::from).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_secret_that_does_not_open_is_an_error_every_time() {
        let sealer = Sealer::new(&[7; 32]);
        let other = Sealer::new(&[8; 32]);
        let cache = OpenedSecrets::default();
        let endpoint = endpoint(&other, &[("whsec_one", None)]);
        assert!(cache.live(&sealer, &endpoint, 10).is_err());
        assert!(cache.live(&sealer, &endpoint, 10).is_err());
    }
}
