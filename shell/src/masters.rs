//! `dfs admin masters list`: each master named by `--master` with its Raft
//! state (leader or follower, term, last log and applied index), read from
//! its `/metrics`, which every master answers itself, leader or not.

use std::time::Duration;

use serde_json::json;

use crate::{Ctx, Failure};

/// One master as its figures say.
struct State {
    url: String,
    /// `None`: it did not answer.
    figures: Option<Figures>,
}

#[derive(Default)]
struct Figures {
    /// `None`: a single master (no Raft figures).
    leader: Option<bool>,
    term: f64,
    last_log: f64,
    applied: f64,
}

/// The figure `name` in an OpenMetrics text.
fn figure(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn parse(text: &str) -> Figures {
    let get = |n: &str| figure(text, n).unwrap_or(0.0);
    Figures {
        leader: figure(text, "dfs_master_raft_leader").map(|v| v == 1.0),
        term: get("dfs_master_raft_term"),
        last_log: get("dfs_master_raft_last_log_index"),
        applied: get("dfs_master_raft_applied_index"),
    }
}

async fn state_of(url: &str) -> State {
    let http = dfs_client::tls::reqwest_builder().timeout(Duration::from_secs(3)).build();
    let text = match http {
        Ok(http) => match http.get(format!("{url}/metrics")).send().await {
            Ok(resp) if resp.status().is_success() => resp.text().await.ok(),
            _ => None,
        },
        Err(_) => None,
    };
    State { url: url.to_string(), figures: text.as_deref().map(parse) }
}

fn role(s: &State) -> &'static str {
    match &s.figures {
        None => "unreachable",
        Some(Figures { leader: None, .. }) => "single",
        Some(Figures { leader: Some(true), .. }) => "leader",
        Some(Figures { leader: Some(false), .. }) => "follower",
    }
}

/// Lists the masters; fails (exit 1) when none of them leads or is single.
pub async fn list(ctx: &Ctx, json: bool) -> Result<u8, Failure> {
    let list = ctx.client.master().url();
    let mut states = Vec::new();
    for url in list.split(',') {
        states.push(state_of(url).await);
    }
    if json {
        let rows: Vec<_> = states
            .iter()
            .map(|s| {
                let f = s.figures.as_ref();
                json!({"url": s.url, "role": role(s), "term": f.map(|f| f.term), "last_log_index": f.map(|f| f.last_log), "applied_index": f.map(|f| f.applied)})
            })
            .collect();
        println!("{}", json!(rows));
    } else {
        println!("{:<32} {:<12} {:>6} {:>12} {:>12}", "MASTER", "ROLE", "TERM", "LAST LOG", "APPLIED");
        for s in &states {
            let f = s.figures.as_ref();
            let n = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
            println!("{:<32} {:<12} {:>6} {:>12} {:>12}", s.url, role(s), n(f.map(|f| f.term)), n(f.map(|f| f.last_log)), n(f.map(|f| f.applied)));
        }
    }
    if states.iter().any(|s| matches!(role(s), "leader" | "single")) {
        Ok(0)
    } else {
        Err(Failure::new(&list, "no master leads"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masters_figures_say_its_role() {
        let text = "# HELP x\ndfs_master_raft_leader 1\ndfs_master_raft_term 4\ndfs_master_raft_last_log_index 90\ndfs_master_raft_applied_index 88\n";
        let f = parse(text);
        assert_eq!((f.leader, f.term, f.last_log, f.applied), (Some(true), 4.0, 90.0, 88.0));
        let single = State { url: "u".into(), figures: Some(parse("dfs_master_files 3\n")) };
        assert_eq!(role(&single), "single");
        assert_eq!(role(&State { url: "u".into(), figures: None }), "unreachable");
        // A longer name that starts with the figure's is another figure.
        assert_eq!(figure("dfs_master_raft_leader_x 1\n", "dfs_master_raft_leader"), None);
    }
}
