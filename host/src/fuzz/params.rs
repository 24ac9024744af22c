//! The HTTP parameter layer: `api::params::Params::from_request`, `api::params::namespace` and
//! `api::guest::guest_request` on generated query strings, form bodies, content types and
//! client-address headers.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use nacre_protocol::GuestRequest;
use serde::Deserialize;
use serde::Serialize;
use serde_bytes::ByteBuf;

use super::Inputs;
use super::Plan;
use super::mutate::Rng;
use super::wire;
use crate::api::guest::guest_request;
use crate::api::params::Params;
use crate::api::params::namespace;
use crate::net::HttpMethod;
use crate::net::HttpRequest;
use crate::net::header;

/// The parts of a request the parameter layer reads, as one fuzz input.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Parts {
    query: ByteBuf,
    content_type: Option<ByteBuf>,
    forwarded_for: Option<ByteBuf>,
    real_ip: Option<ByteBuf>,
    body: ByteBuf,
}

/// Parameter names the API reads, and some it does not.
const NAMES: [&str; 12] =
    ["dataId", "group", "tenant", "namespaceId", "content", "serviceName", "ip", "port", "a", "", "=", "%"];
/// The fields a namespace is read from.
const NAMESPACE_FIELDS: [&str; 2] = ["tenant", "namespaceId"];

const FORM: &str = "application/x-www-form-urlencoded";

fn content_type(rng: &mut Rng) -> Vec<u8> {
    let types: [&[u8]; 10] = [
        FORM.as_bytes(),
        b"APPLICATION/X-WWW-FORM-URLENCODED; charset=UTF-8",
        b"application/x-www-form-urlencodedX",
        b"application/x-www-form",
        b"application/json",
        b"text/plain",
        b"",
        b" application/x-www-form-urlencoded",
        b"application/x-www-form-urlencoded\xff",
        b"multipart/form-data; boundary=x",
    ];
    rng.pick(&types).to_vec()
}

/// A value: text from the list of trouble, percent-encoded or raw, with broken escapes.
fn value(rng: &mut Rng) -> String {
    let text = wire::text(rng);
    match rng.below(5) {
        0 => form_urlencoded::byte_serialize(text.as_bytes()).collect(),
        1 => (*rng.pick(&["%", "%f", "%ff", "%00", "%2e%2e%2f", "+", "%C3%28", "%e9", "%%", "%zz"])).to_string(),
        2 => text.replace('&', "%26").replace('=', "%3D"),
        _ => text,
    }
}

/// A query string or form body: name-value pairs, repeated names, stray separators.
fn pairs(rng: &mut Rng) -> String {
    let mut out = String::new();
    for _ in 0..rng.below(8) {
        if !out.is_empty() || rng.one_in(4) {
            out.push_str(rng.pick::<&str>(&["&", "&", "&", "&&", ";", "="]));
        }
        out.push_str(rng.pick::<&str>(&NAMES));
        match rng.below(6) {
            0 => {}
            1 => out.push_str("=="),
            _ => {
                out.push('=');
                out.push_str(&value(rng));
            }
        }
    }
    out
}

fn address(rng: &mut Rng) -> Vec<u8> {
    let addresses: [&[u8]; 9] = [
        b"10.0.0.1",
        b" 10.0.0.1 , 10.0.0.2",
        b",10.0.0.1",
        b"",
        b"   ",
        b"::1",
        b"unknown",
        b"\xff\xfe",
        b"1.2.3.4\x00",
    ];
    rng.pick(&addresses).to_vec()
}

fn generate(rng: &mut Rng) -> Vec<u8> {
    let parts = Parts {
        query: ByteBuf::from(pairs(rng).into_bytes()),
        content_type: (!rng.one_in(4)).then(|| ByteBuf::from(content_type(rng))),
        forwarded_for: rng.one_in(3).then(|| ByteBuf::from(address(rng))),
        real_ip: rng.one_in(3).then(|| ByteBuf::from(address(rng))),
        body: ByteBuf::from(if rng.one_in(6) { wire::bytes(rng) } else { pairs(rng).into_bytes() }),
    };
    postcard::to_stdvec(&parts).expect("parts serialize")
}

