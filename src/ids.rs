//! Typed, prefixed, time-sortable object ids (`we_`, `evt_`, `wd_`, `vks_`).
//!
//! The body after the prefix is the id's 128 bits written as a ULID (Crockford base32, so
//! the string sorts the same way as the number). Stores key on the number, so "newest
//! first" is a reverse range scan and a cursor is a key. New ids are laid out as RFC 9562
//! version 7 UUIDs: 48 bits of milliseconds, the version (7), 12 bits, the variant (`10`)
//! and 62 bits, the 74 bits after the time counting up from a random point. So the UUID
//! form the app-scoped webhooks API shows is a valid UUID to a strict parser, and still
//! the same 128 bits as the `we_`/`evt_` id. Ids made before this layout (80 bits after
//! the time, with no version or variant) are read and ordered as ever.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

/// How many bits of an id follow its time and are neither version nor variant.
const COUNTER_BITS: u32 = 74;

/// An id's 128 bits from its time and the 74 bits after it: version 7 and the RFC 9562
/// variant in their places, so the UUID form is a valid version 7 UUID. Increasing in
/// `counter` for one `unix_ms`.
fn v7(unix_ms: u64, counter: u128) -> u128 {
    let counter = counter & ((1 << COUNTER_BITS) - 1);
    first_id_at(unix_ms) | (0x7 << 76) | ((counter >> 62) << 64) | (0b10 << 62) | (counter & ((1 << 62) - 1))
}

/// The last id [`next_id`] made: its time and counter.
static LAST: Mutex<(u64, u128)> = Mutex::new((0, 0));

/// A new id, strictly greater than every id this process made before, so two objects
/// created back to back list in creation order: the system clock's milliseconds with a
/// random counter, counted up within a millisecond (and if the clock goes back, the
/// last millisecond is kept). Past 2^73 ids in one millisecond, the next millisecond is
/// borrowed.
fn next_id() -> u128 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (ms, counter) = if now_ms > last.0 {
        // A fresh random start, below 2^73, so counting up within the millisecond has
        // room.
        let mut bytes = [0u8; 16];
        crate::secrets::random_bytes(&mut bytes);
        (now_ms, u128::from_le_bytes(bytes) >> (128 - (COUNTER_BITS - 1)))
    } else if last.1 + 1 < (1 << COUNTER_BITS) {
        (last.0, last.1 + 1)
    } else {
        (last.0 + 1, 0)
    };
    *last = (ms, counter);
    v7(ms, counter)
}

/// The sequence behind [`next_id_at`]: starts at a random point below 2^62 (so ids of
/// two processes do not collide) and only goes up.
static SEQUENCE: std::sync::LazyLock<std::sync::atomic::AtomicU64> = std::sync::LazyLock::new(|| {
    let mut bytes = [0u8; 8];
    crate::secrets::random_bytes(&mut bytes);
    std::sync::atomic::AtomicU64::new(u64::from_le_bytes(bytes) >> 2)
});

/// A new id whose time is `unix_ms` (not the system clock's): the id of an
/// object whose creation time is part of it, so a time bound on such objects is a key
/// bound. Below the time, a process-wide sequence: ids made for the same millisecond
/// increase, so objects created back to back list in order, whatever other clocks the
/// process also mints ids for (tests run several servers).
fn next_id_at(unix_ms: u64) -> u128 {
    v7(unix_ms, u128::from(SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
}

/// The smallest id made at or after `unix_ms`: ids made before that time are exactly the
/// numbers below it, so "older than" is a range scan.
pub fn first_id_at(unix_ms: u64) -> u128 {
    u128::from(unix_ms) << 80
}

/// Why an id string was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string does not start with the prefix of the expected kind of object.
    #[error("expected an id starting with `{0}`")]
    WrongPrefix(&'static str),
    /// The part after the prefix is not a valid ULID.
    #[error("the id is malformed")]
    Malformed,
}

/// Defines a typed id: a `u128` ULID that prints and parses with its prefix.
macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u128);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new id, later than every id made before it in this process.
            pub fn new() -> Self {
                Self(next_id())
            }

            /// The store key of this id.
            pub fn as_u128(self) -> u128 {
                self.0
            }
        }

        impl From<$name> for u128 {
            fn from(id: $name) -> u128 {
                id.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, ulid::Ulid(self.0))
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                let body = s.strip_prefix($prefix).ok_or(IdError::WrongPrefix($prefix))?;
                // Only canonical upper-case bodies: one object, one spelling.
                if body.len() != 26 || body.bytes().any(|b| b.is_ascii_lowercase()) {
                    return Err(IdError::Malformed);
                }
                ulid::Ulid::from_string(body).map(|u| Self(u.0)).map_err(|_| IdError::Malformed)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "[0-7][0-9A-HJKMNP-TV-Z]{25}$")))
                    .examples([concat!($prefix, "01JD8Y6QK4N2V7X3ZB5C9R1T0M")])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

