//! SIGKILL the master while clients mutate the namespace; after a restart on
//! the same data directory every acknowledged mutation must be there and the
//! namespace consistent (entries → inodes, no orphans, counters recounted).

use std::collections::BTreeMap;
use std::time::Duration;

use dfs_tests::{Api, MasterProcess};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const WORKERS: usize = 8;
const ROUNDS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File(u64),
    Dir,
}

/// One client's view: what each of its names must be after acknowledged
/// operations, and the one operation that was in flight at the kill (which
/// may or may not have happened).
#[derive(Default, Debug)]
struct Model {
    names: BTreeMap<String, Kind>,
    in_flight: Option<(BTreeMap<String, Kind>, BTreeMap<String, Kind>)>,
}

/// Picks an operation valid in the model: (endpoint, body, model after success).
fn next_op(rng: &mut StdRng, dir: &str, m: &BTreeMap<String, Kind>, n: u64) -> (&'static str, Value, BTreeMap<String, Kind>) {
    let mut after = m.clone();
    let files: Vec<&String> = m.iter().filter(|(_, k)| matches!(k, Kind::File(_))).map(|(n, _)| n).collect();
    let choice = if files.is_empty() { 0 } else { rng.random_range(0..10) };
    match choice {
        0..=3 => {
            let name = format!("f{n}");
            after.insert(name.clone(), Kind::File(0));
            ("/v1/create", json!({"path": format!("{dir}/{name}")}), after)
        }
        4 => {
            let name = format!("d{n}");
            after.insert(name.clone(), Kind::Dir);
            ("/v1/mkdir", json!({"path": format!("{dir}/{name}")}), after)
        }
        5 | 6 => {
            let src = files[rng.random_range(0..files.len())].clone();
            let dst = format!("r{n}");
            let kind = after.remove(&src).unwrap_or(Kind::File(0));
            after.insert(dst.clone(), kind);
            let body = json!({"src": {"path": format!("{dir}/{src}")}, "dst": {"path": format!("{dir}/{dst}")}});
            ("/v1/rename", body, after)
        }
        7 => {
            let victim = files[rng.random_range(0..files.len())].clone();
            after.remove(&victim);
            ("/v1/unlink", json!({"path": format!("{dir}/{victim}")}), after)
        }
        _ => {
            let target = files[rng.random_range(0..files.len())].clone();
            let size = rng.random_range(1..1_000_000u64);
            after.insert(target.clone(), Kind::File(size));
            ("/v1/setattr", json!({"path": format!("{dir}/{target}"), "size": size}), after)
        }
    }
}

/// Runs operations until the master dies; names are numbered from `first_n`
/// so that rounds never reuse one.
async fn worker(api: Api, dir: String, seed: u64, first_n: u64, mut model: Model) -> Model {
    let mut rng = StdRng::seed_from_u64(seed);
    for n in first_n.. {
        let (endpoint, body, after) = next_op(&mut rng, &dir, &model.names, n);
        match api.post(endpoint, &body).await {
            Ok(r) if r.ok() => model.names = after,
            Ok(r) => panic!("{endpoint} {body} refused: {} {}", r.status, r.body),
            Err(_) => {
                // The master died under this request: it may or may not have happened.
                model.in_flight = Some((model.names.clone(), after));
                return model;
            }
        }
    }
    model
}

async fn listing(api: &Api, dir: &str) -> BTreeMap<String, Kind> {
    let mut out = BTreeMap::new();
    let mut after = String::new();
    loop {
        let mut q = vec![("path", dir), ("limit", "500")];
        if !after.is_empty() {
            q.push(("start_after", after.as_str()));
        }
        let r = api.get_query("/v1/list", &q).await.expect("list after restart");
        assert!(r.ok(), "{}", r.body);
        for e in r.body["entries"].as_array().into_iter().flatten() {
            let kind = match e["attr"]["kind"].as_str() {
                Some("dir") => Kind::Dir,
                _ => Kind::File(e["attr"]["size"].as_u64().unwrap_or(0)),
            };
            out.insert(e["name"].as_str().unwrap_or_default().to_string(), kind);
        }
        match r.body["next_start_after"].as_str() {
            Some(n) => after = n.to_string(),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_mutations_survive_sigkill() {
    let seed = dfs_tests::seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let mut master = MasterProcess::start(&tmp.path().join("master"), &[]).unwrap();
    let mut api = Api::new(&master.url);
    let mut models: Vec<Model> = Vec::new();
    for w in 0..WORKERS {
        assert!(api.post("/v1/mkdir", &json!({"path": format!("/w{w}")})).await.unwrap().ok());
        models.push(Model::default());
    }
    for round in 0..ROUNDS {
        let tasks: Vec<_> = models
            .drain(..)
            .enumerate()
            .map(|(w, m)| tokio::spawn(worker(api.clone(), format!("/w{w}"), seed ^ ((round * WORKERS + w) as u64 + 1), round as u64 * 1_000_000, m)))
            .collect();
        let delay = Duration::from_millis(rng.random_range(300..1500));
        tokio::time::sleep(delay).await;
        master.kill9();
        for t in tasks {
            models.push(t.await.expect("worker"));
        }
        master.restart().unwrap();
        api = Api::new(&master.url);

        let mut acked = 0;
        for (w, model) in models.iter_mut().enumerate() {
            let found = listing(&api, &format!("/w{w}")).await;
            let resolved = match model.in_flight.take() {
                Some((_, after)) if found == after => after,
                Some((before, _)) => before,
                None => model.names.clone(),
            };
            assert_eq!(found, resolved, "round {round}, worker {w}: namespace differs from acknowledged operations (seed {seed})");
            model.names = resolved;
            acked += model.names.len();
        }
        let check = api.get("/v1/admin/check").await.unwrap();
        assert_eq!(check.body["ok"], json!(true), "round {round}: {} (seed {seed})", check.body);
        eprintln!("round {round}: killed after {delay:?}; {acked} names verified");
        assert!(acked > 0, "no operation was acknowledged before the kill");
    }
}
