//! The adapter's contract, checked natively with a toy machine.

use super::*;

/// Stores `params["v"]` under `params["k"]`; `get` reads it back; `copy` copies the value at
/// `from` (`none` when it sees none) to `to`, and its plan commits it on the path of `to` (an
/// AP key is its own partition); `misplan`'s plan is the raw `Nacre-Commit: <commit>`.
struct Toy;

impl StateMachine for Toy {
    fn describe() -> ModuleInfo {
        ModuleInfo { name: "toy".into(), version: "0.0.1".into(), kind: ModuleKind::Config, schema_version: 3 }
    }

    fn apply(cmd: &Command, req: GuestRequest) -> Result<GuestReply, GuestError> {
        match req.op.as_str() {
            "put" => {
                let key = req.required("k")?;
                store::put(key.as_bytes(), req.required("v")?.as_bytes());
                emit("toy", key);
                Ok(GuestReply::text(format!("{}@{}", cmd.index, cmd.namespace)))
            }
            "copy" => {
                let value = store::get(req.required("from")?.as_bytes()).unwrap_or_else(|| b"none".to_vec());
                store::put(req.required("to")?.as_bytes(), &value);
                Ok(GuestReply::text(String::from_utf8_lossy(&value)))
            }
            op => Err(GuestError::unknown_op(op)),
        }
    }

    fn query(_ctx: &QueryContext, req: GuestRequest) -> Result<GuestReply, GuestError> {
        match req.op.as_str() {
            "get" => store::get(req.required("k")?.as_bytes())
                .map(|v| GuestReply::text(String::from_utf8_lossy(&v)))
                .ok_or_else(|| GuestError::not_found("no such key")),
            "put" => Self::apply(&Command::new(0, 0), req),
            "copy" => {
                let to = req.required("to")?;
                let commit =
                    if keyspace::is_ap(to.as_bytes()) { Commit::Ap { partition: to.into() } } else { Commit::Log };
                Ok(Plan { commit, renew: None }.onto(GuestReply::text("planned")))
            }
            "misplan" => Ok(GuestReply::text("").header(directive::COMMIT, req.required("commit")?)),
            op => Err(GuestError::unknown_op(op)),
        }
    }

    fn migrate(_previous: Option<ModuleInfo>) -> Result<(), String> {
        Ok(())
    }
}

fn put(k: &str, v: &str) -> Vec<u8> {
    GuestRequest::new("put").param("k", k).param("v", v).encode()
}

#[test]
fn a_batch_announces_every_command_and_decodes_each_on_its_own() {
    testing::reset();
    let results = testing::apply_batch::<Toy>(
        "ns1",
        7,
        vec![(10, 1, put("a", "1")), (11, 2, b"not json".to_vec()), (12, 3, put("b", "2"))],
    );
    assert_eq!(testing::begun_positions(), vec![0, 1, 2]);
    assert_eq!(GuestReply::decode(results[0].as_ref().unwrap()).unwrap().body, "10@ns1");
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(err.code, 400, "{err}");
    assert_eq!(GuestReply::decode(results[2].as_ref().unwrap()).unwrap().body, "12@ns1");
    assert_eq!(testing::take_events(), vec![("toy".into(), "a".into()), ("toy".into(), "b".into())]);
}

#[test]
fn guest_errors_and_replies_cross_the_adapter() {
    testing::reset();
    let cmd = Command::new(1, 1);
    let err = testing::apply::<Toy>(&cmd, &GuestRequest::new("put").param("k", "a")).unwrap_err();
    assert_eq!((err.code, err.message.contains("'v'")), (400, true));
    testing::apply::<Toy>(&cmd, &GuestRequest::new("put").param("k", "a").param("v", "x")).unwrap();
    let ctx = QueryContext::new(1, 1);
    assert_eq!(testing::query::<Toy>(&ctx, &GuestRequest::new("get").param("k", "a")).unwrap().body, "x");
    assert_eq!(testing::query::<Toy>(&ctx, &GuestRequest::new("get").param("k", "b")).unwrap_err().code, 404);
}

#[test]
fn queries_cannot_write() {
    testing::reset();
    let req = GuestRequest::new("put").param("k", "a").param("v", "x");
    let outcome = std::panic::catch_unwind(|| testing::query::<Toy>(&QueryContext::new(0, 0), &req));
    assert!(outcome.is_err(), "a write inside a query must fail");
    // The read-only flag does not outlive the query.
    testing::apply::<Toy>(&Command::new(1, 1), &req).unwrap();
}

