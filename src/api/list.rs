//! List conventions shared by every list route: `limit`, `starting_after`,
//! `ending_before`, and the `{"object":"list",...}` envelope.

use std::str::FromStr;

use serde::Serialize;

use crate::error::ApiError;
use crate::service::ServiceError;
use crate::store::model::{Cursor, Page, PageRequest};

/// The largest `limit` any list accepts.
pub const MAX_LIMIT: usize = 100;

/// The query of a list with no filters: just the paging parameters.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// How many objects to return, 1 to 100 (default 10).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// An object id: the page starts after it (the next, older page).
    #[param(pattern = "^[a-z]+_[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    starting_after: Option<String>,
    /// An object id: the page ends before it (the previous, newer page).
    #[param(pattern = "^[a-z]+_[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    ending_before: Option<String>,
}

impl PageQuery {
    /// Its paging parameters.
    pub fn params(&self) -> PageParams<'_> {
        PageParams::new(&self.limit, &self.starting_after, &self.ending_before)
    }
}

/// The paging parameters of a list request, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageParams<'a> {
    /// `limit`, unparsed so a bad value gets our own message.
    pub limit: Option<&'a str>,
    /// `starting_after`: an object id.
    pub starting_after: Option<&'a str>,
    /// `ending_before`: an object id.
    pub ending_before: Option<&'a str>,
}

impl<'a> PageParams<'a> {
    /// The paging parameters of a list query.
    pub fn new(
        limit: &'a Option<String>,
        starting_after: &'a Option<String>,
        ending_before: &'a Option<String>,
    ) -> Self {
        Self {
            limit: limit.as_deref(),
            starting_after: starting_after.as_deref(),
            ending_before: ending_before.as_deref(),
        }
    }

    /// Lists with `list` the page these parameters ask for, and turns an unknown cursor
    /// into a 400 naming the cursor parameter. `Id` is the id type of the listed objects.
    pub async fn fetch<Id, T, Listed>(
        self,
        default_limit: usize,
        list: impl FnOnce(PageRequest<Id>) -> Listed,
    ) -> Result<Page<T>, ApiError>
    where
        Id: FromStr,
        Listed: std::future::Future<Output = Result<Page<T>, ServiceError>>,
    {
        let request = self.to_request::<Id>(default_limit)?;
        list(request).await.map_err(|e| list_error(e, &self))
    }
}

impl PageParams<'_> {
    /// Checks the parameters and turns them into a store page request. `Id` is the id
    /// type of the listed objects, so a cursor of the wrong kind is refused here.
    pub fn to_request<Id>(self, default_limit: usize) -> Result<PageRequest<Id>, ApiError>
    where
        Id: FromStr,
    {
        let limit = match self.limit {
            None => default_limit,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid(
                        "limit",
                        format!("`limit` must be a whole number between 1 and {MAX_LIMIT}, got `{text}`."),
                    ));
                }
            },
        };
        let cursor_id = |param: &str, text: &str| {
            text.parse::<Id>().map_err(|_| {
                ApiError::invalid(
                    param,
                    format!("`{param}` must be the id of an object in this list; `{text}` is not."),
                )
            })
        };
        let cursor = match (self.starting_after, self.ending_before) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "ending_before",
                    "Use either `starting_after` or `ending_before`, not both.",
                ));
            }
            (Some(after), None) => Cursor::After(cursor_id("starting_after", after)?),
            (None, Some(before)) => Cursor::Before(cursor_id("ending_before", before)?),
            (None, None) => Cursor::Start,
        };
        Ok(PageRequest { limit, cursor })
    }
}

/// The page the other dialects' lists ask for: `limit`, and `cursor`, the last item of the
/// previous page as `parse` reads it (`next_field` names where that page gave it, for the
/// error).
pub fn cursor_request<Id>(
    limit: Option<&str>,
    cursor: Option<&str>,
    default_limit: usize,
    next_field: &str,
    parse: impl FnOnce(&str) -> Option<Id>,
) -> Result<PageRequest<Id>, ApiError>
where
    Id: FromStr,
{
    let mut request = PageParams { limit, ..PageParams::default() }.to_request(default_limit)?;
    if let Some(text) = cursor {
        let id = parse(text).ok_or_else(|| {
            ApiError::invalid("cursor", format!("`cursor` must be a `{next_field}` of this list; `{text}` is not."))
        })?;
        request.cursor = Cursor::After(id);
    }
    Ok(request)
}

/// A failed listing of [`cursor_request`]'s page: an unknown cursor is a 400 saying
/// `what_is_missing` (e.g. "no endpoint of this list").
pub fn cursor_list_error(err: ServiceError, what_is_missing: &str) -> ApiError {
    match err {
        ServiceError::UnknownCursor => unknown_cursor(what_is_missing),
        err => err.into(),
    }
}

/// The 400 for a [`cursor_request`]'s cursor that names no object of the list: it names
/// `what_is_missing` (e.g. "no endpoint of this list").
pub fn unknown_cursor(what_is_missing: &str) -> ApiError {
    ApiError::invalid("cursor", format!("`cursor` names {what_is_missing}."))
}

/// Turns a failed listing into the API's answer: an unknown cursor is the caller's
/// mistake (400, naming the cursor parameter); anything else is the service's error.
pub fn list_error(err: ServiceError, params: &PageParams<'_>) -> ApiError {
    match err {
        ServiceError::UnknownCursor => params.unknown_cursor(),
        err => err.into(),
    }
}

impl PageParams<'_> {
    /// The 400 for a cursor (`starting_after` or `ending_before`) that names no object in
    /// the list.
    pub fn unknown_cursor(&self) -> ApiError {
        let (param, id) = match (self.starting_after, self.ending_before) {
            (Some(id), _) => ("starting_after", id),
            (_, Some(id)) => ("ending_before", id),
            _ => ("starting_after", ""),
        };
        ApiError::invalid(param, format!("`{param}` names no object in this list: '{id}'."))
    }
}

/// The list envelope: `{"object":"list","data":[...],"has_more":bool,"url":"/v1/..."}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListResponse<T> {
    /// Always `"list"`.
    pub object: &'static str,
    /// The page of objects, newest first.
    pub data: Vec<T>,
    /// Whether another page exists beyond this one.
    pub has_more: bool,
    /// The path of this list.
    pub url: String,
    /// Only on a search (`GET /v1/events?filter=`), while `has_more`: the id to pass as
    /// `starting_after` (or `ending_before`, the way you are going) for the next page. A
    /// search reads a bounded number of events per request, so a page can hold fewer
    /// matches than `limit`, or none, and still have more after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> ListResponse<T> {
    /// A list page at `url`.
    pub fn new(url: impl Into<String>, data: Vec<T>, has_more: bool) -> Self {
        Self { object: "list", data, has_more, url: url.into(), next_cursor: None }
    }
}
