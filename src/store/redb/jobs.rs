//! What a worker needs to make attempts, loaded in one snapshot: the attempt, its
//! endpoint and the payload.

use crate::ids::DeliveryId;
use crate::store::backend::Jobs;
use crate::store::model::{Job, StoreError};

use super::attempt_record::attempt_in;
use super::events::{body_in, meta_in};
use super::{RedbStore, endpoints, tables};

impl Jobs for RedbStore {
    async fn jobs(&self, attempt_ids: Vec<DeliveryId>) -> Result<Vec<Option<Job>>, StoreError> {
        self.read(|tx| {
            let attempts = tx.open_table(tables::ATTEMPTS)?;
            let endpoints = tx.open_table(tables::ENDPOINTS)?;
            let events = tx.open_table(tables::EVENTS)?;
            let bodies = tx.open_table(tables::EVENT_BODIES)?;
            let mut out = Vec::with_capacity(attempt_ids.len());
            for id in attempt_ids {
                let Some(attempt) = attempt_in(&attempts, id.as_u128(), &self.names)? else {
                    out.push(None);
                    continue;
                };
                let endpoint = endpoints::get_in(&endpoints, attempt.app, attempt.endpoint_id)?;
                let (body, trace) =
                    match meta_in(&events, attempt.app.as_u128(), attempt.event_id.as_u128(), &self.names)? {
                        Some(meta) => {
                            (Some(body_in(&bodies, &self.sealer, &meta)?).filter(|b| !b.is_empty()), meta.trace)
                        }
                        None => (None, None),
                    };
                out.push(Some(Job { attempt, endpoint, body, trace }));
            }
            Ok(out)
        })
    }
}
