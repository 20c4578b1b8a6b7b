//! Pages of a list: cursors both ways, and the errors a list request can meet.

use crate::store::model::StoreError;
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

/// The ids a page scans, `from..=to`, and whether upwards (`ending_before`: the page is
/// turned round after) or downwards from the newest; `None` when the cursor is at or
/// beyond the edge of `within` in the direction of travel.
pub(crate) fn scan_bounds(cursor: Cursor<u128>, within: &std::ops::RangeInclusive<u128>) -> Option<(u128, u128, bool)> {
    let (low, high) = (*within.start(), *within.end());
    match cursor {
        _ if low > high => None,
        Cursor::Start => Some((low, high, false)),
        Cursor::After(id) if id > low => Some((low, high.min(id - 1), false)),
        Cursor::Before(id) if id < high => Some((low.max(id + 1), high, true)),
        Cursor::After(_) | Cursor::Before(_) => None,
    }
}

/// The page from up to `limit + 1` items gathered in the direction of travel: whether
/// there were more, the extra one dropped, and newest first.
pub(crate) fn finish_page<T, Id>(mut items: Vec<T>, request: PageRequest<Id>) -> Page<T> {
    let has_more = items.len() > request.limit;
    items.truncate(request.limit);
    if let Cursor::Before(_) = request.cursor {
        items.reverse();
    }
    Page { items, has_more }
}

/// A page read with its cursor as a bound only (never checked, so `UnknownCursor` is never
/// met; were it, the page would be empty), as a store result.
pub(crate) fn bound_page<T>(page: Result<Page<T>, ListError>) -> Result<Page<T>, StoreError> {
    match page {
        Ok(page) => Ok(page),
        Err(ListError::Store(err)) => Err(err),
        Err(ListError::UnknownCursor) => Ok(Page { items: Vec::new(), has_more: false }),
    }
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
