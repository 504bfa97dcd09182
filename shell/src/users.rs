//! Verbs about users: `dfs whoami`, `dfs admin user add|list|remove|rotate`.
//! A new credential is made here and only its stored key goes to the
//! master; the credentials file is printed to stdout, for its user.

use clap::Subcommand;
use dfs_client::auth::Credentials;
use dfs_proto::wire::users::{AddUserRequest, RotateRequest, UserInfo};

use crate::{Ctx, Failure};

#[derive(Subcommand)]
pub enum UserCmd {
    /// Make a user; prints their credentials file (keep it: mode 0600).
    Add {
        name: String,
        /// The first free uid from 10000 when not given.
        #[arg(long)]
        uid: Option<u32>,
        /// Groups by name, primary first (made when missing); default: a
        /// group named after the user.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// May manage users, decommission nodes and end safe mode.
        #[arg(long)]
        admin: bool,
        /// May act for local users: the principal of a mount.
        #[arg(long)]
        proxy: bool,
        /// As a proxy, acts for root as nobody (65534).
        #[arg(long)]
        squash_root: bool,
    },
    /// Every user, with uid, groups and roles.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a user: their sessions end at once.
    Remove { name: String },
    /// A new credential for a user (yourself when no name is given);
    /// prints it; the old one and its sessions end.
    Rotate { name: Option<String> },
}

fn failure(ctx: &Ctx) -> impl FnOnce(dfs_client::ClientError) -> Failure + '_ {
    move |e| Failure::dfs(&ctx.client.master().url(), e)
}

pub async fn run(ctx: &mut Ctx, cmd: UserCmd) -> Result<u8, Failure> {
    match cmd {
        UserCmd::Add { name, uid, groups, admin, proxy, squash_root } => {
            ctx.verb = "admin user add";
            let credentials = Credentials::generate(&name);
            let req = AddUserRequest { name, uid, groups, admin, proxy, squash_root, stored_key: credentials.stored_key_hex() };
            let user = ctx.client.master().add_user(&req).await.map_err(failure(ctx))?;
            eprintln!("made {}", describe(&user));
            print!("{}", credentials.to_file_text());
        }
        UserCmd::List { json } => {
            ctx.verb = "admin user list";
            let users = ctx.client.master().users().await.map_err(failure(ctx))?;
            for u in &users {
                match json {
                    true => println!("{}", serde_json::to_string(u).unwrap_or_default()),
                    false => println!("{}", describe(u)),
                }
            }
        }
        UserCmd::Remove { name } => {
            ctx.verb = "admin user remove";
            ctx.client.master().remove_user(&name).await.map_err(failure(ctx))?;
        }
        UserCmd::Rotate { name } => {
            ctx.verb = "admin user rotate";
            let name = match name.or_else(|| ctx.client.master().user().map(str::to_string)) {
                Some(n) => n,
                None => return Err(Failure::new("rotate", "name a user, or give your credentials")),
            };
            let credentials = Credentials::generate(&name);
            let req = RotateRequest { name, stored_key: credentials.stored_key_hex() };
            ctx.client.master().rotate_user(&req).await.map_err(failure(ctx))?;
            print!("{}", credentials.to_file_text());
        }
    }
    Ok(0)
}

fn describe(u: &UserInfo) -> String {
    let roles: Vec<&str> = [(u.admin, "admin"), (u.proxy, "proxy"), (u.squash_root, "squash-root")].iter().filter(|(on, _)| *on).map(|(_, r)| *r).collect();
    let groups: Vec<String> = u.groups.iter().zip(&u.gids).map(|(n, g)| format!("{n}({g})")).collect();
    format!("{} uid={} groups={} roles={}", u.name, u.uid, groups.join(","), if roles.is_empty() { "-".to_string() } else { roles.join(",") })
}

/// `dfs fetchdt`: a delegation token for WebHDFS clients (HdfsCLI's
/// `TokenClient`, fsspec's `token=`), or a renewal or cancel of one.
pub async fn fetchdt(ctx: &mut Ctx, renewer: Option<String>, renew: bool, cancel: bool, file: Option<&std::path::Path>) -> Result<u8, Failure> {
    ctx.verb = "fetchdt";
    let shown = file.map_or("-".to_string(), |f| f.display().to_string());
    if renew || cancel {
        let Some(path) = file else { return Err(Failure::new("-", "--renew and --cancel read the token from FILE")) };
        let token = std::fs::read_to_string(path).map_err(|e| Failure::local(&shown, e))?;
        let token = token.trim();
        if cancel {
            ctx.client.master().cancel_token(token).await.map_err(failure(ctx))?;
            println!("cancelled the token in {shown}");
        } else {
            let answer = ctx.client.master().renew_token(token).await.map_err(failure(ctx))?;
            println!("renewed the token in {shown}: it expires at {} ms since the epoch", answer.expires_ms);
        }
        return Ok(0);
    }
    let answer = ctx.client.master().delegation_token(renewer).await.map_err(failure(ctx))?;
    match file {
        Some(path) => {
            dfs_proto::auth::secret_file::create(path, format!("{}\n", answer.token).as_bytes()).map_err(|e| Failure::local(&shown, e))?;
            eprintln!("wrote a delegation token to {shown}; it expires at {} ms since the epoch unless renewed", answer.expires_ms);
        }
        None => println!("{}", answer.token),
    }
    Ok(0)
}

/// `dfs whoami`: whom the master takes this caller for.
pub async fn whoami(ctx: &mut Ctx) -> Result<u8, Failure> {
    ctx.verb = "whoami";
    let me = ctx.client.master().whoami().await.map_err(failure(ctx))?;
    let gids: Vec<String> = me.gids.iter().map(u32::to_string).collect();
    println!("{} uid={} gids={}{}{}", me.user, me.uid, gids.join(","), if me.admin { " admin" } else { "" }, if me.superuser { " superuser" } else { "" });
    Ok(0)
}