#[test]
fn describe_and_migrate_convert_through_wit() {
    use bindings::Guest;
    let info = Exported::<Toy>::describe();
    assert_eq!((info.name.as_str(), info.schema_version), ("toy", 3));
    assert_eq!(Exported::<Toy>::migrate(Some(info)), Ok(()));
}

fn copy(from: &str, to: &str) -> GuestRequest {
    GuestRequest::new("copy").param("from", from).param("to", to)
}

#[test]
fn log_commands_see_and_write_only_the_cp_keyspace() {
    testing::reset();
    let cmd = Command::new(1, 1);
    testing::apply::<Toy>(&cmd, &GuestRequest::new("put").param("k", "e/a").param("v", "ap")).unwrap();
    testing::apply::<Toy>(&cmd, &GuestRequest::new("put").param("k", "c").param("v", "cp")).unwrap();
    assert_eq!(testing::apply_log::<Toy>(&cmd, &copy("e/a", "c2")).unwrap().body, "none", "e/ is invisible");
    let outcome = std::panic::catch_unwind(|| testing::apply_log::<Toy>(&cmd, &copy("c", "e/b")));
    assert!(outcome.is_err(), "a log command must not write under e/");
    // The mode does not outlive the failed command.
    testing::apply::<Toy>(&cmd, &copy("e/a", "e/c")).unwrap();
    assert_eq!(testing::entries().get(b"e/c".as_slice()).map(Vec::as_slice), Some(b"ap".as_slice()));
}

#[test]
fn ap_commands_see_everything_and_write_only_the_ap_keyspace() {
    testing::reset();
    let cmd = Command::new(1, 1);
    testing::apply::<Toy>(&cmd, &GuestRequest::new("put").param("k", "c").param("v", "cp")).unwrap();
    assert_eq!(testing::apply_ap::<Toy>(&cmd, &copy("c", "e/a")).unwrap().body, "cp");
    let outcome = std::panic::catch_unwind(|| testing::apply_ap::<Toy>(&cmd, &copy("e/a", "c2")));
    assert!(outcome.is_err(), "an AP command must not write outside e/");
}

#[test]
fn write_plans_then_commits_on_the_planned_path() {
    testing::reset();
    let cmd = Command::new(1, 1);
    testing::apply::<Toy>(&cmd, &GuestRequest::new("put").param("k", "e/a").param("v", "ap")).unwrap();
    // Planned onto the log, the command cannot see e/a; onto the AP path, it can.
    assert_eq!(testing::write::<Toy>(&cmd, &copy("e/a", "c")).unwrap().body, "none");
    assert_eq!(testing::write::<Toy>(&cmd, &copy("e/a", "e/b")).unwrap().body, "ap");
    // A plan that asks for no commit is the answer; a plan's error is too.
    assert_eq!(testing::write::<Toy>(&cmd, &GuestRequest::new("get").param("k", "e/b")).unwrap().body, "ap");
    assert_eq!(testing::write::<Toy>(&cmd, &GuestRequest::new("nope")).unwrap_err().code, 400);
}

#[test]
fn write_refuses_a_plan_the_host_would_refuse() {
    testing::reset();
    let cmd = Command::new(1, 1);
    for (commit, error) in [
        ("ap", PlanError::ApWithoutPartition),
        ("AP", PlanError::UnknownCommit("AP".into())),
        ("yes", PlanError::UnknownCommit("yes".into())),
    ] {
        let misplan = GuestRequest::new("misplan").param("commit", commit);
        let panic = std::panic::catch_unwind(|| testing::write::<Toy>(&cmd, &misplan)).unwrap_err();
        let message = panic.downcast_ref::<String>().expect("a formatted panic");
        assert_eq!(*message, format!("misplan: {error}"));
    }
    let planned = testing::query::<Toy>(&QueryContext::new(1, 1), &copy("c", "e/b")).unwrap();
    assert_eq!(planned.body, "planned");
    assert_eq!(Plan::from_reply(&planned), Ok(Plan { commit: Commit::Ap { partition: "e/b".into() }, renew: None }));
}
