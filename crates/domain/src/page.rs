//! Pages of a list: at most [`MAX_PAGE_LIMIT`] items, newest first, and a
//! cursor (the last item's id) to ask for the ones after it.

use crate::error::{DomainError, ErrorCode};

/// Items in a page when the caller does not say.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;
/// Most items one page holds.
pub const MAX_PAGE_LIMIT: u32 = 100;

/// The page size asked for, checked: 1 to [`MAX_PAGE_LIMIT`].
pub fn page_limit(asked: Option<u32>) -> Result<u32, DomainError> {
    match asked.unwrap_or(DEFAULT_PAGE_LIMIT) {
        n @ 1..=MAX_PAGE_LIMIT => Ok(n),
        _ => Err(DomainError::new(
            ErrorCode::InvalidRequest,
            format!("limit: 1 to {MAX_PAGE_LIMIT}"),
        )),
    }
}

/// The cursor of the page after `page`: its last item's id, when the page
/// is full (a shorter page is the last one).
pub fn next_cursor<T, Id: Clone>(page: &[T], limit: u32, id: impl Fn(&T) -> &Id) -> Option<Id> {
    if page.len() == limit as usize {
        page.last().map(|item| id(item).clone())
    } else {
        None
    }
}

/// The refusal of a cursor that names no item of the list, e.g. `"an API
/// key of this merchant"`.
pub fn unknown_cursor(what: &str) -> DomainError {
    DomainError::new(
        ErrorCode::InvalidRequest,
        format!("after: not {what} (use `next` of the page before)"),
    )
}

/// A checked page: the items, and the cursor of the next page.
pub fn paged<T, Id: Clone>(
    page: Option<Vec<T>>,
    limit: u32,
    id: impl Fn(&T) -> &Id,
    what: &str,
) -> Result<(Vec<T>, Option<Id>), DomainError> {
    let page = page.ok_or_else(|| unknown_cursor(what))?;
    let next = next_cursor(&page, limit, id);
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_holds_one_to_a_hundred() {
        assert_eq!(page_limit(None).unwrap(), DEFAULT_PAGE_LIMIT);
        assert_eq!(page_limit(Some(1)).unwrap(), 1);
        assert_eq!(page_limit(Some(100)).unwrap(), 100);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(101)).is_err());
    }
}
