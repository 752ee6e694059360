//! Waiting with a deadline that explains itself.

use std::future::Future;
use std::time::Duration;

use anyhow::{Result, bail};

/// Polls `check` every 100 ms until it returns `Ok(value)` or `timeout` passes.
///
/// `check` returns `Err(observation)` while the condition does not hold; on timeout the error
/// names `what` was awaited and the last observation, so a failing test says why it failed.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(observation) => {
                if tokio::time::Instant::now() >= deadline {
                    bail!(
                        "timed out after {:.1}s waiting for {what}; last seen: {observation}",
                        timeout.as_secs_f64()
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn returns_the_value_once_the_condition_holds() {
        let mut calls = 0;
        let value = wait_until("three calls", Duration::from_secs(5), || {
            calls += 1;
            let calls = calls;
            async move {
                if calls >= 3 {
                    Ok(calls)
                } else {
                    Err(format!("{calls} calls"))
                }
            }
        })
        .await
        .expect("condition holds on the third call");
        assert_eq!(value, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_names_what_and_the_last_observation() {
        let err = wait_until("the moon", Duration::from_secs(1), || async {
            Err::<(), _>("still cheese".to_string())
        })
        .await
        .expect_err("never holds");
        let text = err.to_string();
        assert!(text.contains("waiting for the moon"), "{text}");
        assert!(text.contains("last seen: still cheese"), "{text}");
    }
}
