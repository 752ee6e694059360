//! Commands inside the testbed's network namespaces, and the testbed script itself.

use std::ffi::OsStr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::Command;

use crate::Testbed;

/// What a finished command printed, and whether it succeeded.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    pub command: String,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    /// The output if the command succeeded, otherwise an error quoting the command and stderr.
    pub fn ok(self) -> Result<Self> {
        if self.success {
            Ok(self)
        } else {
            bail!(
                "`{}` failed: {}{}",
                self.command,
                self.stderr.trim(),
                if self.stdout.trim().is_empty() {
                    String::new()
                } else {
                    format!(" (stdout: {})", self.stdout.trim())
                }
            )
        }
    }
}

/// Runs `program args…` to completion within `timeout`; the child is killed if it overruns.
pub(crate) async fn run<I, S>(program: &str, args: I, timeout: Duration) -> Result<CommandOutput>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let command = std::iter::once(program.to_string())
        .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    let child = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting `{command}`"))?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .with_context(|| format!("`{command}` did not finish within {timeout:?}"))?
        .with_context(|| format!("waiting for `{command}`"))?;
    Ok(CommandOutput {
        command,
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

impl Testbed {
    /// Runs a command inside network namespace `netns` (`ip netns exec`), 30 s at most.
    pub async fn exec<S: AsRef<OsStr>>(&self, netns: &str, args: &[S]) -> Result<CommandOutput> {
        let mut full: Vec<&OsStr> = vec![OsStr::new("netns"), OsStr::new("exec"), netns.as_ref()];
        full.extend(args.iter().map(AsRef::as_ref));
        run("ip", full, Duration::from_secs(30)).await
    }

    /// Runs `testbed/testbed args…` (e.g. `pod add …`), 5 minutes at most.
    pub async fn script<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<CommandOutput> {
        let script = self.repo().join("testbed/testbed");
        run(
            &script.to_string_lossy(),
            args.iter().map(AsRef::as_ref),
            Duration::from_secs(300),
        )
        .await
    }

    /// An HTTP GET from the client namespace with curl; `Ok(body)` or the error curl gave.
    pub async fn http_get_from_client(&self, url: &str) -> Result<String> {
        let output = self
            .exec(
                &self.client.netns,
                &["curl", "-sS", "--max-time", "3", "--globoff", url],
            )
            .await?
            .ok()?;
        Ok(output.stdout)
    }
}
