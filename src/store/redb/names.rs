//! Names stored once: the event types and user agents that every event and attempt
//! record repeats are kept in a dictionary, and records written since layout 5 hold
//! their number (one or two bytes) instead of the text (about 30).
//!
//! The dictionary is in the data file ([`NAMES`], [`NAME_IDS`]) and in memory
//! ([`Names`], loaded at open). A number is given inside the write transaction that first
//! stores the name, and added to memory at once, so a record is readable the moment it
//! is written. If that transaction is rolled back the number stays in memory unused and
//! is never given again by this process; after a restart only committed numbers exist,
//! and no committed record holds one that is not.

use std::sync::{Arc, RwLock};

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

use crate::store::model::StoreError;

/// The dictionary: number → name.
pub(super) const NAMES: TableDefinition<u32, &str> = TableDefinition::new("names");

/// The dictionary the other way: name → number.
pub(super) const NAME_IDS: TableDefinition<&str, u32> = TableDefinition::new("name_ids");

/// The dictionary in memory: every number given, the slot of a number a rolled-back
/// transaction took left empty.
#[derive(Debug, Default)]
pub struct Names {
    by_id: RwLock<Vec<Option<Arc<str>>>>,
}

impl Names {
    /// The dictionary as the data file holds it.
    pub(super) fn load(table: &impl ReadableTable<u32, &'static str>) -> Result<Names, StoreError> {
        let mut by_id = Vec::new();
        for row in table.iter()? {
            let (id, name) = row?;
            let id = id.value() as usize;
            if by_id.len() <= id {
                by_id.resize(id + 1, None);
            }
            by_id[id] = Some(Arc::from(name.value()));
        }
        Ok(Names { by_id: RwLock::new(by_id) })
    }

    /// The name numbered `id`; an unknown number is a damaged record of `table`.
    pub(super) fn name(&self, table: &'static str, id: u32) -> Result<Arc<str>, StoreError> {
        let by_id = self.by_id.read().unwrap_or_else(|p| p.into_inner());
        by_id.get(id as usize).and_then(Clone::clone).ok_or_else(|| StoreError::Corrupt {
            table,
            source: serde::de::Error::custom(format!("name number {id} is not in the dictionary")),
        })
    }
}

/// Gives names their numbers: in a write transaction ([`Interner`]), or (in tests of
/// record formats) in memory alone.
pub(super) trait Numbering {
    /// The number of `name`, given now if it has none.
    fn id(&mut self, name: &str) -> Result<u32, StoreError>;
}

/// Numbers names in memory only, for tests of record formats.
#[cfg(test)]
pub(super) struct InMemory<'n>(pub &'n Names);

#[cfg(test)]
impl Numbering for InMemory<'_> {
    fn id(&mut self, name: &str) -> Result<u32, StoreError> {
        let mut by_id = self.0.by_id.write().unwrap();
        if let Some(id) = by_id.iter().position(|n| n.as_deref() == Some(name)) {
            return Ok(id as u32);
        }
        by_id.push(Some(Arc::from(name)));
        Ok(by_id.len() as u32 - 1)
    }
}

/// The dictionary's tables opened in a write transaction, to number names in it.
pub(super) struct Interner<'txn, 'n> {
    ids: Table<'txn, &'static str, u32>,
    names: Table<'txn, u32, &'static str>,
    memory: &'n Names,
    /// The names already numbered in this transaction (a fan-out numbers the same event
    /// type once per attempt): a few, looked up before the table.
    recent: Vec<(Box<str>, u32)>,
}

/// How many names an [`Interner`] remembers for its transaction.
const RECENT: usize = 8;

impl<'txn, 'n> Interner<'txn, 'n> {
    /// Opens the dictionary in `tx`.
    pub(super) fn open(tx: &'txn WriteTransaction, memory: &'n Names) -> Result<Self, StoreError> {
        Ok(Interner { ids: tx.open_table(NAME_IDS)?, names: tx.open_table(NAMES)?, memory, recent: Vec::new() })
    }

    /// The dictionary in memory, to read records with.
    pub(super) fn memory(&self) -> &'n Names {
        self.memory
    }
}

impl Numbering for Interner<'_, '_> {
    fn id(&mut self, name: &str) -> Result<u32, StoreError> {
        if let Some((_, id)) = self.recent.iter().find(|(known, _)| **known == *name) {
            return Ok(*id);
        }
        let stored = self.ids.get(name)?.map(|id| id.value());
        let id = match stored {
            Some(id) => id,
            None => {
                let mut by_id = self.memory.by_id.write().unwrap_or_else(|p| p.into_inner());
                let id = u32::try_from(by_id.len())
                    .map_err(|_| StoreError::Unavailable("the name dictionary is full".into()))?;
                self.ids.insert(name, id)?;
                self.names.insert(id, name)?;
                by_id.push(Some(Arc::from(name)));
                id
            }
        };
        if self.recent.len() < RECENT {
            self.recent.push((name.into(), id));
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RedbStore;

    #[test]
    fn a_name_gets_one_number_which_survives_a_restart_and_a_rolled_back_one_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let memory;
        let (a, b);
        {
            let store = RedbStore::open(dir.path()).unwrap();
            memory = Names::default();
            (a, b) = store
                .write(|tx| {
                    let mut names = Interner::open(tx, &memory)?;
                    let a = names.id("invoice.paid")?;
                    assert_eq!(names.id("invoice.paid")?, a, "one number per name");
                    Ok((a, names.id("stile/0.1.0 (+webhooks)")?))
                })
                .unwrap();
            assert_ne!(a, b);
            // A transaction that fails after numbering a name: its number is not given again.
            let failed: Result<(), StoreError> = store.write(|tx| {
                Interner::open(tx, &memory)?.id("rolled.back")?;
                Err(StoreError::Unavailable("abort".into()))
            });
            assert!(failed.is_err());
            let c = store.write(|tx| Interner::open(tx, &memory)?.id("customer.created")).unwrap();
            assert_eq!(c, 3, "number 2 went to the rolled-back name");
            assert_eq!(&*memory.name("t", c).unwrap(), "customer.created");
            // Another transaction finds the stored number, and remembers it for the next.
            let again = store
                .write(|tx| {
                    let mut names = Interner::open(tx, &memory)?;
                    Ok([names.id("invoice.paid")?, names.id("invoice.paid")?, names.id("customer.created")?])
                })
                .unwrap();
            assert_eq!(again, [a, a, c]);
        }
        let store = RedbStore::open(dir.path()).unwrap();
        let loaded = store.read(|tx| Names::load(&tx.open_table(NAMES)?)).unwrap();
        assert_eq!(&*loaded.name("t", a).unwrap(), "invoice.paid");
        assert_eq!(&*loaded.name("t", b).unwrap(), "stile/0.1.0 (+webhooks)");
        assert_eq!(&*loaded.name("t", 3).unwrap(), "customer.created");
        assert!(loaded.name("t", 2).is_err(), "never committed");
        assert!(loaded.name("t", 99).is_err(), "an unknown number is an error, not a panic");
    }
}
