//! Test and live mode: every API key, and every object it creates, belongs to one of them.

use serde::{Deserialize, Serialize};

/// The mode of an API key and of everything created with it. A key only ever sees objects
/// of its own mode, which is how one server hosts a test and a live world side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `vk_test_...` keys: development and testing data.
    Test,
    /// `vk_live_...` keys: real traffic.
    Live,
}

impl Mode {
    /// The API key prefix of this mode.
    pub fn key_prefix(self) -> &'static str {
        match self {
            Mode::Test => "vk_test_",
            Mode::Live => "vk_live_",
        }
    }

    /// The `livemode` flag objects of this mode carry.
    pub fn is_live(self) -> bool {
        self == Mode::Live
    }

    /// The mode's byte in store keys, so each mode's rows form one contiguous range.
    pub fn as_u8(self) -> u8 {
        match self {
            Mode::Test => 0,
            Mode::Live => 1,
        }
    }

    /// The mode whose store byte is `byte` ([`Mode::as_u8`]).
    pub fn from_u8(byte: u8) -> Option<Mode> {
        [Mode::Test, Mode::Live].into_iter().find(|m| m.as_u8() == byte)
    }

    /// The mode of an API key, from its prefix.
    pub fn of_key(key: &str) -> Option<Mode> {
        [Mode::Test, Mode::Live].into_iter().find(|m| key.starts_with(m.key_prefix()))
    }

    /// The mode's name as users write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
