//! `/nacos/v1/auth/*`: login, the first administrator, and the users, roles and permissions
//! API in Nacos's shapes. Changes go through the log (`Operation::Auth`, applied by
//! `state::auth`); listings never carry a password hash (Nacos 2.x lists bcrypt hashes).

use serde_json::json;

use super::Context;
use super::access::Caller;
use super::access::Denied;
use super::guest;
use super::params::Params;
use crate::auth::password;
use crate::auth::permission;
use crate::auth::token;
use crate::clock::now_ms;
use crate::net;
use crate::net::HttpRequest;
use crate::net::HttpResponse;
use crate::net::Status;
use crate::raft::Operation;
use crate::state::AuthChange;
use crate::state::MAX_PAGE_ITEMS;

/// The administrator's name when the bootstrap names none (Nacos's).
pub const DEFAULT_ADMIN: &str = "nacos";
/// Characters of a password the bootstrap makes up when given none.
const GENERATED_PASSWORD_CHARS: usize = 24;
/// The token a node with auth off answers a login with (r-nacos's and Nacos 2.x's), so that a
/// client configured with credentials works against it.
const AUTH_DISABLED_TOKEN: &str = "AUTH_DISABLED";
/// Page size when a listing names none (Nacos's console asks for 10).
const DEFAULT_PAGE_SIZE: usize = 100;

/// `POST /nacos/v1/auth/login` and `/nacos/v1/auth/users/login`: `username` and `password`
/// from the query or the form. 403 `unknown user!` for anything but a match.
pub fn login(ctx: &Context, req: &HttpRequest) -> HttpResponse {
    let params = Params::from_request(req);
    let username = params.get("username").unwrap_or_default();
    if !ctx.gate.enabled() {
        let body = json!({ "accessToken": AUTH_DISABLED_TOKEN, "tokenTtl": token::TOKEN_TTL_S,
            "globalAdmin": true, "username": username });
        return net::json(Status::OK, &body);
    }
    let password = params.get("password").unwrap_or_default();
    let caller = match ctx.gate.by_password(&ctx.guests, username, password, req.peer.ip()) {
        Ok(caller) => caller,
        Err(Denied(message)) => return net::text(Status::FORBIDDEN, message),
    };
    let replica = ctx.guests.replica().read();
    let (Some(key), Some(user)) = (replica.machine.signing_key(), replica.machine.user(username)) else {
        return net::text(Status::FORBIDDEN, super::access::UNKNOWN_USER.0);
    };
    drop(replica);
    let access_token = token::issue(&key, &user.username, user.epoch, now_ms() / 1000, token::TOKEN_TTL_S);
    let body = json!({ "accessToken": access_token, "tokenTtl": token::TOKEN_TTL_S,
        "globalAdmin": caller.is_admin(), "username": user.username });
    let mut resp = net::json(Status::OK, &body);
    if let Ok(value) = net::header::HeaderValue::from_str(&format!("Bearer {access_token}")) {
        resp.headers_mut().insert(net::header::AUTHORIZATION, value);
    }
    resp
}

