//! The testbed as `testbed/testbed env` describes it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

/// A host on the testbed's LAN: its network namespace, its `eth0` addresses and MAC, and its
/// `eth1` on the second LAN when the testbed was brought up with `--lan2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub netns: String,
    pub ip4: Ipv4Addr,
    pub ip6: Ipv6Addr,
    pub mac: String,
    pub eth1: Option<Interface>,
}

/// One interface's addresses and MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub ip4: Ipv4Addr,
    pub ip6: Ipv6Addr,
    pub mac: String,
}

/// A Kubernetes node of the testbed: a host whose netns name is also its Node object's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub host: Host,
    pub pod_cidr4: String,
    pub pod_cidr6: String,
}

/// A running testbed, read from the `export` lines of `testbed/testbed env`.
#[derive(Debug, Clone)]
pub struct Testbed {
    vars: BTreeMap<String, String>,
    repo: PathBuf,
    pub nodes: Vec<Node>,
    pub client: Host,
    pub router: Host,
}

/// The repository root, found from this crate's manifest directory.
pub(crate) fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| here.to_path_buf())
}

/// Parses `export A=1 B="x y"` lines as the testbed prints them.
pub(crate) fn parse_exports(text: &str) -> Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("export ") else {
            continue;
        };
        let mut rest = rest.trim_start();
        while !rest.is_empty() {
            let (name, after) = rest
                .split_once('=')
                .ok_or_else(|| anyhow!("line {}: no `=` in {line:?}", number + 1))?;
            let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted
                    .find('"')
                    .ok_or_else(|| anyhow!("line {}: unclosed quote in {line:?}", number + 1))?;
                (&quoted[..end], &quoted[end + 1..])
            } else {
                after.split_once(' ').unwrap_or((after, ""))
            };
            vars.insert(name.to_string(), value.to_string());
            rest = after.trim_start();
        }
    }
    Ok(vars)
}

impl Testbed {
    /// The running testbed. Fails, never skips: an end-to-end test without its testbed has not
    /// run, and saying so loudly is the only honest result (see README, "Tests").
    pub fn get() -> Self {
        match Self::read() {
            Ok(testbed) => testbed,
            Err(err) => panic!(
                "the end-to-end tests need the testbed, which needs root and network namespaces: \
                 run `scripts/test` (or `sudo testbed/testbed up` first).\n{err:#}"
            ),
        }
    }

    /// Reads the testbed's environment by running `testbed/testbed env`.
    pub fn read() -> Result<Self> {
        let repo = repo_root();
        let script = repo.join("testbed/testbed");
        let output = std::process::Command::new(&script)
            .arg("env")
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !output.status.success() {
            bail!(
                "`testbed/testbed env` failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Self::from_exports(&String::from_utf8_lossy(&output.stdout), repo)
    }

    pub(crate) fn from_exports(text: &str, repo: PathBuf) -> Result<Self> {
        let vars = parse_exports(text)?;
        let get = |name: &str| -> Result<&str> {
            vars.get(name)
                .map(String::as_str)
                .ok_or_else(|| anyhow!("`testbed env` did not set {name}"))
        };
        let interface = |prefix: &str| -> Result<Interface> {
            Ok(Interface {
                ip4: get(&format!("{prefix}_IP4"))?.parse()?,
                ip6: get(&format!("{prefix}_IP6"))?.parse()?,
                mac: get(&format!("{prefix}_MAC"))?.to_string(),
            })
        };
        let lan2 = vars.contains_key("TESTBED_LAN2");
        // The router is not on the second LAN; the client and the nodes are, when it exists.
        let host = |prefix: &str, netns: &str, on_lan2: bool| -> Result<Host> {
            let eth0 = interface(prefix)?;
            Ok(Host {
                netns: netns.to_string(),
                ip4: eth0.ip4,
                ip6: eth0.ip6,
                mac: eth0.mac,
                eth1: if lan2 && on_lan2 {
                    Some(interface(&format!("{prefix}_LAN2"))?)
                } else {
                    None
                },
            })
        };
        let mut nodes = Vec::new();
        for (index, name) in get("TESTBED_NODES")?.split_whitespace().enumerate() {
            let prefix = format!("TESTBED_NODE_{}", index + 1);
            nodes.push(Node {
                name: name.to_string(),
                host: host(&prefix, get(&format!("{prefix}_NETNS"))?, true)?,
                pod_cidr4: get(&format!("{prefix}_POD_CIDR4"))?.to_string(),
                pod_cidr6: get(&format!("{prefix}_POD_CIDR6"))?.to_string(),
            });
        }
        let client = host("TESTBED_CLIENT", get("TESTBED_NETNS_CLIENT")?, true)?;
        let router = host("TESTBED_ROUTER", get("TESTBED_NETNS_ROUTER")?, false)?;
        Ok(Self {
            vars,
            repo,
            nodes,
            client,
            router,
        })
    }

    /// Any variable of `testbed env`, e.g. `TESTBED_ROUTER_FRR_VTY`.
    pub fn var(&self, name: &str) -> Result<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("`testbed env` did not set {name}"))
    }

    pub fn repo(&self) -> &Path {
        &self.repo
    }

    pub fn kubeconfig(&self) -> Result<PathBuf> {
        Ok(PathBuf::from(self.var("KUBECONFIG")?))
    }

