//! Running the `dfs` shell against a test cluster, with a bounded wait.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;

use crate::process::bin_dir;

/// What one `dfs` command did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with the output unless the command succeeded.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "dfs failed: {self:?}");
        self
    }
}

/// `dfs --master URL`, logged in as the cluster's first admin.
pub fn command(master: &str) -> anyhow::Result<std::process::Command> {
    let mut cmd = std::process::Command::new(bin_dir()?.join("dfs"));
    cmd.arg("--master").arg(master);
    if let Some(file) = crate::process::credentials_of(master) {
        cmd.env("DFS_CREDENTIALS", file);
    }
    Ok(cmd)
}

/// [`command`] for tokio.
pub fn tokio_command(master: &str) -> anyhow::Result<tokio::process::Command> {
    Ok(tokio::process::Command::from(command(master)?))
}

/// Runs `dfs --master URL ARGS...` (killed if it outlives `timeout`), with
/// `stdin` as its input.
pub async fn dfs_with(master: &str, args: &[&str], stdin: Option<Vec<u8>>, timeout: Duration) -> anyhow::Result<Run> {
    let mut cmd = tokio_command(master)?;
    cmd.args(args).kill_on_drop(true);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().context("starting dfs")?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        tokio::spawn(async move {
            let _ = tokio::io::AsyncWriteExt::write_all(&mut pipe, &input).await;
        });
    }
    let out = tokio::time::timeout(timeout, child.wait_with_output()).await.with_context(|| format!("dfs {args:?} took over {timeout:?}"))??;
    Ok(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs `dfs --master URL ARGS...`, allowing a minute.
pub async fn dfs(master: &str, args: &[&str]) -> anyhow::Result<Run> {
    dfs_with(master, args, None, Duration::from_secs(60)).await
}