/// `POST /nacos/v1/auth/users/admin`: the first administrator, once, for whoever holds a
/// node's bootstrap token (`bootstrapToken`; Nacos asks for nothing, so whoever reached a
/// new server first became its admin). `password` (made up when empty, and then answered),
/// `username` (default `nacos`).
pub async fn bootstrap(ctx: &Context, req: &HttpRequest) -> HttpResponse {
    let params = Params::from_request(req);
    if ctx.guests.replica().read().machine.auth_bootstrapped() {
        return net::text(Status::CONFLICT, "have admin user cannot use it");
    }
    if !ctx.gate.is_bootstrap_token(params.get("bootstrapToken").unwrap_or_default()) {
        let message = "invalid param: bootstrapToken is not this node's bootstrap token (the file bootstrap-token \
                       in its data directory; `nacre user bootstrap` reads it)";
        return net::text(Status::FORBIDDEN, message);
    }
    let username = params.get("username").filter(|name| !name.is_empty()).unwrap_or(DEFAULT_ADMIN).to_string();
    let given = params.get("password").filter(|password| !password.is_empty());
    let password = match given {
        Some(password) => password.to_string(),
        None => match generated_password() {
            Ok(password) => password,
            Err(e) => return net::text(Status::INTERNAL_SERVER_ERROR, e.to_string()),
        },
    };
    let signing_key = match super::access::random_bytes::<{ token::SIGNING_KEY_BYTES }>() {
        Ok(key) => key,
        Err(e) => return net::text(Status::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let password_hash = match hash("password", &password) {
        Ok(hash) => hash,
        Err(resp) => return *resp,
    };
    let change = AuthChange::Bootstrap { username: username.clone(), password_hash, signing_key };
    match propose(ctx, change).await {
        Ok(_) => {
            ctx.gate.bootstrap_done();
            let mut body = json!({ "username": username });
            if given.is_none() {
                body["password"] = json!(password);
            }
            net::json(Status::OK, &body)
        }
        Err(resp) => *resp,
    }
}

/// `GET /nacos/v1/console/server/state`: Nacos's keys only (2.x also lists internal tuning here,
/// to anyone).
pub fn server_state(ctx: &Context) -> HttpResponse {
    let has_admin = ctx.guests.replica().read().machine.has_admin();
    let enabled = ctx.gate.enabled();
    let body = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "auth_enabled": enabled.to_string(),
        "login_page_enabled": enabled.to_string(),
        "auth_admin_request": (enabled && !has_admin).to_string(),
    });
    net::json(Status::OK, &body)
}

/// The users API.
pub async fn users(ctx: &Context, req: &HttpRequest, caller: &Caller) -> HttpResponse {
    let params = Params::from_request(req);
    let get = |name: &str| params.get(name).unwrap_or_default().to_string();
    let change = match req.method {
        net::HttpMethod::GET => {
            let (page_no, page_size) = paging(&params);
            let page = ctx.guests.replica().read().machine.users_page(page_no, page_size);
            return net::json(Status::OK, &page);
        }
        net::HttpMethod::POST => {
            let username = match required(&params, "username") {
                Ok(username) => username,
                Err(resp) => return *resp,
            };
            match hash("password", params.get("password").unwrap_or_default()) {
                Ok(password_hash) => AuthChange::CreateUser { username, password_hash },
                Err(resp) => return *resp,
            }
        }
        net::HttpMethod::PUT => {
            let username = match required(&params, "username") {
                Ok(username) => username,
                Err(resp) => return *resp,
            };
            let allowed = match caller {
                Caller::Unchecked => true,
                Caller::Anonymous => false,
                Caller::User { name, roles } => permission::may_change_password(name, roles, &username),
            };
            if !allowed {
                return super::access::NOT_ALLOWED.response(&req.path);
            }
            match hash("newPassword", params.get("newPassword").unwrap_or_default()) {
                Ok(password_hash) => AuthChange::SetPassword { username, password_hash },
                Err(resp) => return *resp,
            }
        }
        net::HttpMethod::DELETE => AuthChange::DeleteUser { username: get("username") },
        _ => return super::not_found(req),
    };
    answer_change(ctx, change).await
}

/// `GET /nacos/v1/auth/users/search?username=`: usernames containing the fragment.
pub fn search_users(ctx: &Context, req: &HttpRequest) -> HttpResponse {
    let params = Params::from_request(req);
    let names = ctx.guests.replica().read().machine.search_usernames(params.get("username").unwrap_or_default());
    net::json(Status::OK, &names)
}

/// The roles API: bindings of roles to users.
pub async fn roles(ctx: &Context, req: &HttpRequest) -> HttpResponse {
    let params = Params::from_request(req);
    let get = |name: &str| params.get(name).unwrap_or_default().to_string();
    let change = match req.method {
        net::HttpMethod::GET => {
            let (page_no, page_size) = paging(&params);
            let filter = |name: &str| params.get(name).filter(|value| !value.is_empty());
            let page = ctx.guests.replica().read().machine.role_bindings_page(
                filter("username"),
                filter("role"),
                page_no,
                page_size,
            );
            return net::json(Status::OK, &page);
        }
        net::HttpMethod::POST => AuthChange::GrantRole { role: get("role"), username: get("username") },
        net::HttpMethod::DELETE => AuthChange::RevokeRole {
            role: get("role"),
            username: params.get("username").filter(|name| !name.is_empty()).map(str::to_string),
        },
        _ => return super::not_found(req),
    };
    answer_change(ctx, change).await
}

