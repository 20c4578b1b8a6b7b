//! Delivery operations every dialect shares: run a scheduled retry now, one attempt with
//! the body its event carried, and an endpoint's attempts once the endpoint is known to
//! exist. The rules that are not about one API's shapes live here: what a retry refuses,
//! and that a list names an endpoint of the caller's before any page is read.

use std::sync::Arc;

use super::ServiceError;
use crate::delivery::Engine;
use crate::ids::{DeliveryId, EndpointId};
use crate::store::Store;
use crate::store::model::{AttemptRecord, AttemptStatus, DeliveryStats, Owner, Page, PageRequest, RetryNow};

/// The delivery operations, over the engine and the store.
pub struct Deliveries<'a> {
    /// Where retries are scheduled.
    pub engine: &'a Engine,
    /// Where attempts are kept.
    pub store: &'a Arc<Store>,
}

/// One attempt, with the body of the event it delivers.
#[derive(Debug)]
pub struct DeliveryWithBody {
    /// The attempt.
    pub attempt: AttemptRecord,
    /// The event's body, as sent; `None` when the event is no longer kept.
    pub body: Option<Vec<u8>>,
}

impl<'a> Deliveries<'a> {
    /// `owner`'s delivery figures between `since` and `until` (Unix seconds): outcomes per
    /// bucket of `bucket_seconds`, pending deliveries per endpoint, and the newest
    /// `failures` failed attempts.
    pub async fn stats(
        &self,
        owner: Owner,
        since: i64,
        until: i64,
        bucket_seconds: i64,
        failures: usize,
    ) -> Result<DeliveryStats, ServiceError> {
        Ok(self.store.delivery_stats(owner, since, until, bucket_seconds, failures).await?)
    }

    /// Makes attempt `delivery` of `endpoint` of `owner` go at once: the pending attempt,
    /// or the `retrying` attempt whose retry it is. Refuses an attempt with no retry
    /// scheduled (`NotScheduled`) and one whose endpoint is disabled (`EndpointDisabled`).
    /// Returns the attempt that now goes; `None`: no such attempt.
    pub async fn retry_now(
        &self,
        owner: Owner,
        endpoint: EndpointId,
        delivery: DeliveryId,
    ) -> Result<Option<AttemptRecord>, ServiceError> {
        match self.engine.retry_now(owner, endpoint, delivery).await? {
            RetryNow::Moved(record, _) => Ok(Some(*record)),
            RetryNow::NoSuchAttempt => Ok(None),
            RetryNow::NotScheduled(status) => Err(ServiceError::NotScheduled(status)),
            RetryNow::EndpointDisabled => Err(ServiceError::EndpointDisabled),
        }
    }

    /// Attempt `delivery` of `endpoint` of `owner`, with its event's body; `None`: no
    /// such attempt.
    pub async fn get(
        &self,
        owner: Owner,
        endpoint: EndpointId,
        delivery: DeliveryId,
    ) -> Result<Option<DeliveryWithBody>, ServiceError> {
        let Some(attempt) = self.store.attempt(owner, endpoint, delivery).await? else { return Ok(None) };
        let body = self.store.event(owner, attempt.event_id).await?.map(|e| e.body);
        Ok(Some(DeliveryWithBody { attempt, body }))
    }

    /// The attempts of `endpoint` of `owner`, once it is known to exist: `None` when
    /// `owner` has no such endpoint. The page is read from what this answers, so no
    /// dialect reads a page of an endpoint it has not checked (and each checks its own
    /// paging parameters in between, after the endpoint).
    pub async fn of_endpoint(
        &self,
        owner: Owner,
        endpoint: EndpointId,
    ) -> Result<Option<EndpointDeliveries<'a>>, ServiceError> {
        let found = self.store.endpoint(owner, endpoint).await?;
        Ok(found.map(|_| EndpointDeliveries { store: self.store, owner, endpoint }))
    }
}

/// The attempts of an endpoint that exists ([`Deliveries::of_endpoint`]).
pub struct EndpointDeliveries<'a> {
    /// Where attempts are kept.
    store: &'a Arc<Store>,
    /// The endpoint's owner.
    owner: Owner,
    /// The endpoint.
    endpoint: EndpointId,
}

impl EndpointDeliveries<'_> {
    /// The page `request` asks for, newest first, only attempts with `status` if given. A
    /// cursor that names no attempt of this endpoint: `UnknownCursor`.
    pub async fn page(
        &self,
        request: PageRequest<DeliveryId>,
        status: Option<AttemptStatus>,
    ) -> Result<Page<AttemptRecord>, ServiceError> {
        let (owner, endpoint) = (self.owner, self.endpoint);
        Ok(self.store.list_attempts(owner, endpoint, request, status).await?)
    }
}
