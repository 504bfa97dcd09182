//! One write followed through every daemon's log by its request id: a real
//! master and three chunkservers, each logging to a file with the request
//! log on (`DFS_LOG=info,dfs_request=debug`); a client writes a file with
//! three replicas under an id it names, and the id must show up on the
//! master's lines for the create, the lease and the commit, on every
//! chunkserver's line for the replica the master had it create (the
//! master's own call, from a task of its chunk driver), and on every
//! chunkserver's line for the data PUT: the client sent that to the
//! primary only, the others got it forwarded along the chain.

use std::time::{Duration, Instant};

use dfs_client::{with_request_id, CreateOptions, RequestId};
use dfs_tests::cluster::{FAST_CHUNKSERVER, FAST_MASTER};
use dfs_tests::process::LogCapture;
use dfs_tests::{Api, ChunkserverProcess, Cluster, MasterProcess};

const LIVE_WAIT: Duration = Duration::from_secs(15);
/// Longest wait for a line the daemon wrote before it answered.
const LOG_WAIT: Duration = Duration::from_secs(5);

/// Waits (bounded) until a line of `log` has every one of `parts`.
async fn line_with(log: &LogCapture, parts: &[&str]) -> Result<String, String> {
    let start = Instant::now();
    loop {
        let text = log.read();
        if let Some(line) = text.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return Ok(line.to_string());
        }
        if start.elapsed() > LOG_WAIT {
            return Err(format!("no line of {} has all of {parts:?}", log.file.display()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_write_is_followed_by_its_request_id_through_master_and_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let capture = |name: &str| LogCapture { filter: "info,dfs_request=debug".into(), file: dir.path().join(format!("{name}.log")) };
    let master_log = capture("master");
    let master = MasterProcess::start_with_log(&dir.path().join("master"), FAST_MASTER, Some(master_log.clone())).unwrap();
    let cs_logs: Vec<LogCapture> = (0..3).map(|i| capture(&format!("cs{i}"))).collect();
    let chunkservers = cs_logs
        .iter()
        .enumerate()
        .map(|(i, log)| ChunkserverProcess::start_with_log(&master.url, &dir.path().join(format!("cs{i}")), FAST_CHUNKSERVER, Some(log.clone())).unwrap())
        .collect();
    let api = Api::new(&master.url);
    let c = Cluster { chunkservers, master, api, dir };
    c.wait_live(3, LIVE_WAIT).await.unwrap();

    let id = RequestId::fresh();
    eprintln!("request id of the write: {id}");
    let client = dfs_tests::client(&c.master.url);
    let data = vec![7u8; 300 << 10];
    let options = CreateOptions { replication: Some(3), ..Default::default() };
    let written = with_request_id(id.clone(), async {
        let mut w = client.create("/traced", &options).await?;
        w.write(&data).await?;
        w.close().await
    })
    .await
    .expect("write");
    assert_eq!(written.size, data.len() as u64);

    let tag = format!("request_id={id} ");
    let mut missing = Vec::new();
    for path in ["path=/v1/create}", "path=/v1/chunks/lease}", "path=/v1/commit_length}"] {
        if let Err(e) = line_with(&master_log, &[&tag, path, "answered"]).await {
            missing.push(e);
        }
    }
    for log in &cs_logs {
        for (method, path) in [("method=POST", "/create}"), ("method=PUT", "/data}")] {
            if let Err(e) = line_with(log, &[&tag, method, path, "answered status=200"]).await {
                missing.push(e);
            }
        }
    }
    // The id names this write only: the heartbeats between carry their own.
    let heartbeats = master_log.read().lines().filter(|l| l.contains("path=/v1/heartbeat}")).count();
    let leaked = master_log.read().lines().filter(|l| l.contains("path=/v1/heartbeat}") && l.contains(&tag)).count();
    assert!(heartbeats > 0 && leaked == 0, "{heartbeats} heartbeat lines, {leaked} under the write's id");
    assert!(missing.is_empty(), "request id {id} not followed:\n{}\nmaster log:\n{}", missing.join("\n"), tail(&master_log));
}

/// The last lines of a log, for a failure message.
fn tail(log: &LogCapture) -> String {
    let text = log.read();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