/// `GET /nacos/v1/auth/roles/search?role=`: role names containing the fragment.
pub fn search_roles(ctx: &Context, req: &HttpRequest) -> HttpResponse {
    let params = Params::from_request(req);
    let names = ctx.guests.replica().read().machine.search_roles(params.get("role").unwrap_or_default());
    net::json(Status::OK, &names)
}

/// The permissions API: grants of a resource pattern and actions to a role.
pub async fn permissions(ctx: &Context, req: &HttpRequest) -> HttpResponse {
    let params = Params::from_request(req);
    let get = |name: &str| params.get(name).unwrap_or_default().to_string();
    let change = match req.method {
        net::HttpMethod::GET => {
            let (page_no, page_size) = paging(&params);
            let role = params.get("role").filter(|role| !role.is_empty());
            let page = ctx.guests.replica().read().machine.permissions_page(role, page_no, page_size);
            return net::json(Status::OK, &page);
        }
        net::HttpMethod::POST => {
            AuthChange::AddPermission { role: get("role"), resource: get("resource"), action: get("action") }
        }
        net::HttpMethod::DELETE => {
            AuthChange::RemovePermission { role: get("role"), resource: get("resource"), action: get("action") }
        }
        _ => return super::not_found(req),
    };
    answer_change(ctx, change).await
}

fn paging(params: &Params) -> (usize, usize) {
    let number = |name: &str, default: usize| params.get(name).and_then(|v| v.trim().parse().ok()).unwrap_or(default);
    (number("pageNo", 1), number("pageSize", DEFAULT_PAGE_SIZE).min(MAX_PAGE_ITEMS))
}

fn required(params: &Params, name: &str) -> Result<String, Box<HttpResponse>> {
    match params.get(name).filter(|value| !value.is_empty()) {
        Some(value) => Ok(value.to_string()),
        None => Err(Box::new(net::text(Status::BAD_REQUEST, format!("Required parameter '{name}' is not present")))),
    }
}

/// A password's hash (off the async worker: Argon2 takes tens of ms); 400 naming `field` for
/// an empty or overlong one.
fn hash(field: &str, password: &str) -> Result<String, Box<HttpResponse>> {
    crate::blocking::cpu_bound(|| crate::heap::returning_freed(|| password::hash(password))).map_err(|e| {
        Box::new(match e {
            password::PasswordError::Empty | password::PasswordError::TooLong => {
                net::text(Status::BAD_REQUEST, format!("invalid param: {field}: {e}"))
            }
            other => net::text(Status::INTERNAL_SERVER_ERROR, other.to_string()),
        })
    })
}

/// A change through the log, answered as Nacos's `RestResult`.
async fn answer_change(ctx: &Context, change: AuthChange) -> HttpResponse {
    match propose(ctx, change).await {
        Ok(message) => net::json(Status::OK, &json!({ "code": 200, "message": message, "data": null })),
        Err(resp) => *resp,
    }
}

/// Validate and commit `change`: its answer's message, or the HTTP refusal.
async fn propose(ctx: &Context, change: AuthChange) -> Result<String, Box<HttpResponse>> {
    let op = Operation::Auth(change);
    if let Err(invalid) = op.validate() {
        return Err(Box::new(net::text(Status::BAD_REQUEST, invalid.to_string())));
    }
    match ctx.log.write(op).await {
        Ok(outcome) => match outcome.response.result {
            Ok(message) => Ok(String::from_utf8_lossy(&message).into_owned()),
            Err(error) => Err(Box::new(guest::respond(Err(error)))),
        },
        Err(e) => Err(Box::new(guest::unavailable(&e))),
    }
}

/// A password from the OS's randomness: 6 bits per character (64 symbols divide 256, so no
/// symbol is likelier than another).
fn generated_password() -> anyhow::Result<String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = super::access::random_bytes::<GENERATED_PASSWORD_CHARS>()?;
    Ok(bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect())
}
