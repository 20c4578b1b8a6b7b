//! Which application each name (id or uid) a request gave was found to be, remembered,
//! so a request through an application reads no more of the store than one to the
//! default. Only the application service ([`super::Apps`]) reads, fills and clears it.

use crate::mode::Mode;
use crate::store::model::Owner;

/// The applications `Stile-App` values named, by (mode, id or uid), so a request through
/// an application costs no store read after the first. Only names that were found are
/// kept (a new application is found at once); changing an application's names clears it
/// ([`AppNames::clear`]). At most two entries per application.
///
/// One map per mode, so a lookup borrows the header's text instead of allocating a key on
/// every request. On a database other processes share, nothing is kept (another process
/// may delete an application or give its uid to another): every name is looked up.
#[derive(Debug, Default)]
pub struct AppNames {
    names: std::sync::RwLock<[std::collections::HashMap<String, Owner>; 2]>,
    /// Other processes change applications too: keep nothing.
    shared: bool,
}

impl AppNames {
    /// Names kept for a store this process alone writes (`shared: false`), or none.
    pub fn new(shared: bool) -> AppNames {
        AppNames { names: Default::default(), shared }
    }

    /// The application `name` was found to be in `mode`, if remembered.
    pub(super) fn get(&self, mode: Mode, name: &str) -> Option<Owner> {
        self.names.read().unwrap_or_else(|p| p.into_inner())[usize::from(mode.as_u8())].get(name).copied()
    }

    /// Remembers that `name` is `owner` in `mode` (unless other processes share the store).
    pub(super) fn insert(&self, mode: Mode, name: String, owner: Owner) {
        if !self.shared {
            self.names.write().unwrap_or_else(|p| p.into_inner())[usize::from(mode.as_u8())].insert(name, owner);
        }
    }

    /// Forgets every name (an application's uid changed).
    pub fn clear(&self) {
        for names in self.names.write().unwrap_or_else(|p| p.into_inner()).iter_mut() {
            names.clear();
        }
    }
}
