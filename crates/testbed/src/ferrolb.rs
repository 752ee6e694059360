//! Running ferrolb itself against the testbed: its CRDs in the apiserver, and controller
//! processes that a test starts, kills and restarts, each tracked by its pid.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::Testbed;
use crate::wait::wait_until;

static STARTED: AtomicU32 = AtomicU32::new(0);

/// A `ferrolb controller` process. Dropping it kills it (SIGKILL) and reaps it.
#[derive(Debug)]
pub struct ManagedProcess {
    child: Option<Child>,
    pub log: PathBuf,
}

impl ManagedProcess {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, as a crashed or OOM-killed process: no Lease release, nothing flushed.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("killing the controller")?;
            child.wait().context("reaping the controller")?;
        }
        Ok(())
    }

    /// SIGTERM and wait for the exit (at most 10 s, then SIGKILL).
    pub fn terminate(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("sending SIGTERM")?;
        if !status.success() {
            bail!("kill -TERM {} failed", child.id());
        }
        for _ in 0..100 {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        child.kill()?;
        child.wait()?;
        bail!("the controller did not stop within 10 s of SIGTERM")
    }

    /// Whether it is still running (false once it exited on its own).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Testbed {
    /// The `ferrolb` binary the tests run: `$FERROLB_BIN`, else `target/debug/ferrolb` of
    /// this checkout (`scripts/test` builds it first).
    pub fn ferrolb_binary(&self) -> Result<PathBuf> {
        let path = match std::env::var_os("FERROLB_BIN") {
            Some(path) => PathBuf::from(path),
            None => self.repo().join("target/debug/ferrolb"),
        };
        if !path.is_file() {
            bail!(
                "{} does not exist: build it first (cargo build -p ferrolb) or set FERROLB_BIN",
                path.display()
            );
        }
        Ok(path)
    }

    /// Applies ferrolb's CRDs (server-side, idempotent) and waits until they are served.
    pub async fn install_crds(&self, client: &kube::Client) -> Result<()> {
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        let params = PatchParams::apply("ferrolb-testbed").force();
        for crd in ferrolb_api::crds() {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let mut crd = serde_json::to_value(&crd)?;
            crd["apiVersion"] = "apiextensions.k8s.io/v1".into();
            crd["kind"] = "CustomResourceDefinition".into();
            api.patch(&name, &params, &Patch::Apply(&crd))
                .await
                .with_context(|| format!("applying CRD {name}"))?;
            wait_until(
                &format!("CRD {name} established"),
                Duration::from_secs(30),
                || {
                    let api = api.clone();
                    let name = name.clone();
                    async move {
                        let crd = api.get(&name).await.map_err(|e| e.to_string())?;
                        let established = crd
                            .status
                            .and_then(|s| s.conditions)
                            .unwrap_or_default()
                            .iter()
                            .any(|c| c.type_ == "Established" && c.status == "True");
                        if established {
                            Ok(())
                        } else {
                            Err("not established yet".to_string())
                        }
                    }
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Starts `ferrolb controller ARGS…` in the root namespace (which is on the LAN and
    /// reaches the apiserver), logging to `target/testbed/logs/controller-LABEL-N.log`.
    pub fn start_controller(&self, label: &str, args: &[&str]) -> Result<ManagedProcess> {
        let binary = self.ferrolb_binary()?;
        let mut full = vec!["controller"];
        full.extend_from_slice(args);
        self.start_process(&format!("controller-{label}"), &binary, &full)
    }

    /// Starts `ferrolb speaker --node-name NODE ARGS…` inside the node's network namespace,
    /// logging to `target/testbed/logs/speaker-LABEL-NODE-PID-N.log`. `ip netns exec` execs
    /// the speaker, so the pid is the speaker's own.
    pub fn start_speaker(&self, label: &str, node: &str, args: &[&str]) -> Result<ManagedProcess> {
        self.start_speaker_with_kubeconfig(label, node, args, &self.kubeconfig()?)
    }

    /// As `start_speaker`, with another kubeconfig (a restricted user's, say).
    pub fn start_speaker_with_kubeconfig(
        &self,
        label: &str,
        node: &str,
        args: &[&str],
        kubeconfig: &std::path::Path,
    ) -> Result<ManagedProcess> {
        let binary = self.ferrolb_binary()?;
        let binary = binary.to_string_lossy();
        let mut full = vec![
            "netns",
            "exec",
            node,
            &*binary,
            "speaker",
            "--node-name",
            node,
        ];
        full.extend_from_slice(args);
        self.start_process_with_kubeconfig(
            &format!("speaker-{label}-{node}"),
            std::path::Path::new("ip"),
            &full,
            kubeconfig,
        )
    }

    /// Starts any program with the testbed's KUBECONFIG in the root namespace, logging to
    /// `target/testbed/logs/LABEL-PID-N.log` (e.g. MetalLB's controller, for comparisons).
    pub fn start_process(
        &self,
        label: &str,
        program: &std::path::Path,
        args: &[&str],
    ) -> Result<ManagedProcess> {
        self.start_process_with_kubeconfig(label, program, args, &self.kubeconfig()?)
    }

    /// As `start_process`, with another kubeconfig (a restricted user's, say).
    pub fn start_process_with_kubeconfig(
        &self,
        label: &str,
        program: &std::path::Path,
        args: &[&str],
        kubeconfig: &std::path::Path,
    ) -> Result<ManagedProcess> {
        let logs = self.repo().join("target/testbed/logs");
        std::fs::create_dir_all(&logs)?;
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let log = logs.join(format!("{label}-{}-{n}.log", std::process::id()));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(program)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .map_err(|e| anyhow!("starting {}: {e}", program.display()))?;
        Ok(ManagedProcess {
            child: Some(child),
            log,
        })
    }
}

/// Field 22 of `/proc/PID/stat` (start time in clock ticks), as `testbed/testbed` records it
/// beside each pid; `None` if the process is gone or a zombie.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19).map(|s| (*s).to_string())
}

impl Testbed {
    /// Kills kube-apiserver with SIGKILL (the pid `testbed up` recorded, checked against its
    /// start time so that a reused pid is never hit) and brings it back with `testbed up`.
    /// Every other test sees the apiserver vanish: run this alone.
    pub async fn restart_apiserver(&self) -> Result<()> {
        let file = self.repo().join("target/testbed/pids/kube-apiserver.pid");
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let mut parts = text.split_whitespace();
        let pid: u32 = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| anyhow!("no pid in {}", file.display()))?;
        let recorded = parts.next().unwrap_or_default().to_string();
        if start_time(pid).as_deref() != Some(recorded.as_str()) {
            bail!("kube-apiserver (pid {pid}) is not running as recorded");
        }
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -KILL {pid} failed");
        }
        wait_until("kube-apiserver gone", Duration::from_secs(10), || async {
            match start_time(pid) {
                Some(t) if t == recorded => Err("still running".to_string()),
                _ => Ok(()),
            }
        })
        .await?;
        let nodes = self.nodes.len().to_string();
        let mut args = vec!["up", "--nodes", &nodes];
        if self.nodes.iter().any(|n| n.host.eth1.is_some()) {
            args.push("--lan2");
        }
        self.script(&args).await?.ok()?;
        Ok(())
    }
}
