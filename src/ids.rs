//! Typed, prefixed, time-sortable object ids (`we_`, `evt_`, `wd_`, `vks_`).
//!
//! The body after the prefix is a ULID: 48 bits of milliseconds then 80 random bits,
//! written in Crockford base32 so the string sorts the same way as the number. Stores key
//! on the number, so "newest first" is a reverse range scan and a cursor is a key.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

/// Hands out ULIDs that are strictly increasing within this process, even for ids made in
/// the same millisecond, so two objects created back to back list in creation order.
static GENERATOR: Mutex<Option<ulid::Generator>> = Mutex::new(None);

/// A new strictly increasing ULID as its 128-bit number.
fn next_ulid() -> u128 {
    let mut guard = GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let generator = guard.get_or_insert_with(ulid::Generator::new);
    match generator.generate() {
        Ok(id) => id.0,
        // The random part overflowed within one millisecond (2^80 ids): fall back to a
        // fresh random ULID, which is still unique, only not strictly ordered.
        Err(_) => ulid::Ulid::new().0,
    }
}

/// The sequence behind [`next_ulid_at`]: starts at a random point below 2^62 (so ids of
/// two processes do not collide) and only goes up.
static SEQUENCE: std::sync::LazyLock<std::sync::atomic::AtomicU64> = std::sync::LazyLock::new(|| {
    let mut bytes = [0u8; 8];
    crate::secrets::random_bytes(&mut bytes);
    std::sync::atomic::AtomicU64::new(u64::from_le_bytes(bytes) >> 2)
});

/// A new ULID-shaped id whose time is `unix_ms` (not the system clock's): the id of an
/// object whose creation time is part of it, so a time bound on such objects is a key
/// bound. Below the time, a process-wide sequence: ids made for the same millisecond
/// increase, so objects created back to back list in order, whatever other clocks the
/// process also mints ids for (tests run several servers).
fn next_ulid_at(unix_ms: u64) -> u128 {
    first_id_at(unix_ms) | u128::from(SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
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
                Self(next_ulid())
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
    /// An application (`app_...`): a tenant that owns endpoints, events, deliveries and
    /// sessions.
    AppId,
    "app_"
);

impl EventId {
    /// A new event id whose time is the event's creation time (`unix_ms`, from the
    /// server's clock), so `created` bounds on events are key bounds.
    pub fn at(unix_ms: u64) -> Self {
        Self(next_ulid_at(unix_ms))
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
