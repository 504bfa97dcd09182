//! The dashboard over HTTP against a real 3-chunkserver cluster: every
//! page and JSON endpoint, escaping of hostile names, 404s, downloads, the
//! events of a corrupt replica's repair and of a lost node, and the
//! `/metrics` text of the master and of a chunkserver.

mod web;

use std::time::Duration;

use dfs_tests::insider::{master_key_file, Insider};
use serde_json::{json, Value};
use web::*;

const WAIT: Duration = Duration::from_secs(20);

async fn get_json(base: &str, path: &str) -> Value {
    let page = fetch(&format!("{base}{path}")).await;
    assert_eq!(page.status, 200, "{path}: {}", page.text);
    assert!(page.content_type.starts_with("application/json"), "{path}: {}", page.content_type);
    serde_json::from_str(&page.text).unwrap_or_else(|e| panic!("{path}: {e}: {}", page.text))
}

/// Without a login every page leads to /login and every JSON call is a
/// 401; a wrong secret is refused; another site's form or a host name the
/// master does not answer to is refused; a user sees with their own rights.
async fn login_and_hosts(m: &str) {
    let page = fetch_anonymous(&format!("{m}/browse?path=/data")).await;
    assert_eq!(page.status, 303, "{}", page.text);
    assert_eq!(fetch_anonymous(&format!("{m}/v1/dashboard/overview")).await.status, 401);
    assert_eq!(fetch_anonymous(&format!("{m}/download?path=/data")).await.status, 303);
    let form = fetch_anonymous(&format!("{m}/login?next=%2Fwork")).await;
    assert!(form.status == 200 && form.text.contains(r#"name="secret""#) && form.text.contains(r#"value="/work""#), "{}", form.text);
    assert_eq!(dashboard_login(m, "admin", &"00".repeat(32)).await, Err(401));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let cross = http
        .post(format!("{m}/login"))
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user=admin&secret=00")
        .send()
        .await
        .expect("post");
    assert_eq!(cross.status().as_u16(), 403, "login CSRF");
    let cookie = admin_cookie(m).await.expect("cookie");
    let rebound = http.get(format!("{m}/v1/dashboard/overview")).header("host", "evil.example").header("cookie", &cookie).send().await.expect("get");
    assert_eq!(rebound.status().as_u16(), 403, "DNS rebinding");
    // A user without rights on a directory sees a 403 there, not its entries.
    let c = dfs_client::auth::Credentials::generate("eve");
    let (secret, stored) = (c.secret_hex(), c.stored_key_hex());
    let admin = dfs_tests::Api::new(m);
    assert!(admin.post("/v1/admin/users/add", &json!({"name": "eve", "stored_key": stored})).await.unwrap().ok());
    assert!(admin.post("/v1/setattr", &json!({"path": "/data", "mode": 0o700})).await.unwrap().ok());
    let eve = dashboard_login(m, "eve", &secret).await.expect("eve logs in");
    let denied = http.get(format!("{m}/v1/dashboard/browse?path=/data")).header("cookie", &eve).send().await.expect("get");
    assert_eq!(denied.status().as_u16(), 403);
    assert!(http.get(format!("{m}/download?path={}", enc(FILE))).header("cookie", &eve).send().await.expect("get").status().as_u16() >= 400);
    assert!(admin.post("/v1/setattr", &json!({"path": "/data", "mode": 0o755})).await.unwrap().ok());
    let out = http.get(format!("{m}/logout")).header("cookie", &eve).send().await.expect("logout");
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
}

async fn get_html(url: &str) -> String {
    let page = fetch(url).await;
    assert_eq!(page.status, 200, "{url}: {}", page.text);
    assert!(page.content_type.starts_with("text/html"), "{url}: {}", page.content_type);
    page.text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_pages_json_metrics_and_events() {
    let (mut c, client) = cluster_with_files().await;
    let m = c.master.url.clone();
    let cs_urls: Vec<String> = c.chunkservers.iter().map(|cs| cs.url.clone()).collect();

    // JSON behind the overview.
    let o = get_json(&m, "/v1/dashboard/overview").await;
    assert_eq!(o["chunkservers"]["live"], 3, "{o}");
    assert_eq!((o["files"].as_u64(), o["directories"].as_u64()), (Some(2), Some(2)), "{o}");
    assert!(o["capacity_bytes"].as_u64() > Some(0) && o["cluster_id"].is_string(), "{o}");
    // The census is taken by the sampler every few seconds.
    let o = wait_for("the chunk census", WAIT, || async {
        let o = get_json(&m, "/v1/dashboard/overview").await;
        (o["chunks"]["total"] == 5).then_some(o)
    })
    .await;
    assert_eq!(o["chunks"]["healthy"], 5, "{o}");
    let nodes = get_json(&m, "/v1/dashboard/chunkservers").await;
    let nodes = nodes.as_array().expect("array");
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        assert_eq!(n["state"], "live");
        assert!(cs_urls.contains(&n["address"].as_str().unwrap_or("").to_string()), "{n}");
        assert!(n["read_bytes_per_sec"].is_number() && n["chunk_count"].is_u64(), "{n}");
    }
    let work = get_json(&m, "/v1/dashboard/work").await;
    assert!(work["replication_queue"].is_u64() && work["gc_backlog"].is_u64() && work["replication"]["safe_mode"].is_object(), "{work}");
    let history = get_json(&m, "/v1/dashboard/history").await;
    assert_eq!(history["interval_s"], 5);
    assert!(!history["samples"].as_array().expect("samples").is_empty(), "{history}");
    let joined = wait_for("3 node_joined events", WAIT, || async {
        let e = get_json(&m, "/v1/dashboard/events").await;
        let n = e["events"].as_array().map_or(0, |a| a.iter().filter(|e| e["kind"] == "node_joined").count());
        (n == 3).then_some(e)
    })
    .await;
    let newest = joined["events"][0]["id"].as_u64().expect("id");
    assert_eq!(get_json(&m, &format!("/v1/dashboard/events?after={newest}")).await["events"], json!([]));

    // The namespace browser's JSON: names come back as they are.
    let list = get_json(&m, "/v1/dashboard/browse?path=/data").await;
    let names: Vec<&str> = list["entries"].as_array().expect("entries").iter().filter_map(|e| e["name"].as_str()).collect();
    assert!(names.contains(&XSS_NAME) && names.contains(&"report 1.txt"), "{list}");
    let file = get_json(&m, &format!("/v1/dashboard/file?path={}", enc(FILE))).await;
    let chunks = file["chunks"].as_array().expect("chunks");
    assert_eq!(chunks.len(), 4, "{file}");
    for ch in chunks {
        assert_eq!(ch["health"], "healthy", "{ch}");
        let replicas = ch["replicas"].as_array().expect("replicas");
        assert_eq!(replicas.len(), 3, "{ch}");
        assert!(replicas.iter().all(|r| r["state"] == "current" && r["version"] == ch["version"]), "{ch}");
    }
    assert_eq!(fetch(&format!("{m}/v1/dashboard/file?path=/nope")).await.status, 404);

    // Pages.
    let home = get_html(&format!("{m}/")).await;
    assert!(home.contains("3 live / 3 chunkservers"), "{home}");
    assert_eq!(home.matches(r#"<tr class="node">"#).count(), 3);
    assert!(cs_urls.iter().all(|u| home.contains(u.as_str())));
    assert!(home.contains(r#"id="chart-throughput""#) && home.contains(r#"id="chart-capacity""#));
    assert!(!home.contains("src=\"http") && !home.contains("<link"), "no external assets");
    let cs_page = get_html(&format!("{m}/chunkservers")).await;
    assert_eq!(cs_page.matches(r#"<td class="live">live</td>"#).count(), 3, "{cs_page}");
    assert!(get_html(&format!("{m}/work")).await.contains("Replication"));
    assert!(get_html(&format!("{m}/events")).await.contains("node_joined"));
    let browse = get_html(&format!("{m}/browse?path=/data")).await;
    assert!(browse.contains(XSS_ESCAPED), "{browse}");
    assert!(!browse.contains("<script>alert") && !browse.contains("<img"), "{browse}");
    assert!(browse.contains(&format!("/file?path={}", enc(&xss_path()))), "links carry the name percent-encoded: {browse}");
    let xss_file = get_html(&format!("{m}/file?path={}", enc(&xss_path()))).await;
    assert!(xss_file.contains(XSS_ESCAPED) && !xss_file.contains("<script>alert") && !xss_file.contains("<img"), "{xss_file}");
    let fpage = get_html(&format!("{m}/file?path={}", enc(FILE))).await;
    assert_eq!(fpage.matches(r#"<tr class="chunk">"#).count(), 4);
    assert_eq!(fpage.matches(r#"<div class="replica">"#).count(), 12);
    assert!(cs_urls.iter().all(|u| fpage.contains(u.as_str())));

    // Unknown pages: HTML outside /v1/, JSON inside; a missing path is a 404 page.
    let missing = fetch(&format!("{m}/no/such/<page>")).await;
    assert_eq!(missing.status, 404);
    assert!(missing.content_type.starts_with("text/html") && missing.text.contains("Page not found"), "{}", missing.text);
    assert!(!missing.text.contains("<page>"));
    let api_missing = fetch(&format!("{m}/v1/no-such-call")).await;
    assert_eq!(api_missing.status, 404);
    assert!(api_missing.text.contains("ENOENT"));
    let gone = fetch(&format!("{m}/browse?path=/nope")).await;
    assert!(gone.status == 404 && gone.content_type.starts_with("text/html"), "{}", gone.text);

    // Downloads go through a chunkserver, with a grant of the viewer's rights.
    let cookie = admin_cookie(&m).await.expect("logged in");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let r = http.get(format!("{m}/download?path={}", enc(FILE))).header("cookie", &cookie).send().await.expect("download");
    assert_eq!(r.status().as_u16(), 307);
    let location = r.headers()["location"].to_str().expect("location").to_string();
    assert!(cs_urls.iter().any(|u| location.starts_with(&format!("{u}/files?path="))) && location.contains("grant=g2."), "{location}");
    let follow = reqwest::Client::new();
    let body = follow.get(format!("{m}/download?path={}", enc(FILE))).header("cookie", &cookie).send().await.expect("get").bytes().await.expect("bytes");
    assert_eq!(body.as_ref(), file_bytes().as_slice());
    let without_grant = location.split("&grant=").next().unwrap_or_default().to_string();
    assert_eq!(fetch_anonymous(&without_grant).await.status, 401, "a chunkserver reads nothing without the master's grant");
    let r = follow.get(format!("{m}/download?path={}", enc(&xss_path()))).header("cookie", &cookie).send().await.expect("get");
    assert!(r.headers()["content-disposition"].to_str().expect("ascii").contains("%3Cscript%3Ealert%281%29%3Cimg"));
    assert_eq!(r.bytes().await.expect("bytes").as_ref(), b"not a script");

    chunkserver_pages(&cs_urls[0]).await;
    login_and_hosts(&m).await;
    events_of_repair_and_loss(&mut c, &m).await;
    master_metrics(&m).await;
    drop(client);
}

async fn chunkserver_pages(cs: &str) {
    let status: Value = serde_json::from_str(&fetch(&format!("{cs}/v1/status")).await.text).expect("status json");
    let page = get_html(&format!("{cs}/")).await;
    assert!(page.contains(status["node_id"].as_str().expect("node id")), "{page}");
    assert!(page.contains("Scrubber") && page.contains("/v1/status"), "{page}");
    let missing = fetch(&format!("{cs}/nothing")).await;
    assert!(missing.status == 404 && missing.content_type.starts_with("text/html"));
    assert!(fetch(&format!("{cs}/v1/nothing")).await.text.contains("ENOENT"));
    let metrics = fetch(&format!("{cs}/metrics")).await;
    assert!(metrics.content_type.starts_with("application/openmetrics-text"), "{}", metrics.content_type);
    let t = metrics.text;
    for needle in [
        r#"dfs_chunkserver_http_requests_total{route="/v1/chunks/{handle}/data",method="PUT",status="200"}"#,
        r#"dfs_chunkserver_http_request_duration_seconds_bucket{le="#,
        "dfs_chunkserver_written_bytes_total ",
        "dfs_chunkserver_read_bytes_total ",
        "dfs_chunkserver_replicas ",
        "dfs_chunkserver_checksum_failures_total 0",
        "dfs_chunkserver_scrub_passes_total ",
    ] {
        assert!(t.contains(needle), "chunkserver metrics lack {needle}:\n{t}");
    }
    assert!(t.ends_with("# EOF\n"));
}

/// A corrupt replica found by a read is an event, and so is its repair;
/// a killed chunkserver is reported lost.
async fn events_of_repair_and_loss(c: &mut dfs_tests::Cluster, m: &str) {
    c.api.post("/v1/admin/safemode", &json!({"leave": true})).await.expect("leave safe mode");
    let file = get_json(m, &format!("/v1/dashboard/file?path={}", enc(FILE))).await;
    let chunk = &file["chunks"][0];
    let (handle, version) = (chunk["handle"].as_u64().expect("handle"), chunk["version"].as_u64().expect("version"));
    let victim = chunk["replicas"][0]["address"].as_str().expect("address").to_string();
    // Bit rot on one replica; a read of it finds it, quarantines and reports it.
    let data = c.cs_dir(c.index_of(&victim).expect("victim")).join("chunks").join(format!("{handle:016x}.data"));
    let mut bytes = std::fs::read(&data).expect("replica file");
    bytes[100] ^= 0x40;
    std::fs::write(&data, bytes).expect("rot");
    // Read as a peer copying it would (signed with the cluster key, no token).
    let insider = Insider::from_key_file(&master_key_file(&c.master.data_dir)).expect("the cluster key");
    let url = format!("{victim}/v1/chunks/{handle}/data?version={version}&offset=0&length=65536");
    let read = insider.send(insider.http.get(url)).await.expect("read");
    assert_eq!(read.status, 500, "{:?}", read.body);
    let has = |kind: &'static str| async move {
        let e = get_json(m, "/v1/dashboard/events").await;
        e["events"].as_array().is_some_and(|a| a.iter().any(|e| e["kind"] == kind)).then_some(())
    };
    wait_for("a corrupt event", WAIT, || has("corrupt")).await;
    wait_for("a repaired event", WAIT, || has("repaired")).await;
    c.chunkservers[2].kill9();
    wait_for("a node_lost event", WAIT, || has("node_lost")).await;
    let home = get_html(&format!("{m}/")).await;
    assert!(home.contains("2 live / 3 chunkservers") && home.contains(r#"class="dead""#), "{home}");
}

async fn master_metrics(m: &str) {
    let metrics = fetch(&format!("{m}/metrics")).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.content_type.starts_with("application/openmetrics-text"), "{}", metrics.content_type);
    let t = metrics.text;
    for needle in [
        r#"dfs_master_http_requests_total{route="/v1/dashboard/overview",method="GET",status="200"}"#,
        r#"dfs_master_http_requests_total{route="/v1/chunks/lease",method="POST",status="200"}"#,
        r#"dfs_master_http_requests_total{route="unmatched",method="GET",status="404"}"#,
        r#"dfs_master_http_request_duration_seconds_bucket{le="#,
        r#"dfs_master_chunks{state="total"} 5.0"#,
        r#"dfs_master_chunks{state="missing"} 0.0"#,
        r#"dfs_master_chunkservers{state="live"} 2.0"#,
        r#"dfs_master_chunkservers{state="dead"} 1.0"#,
        "dfs_master_chunkserver_heartbeat_age_seconds{address=",
        "dfs_master_chunkserver_written_bytes_total{address=",
        "dfs_master_replication_queue ",
        "dfs_master_checksum_failures_total 1",
        "dfs_master_copies_total{result=\"done\"} ",
        "dfs_master_files 2.0",
    ] {
        assert!(t.contains(needle), "master metrics lack {needle}:\n{t}");
    }
    let grants: u64 = t.lines().find_map(|l| l.strip_prefix("dfs_master_lease_grants_total ")).and_then(|v| v.trim().parse().ok()).expect("lease grants");
    assert!(grants >= 5, "{grants}");
    assert!(t.ends_with("# EOF\n"));
}