define_id!(
    /// A webhook endpoint (`we_...`).
    EndpointId,
    "we_"
);
define_id!(
    /// An event (`evt_...`).
    EventId,
    "evt_"
);
define_id!(
    /// One delivery attempt of an event to an endpoint (`wd_...`).
    DeliveryId,
    "wd_"
);
define_id!(
    /// A verification session (`vks_...`).
    VerificationSessionId,
    "vks_"
);
define_id!(
    /// A portal session (`ps_...`): a link that signs one application's customer in to the
    /// app portal.
    PortalSessionId,
    "ps_"
);
define_id!(
    /// A replay (`rp_...`): a query over an application's deliveries whose matches are
    /// sent again in the background.
    ReplayId,
    "rp_"
);
define_id!(
    /// An application (`app_...`): a tenant that owns endpoints, events, deliveries and
    /// sessions.
    AppId,
    "app_"
);

impl EventId {
    /// A new event id whose time is the event's creation time (`unix_ms`, from the
    /// server's clock), so `created` bounds on events are key bounds.
    pub fn at(unix_ms: u64) -> Self {
        Self(next_id_at(unix_ms))
    }

    /// When the event was created, in Unix ms, as its id says.
    pub fn unix_ms(self) -> u64 {
        (self.0 >> 80) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_string_form() {
        let id = EndpointId::new();
        let text = id.to_string();
        assert!(text.starts_with("we_"));
        assert_eq!(text.len(), 3 + 26);
        assert_eq!(text.parse::<EndpointId>().unwrap(), id);
    }

    #[test]
    fn ids_made_in_a_row_are_increasing_as_numbers_and_strings() {
        let ids: Vec<EventId> = (0..1000).map(|_| EventId::new()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_string() < pair[1].to_string());
        }
    }

    /// An id's UUID form as RFC 9562 defines a version 7 UUID: the version nibble 7, the
    /// variant bits `10`, and the first 48 bits the Unix milliseconds.
    fn assert_v7(id: u128, unix_ms: u64) {
        let uuid = uuid::Uuid::from_u128(id);
        assert_eq!(uuid.get_version(), Some(uuid::Version::SortRand), "{uuid}");
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{uuid}");
        assert_eq!((id >> 80) as u64, unix_ms, "{uuid}");
    }

    #[test]
    fn new_ids_are_version_7_uuids_of_their_time() {
        let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let id = EndpointId::new().as_u128();
        let made_at = (id >> 80) as u64;
        assert!(made_at >= before && made_at < before + 60_000, "{made_at} vs {before}");
        assert_v7(id, made_at);
        let at = 1_800_000_000_123;
        let event = EventId::at(at);
        assert_v7(event.as_u128(), at);
        assert_eq!(event.unix_ms(), at);
        assert!(EventId::at(at) > event, "ids made for one millisecond increase");
        assert!(event.as_u128() >= first_id_at(at) && event.as_u128() < first_id_at(at + 1));
    }

    #[test]
    fn the_counter_after_the_time_keeps_ids_increasing_across_its_split() {
        // The 74 bits after the time are split by the variant bits: counting across the
        // split (and past its end, into the next millisecond) still increases the id.
        let split = (1u128 << 62) - 1;
        assert!(v7(5, split) < v7(5, split + 1));
        assert_v7(v7(5, split + 1), 5);
        let last = (1u128 << COUNTER_BITS) - 1;
        assert!(v7(5, last) < v7(6, 0));
        assert_v7(v7(5, last), 5);
    }

    #[test]
    fn ids_made_before_the_version_7_layout_still_parse_and_order() {
        // A ULID-layout id (80 bits after the time, no version or variant).
        let old: EndpointId = "we_01JD0000000000000000000000".parse().unwrap();
        assert_eq!(old.to_string(), "we_01JD0000000000000000000000");
        assert!(old < EndpointId::new(), "older ids sort before new ones");
    }

    #[test]
    fn wrong_prefix_and_malformed_bodies_are_rejected() {
        let evt = EventId::new().to_string();
        assert_eq!(evt.parse::<EndpointId>(), Err(IdError::WrongPrefix("we_")));
        assert_eq!("we_".parse::<EndpointId>(), Err(IdError::Malformed));
        assert_eq!("we_abc".parse::<EndpointId>(), Err(IdError::Malformed));
        let lower = format!("we_{}", &evt[4..]).to_lowercase();
        assert_eq!(lower.parse::<EndpointId>(), Err(IdError::Malformed));
        // 'U' is not in Crockford's alphabet.
        assert_eq!("we_UUUUUUUUUUUUUUUUUUUUUUUUUU".parse::<EndpointId>(), Err(IdError::Malformed));
    }
}
