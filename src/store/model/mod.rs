//! What the store keeps and the rules it keeps it by, with no backend code: the records,
//! their ids and owners, the decisions a write makes, and the store's errors. Both
//! backends (`redb/`, `postgres/`) store these types; the rest of stile reads and writes
//! them through [`Store`](super::Store).

pub mod apps;
pub mod attempts;
pub mod endpoints;
pub mod errors;
pub mod event_body;
pub mod events;
pub mod pagination;
pub mod queue;
pub mod receiver_auth;
pub mod replays;
pub mod scheduling;
pub mod sessions;
pub mod transformation;
pub mod upkeep;

pub use apps::{ApiKeyRecord, AppDeletion, AppPurge, AppRecord, Branding, DefaultApps, Owner, Revoked, UidTaken};
pub use attempts::{
    AttemptRecord, AttemptResult, AttemptStatus, DEFAULT_UNDELIVERED_HOURS, FailureRun, HealthVerdict, Job,
    RecordPolicy, Recorded, SentRequest, Told, skipped_until,
};
pub use endpoints::{
    EndpointFilter, EndpointRecord, EndpointStatus, FlowLimits, FlowState, HoldKind, ListenRequest, SealedSecret,
    SigningSecret,
};
pub use errors::{OpenError, StoreError};
pub use events::{EventFilter, EventMeta, NewEvent, Published, Resent, StoredEvent};
pub use pagination::{Cursor, ListError, Page, PageRequest};
pub use queue::{Born, DueEntry, QueueKey, Scheduled};
pub use receiver_auth::{
    ClientCertificate, ClientCertificateIn, ClientCertificateShown, ReceiverAuth, ReceiverAuthIn, ReceiverAuthShown,
};
pub use replays::{
    DeliveryState, ReplayQuery, ReplayRecord, ReplayState, ReplayStatusFilter, ReplayStep, ReplayStepped,
};
pub use scheduling::{EndpointUpdated, RetryNow, Written};
pub use sessions::{
    IdempotencyBegin, IdempotencyRecord, PortalSessionRecord, SessionChange, SessionChanged, SessionRecord,
    SessionStatus, SessionType,
};
pub use transformation::{Transformation, TransformationSave, TransformationShown, TransformationVersion};
pub use upkeep::{Cutoffs, DeliveryStats, MetricsSnapshot, PruneCursor, Pruned, Recovery, RotateError, Rotated};