/// The request an input stands for. Bytes that are not `Parts` are the query string and a
/// form body at once, so that every input reaches the parser.
fn request(input: &[u8]) -> HttpRequest {
    let parts = postcard::from_bytes::<Parts>(input).unwrap_or_else(|_| Parts {
        query: ByteBuf::from(input.to_vec()),
        content_type: Some(ByteBuf::from(FORM.as_bytes().to_vec())),
        forwarded_for: None,
        real_ip: None,
        body: ByteBuf::from(input.to_vec()),
    });
    let mut headers = header::HeaderMap::new();
    let named = [
        (header::CONTENT_TYPE, parts.content_type),
        (header::HeaderName::from_static("x-forwarded-for"), parts.forwarded_for),
        (header::HeaderName::from_static("x-real-ip"), parts.real_ip),
    ];
    for (name, value) in named {
        // A value hyper would not have parsed (a control byte) is left out, as hyper would.
        if let Some(value) = value.and_then(|value| header::HeaderValue::from_bytes(&value).ok()) {
            headers.insert(name, value);
        }
    }
    HttpRequest {
        method: HttpMethod::POST,
        path: "/nacos/v1/cs/configs".into(),
        query: String::from_utf8_lossy(&parts.query).into_owned(),
        headers,
        body: parts.body.into_vec().into(),
        peer: SocketAddr::from(([192, 0, 2, 7], 40_000)),
    }
}

/// Checks one request against what the parameter layer promises.
fn check(req: &HttpRequest) -> &'static str {
    let params = Params::from_request(req);

    // First value wins; the query string before the body; the body only when it is a form.
    let is_form = req.headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).is_some_and(|value| {
        value.len() >= FORM.len() && value.as_bytes()[..FORM.len()].eq_ignore_ascii_case(FORM.as_bytes())
    });
    let query = form_urlencoded::parse(req.query.as_bytes());
    let body = form_urlencoded::parse(if is_form { &req.body[..] } else { &[] });
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in query.chain(body) {
        expected.entry(name.into_owned()).or_insert_with(|| value.into_owned());
    }
    for (name, value) in &expected {
        assert_eq!(params.get(name), Some(value.as_str()), "parameter {name:?} is not its first value");
    }
    assert_eq!(params.clone().into_map().len(), expected.len(), "parameters that appear nowhere first");

    // A namespace is `public` (absent or blank) or Nacos's id rule, never anything else.
    for field in NAMESPACE_FIELDS {
        let given = params.get(field);
        let trimmed = given.unwrap_or_default().trim();
        match namespace(given, field) {
            Ok(value) if trimmed.is_empty() => assert_eq!(value, "public"),
            Ok(value) => {
                assert_eq!(value, trimmed, "the namespace is not what was given");
                assert!(namespace_id_rule(&value), "accepted namespace {value:?}");
            }
            Err(error) => {
                assert!(error.contains(field), "the refusal does not name the field: {error}");
                assert!(!trimmed.is_empty() && !namespace_id_rule(trimmed), "refused namespace {trimmed:?}");
            }
        }
    }

    // The guest sees the parameters as they are, and a caller's address, through JSON.
    let request = guest_request(req, "config.get", params.clone());
    assert_eq!(request.params, params.into_map());
    let candidates = [
        req.header("x-forwarded-for").and_then(|v| v.split(',').next()).map(str::trim),
        req.header("x-real-ip").map(str::trim),
        Some("192.0.2.7"),
    ];
    assert!(!request.client_ip.is_empty(), "an empty client IP");
    assert!(candidates.contains(&Some(request.client_ip.as_str())), "client IP {:?} from nowhere", request.client_ip);
    assert_eq!(
        GuestRequest::decode(&request.encode()).ok().as_ref(),
        Some(&request),
        "the request does not round-trip"
    );
    if expected.is_empty() { "no parameters" } else { "parameters" }
}

fn namespace_id_rule(value: &str) -> bool {
    (1..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[test]
fn query_and_form() {
    let plan = Plan::from_env("params::query_and_form");
    let mut rng = Rng::new(plan.seed);
    let mut corpus: Vec<Vec<u8>> = (0..24).map(|_| generate(&mut rng)).collect();
    corpus.push(
        postcard::to_stdvec(&Parts {
            query: ByteBuf::from(b"dataId=a.yaml&group=DEFAULT_GROUP&tenant=dev".to_vec()),
            content_type: Some(ByteBuf::from(FORM.as_bytes().to_vec())),
            forwarded_for: None,
            real_ip: None,
            body: ByteBuf::from(b"content=k%3A+v&dataId=ignored&namespaceId=public".to_vec()),
        })
        .expect("parts serialize"),
    );
    let inputs = Inputs { corpus: &corpus, generate: &generate, max_ops: 4 };
    super::run(&plan, &inputs, |_, input| check(&request(input)));
}
