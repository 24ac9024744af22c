//! Request parameters as Nacos reads them: query string and form body merged, first value
//! wins (Java's `request.getParameter`).

use std::collections::BTreeMap;

use crate::net::HttpRequest;
use crate::net::header;

pub use crate::state::PUBLIC_NAMESPACE;

#[derive(Debug, Default, Clone)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn from_request(req: &HttpRequest) -> Params {
        let mut params = Params::from_query(&req.query);
        let is_form = req
            .header(header::CONTENT_TYPE.as_str())
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
        if is_form {
            params.add(form_urlencoded::parse(&req.body));
        }
        params
    }

    /// The parameters of a query string alone.
    pub fn from_query(query: &str) -> Params {
        let mut params = Params::default();
        params.add(form_urlencoded::parse(query.as_bytes()));
        params
    }

    fn add(&mut self, pairs: form_urlencoded::Parse<'_>) {
        for (name, value) in pairs {
            self.0.entry(name.into_owned()).or_insert_with(|| value.into_owned());
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }
}

/// A namespace parameter, normalized: empty or absent means `public`. Only `[A-Za-z0-9_-]`
/// is accepted (Nacos's rule), which also keeps the host's key separators unambiguous.
pub fn namespace(value: Option<&str>, field: &str) -> Result<String, String> {
    let value = value.unwrap_or_default().trim();
    if value.is_empty() {
        return Ok(PUBLIC_NAMESPACE.to_string());
    }
    crate::state::namespace_id(value, "namespace").map_err(|e| format!("invalid param: {field} {}", e.reason))?;
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_rules() {
        assert_eq!(namespace(None, "tenant").unwrap(), "public");
        assert_eq!(namespace(Some(""), "tenant").unwrap(), "public");
        assert_eq!(namespace(Some("dev-1_a"), "tenant").unwrap(), "dev-1_a");
        assert!(namespace(Some("a b"), "tenant").unwrap_err().contains("tenant"));
        assert!(namespace(Some(&"x".repeat(129)), "namespaceId").unwrap_err().contains("namespaceId"));
    }
}