    /// The directory holding the upstream binaries (kubectl, kube-apiserver, …).
    pub fn bin_dir(&self) -> Result<PathBuf> {
        Ok(PathBuf::from(self.var("TESTBED_BIN")?))
    }

    pub fn node(&self, name: &str) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|node| node.name == name)
            .ok_or_else(|| anyhow!("the testbed has no node {name}"))
    }

    /// A client for the testbed's apiserver, authenticated as its admin.
    pub async fn kube(&self) -> Result<kube::Client> {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig()?)
            .context("reading the testbed kubeconfig")?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .context("loading the testbed kubeconfig")?;
        kube::Client::try_from(config).context("building a kube client")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"export KUBECONFIG=/x/kubeconfig
export TESTBED_NODES="node-1 node-2"
export TESTBED_NETNS_LAN=lan TESTBED_NETNS_CP=cp TESTBED_NETNS_CLIENT=client TESTBED_NETNS_ROUTER=router
export TESTBED_ROUTER_IP4=198.51.100.3 TESTBED_ROUTER_IP6=2001:db8:100::3 TESTBED_ROUTER_MAC=02:fe:c6:33:64:03
export TESTBED_CLIENT_IP4=198.51.100.4 TESTBED_CLIENT_IP6=2001:db8:100::4 TESTBED_CLIENT_MAC=02:fe:c6:33:64:04
export TESTBED_NODE_1_NETNS=node-1 TESTBED_NODE_1_IP4=198.51.100.11 TESTBED_NODE_1_IP6=2001:db8:100::11 TESTBED_NODE_1_MAC=02:fe:c6:33:64:0b TESTBED_NODE_1_POD_CIDR4=203.0.113.128/28 TESTBED_NODE_1_POD_CIDR6=2001:db8:1:1::/64
export TESTBED_NODE_2_NETNS=node-2 TESTBED_NODE_2_IP4=198.51.100.12 TESTBED_NODE_2_IP6=2001:db8:100::12 TESTBED_NODE_2_MAC=02:fe:c6:33:64:0c TESTBED_NODE_2_POD_CIDR4=203.0.113.144/28 TESTBED_NODE_2_POD_CIDR6=2001:db8:1:2::/64
"#;

    #[test]
    fn reads_the_env_lines_testbed_prints() {
        let testbed = Testbed::from_exports(SAMPLE, PathBuf::from("/repo")).expect("parses");
        assert_eq!(testbed.nodes.len(), 2);
        let node2 = testbed.node("node-2").expect("node-2");
        assert_eq!(node2.host.ip4, Ipv4Addr::new(198, 51, 100, 12));
        assert_eq!(node2.host.mac, "02:fe:c6:33:64:0c");
        assert_eq!(node2.pod_cidr6, "2001:db8:1:2::/64");
        assert_eq!(testbed.client.netns, "client");
        assert_eq!(testbed.client.eth1, None, "no second LAN was asked for");
        assert_eq!(
            testbed.router.ip6,
            "2001:db8:100::3".parse::<Ipv6Addr>().expect("literal")
        );
        assert_eq!(
            testbed.kubeconfig().expect("set"),
            PathBuf::from("/x/kubeconfig")
        );
    }

    #[test]
    fn second_lan_addresses_are_read_when_present() {
        let with_lan2 = format!(
            "{SAMPLE}export TESTBED_LAN2=1\n\
             export TESTBED_CLIENT_LAN2_IP4=198.19.255.4 TESTBED_CLIENT_LAN2_IP6=2001:db8:101::4 TESTBED_CLIENT_LAN2_MAC=02:fe:c6:13:ff:04\n\
             export TESTBED_NODE_1_LAN2_IP4=198.19.255.11 TESTBED_NODE_1_LAN2_IP6=2001:db8:101::11 TESTBED_NODE_1_LAN2_MAC=02:fe:c6:13:ff:0b\n\
             export TESTBED_NODE_2_LAN2_IP4=198.19.255.12 TESTBED_NODE_2_LAN2_IP6=2001:db8:101::12 TESTBED_NODE_2_LAN2_MAC=02:fe:c6:13:ff:0c\n"
        );
        let testbed = Testbed::from_exports(&with_lan2, PathBuf::new()).expect("parses");
        let eth1 = testbed.nodes[1]
            .host
            .eth1
            .as_ref()
            .expect("node-2 has eth1");
        assert_eq!(eth1.ip4, Ipv4Addr::new(198, 19, 255, 12));
        assert_eq!(eth1.mac, "02:fe:c6:13:ff:0c");
        assert!(testbed.client.eth1.is_some());
        assert_eq!(
            testbed.router.eth1, None,
            "the router is not on the second LAN"
        );
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = Testbed::from_exports("export TESTBED_NODES=\"node-1\"\n", PathBuf::new())
            .expect_err("incomplete env must fail");
        assert!(
            err.to_string().contains("TESTBED_NODE_1_NETNS"),
            "error does not name the variable: {err}"
        );
    }

    #[test]
    fn quoted_values_keep_their_spaces_and_unclosed_quotes_fail() {
        let vars = parse_exports("export A=\"x y\" B=2\n").expect("parses");
        assert_eq!(vars["A"], "x y");
        assert_eq!(vars["B"], "2");
        assert!(parse_exports("export A=\"x y\n").is_err());
    }
}
