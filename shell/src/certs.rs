//! `dfs admin certs`: a cluster's TLS certificates, made locally (no
//! master is called). `ca DIR` makes the cluster CA: `ca.pem` goes to
//! every node and client (`--tls-ca`), `ca.key` stays with whoever issues
//! certificates. `node DIR NAME --hosts ...` makes or renews a node's
//! certificate, signed by that CA: `NAME.pem` and `NAME.key` go to the
//! node (`--tls-cert`, `--tls-key`); a node running on them picks a renewed
//! certificate up by itself.

use std::path::PathBuf;

use clap::Subcommand;
use dfs_proto::tls::certs;

use crate::{Ctx, Failure};

#[derive(Subcommand)]
pub enum CertsCmd {
    /// Make a cluster CA in DIR: ca.pem (public) and ca.key (mode 0600).
    Ca {
        dir: PathBuf,
        /// A name for the cluster, in the CA's subject.
        #[arg(long, default_value = "dfs")]
        cluster: String,
    },
    /// Make or renew node NAME's certificate in DIR, signed by DIR's CA:
    /// NAME.pem and NAME.key (mode 0600; kept on renewal).
    Node {
        dir: PathBuf,
        name: String,
        /// The host names and IP addresses clients reach the node by.
        #[arg(long, value_delimiter = ',', required = true)]
        hosts: Vec<String>,
        /// Days the certificate is valid (1 to 3650).
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

pub fn run(ctx: &mut Ctx, cmd: CertsCmd) -> Result<u8, Failure> {
    match cmd {
        CertsCmd::Ca { dir, cluster } => {
            ctx.verb = "admin certs ca";
            let shown = dir.display().to_string();
            std::fs::create_dir_all(&dir).map_err(|e| Failure::local(&shown, e))?;
            let ca = certs::create_ca(&dir, &cluster).map_err(|e| Failure::new(&shown, e.to_string()))?;
            eprintln!("made the cluster CA: give {} to every node and client; keep ca.key private", ca.display());
        }
        CertsCmd::Node { dir, name, hosts, days } => {
            ctx.verb = "admin certs node";
            let shown = dir.display().to_string();
            let (cert, key) = certs::issue(&dir, &name, &hosts, days).map_err(|e| Failure::new(&shown, e.to_string()))?;
            eprintln!("made {} and {} for {} (valid {days} days)", cert.display(), key.display(), hosts.join(", "));
        }
    }
    Ok(0)
}
