//! Network namespaces for multi-host tests: one namespace per host, each
//! with an address of its own on a private /24, joined by veth pairs to a
//! bridge that lives in a namespace of its own; the test process (in the
//! root namespace) is joined to the bridge too, so it reaches every host.
//! A host is cut off by taking its link down on the bridge's side (a
//! partition: nothing in or out), and healed by taking it up again.
//! Everything is removed on drop. Needs root and `ip` (iproute2).

use std::process::Command;

use anyhow::{bail, Context};

/// The namespaces, links and addresses of one test.
pub struct Net {
    /// Short and unique: names of namespaces and links start with it
    /// (link names are at most 15 bytes).
    prefix: String,
    /// `10.X.Y`: host i has `10.X.Y.(i+1)`, the test process `10.X.Y.254`.
    subnet: String,
    hosts: usize,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl Net {
    /// `hosts` namespaces on a fresh subnet; `seed` picks the names and the
    /// subnet (two tests at once get different ones).
    pub fn new(hosts: usize, seed: u64) -> anyhow::Result<Net> {
        anyhow::ensure!(hosts < 250, "at most 249 hosts");
        let tag = (seed ^ u64::from(std::process::id())) & 0xfffff;
        let net = Net { prefix: format!("d{tag:05x}"), subnet: format!("10.{}.{}", 100 + (tag >> 12) % 100, tag & 0xff), hosts };
        net.build().inspect_err(|_| net.remove())?;
        Ok(net)
    }

    fn switch(&self) -> String {
        format!("{}-sw", self.prefix)
    }

    /// Host `i`'s namespace.
    pub fn ns(&self, i: usize) -> String {
        format!("{}-h{i}", self.prefix)
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, i + 1)
    }

    /// The bridge's side of host `i`'s link (`r`: the test process's).
    fn port(&self, i: &str) -> String {
        format!("{}b{i}", self.prefix)
    }

    fn build(&self) -> anyhow::Result<()> {
        let sw = self.switch();
        ip(&["netns", "add", &sw])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for i in 0..self.hosts {
            let (ns, end, port) = (self.ns(i), format!("{}h{i}", self.prefix), self.port(&i.to_string()));
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &end, "type", "veth", "peer", "name", &port])?;
            ip(&["link", "set", &end, "netns", &ns])?;
            self.join_bridge(&port)?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", self.addr(i)), "dev", &end])?;
            ip(&["-n", &ns, "link", "set", &end, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        // The test process's own link, in the root namespace.
        let (end, port) = (format!("{}r", self.prefix), self.port("r"));
        ip(&["link", "add", &end, "type", "veth", "peer", "name", &port])?;
        self.join_bridge(&port)?;
        ip(&["addr", "add", &format!("{}.254/24", self.subnet), "dev", &end])?;
        ip(&["link", "set", &end, "up"])
    }

    fn join_bridge(&self, port: &str) -> anyhow::Result<()> {
        let sw = self.switch();
        ip(&["link", "set", port, "netns", &sw])?;
        ip(&["-n", &sw, "link", "set", port, "master", "br0"])?;
        ip(&["-n", &sw, "link", "set", port, "up"])
    }

    /// Cuts host `i` off from every other host and from the test.
    pub fn cut(&self, i: usize) -> anyhow::Result<()> {
        ip(&["-n", &self.switch(), "link", "set", &self.port(&i.to_string()), "down"])
    }

    /// Joins host `i` again.
    pub fn heal(&self, i: usize) -> anyhow::Result<()> {
        ip(&["-n", &self.switch(), "link", "set", &self.port(&i.to_string()), "up"])
    }

    /// Removes what was made (deleting a namespace deletes its links, and
    /// a veth pair goes with either end).
    fn remove(&self) {
        let _ = ip(&["link", "del", &format!("{}r", self.prefix)]);
        for i in 0..self.hosts {
            let _ = ip(&["netns", "del", &self.ns(i)]);
        }
        let _ = ip(&["netns", "del", &self.switch()]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
    }
}
