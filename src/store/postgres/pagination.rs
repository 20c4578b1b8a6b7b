//! Newest-first pages with Stripe's cursors, as SQL: the same [`PageRequest`] and
//! [`Page`] as the redb lists, the cursor a bound on the id column.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::store::model::pagination::finish_page;
use crate::store::model::{Cursor, ListError, Page, PageRequest, StoreError};

use super::cached::Cached;
use super::uuid;

/// A list query: `select` is a `SELECT ... FROM ... WHERE ...` over rows of one scope
/// (an application), with `params` for its placeholders; `id` is the column the list is
/// ordered and paged by. `exists` checks that a cursor names an object of the scope: a
/// query with `$1` the scope and `$2` the id; `None`: the cursor is a bound only (a page
/// of a larger list, whose cursor may name an object of another scope).
pub(super) struct ListQuery<'a> {
    pub select: &'a str,
    pub params: Vec<&'a (dyn ToSql + Sync)>,
    pub id: &'a str,
    pub exists: Option<&'a str>,
    pub scope: &'a (dyn ToSql + Sync),
}

/// One page of `query`, each row read by `read`.
pub(super) async fn list<T, Id>(
    client: &impl deadpool_postgres::GenericClient,
    query: ListQuery<'_>,
    request: PageRequest<Id>,
    read: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Page<T>, ListError>
where
    Id: Into<u128> + Copy,
{
    let request = PageRequest { limit: request.limit, cursor: request.cursor.position() };
    let cursor = match request.cursor {
        Cursor::Start => None,
        Cursor::After(id) | Cursor::Before(id) => Some(uuid(id)),
    };
    if let (Some(id), Some(exists)) = (&cursor, query.exists) {
        let found = client.q_opt(exists, &[query.scope, id]).await.map_err(StoreError::from)?;
        if found.is_none() {
            return Err(ListError::UnknownCursor);
        }
    }
    let mut params = query.params;
    // The limit and the cursor are parameters, so each list is one prepared statement.
    let limit = (request.limit + 1) as i64;
    params.push(&limit);
    let l = params.len();
    let c = l + 1;
    let sql = match request.cursor {
        Cursor::Start => format!("{} ORDER BY {id} DESC LIMIT ${l}", query.select, id = query.id),
        Cursor::After(_) => format!("{} AND {id} < ${c} ORDER BY {id} DESC LIMIT ${l}", query.select, id = query.id),
        Cursor::Before(_) => format!("{} AND {id} > ${c} ORDER BY {id} ASC LIMIT ${l}", query.select, id = query.id),
    };
    if let Some(id) = &cursor {
        params.push(id);
    }
    let rows = client.q(&sql, &params).await.map_err(StoreError::from)?;
    let items = rows.iter().map(&read).collect::<Result<Vec<T>, StoreError>>()?;
    Ok(finish_page(items, request))
}
