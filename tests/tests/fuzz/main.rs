//! The fuzz target of #19: every request body and header decoder, fed
//! random and mutated-valid input with proptest.
//!
//! - Decoders, in process: the `x-dfs-auth` and `x-dfs-reply-auth`
//!   parsers, the chunk token decoder and verifier, the checksum header,
//!   the key file. Nothing panics; nothing but the original verifies.
//! - The short-circuit read socket, in process: its binary request
//!   decoder and server; a descriptor passes only with the right tokens.
//! - The chunkserver's router, in process (a node on a temp dir, tokens
//!   installed, a stub master): every route, with random and mutated path
//!   parameters, query strings, tokens, checksum, forward and signature
//!   headers, Content-Lengths and bodies (random, and mutated valid JSON;
//!   signed correctly so the decoders behind the signature check are
//!   reached too).
//! - A real master over loopback: every client route (JSON bodies, query
//!   strings, path parameters), and a second master for the signed routes
//!   (heartbeats and chunkservers' bad-replica reports).
//!
//! Every answer must come (no panic, the daemon alive), none may be a
//! server error but 503 (and 507 for well-formed requests a master without
//! chunkservers cannot place), every error under `/v1/` is a JSON
//! `{"error", "message"}`, and malformed input (a body, query or parameter
//! its route cannot decode, a missing or bad token or signature) gets a 4xx.
//!
//! Seeded: the seed is printed; `DFS_FUZZ_SEED=N` replays a run, and
//! `DFS_FUZZ_CASES=N` runs N cases per target (the suite runs 2000 to 5000
//! per target, a few seconds in all; `make fuzz` runs many more).

mod chunkserver;
mod decoders;
mod inputs;
mod local_reads;
mod master;

use std::fmt::Debug;
use std::sync::OnceLock;
use std::time::Instant;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::Value;

/// The replica the in-process chunkserver and socket hold.
pub const H0: u64 = 42;
pub const V0: u64 = 5;
pub const CS_CHUNK: u64 = 1 << 20;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

/// The run's seed: `DFS_FUZZ_SEED`, else a fresh one; printed once.
fn fuzz_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let seed = env_u64("DFS_FUZZ_SEED").unwrap_or_else(rand::random::<u64>);
        eprintln!("fuzz seed: {seed} (replay with DFS_FUZZ_SEED={seed})");
        seed
    })
}

/// Runs `test` on `cases` inputs of `strategy` (`DFS_FUZZ_CASES` instead,
/// when set), from the run's seed and the target's name; a failure names
/// the (shrunk) input and the seed that replays it.
pub fn fuzz<S: Strategy>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: Debug,
{
    let seed = fuzz_seed();
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)).to_le_bytes());
    let cases = env_u64("DFS_FUZZ_CASES").map_or(cases, |n| n.min(u32::MAX as u64) as u32);
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 400, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
    let started = Instant::now();
    if let Err(e) = runner.run(&strategy, test) {
        panic!("fuzz {name} failed after {:.2}s; replay with DFS_FUZZ_SEED={seed}: {e}", started.elapsed().as_secs_f64());
    }
    eprintln!("fuzz {name}: {cases} cases passed in {:.2}s (seed {seed})", started.elapsed().as_secs_f64());
}

/// Statuses answered, for the run's summary (how deep the cases got).
#[derive(Default)]
pub struct Tally(std::sync::Mutex<std::collections::BTreeMap<u16, u64>>);

impl Tally {
    pub fn note(&self, status: u16) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(status).or_default() += 1;
    }

    pub fn print(&self, name: &str) {
        let lost = dfs_tests::insider::LOST_ANSWERS.load(std::sync::atomic::Ordering::Relaxed);
        eprintln!("fuzz {name}: statuses {:?}; answers lost and asked again (whole process): {lost}", self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

pub fn fail(why: String) -> Result<(), TestCaseError> {
    Err(TestCaseError::fail(why))
}

/// The checks every answer passes: not a server error (503 always
/// allowed, 507 for well-formed input), a JSON error under `/v1/`, a
/// message elsewhere, and a 4xx for malformed input.
pub fn judge(what: &str, path: &str, status: u16, body: &[u8], malformed: bool, may_507: bool) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if status >= 500 && status != 503 && !(status == 507 && may_507 && !malformed) {
        return fail(format!("{what}: server error {status} {text}"));
    }
    if malformed && !(400..500).contains(&status) {
        return fail(format!("{what}: malformed input answered {status} {text}"));
    }
    if status >= 400 {
        if path.starts_with("/v1/") {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let ok = v["error"].as_str().is_some_and(|e| !e.is_empty()) && v["message"].as_str().is_some_and(|m| !m.is_empty());
            if !ok {
                return fail(format!("{what}: error {status} without a JSON error body: {text:?}"));
            }
        } else if body.is_empty() {
            return fail(format!("{what}: error {status} with an empty body"));
        }
    }
    Ok(())
}
