//! Newest-first pages over an object table keyed by `(app, id)`, with Stripe's
//! `starting_after` / `ending_before` cursors.

use redb::ReadableTable;
use serde::de::DeserializeOwned;

use crate::store::model::pagination::{finish_page, scan_bounds};
use crate::store::model::{Cursor, ListError, Page, PageRequest, StoreError};

use super::decode;

/// One row of an object table as a range scan yields it.
type Entry<'a> =
    Result<(redb::AccessGuard<'a, (u128, u128)>, redb::AccessGuard<'a, &'static [u8]>), redb::StorageError>;

/// One row of an index `(app, key, id)` → `()` as a range scan yields it.
type IndexEntry<'a, K> =
    Result<(redb::AccessGuard<'a, (u128, K, u128)>, redb::AccessGuard<'a, ()>), redb::StorageError>;

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
    list_page_within(table, app, 0..=u128::MAX, request, |_, bytes| decode(name, bytes), keep)
}

/// Like [`list_page`], over the ids in `within` only (a time bound on objects whose ids
/// carry their creation time is a key bound, so the scan never leaves it), each record
/// read from its key and bytes by `decode`.
pub(crate) fn list_page_within<T, Id, Tbl>(
    table: &Tbl,
    app: u128,
    within: std::ops::RangeInclusive<u128>,
    request: PageRequest<Id>,
    decode: impl Fn((u128, u128), &[u8]) -> Result<T, StoreError>,
    keep: impl Fn(&T) -> bool,
) -> Result<Page<T>, ListError>
where
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
        let (key, value) = entry.map_err(StoreError::from)?;
        let record: T = decode(key.value(), value.value())?;
        if keep(&record) {
            items.push(record);
        }
        Ok(items.len() < wanted)
    };
    if let Some((from, to, upwards)) = scan_bounds(request.cursor, &within) {
        let rows = table.range((app, from)..=(app, to)).map_err(StoreError::from)?;
        if upwards {
            for entry in rows {
                if !take(entry)? {
                    break;
                }
            }
        } else {
            for entry in rows.rev() {
                if !take(entry)? {
                    break;
                }
            }
        }
    }
    Ok(finish_page(items, request))
}

/// Lists one page through an index `(app, key, id)` → `()` of `table`: the ids filed
/// under `key` within `within`, newest first, each loaded with `load` (gone: skipped) and
/// kept if `keep` accepts. The cursor must name an object of `app` in `table`, as for
/// [`list_page`].
/// The key is a text (a label) or a number (the hash of a type or `data.id`, see
/// `super::tables::index_hash`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn index_page<'k, T, Id, Tbl, K, Idx>(
    table: &Tbl,
    index: &Idx,
    app: u128,
    key: K::SelfType<'k>,
    within: std::ops::RangeInclusive<u128>,
    request: PageRequest<Id>,
    load: impl Fn(u128) -> Result<Option<T>, StoreError>,
    keep: impl Fn(&T) -> bool,
) -> Result<Page<T>, ListError>
where
    Id: Into<u128> + Copy,
    Tbl: ReadableTable<(u128, u128), &'static [u8]>,
    K: redb::Key + 'static,
    K::SelfType<'k>: Copy,
    Idx: ReadableTable<(u128, K, u128), ()>,
{
    let request = PageRequest { limit: request.limit, cursor: request.cursor.position() };
    if let Cursor::After(id) | Cursor::Before(id) = request.cursor
        && table.get((app, id)).map_err(StoreError::from)?.is_none()
    {
        return Err(ListError::UnknownCursor);
    }
    let wanted = request.limit + 1;
    let mut items = Vec::with_capacity(wanted.min(101));
    if let Some((from, to, upwards)) = scan_bounds(request.cursor, &within) {
        let rows = index.range((app, key, from)..=(app, key, to)).map_err(StoreError::from)?;
        let mut take = |row: IndexEntry<'_, K>| -> Result<bool, ListError> {
            let (row, _) = row.map_err(StoreError::from)?;
            if let Some(record) = load(row.value().2)?
                && keep(&record)
            {
                items.push(record);
            }
            Ok(items.len() < wanted)
        };
        if upwards {
            for row in rows {
                if !take(row)? {
                    break;
                }
            }
        } else {
            for row in rows.rev() {
                if !take(row)? {
                    break;
                }
            }
        }
    }
    Ok(finish_page(items, request))
}
