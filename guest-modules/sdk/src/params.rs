//! Reading request parameters the way Nacos clients send them: every value a string, booleans
//! in any case (`True` from Python, `true` from Java and Node), an empty value meaning "absent".

use std::str::FromStr;

use nacre_protocol::GuestRequest;

use crate::GuestError;

/// Parameter getters whose errors are 400s naming the parameter.
pub trait RequestExt {
    /// The parameter's value; a 400 naming it when it is absent or empty.
    fn required(&self, name: &str) -> Result<&str, GuestError>;
    /// The parameter's value, or `None` when it is absent or empty.
    fn optional(&self, name: &str) -> Option<&str>;
    /// A boolean parameter (`true`/`false` in any case), `default` when absent or empty.
    fn bool_or(&self, name: &str, default: bool) -> Result<bool, GuestError>;
    /// A parameter parsed with `FromStr`, `None` when absent or empty.
    fn parsed<T: FromStr>(&self, name: &str) -> Result<Option<T>, GuestError>;
}

impl RequestExt for GuestRequest {
    fn required(&self, name: &str) -> Result<&str, GuestError> {
        self.optional(name)
            .ok_or_else(|| GuestError::bad_request(format!("Required parameter '{name}' is not present")))
    }

    fn optional(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|value| !value.is_empty())
    }

    fn bool_or(&self, name: &str, default: bool) -> Result<bool, GuestError> {
        match self.optional(name) {
            None => Ok(default),
            Some(value) => parse_bool(value).ok_or_else(|| invalid(name, value)),
        }
    }

    fn parsed<T: FromStr>(&self, name: &str) -> Result<Option<T>, GuestError> {
        self.optional(name).map(|value| value.trim().parse().map_err(|_| invalid(name, value))).transpose()
    }
}

/// `true` or `false` without regard to case; anything else is not a boolean.
pub fn parse_bool(value: &str) -> Option<bool> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn invalid(name: &str, value: &str) -> GuestError {
    GuestError::bad_request(format!("invalid parameter '{name}': {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> GuestRequest {
        GuestRequest::new("x").param("a", "1").param("empty", "").param("b", "True").param("c", "yes")
    }

    #[test]
    fn required_names_the_missing_field() {
        assert_eq!(req().required("a"), Ok("1"));
        for name in ["empty", "nope"] {
            let err = req().required(name).unwrap_err();
            assert_eq!(err.code, 400);
            assert!(err.message.contains(name), "{err}");
        }
        assert_eq!(req().optional("empty"), None);
    }

    #[test]
    fn booleans_ignore_case_and_reject_garbage() {
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("FALSE"), Some(false));
        assert_eq!(parse_bool("1"), None);
        assert_eq!(req().bool_or("b", false), Ok(true));
        assert_eq!(req().bool_or("nope", true), Ok(true));
        let err = req().bool_or("c", true).unwrap_err();
        assert!(err.code == 400 && err.message.contains("'c'"), "{err}");
    }

    #[test]
    fn parsed_reports_the_field() {
        assert_eq!(req().parsed::<u16>("a"), Ok(Some(1)));
        assert_eq!(req().parsed::<u16>("nope"), Ok(None));
        assert!(req().parsed::<u16>("b").unwrap_err().message.contains("'b'"));
    }
}
