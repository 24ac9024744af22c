//! Nacos's paged answers: `pageNo`/`pageSize` in, `{"totalCount","pageNumber",
//! "pagesAvailable","pageItems"}` out.

use nacre_guest_sdk::{GuestError, GuestRequest, RequestExt};
use serde_json::{Value, json};

/// Bytes of items one page may carry. The host refuses an answer over its result limit
/// (8 MiB, `runtime::limits::MAX_RESULT_BYTES`) with a 500; a page of large configs (each up to
/// 1 MiB) stops here instead, with a 400 that says how many of its items fit.
pub const MAX_PAGE_ITEM_BYTES: usize = 6 << 20;

/// The items of one page, kept within [`MAX_PAGE_ITEM_BYTES`].
#[derive(Debug, Default)]
pub struct PageItems {
    items: Vec<Value>,
    bytes: usize,
}

impl PageItems {
    /// Add an item; a 400 naming `pageSize` once the page would be too large to answer.
    pub fn push(&mut self, item: Value) -> Result<(), GuestError> {
        let item_bytes = item.to_string().len();
        if self.bytes + item_bytes > MAX_PAGE_ITEM_BYTES {
            return Err(GuestError::bad_request(format!(
                "invalid parameter 'pageSize': this page's items hold more than {MAX_PAGE_ITEM_BYTES} bytes, more \
                 than one answer may carry; ask for pages of at most {} items",
                self.items.len().max(1)
            )));
        }
        self.bytes += item_bytes;
        self.items.push(item);
        Ok(())
    }

    pub fn into_vec(self) -> Vec<Value> {
        self.items
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based.
    pub number: u32,
    pub size: u32,
}

impl Page {
    /// `pageNo` (default 1) and `pageSize` (default `default_size`, at most `max_size`: a
    /// larger one is cut to it, as Nacos cuts history pages); zero or garbage is a 400.
    pub fn from_request(req: &GuestRequest, default_size: u32, max_size: u32) -> Result<Page, GuestError> {
        let number = req.parsed::<u32>("pageNo")?.unwrap_or(1);
        let size = req.parsed::<u32>("pageSize")?.unwrap_or(default_size);
        for (field, value) in [("pageNo", number), ("pageSize", size)] {
            if value == 0 {
                return Err(GuestError::bad_request(format!("invalid parameter '{field}': must be at least 1")));
            }
        }
        Ok(Page { number, size: size.min(max_size) })
    }

    /// Whether the item at 0-based `position` of the whole listing is on this page.
    pub fn contains(&self, position: u64) -> bool {
        let first = u64::from(self.number - 1) * u64::from(self.size);
        position >= first && position < first + u64::from(self.size)
    }

    pub fn render(&self, total: u64, items: Vec<Value>) -> Value {
        json!({
            "totalCount": total,
            "pageNumber": self.number,
            "pagesAvailable": total.div_ceil(u64::from(self.size)),
            "pageItems": items,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_bounded_and_validated() {
        let req = GuestRequest::new("x").param("pageNo", "2").param("pageSize", "9999");
        let page = Page::from_request(&req, 10, 500).unwrap();
        assert_eq!(page, Page { number: 2, size: 500 });
        assert!(page.contains(500) && page.contains(999) && !page.contains(499) && !page.contains(1000));
        assert_eq!(Page::from_request(&GuestRequest::new("x"), 10, 500).unwrap(), Page { number: 1, size: 10 });
        for (field, value) in [("pageNo", "0"), ("pageSize", "x")] {
            let err = Page::from_request(&GuestRequest::new("x").param(field, value), 10, 500).unwrap_err();
            assert!(err.code == 400 && err.message.contains(field), "{err}");
        }
        assert_eq!(page.render(1001, vec![])["pagesAvailable"], 3);
    }
}
