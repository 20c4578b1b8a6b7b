//! Newest-first pages over an object table keyed by `(app, id)`, with Stripe's
//! `starting_after` / `ending_before` cursors.

use redb::ReadableTable;
use serde::de::DeserializeOwned;

use super::{StoreError, decode};

/// Where a page starts, as an id of the listed kind (`Id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor<Id> {
    /// The newest objects.
    Start,
    /// Objects older than this id (`starting_after`).
    After(Id),
    /// Objects newer than this id (`ending_before`).
    Before(Id),
}

impl<Id: Into<u128> + Copy> Cursor<Id> {
    /// The cursor as a key position in the id space.
    pub(crate) fn position(self) -> Cursor<u128> {
        match self {
            Cursor::Start => Cursor::Start,
            Cursor::After(id) => Cursor::After(id.into()),
            Cursor::Before(id) => Cursor::Before(id.into()),
        }
    }
}

/// A request for one page of objects whose ids are `Id`s.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest<Id> {
    /// The most objects to return.
    pub limit: usize,
    /// Where to start.
    pub cursor: Cursor<Id>,
}

/// One page of objects, newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The objects.
    pub items: Vec<T>,
    /// Whether more objects lie beyond this page in the direction of travel.
    pub has_more: bool,
}

/// Why a page could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The cursor names no object of this application.
    #[error("unknown cursor")]
    UnknownCursor,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One row of an object table as a range scan yields it.
type Entry<'a> =
    Result<(redb::AccessGuard<'a, (u128, u128)>, redb::AccessGuard<'a, &'static [u8]>), redb::StorageError>;

impl super::ReopenHint for ListError {
    fn needs_reopen(&self) -> bool {
        matches!(self, ListError::Store(err) if err.needs_reopen())
    }
}

/// Lists one page of the records under the key prefix `app` (an application, or for the
/// applications themselves a mode) in `table`, newest first, keeping only those `keep`
/// accepts.
pub(crate) fn list_page<T, Id, Tbl>(
    table: &Tbl,
    name: &'static str,
    app: u128,
    request: PageRequest<Id>,
    keep: impl Fn(&T) -> bool,
) -> Result<Page<T>, ListError>
where
    T: DeserializeOwned,
    Id: Into<u128> + Copy,
    Tbl: ReadableTable<(u128, u128), &'static [u8]>,
{
    list_page_within(table, name, app, 0..=u128::MAX, request, keep)
}

/// Like [`list_page`], over the ids in `within` only: a time bound on objects whose ids
/// carry their creation time is a key bound, so the scan never leaves it.
pub(crate) fn list_page_within<T, Id, Tbl>(
    table: &Tbl,
    name: &'static str,
    app: u128,
    within: std::ops::RangeInclusive<u128>,
    request: PageRequest<Id>,
    keep: impl Fn(&T) -> bool,
) -> Result<Page<T>, ListError>
where
    T: DeserializeOwned,
    Id: Into<u128> + Copy,
    Tbl: ReadableTable<(u128, u128), &'static [u8]>,
{
    let request = PageRequest { limit: request.limit, cursor: request.cursor.position() };
    let cursor_id = match request.cursor {
        Cursor::Start => None,
        Cursor::After(id) | Cursor::Before(id) => Some(id),
    };
    if let Some(id) = cursor_id
        && table.get((app, id)).map_err(StoreError::from)?.is_none()
    {
        return Err(ListError::UnknownCursor);
    }

    let wanted = request.limit + 1;
    let mut items = Vec::with_capacity(wanted.min(101));
    let mut take = |entry: Entry<'_>| -> Result<bool, ListError> {
        let (_, value) = entry.map_err(StoreError::from)?;
        let record: T = decode(name, value.value())?;
        if keep(&record) {
            items.push(record);
        }
        Ok(items.len() < wanted)
    };
    let (low, high) = (*within.start(), *within.end());
    match request.cursor {
        Cursor::Start if low <= high => {
            for entry in table.range((app, low)..=(app, high)).map_err(StoreError::from)?.rev() {
                if !take(entry)? {
                    break;
                }
            }
        }
        Cursor::After(id) if id > low && low <= high => {
            let end = high.min(id - 1);
            for entry in table.range((app, low)..=(app, end)).map_err(StoreError::from)?.rev() {
                if !take(entry)? {
                    break;
                }
            }
        }
        Cursor::Before(id) if id < high && low <= high => {
            // Walk upwards from the cursor, then turn the page round to newest first.
            let start = low.max(id + 1);
            for entry in table.range((app, start)..=(app, high)).map_err(StoreError::from)? {
                if !take(entry)? {
                    break;
                }
            }
        }
        // The cursor is at or beyond the edge of `within` in the direction of travel.
        _ => {}
    }
    Ok(finish_page(items, request))
}

/// The page from up to `limit + 1` items gathered in the direction of travel: whether
/// there were more, the extra one dropped, and newest first.
pub(super) fn finish_page<T, Id>(mut items: Vec<T>, request: PageRequest<Id>) -> Page<T> {
    let has_more = items.len() > request.limit;
    items.truncate(request.limit);
    if let Cursor::Before(_) = request.cursor {
        items.reverse();
    }
    Page { items, has_more }
}
